// Package storetest owns the store contract suite: the behaviour every
// store.Store implementation must show (DECISIONS D2–D3, D7), checked by
// Run against a backend-supplied opener. Backends call it from their own
// tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, o storetest.Options) store.Store { ... })
//	}
//
// Subtests that need a capability the backend lacks (store.Capabilities)
// are skipped.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// Options is what the suite asks of an opener.
type Options struct {
	// Dir is a directory the store may keep its files in. Opening the same
	// Dir again after Close reopens the same store (Durable backends);
	// a fresh Dir is a fresh, empty store.
	Dir string
	// Retention to apply; zero fields mean no limit, and the opener must
	// not add limits of its own that the suite could hit (a few hundred
	// records, a few MiB).
	Retention store.Retention
}

// Opener opens (or reopens) a store. It fails t itself when it cannot.
// The suite closes every store it opens; an opener may also register a
// Cleanup that closes it, so Close must tolerate a second call.
type Opener func(t *testing.T, opts Options) store.Store

// Run runs the contract suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	h := harness{open: open}
	tests := []struct {
		name string
		fn   func(*testing.T, harness)
	}{
		{"Empty", testEmpty},
		{"PartitionOrderAndPaging", testPartitionPaging},
		{"BytesIdenticalAllKinds", testBytesIdentical},
		{"Corpus", testCorpus},
		{"PayloadIsolation", testPayloadIsolation},
		{"BoundsOffsetsSkips", testBoundsOffsetsSkips},
		{"RejectsBadOffsets", testRejectsBadOffsets},
		{"ThreadReads", testThreadReads},
		{"Runs", testRuns},
		{"Epoch", testEpoch},
		{"RetainByCount", testRetainByCount},
		{"RetainByAge", testRetainByAge},
		{"RetainByBytes", testRetainByBytes},
		{"FileCap", testFileCap},
		{"ConcurrentReaders", testConcurrentReaders},
		{"Closed", testClosed},
		{"Durable", testDurable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

type harness struct{ open Opener }

// fresh opens an empty store in a new directory; the store is closed when
// the test ends.
func (h harness) fresh(t *testing.T, ret store.Retention) (store.Store, Options) {
	t.Helper()
	o := Options{Dir: t.TempDir(), Retention: ret}
	return h.reopen(t, o), o
}

// reopen opens o (again); the store is closed when the test ends.
func (h harness) reopen(t *testing.T, o Options) store.Store {
	t.Helper()
	s := h.open(t, o)
	if s == nil {
		t.Fatal("opener returned a nil store")
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func requireCaps(t *testing.T, s store.Store, what string, ok func(store.Capabilities) bool) {
	t.Helper()
	if !ok(s.Capabilities()) {
		t.Skipf("backend does not implement %s", what)
	}
}

var ctx = context.Background()

// base is a millisecond-aligned time (Kafka precision) near now, so no
// age limit of a backend can touch the suite's records by accident.
func base() time.Time {
	return time.Now().Add(-time.Minute).Truncate(time.Millisecond)
}

// payload is a deterministic, incompressible, plain-framed (0x00) value
// of the given size (at least 1) for (p, off).
func payload(p int32, off int64, size int) []byte {
	r := rand.New(rand.NewPCG(uint64(p)+1, uint64(off)))
	b := make([]byte, max(size, 1))
	for i := 1; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	b[0] = wire.FrameRaw
	return b
}

// th is a thread reference for rec.
type th struct {
	id  string
	seq uint64
}

// rec builds a record with a payload of size bytes that touches threads.
func rec(p int32, off int64, at time.Time, size int, threads ...th) store.Record {
	r := store.Record{
		Partition: p,
		Offset:    off,
		Time:      at,
		Payload:   payload(p, off, size),
		Index:     wire.Index{Type: pb.MessageType_MESSAGE_TYPE_EVENT, TimestampUs: at.UnixMicro()},
	}
	for _, x := range threads {
		r.Index.Threads = append(r.Index.Threads, wire.ThreadSeq{ThreadID: x.id, Seq: x.seq})
	}
	r.Index.MultiThread = len(threads) > 1
	return r
}

// batch wraps records with NextOffsets = last offset + 1 per partition.
func batch(recs ...store.Record) store.Batch {
	b := store.Batch{Records: recs, NextOffsets: map[int32]int64{}}
	for _, r := range recs {
		b.NextOffsets[r.Partition] = r.Offset + 1
	}
	return b
}

func mustAppend(t *testing.T, s store.Store, b store.Batch) {
	t.Helper()
	if err := s.Append(ctx, b); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// checkPage verifies the Limits of one page.
func checkPage(t *testing.T, what string, sizes []int, lim store.Limits) {
	t.Helper()
	if lim.MaxRecords > 0 && len(sizes) > lim.MaxRecords {
		t.Fatalf("%s: page of %d records over MaxRecords %d", what, len(sizes), lim.MaxRecords)
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	if lim.MaxBytes > 0 && len(sizes) > 1 && total > lim.MaxBytes {
		t.Fatalf("%s: page of %d records, %d bytes over MaxBytes %d", what, len(sizes), total, lim.MaxBytes)
	}
}

// readPartition pages through p after `after` with lim, checking every
// page, and returns all records.
func readPartition(t *testing.T, s store.Store, p int32, after int64, lim store.Limits) []store.Record {
	t.Helper()
	var all []store.Record
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			t.Fatal("ReadPartition paging does not end")
		}
		recs, more, err := s.ReadPartition(ctx, p, after, lim)
		if err != nil {
			t.Fatalf("ReadPartition(%d, %d): %v", p, after, err)
		}
		sizes := make([]int, len(recs))
		for i, r := range recs {
			sizes[i] = len(r.Payload)
			if r.Partition != p {
				t.Fatalf("ReadPartition(%d) returned a record of partition %d", p, r.Partition)
			}
			if r.Offset <= after {
				t.Fatalf("ReadPartition(%d, after %d) returned offset %d", p, after, r.Offset)
			}
			after = r.Offset
		}
		checkPage(t, fmt.Sprintf("ReadPartition(%d)", p), sizes, lim)
		all = append(all, recs...)
		if !more {
			return all
		}
		if len(recs) == 0 {
			t.Fatalf("ReadPartition(%d): empty page with more=true", p)
		}
	}
}

// readThread pages through a thread after `after` with lim, checking key
// order and limits, and returns all records.
func readThread(t *testing.T, s store.Store, id string, after store.ThreadKey, lim store.Limits) []store.ThreadRecord {
	t.Helper()
	var all []store.ThreadRecord
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			t.Fatal("ReadThread paging does not end")
		}
		recs, more, err := s.ReadThread(ctx, id, after, lim)
		if err != nil {
			t.Fatalf("ReadThread(%q): %v", id, err)
		}
		sizes := make([]int, len(recs))
		for i, r := range recs {
			sizes[i] = len(r.Payload)
			if compareKeys(r.Key, after) <= 0 {
				t.Fatalf("ReadThread(%q, after %+v) returned key %+v", id, after, r.Key)
			}
			if r.Key.Partition != r.Partition || r.Key.Offset != r.Offset {
				t.Fatalf("ReadThread(%q): key %+v names another record than %d/%d", id, r.Key, r.Partition, r.Offset)
			}
			after = r.Key
		}
		checkPage(t, fmt.Sprintf("ReadThread(%q)", id), sizes, lim)
		all = append(all, recs...)
		if !more {
			return all
		}
		if len(recs) == 0 {
			t.Fatalf("ReadThread(%q): empty page with more=true", id)
		}
	}
}

func compareKeys(a, b store.ThreadKey) int {
	switch {
	case a.Seq != b.Seq:
		return cmpInt(a.Seq, b.Seq)
	case a.Partition != b.Partition:
		return cmpInt(a.Partition, b.Partition)
	default:
		return cmpInt(a.Offset, b.Offset)
	}
}

func cmpInt[T uint64 | int32 | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sameRecord fails t unless got has want's partition, offset, time and
// payload bytes.
func sameRecord(t *testing.T, what string, got, want store.Record) {
	t.Helper()
	if got.Partition != want.Partition || got.Offset != want.Offset {
		t.Fatalf("%s: got record %d/%d, want %d/%d", what, got.Partition, got.Offset, want.Partition, want.Offset)
	}
	if !got.Time.Equal(want.Time) {
		t.Errorf("%s: record %d/%d time %v, want %v", what, got.Partition, got.Offset, got.Time, want.Time)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("%s: record %d/%d payload differs (%d bytes, want %d)", what, got.Partition, got.Offset, len(got.Payload), len(want.Payload))
	}
}

func sameRecords(t *testing.T, what string, got, want []store.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records (%s), want %d (%s)", what, len(got), offsets(got), len(want), offsets(want))
	}
	for i := range got {
		sameRecord(t, what, got[i], want[i])
	}
}

func offsets(recs []store.Record) string {
	var b []byte
	for i, r := range recs {
		if i == 20 {
			b = append(b, " …"...)
			break
		}
		b = fmt.Appendf(b, " %d/%d", r.Partition, r.Offset)
	}
	return string(b)
}

// ofPartition keeps the records of p from recs, in order.
func ofPartition(recs []store.Record, p int32) []store.Record {
	var out []store.Record
	for _, r := range recs {
		if r.Partition == p {
			out = append(out, r)
		}
	}
	return out
}

func threadRecords(trs []store.ThreadRecord) []store.Record {
	out := make([]store.Record, len(trs))
	for i, r := range trs {
		out[i] = r.Record
	}
	return out
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func sortedPartitions(s store.Store) []int32 {
	ps := slices.Clone(s.Partitions())
	slices.Sort(ps)
	return ps
}
