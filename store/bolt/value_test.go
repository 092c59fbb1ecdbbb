package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// TestTailMergeKeepsTimes appends one record at a time, so every Append
// re-encodes the partition's tail block from its lazily decoded records
// (times relative to header timestamps left unresolved), with a mix of
// millisecond and nanosecond times, zero times and headers without a
// timestamp, until blocks split; every record reads back exactly.
func TestTailMergeKeepsTimes(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), FileName), Options{pageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var want []store.Record
	base := time.UnixMilli(1_767_225_600_000).UTC()
	for i := 0; i < 400; i++ {
		r := eventRecord(t, i)
		kind := i % 5
		if i%40 < 20 {
			kind = 0 // runs of millisecond blocks, then nanosecond records join them
		}
		switch kind {
		case 0:
			r.Time = time.UnixMicro(r.Index.TimestampUs).Add(time.Duration(i%3+1) * time.Millisecond).Truncate(time.Millisecond).UTC()
		case 1:
			r.Time = base.Add(time.Duration(i)*time.Second + 7) // nanoseconds
		case 2:
			r.Time = time.Time{}
		case 3:
			r.Index.TimestampUs = 0 // not derivable any more: meta stored
			r.Time = base.Add(time.Duration(i) * time.Millisecond)
		default:
			r.Time = time.UnixMicro(r.Index.TimestampUs).Add(-3 * time.Millisecond).UTC()
		}
		want = append(want, r)
		if err := s.Append(context.Background(), batchOf([]store.Record{r})); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, s, 0)
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || !g.Time.Equal(w.Time) || string(g.Payload) != string(w.Payload) || !reflect.DeepEqual(normIndex(g.Index), normIndex(w.Index)) {
			t.Fatalf("record %d: time %v index %+v, want %v %+v", i, g.Time, g.Index, w.Time, w.Index)
		}
	}
	if blocks := countBlocks(t, s, 0); blocks < 3 {
		t.Errorf("only %d blocks: no split exercised", blocks)
	}
}

func countBlocks(t *testing.T, s *Store, p int32) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bParts).Bucket(be32(p)).ForEach(func(k, v []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventRecord is a real, small DashStream record (wire.Encode) with the
// index ingest computes (wire.Extract).
func eventRecord(t *testing.T, i int) store.Record {
	t.Helper()
	ts := int64(1_767_225_600_000_000 + i*1234)
	m := &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header: &pb.Header{MessageId: []byte{byte(i), byte(i >> 8), 3, 4, 5, 6, 7, 8}, TimestampUs: ts, TenantId: "default",
			ThreadId: fmt.Sprintf("run-%d", i/30), Sequence: uint64(i%30 + 1), Type: pb.MessageType_MESSAGE_TYPE_EVENT, SchemaVersion: 1},
		EventType: pb.EventType_EVENT_TYPE_NODE_START, NodeId: fmt.Sprintf("node-%d", i%7),
		LlmRequestId: fmt.Sprintf("%016x%016x", uint64(i)*0x9E3779B97F4A7C15, uint64(i+7)*0xBF58476D1CE4E5B9),
	}}}
	v, err := wire.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := wire.Extract(v, wire.DefaultMaxPayload)
	if err != nil {
		t.Fatal(err)
	}
	return store.Record{Partition: 0, Offset: int64(i), Time: time.UnixMicro(ts).Truncate(time.Millisecond).UTC(), Payload: v, Index: ix}
}

func normIndex(ix wire.Index) wire.Index {
	if len(ix.Threads) == 0 {
		ix.Threads = nil
	}
	if len(ix.Events) == 0 {
		ix.Events = nil
	}
	return ix
}

func readAll(t *testing.T, s *Store, p int32) []store.Record {
	t.Helper()
	var out []store.Record
	after := int64(-1)
	for {
		recs, more, err := s.ReadPartition(context.Background(), p, after, store.Limits{MaxRecords: 50})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
		if len(recs) > 0 {
			after = recs[len(recs)-1].Offset
		}
		if !more {
			return out
		}
	}
}

// TestMetaRoundTrip: a block keeps a stored index (wire's codec) and
// eviction reads its threads alone.
func TestMetaRoundTrip(t *testing.T) {
	ix := wire.Index{Type: pb.MessageType_MESSAGE_TYPE_EVENT_BATCH, TimestampUs: -5, SchemaVersion: 3, MultiThread: true,
		Threads: []wire.ThreadSeq{{ThreadID: "a", Seq: 1}, {ThreadID: "b", Seq: 1 << 60}},
		Events: []wire.RunEvent{{ThreadID: "a", Seq: 1, TimestampUs: 9, EventType: pb.EventType_EVENT_TYPE_NODE_ERROR,
			GraphName: "g", ErrorText: "boom", NodeID: "n1"}}}
	r := blockRec{meta: wire.AppendIndex(nil, &ix)}
	ts, err := r.threads()
	if err != nil || !reflect.DeepEqual(ts, ix.Threads) {
		t.Fatalf("threads: %+v, %v", ts, err)
	}
	got, err := r.index()
	if err != nil || !reflect.DeepEqual(got, ix) {
		t.Fatalf("meta round trip: %+v, %v", got, err)
	}
	bad := blockRec{meta: []byte{1, 2}}
	if _, err := bad.index(); !errors.Is(err, errCorruptValue) {
		t.Fatalf("corrupt meta: %v", err)
	}
	// sameIndex must compare every field of wire.Index.
	if n := reflect.TypeOf(wire.Index{}).NumField(); n != 6 {
		t.Fatalf("wire.Index has %d fields; update sameIndex", n)
	}
}

func TestSelfDelimited(t *testing.T) {
	for _, tc := range []struct {
		b  []byte
		ok bool
	}{
		{[]byte{0, 0x0a, 2, 'h', 'i'}, true},
		{[]byte{0, 0x0a, 2, 'h'}, false},
		{[]byte{0, 0x0a, 2, 'h', 'i', 'x'}, false},
		{[]byte{0, 0x08, 2, 'h', 'i'}, false}, // varint field
		{[]byte{1, 0x0a, 2, 'h', 'i'}, false},
		{[]byte{0}, false},
	} {
		if got := selfDelimited(tc.b); got != tc.ok {
			t.Errorf("selfDelimited(%x) = %v", tc.b, got)
		}
	}
}
