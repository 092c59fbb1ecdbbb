package storetest

import (
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
)

var epochRE = regexp.MustCompile(`^[0-9a-f]{16}-[0-9]+$`)

func epochOf(id [16]byte, gen uint64) string {
	return fmt.Sprintf("%s-%d", hex.EncodeToString(id[:8]), gen)
}

// checkCleared fails t unless s holds no records, thread entries or runs.
func checkCleared(t *testing.T, what string, s store.Store, parts ...int32) {
	t.Helper()
	for _, p := range parts {
		if _, _, ok := s.Bounds(p); ok {
			t.Errorf("%s: Bounds(%d) ok", what, p)
		}
		if recs, more, err := s.ReadPartition(ctx, p, -1, store.Limits{}); err != nil || len(recs) != 0 || more {
			t.Errorf("%s: ReadPartition(%d): %d records, more=%v, %v", what, p, len(recs), more, err)
		}
	}
	if trs, _, err := s.ReadThread(ctx, "t", store.ThreadKey{}, store.Limits{}); err != nil || len(trs) != 0 {
		t.Errorf("%s: ReadThread: %d records, %v", what, len(trs), err)
	}
	if runs, _, err := s.Runs(ctx, store.RunQuery{}); err != nil || len(runs) != 0 {
		t.Errorf("%s: Runs: %v, %v", what, runIDs(runs), err)
	}
	if _, ok, err := s.Run(ctx, "t"); ok || err != nil {
		t.Errorf("%s: Run(t): ok=%v, %v", what, ok, err)
	}
	if st := s.Stats(); st.Records != 0 || st.RawBytes != 0 {
		t.Errorf("%s: Stats: %d records, %d bytes", what, st.Records, st.RawBytes)
	}
}

func testEpoch(t *testing.T, h harness) {
	s, o := h.fresh(t, store.Retention{})
	at := base()
	id1 := [16]byte{0x73, 0xac, 0xb1, 0x3b, 0x7c, 0x6d, 0x0c, 0x5d, 1, 2, 3, 4, 5, 6, 7, 8}
	id2 := [16]byte{0xfe, 0xed, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9}

	e0 := s.Epoch()
	if !epochRE.MatchString(e0) {
		t.Fatalf("Epoch %q does not look like <16 hex>-<generation>", e0)
	}
	if e := s.Epoch(); e != e0 {
		t.Fatalf("Epoch changed between calls: %q then %q", e0, e)
	}
	mustAppend(t, s, store.Batch{
		Records:     []store.Record{rec(0, 0, at, 20, th{"t", 1}), rec(0, 1, at, 20, th{"t", 2}), rec(1, 0, at, 20)},
		Skipped:     []store.SkippedRange{{Partition: 0, From: 2, To: 4, Reason: store.SkipInvalid}},
		NextOffsets: map[int32]int64{0: 4, 1: 1},
	})

	// A new source clears everything and starts at generation 0.
	changed, err := s.SetSource(ctx, id1)
	if err != nil || !changed {
		t.Fatalf("SetSource(new id) = %v, %v; want changed", changed, err)
	}
	if got, want := s.Epoch(), epochOf(id1, 0); got != want {
		t.Fatalf("Epoch after SetSource = %q, want %q", got, want)
	}
	checkCleared(t, "new source", s, 0, 1)
	if offs := s.IngestOffsets(); len(offs) != 0 {
		t.Errorf("IngestOffsets after a new source: %v", offs)
	}
	if sk, err := s.Skipped(0, 0, 100); err != nil || len(sk) != 0 {
		t.Errorf("Skipped after a new source: %v, %v", sk, err)
	}
	if ps := s.Partitions(); len(ps) != 0 {
		t.Errorf("Partitions after a new source: %v", ps)
	}
	if st := s.Stats(); st.Generation != 0 || st.Epoch != epochOf(id1, 0) {
		t.Errorf("Stats after a new source: generation %d, epoch %q", st.Generation, st.Epoch)
	}

	// Offsets start again from 0; the same id changes nothing.
	mustAppend(t, s, batch(rec(0, 0, at, 20, th{"t", 1}), rec(0, 1, at, 20, th{"t", 2}), rec(0, 2, at, 20, th{"t", 3})))
	changed, err = s.SetSource(ctx, id1)
	if err != nil || changed {
		t.Fatalf("SetSource(same id) = %v, %v; want unchanged", changed, err)
	}
	if _, l, ok := s.Bounds(0); !ok || l != 2 {
		t.Fatalf("SetSource(same id) lost records: Bounds(0) latest %d, %v", l, ok)
	}
	if got := s.Epoch(); got != epochOf(id1, 0) {
		t.Fatalf("Epoch after SetSource(same id) = %q", got)
	}

	// Reset: generation+1, records/threads/runs gone, offsets kept.
	e1, err := s.Reset(ctx)
	if err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if want := epochOf(id1, 1); e1 != want || s.Epoch() != want {
		t.Fatalf("Reset returned %q, Epoch() %q; want %q", e1, s.Epoch(), want)
	}
	checkCleared(t, "reset", s, 0)
	if offs := s.IngestOffsets(); !maps.Equal(offs, map[int32]int64{0: 3}) {
		t.Errorf("IngestOffsets after Reset = %v, want map[0:3]", offs)
	}
	if st := s.Stats(); st.Generation != 1 || st.Epoch != e1 {
		t.Errorf("Stats after Reset: generation %d, epoch %q", st.Generation, st.Epoch)
	}
	// Kept offsets still apply; appends continue after them.
	wantErr(t, "append below the kept offset", s.Append(ctx, batch(rec(0, 1, at, 20))), store.ErrOffsetOrder)
	mustAppend(t, s, batch(rec(0, 3, at, 20, th{"t", 4}), rec(0, 4, at, 20, th{"t", 5})))
	if o, l, ok := s.Bounds(0); !ok || o != 3 || l != 4 {
		t.Errorf("Bounds(0) after Reset and append = %d, %d, %v; want 3, 4", o, l, ok)
	}
	if r, ok, _ := s.Run(ctx, "t"); !ok || r.Messages != 2 || r.FirstSeq != 4 {
		t.Errorf("run after Reset and append: %+v, %v", r, ok)
	}
	if trs := readThread(t, s, "t", store.ThreadKey{}, store.Limits{}); len(trs) != 2 {
		t.Errorf("thread after Reset and append: %d records, want 2", len(trs))
	}

	e2, err := s.Reset(ctx)
	if err != nil || e2 != epochOf(id1, 2) {
		t.Fatalf("second Reset = %q, %v; want %q", e2, err, epochOf(id1, 2))
	}
	changed, err = s.SetSource(ctx, id2)
	if err != nil || !changed || s.Epoch() != epochOf(id2, 0) {
		t.Fatalf("SetSource(id2) = %v, %v, epoch %q; want changed, %q", changed, err, s.Epoch(), epochOf(id2, 0))
	}
	if offs := s.IngestOffsets(); len(offs) != 0 {
		t.Errorf("IngestOffsets after the second source: %v", offs)
	}

	if !s.Capabilities().Durable {
		return
	}
	e3, err := s.Reset(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, batch(rec(0, 0, at, 20, th{"t", 1})))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = h.reopen(t, o)
	if got := s.Epoch(); got != e3 {
		t.Fatalf("Epoch after reopen = %q, want %q", got, e3)
	}
	if st := s.Stats(); st.Generation != 1 {
		t.Errorf("generation after reopen = %d, want 1", st.Generation)
	}
	if changed, err := s.SetSource(ctx, id2); err != nil || changed {
		t.Errorf("SetSource(same id) after reopen = %v, %v; want unchanged", changed, err)
	}
	if _, _, ok := s.Bounds(0); !ok {
		t.Error("records lost across reopen")
	}

	// A store that was never told a source keeps its epoch too.
	fresh, fo := h.fresh(t, store.Retention{})
	fe := fresh.Epoch()
	if err := fresh.Close(); err != nil {
		t.Fatal(err)
	}
	if got := h.reopen(t, fo).Epoch(); got != fe {
		t.Errorf("epoch of a store without a source changed across reopen: %q then %q", fe, got)
	}
}

func testRetainByCount(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{MaxRecordsPerPartition: 5})
	requireCaps(t, s, "retention by count", func(c store.Capabilities) bool { return c.RetainByCount })
	at := base()
	var p0 []store.Record
	for b := range 3 {
		var recs []store.Record
		for i := range 4 {
			off := int64(b*4 + i)
			recs = append(recs, rec(0, off, at, 30, th{"tc", uint64(off + 1)}))
		}
		if b == 0 {
			recs = append(recs, rec(1, 0, at, 30, th{"tc1", 1}), rec(1, 1, at, 30, th{"tc1", 2}), rec(1, 2, at, 30, th{"tc1", 3}))
		}
		mustAppend(t, s, batch(recs...))
		p0 = append(p0, ofPartition(recs, 0)...)
	}
	if o, l, ok := s.Bounds(0); !ok || o != 7 || l != 11 {
		t.Errorf("Bounds(0) = %d, %d, %v; want 7, 11", o, l, ok)
	}
	sameRecords(t, "p0 after count retention", readPartition(t, s, 0, -1, store.Limits{MaxRecords: 2}), p0[7:])
	sameRecords(t, "thread of p0", threadRecords(readThread(t, s, "tc", store.ThreadKey{}, store.Limits{})), p0[7:])
	if o, l, ok := s.Bounds(1); !ok || o != 0 || l != 2 {
		t.Errorf("Bounds(1) = %d, %d, %v; want 0, 2 (untouched)", o, l, ok)
	}
	if got := len(readThread(t, s, "tc1", store.ThreadKey{}, store.Limits{})); got != 3 {
		t.Errorf("thread of p1: %d records, want 3", got)
	}
	if st := s.Stats(); st.Records != 8 {
		t.Errorf("Stats.Records = %d, want 8", st.Records)
	}
	if offs := s.IngestOffsets(); offs[0] != 12 {
		t.Errorf("IngestOffsets[0] = %d after eviction, want 12", offs[0])
	}
}

func testRetainByAge(t *testing.T, h harness) {
	const maxAge = time.Second
	s, _ := h.fresh(t, store.Retention{MaxAge: maxAge})
	requireCaps(t, s, "retention by age", func(c store.Capabilities) bool { return c.RetainByAge })
	old := time.Now().Add(-3 * time.Hour).Truncate(time.Millisecond)
	now := func() time.Time { return time.Now().Truncate(time.Millisecond) }

	// Old records go on the next Append (at the latest).
	var oldRecs []store.Record
	for i := range 5 {
		oldRecs = append(oldRecs, rec(0, int64(i), old, 30, th{"aged", uint64(i + 1)}))
	}
	young := now()
	oldRecs = append(oldRecs, rec(1, 0, young, 30, th{"aged1", 1}), rec(1, 1, young, 30, th{"aged1", 2}))
	mustAppend(t, s, batch(oldRecs...))
	fresh := []store.Record{rec(0, 5, now(), 30, th{"aged", 6}), rec(0, 6, now(), 30, th{"new", 1})}
	mustAppend(t, s, batch(fresh...))
	if o, _, ok := s.Bounds(0); !ok || o < 5 {
		t.Errorf("Bounds(0) oldest = %d, %v; want the old records 0..4 gone", o, ok)
	}
	for _, r := range readPartition(t, s, 0, -1, store.Limits{}) {
		if r.Offset < 5 {
			t.Fatalf("old record %d survived age retention", r.Offset)
		}
	}
	for _, r := range readThread(t, s, "aged", store.ThreadKey{}, store.Limits{}) {
		if r.Offset < 5 {
			t.Fatalf("thread entry of old record %d survived age retention", r.Offset)
		}
	}

	// Records that aged while their partition got nothing new go with the
	// next Append to any partition.
	time.Sleep(time.Until(young.Add(maxAge + 100*time.Millisecond)))
	// A timestamp ahead of the clock (producers' clocks differ) keeps this
	// record clear of the limit however slow the machine is.
	last := rec(0, 7, now().Add(time.Minute), 30, th{"new", 2})
	mustAppend(t, s, batch(last))
	if _, _, ok := s.Bounds(1); ok {
		t.Error("aged records of an untouched partition survived the next Append")
	}
	if trs := readThread(t, s, "aged1", store.ThreadKey{}, store.Limits{}); len(trs) != 0 {
		t.Errorf("thread of evicted records: %d records", len(trs))
	}
	sameRecords(t, "p0 after age retention", readPartition(t, s, 0, -1, store.Limits{}), []store.Record{last})
	if st := s.Stats(); st.Records != 1 || !st.OldestTime.Equal(last.Time) {
		t.Errorf("Stats: %d records, oldest %v; want 1, %v", st.Records, st.OldestTime, last.Time)
	}
}

func testRetainByBytes(t *testing.T, h harness) {
	const budget = 16 << 10
	s, _ := h.fresh(t, store.Retention{MaxBytes: budget})
	requireCaps(t, s, "retention by bytes", func(c store.Capabilities) bool { return c.RetainByBytes })
	at := base()
	var all []store.Record
	for b := range 12 {
		var recs []store.Record
		for i := range 5 {
			off := int64(b*5 + i)
			recs = append(recs, rec(int32(i%2), off, at, 1000, th{"big", uint64(off + 1)}))
		}
		mustAppend(t, s, batch(recs...))
		all = append(all, recs...)
		if st := s.Stats(); st.StoredBytes > budget {
			t.Fatalf("after batch %d: StoredBytes %d over the budget %d", b, st.StoredBytes, budget)
		}
	}
	st := s.Stats()
	if st.StoredBytes <= 0 || st.Records <= 0 || st.Records >= int64(len(all)) {
		t.Errorf("Stats after byte retention: %d records, %d stored bytes", st.Records, st.StoredBytes)
	}
	for _, p := range []int32{0, 1} {
		want := ofPartition(all, p)
		got := readPartition(t, s, p, -1, store.Limits{})
		if len(got) == 0 || len(got) >= len(want) {
			t.Fatalf("partition %d keeps %d of %d records", p, len(got), len(want))
		}
		// What is left is the newest tail, intact.
		sameRecords(t, fmt.Sprintf("partition %d tail", p), got, want[len(want)-len(got):])
	}
	trs := readThread(t, s, "big", store.ThreadKey{}, store.Limits{})
	if int64(len(trs)) != st.Records {
		t.Errorf("thread has %d entries, store %d records", len(trs), st.Records)
	}
}

func testConcurrentReaders(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	at := base()
	const batches = 120
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range int64(batches) {
			b := batch(rec(0, i, at, 40+int(i%7)*10, th{"cc", uint64(i + 1)}), rec(1, i, at, 40))
			if err := s.Append(ctx, b); err != nil {
				t.Errorf("Append %d: %v", i, err)
				return
			}
		}
	}()
	reader := func(check func() error) {
		defer wg.Done()
		for {
			select {
			case <-done:
				if err := check(); err != nil { // once more, complete
					t.Error(err)
				}
				return
			default:
			}
			if err := check(); err != nil {
				t.Error(err)
				return
			}
		}
	}
	// Pages of a partition form a gap-free prefix with the right bytes.
	partitionPrefix := func(p int32) func() error {
		return func() error {
			after := int64(-1)
			for {
				recs, more, err := s.ReadPartition(ctx, p, after, store.Limits{MaxRecords: 7})
				if err != nil {
					return fmt.Errorf("ReadPartition(%d): %w", p, err)
				}
				for _, r := range recs {
					if r.Offset != after+1 {
						return fmt.Errorf("partition %d: offset %d after %d", p, r.Offset, after)
					}
					if want := payload(p, r.Offset, len(r.Payload)); !slices.Equal(r.Payload, want) {
						return fmt.Errorf("partition %d offset %d: torn payload", p, r.Offset)
					}
					after = r.Offset
				}
				if !more {
					return nil
				}
			}
		}
	}
	threadPrefix := func() error {
		after := store.ThreadKey{}
		next := uint64(1)
		for {
			recs, more, err := s.ReadThread(ctx, "cc", after, store.Limits{MaxRecords: 5})
			if err != nil {
				return fmt.Errorf("ReadThread: %w", err)
			}
			for _, r := range recs {
				if r.Key.Seq != next || r.Offset != int64(next-1) {
					return fmt.Errorf("thread: key %+v, want sequence %d", r.Key, next)
				}
				next++
				after = r.Key
			}
			if !more {
				return nil
			}
		}
	}
	others := func() error {
		o, l, ok := s.Bounds(0)
		if ok && (o != 0 || l < 0) {
			return fmt.Errorf("Bounds(0) = %d, %d", o, l)
		}
		if _, _, err := s.Runs(ctx, store.RunQuery{}); err != nil {
			return fmt.Errorf("Runs: %w", err)
		}
		if r, ok, err := s.Run(ctx, "cc"); err != nil || (ok && r.Messages != int64(r.LastSeq)) {
			return fmt.Errorf("Run(cc) = %+v, %v: messages and sequences disagree", r, err)
		}
		_ = s.Stats()
		_ = s.IngestOffsets()
		_ = s.Partitions()
		return nil
	}
	for _, fn := range []func() error{partitionPrefix(0), partitionPrefix(1), threadPrefix, others} {
		wg.Add(1)
		go reader(fn)
	}
	wg.Wait()
	if got := readPartition(t, s, 0, -1, store.Limits{}); len(got) != batches {
		t.Errorf("partition 0 ends with %d records, want %d", len(got), batches)
	}
}

func testClosed(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	mustAppend(t, s, batch(rec(0, 0, base(), 20, th{"t", 1})))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, _, err := s.ReadPartition(ctx, 0, -1, store.Limits{})
	wantErr(t, "ReadPartition", err, store.ErrClosed)
	_, _, err = s.ReadThread(ctx, "t", store.ThreadKey{}, store.Limits{})
	wantErr(t, "ReadThread", err, store.ErrClosed)
	wantErr(t, "Append", s.Append(ctx, batch(rec(0, 1, base(), 20))), store.ErrClosed)
	_, err = s.Skipped(0, 0, 10)
	wantErr(t, "Skipped", err, store.ErrClosed)
	_, err = s.SetSource(ctx, [16]byte{1})
	wantErr(t, "SetSource", err, store.ErrClosed)
	_, err = s.Reset(ctx)
	wantErr(t, "Reset", err, store.ErrClosed)
	_, _, err = s.Runs(ctx, store.RunQuery{})
	wantErr(t, "Runs", err, store.ErrClosed)
	_, _, err = s.Run(ctx, "t")
	wantErr(t, "Run", err, store.ErrClosed)
	// The error-free methods must not panic.
	s.Bounds(0)
	s.Partitions()
	s.IngestOffsets()
	s.Epoch()
	s.Stats()
	s.Capabilities()
	_ = s.Close() // a second Close may fail but must not panic
}

// snapshot is everything a reopen must bring back.
type snapshot struct {
	epoch   string
	offsets map[int32]int64
	parts   []int32
	records map[int32][]store.Record
	bounds  map[int32][2]int64
	skips   map[int32][]store.SkippedRange
	threads map[string][]store.ThreadRecord
	runs    []store.RunSummary
}

func takeSnapshot(t *testing.T, s store.Store, threads ...string) snapshot {
	t.Helper()
	sn := snapshot{
		epoch:   s.Epoch(),
		offsets: s.IngestOffsets(),
		parts:   sortedPartitions(s),
		records: map[int32][]store.Record{},
		bounds:  map[int32][2]int64{},
		skips:   map[int32][]store.SkippedRange{},
		threads: map[string][]store.ThreadRecord{},
		runs:    allRuns(t, s, store.RunQuery{Limit: 2}),
	}
	for _, p := range sn.parts {
		sn.records[p] = readPartition(t, s, p, -1, store.Limits{})
		o, l, _ := s.Bounds(p)
		sn.bounds[p] = [2]int64{o, l}
		sk, err := s.Skipped(p, 0, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		sn.skips[p] = sk
	}
	for _, id := range threads {
		sn.threads[id] = readThread(t, s, id, store.ThreadKey{}, store.Limits{})
	}
	return sn
}

func compareSnapshots(t *testing.T, got, want snapshot) {
	t.Helper()
	if got.epoch != want.epoch {
		t.Errorf("epoch %q, want %q", got.epoch, want.epoch)
	}
	if !maps.Equal(got.offsets, want.offsets) {
		t.Errorf("ingest offsets %v, want %v", got.offsets, want.offsets)
	}
	if !slices.Equal(got.parts, want.parts) {
		t.Errorf("partitions %v, want %v", got.parts, want.parts)
	}
	for _, p := range want.parts {
		sameRecords(t, fmt.Sprintf("partition %d", p), got.records[p], want.records[p])
		if got.bounds[p] != want.bounds[p] {
			t.Errorf("Bounds(%d) %v, want %v", p, got.bounds[p], want.bounds[p])
		}
		if !slices.Equal(got.skips[p], want.skips[p]) {
			t.Errorf("Skipped(%d) %v, want %v", p, got.skips[p], want.skips[p])
		}
	}
	for id, w := range want.threads {
		g := got.threads[id]
		sameRecords(t, "thread "+id, threadRecords(g), threadRecords(w))
		for i := range g {
			if g[i].Key != w[i].Key {
				t.Errorf("thread %s entry %d key %+v, want %+v", id, i, g[i].Key, w[i].Key)
			}
		}
	}
	checkRuns(t, "runs", got.runs, want.runs)
}

func testDurable(t *testing.T, h harness) {
	s, o := h.fresh(t, store.Retention{})
	requireCaps(t, s, "durability", func(c store.Capabilities) bool { return c.Durable })
	id := [16]byte{0xd0, 0x0d, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	if _, err := s.SetSource(ctx, id); err != nil {
		t.Fatal(err)
	}
	at := base()
	mustAppend(t, s, batch(rec(0, 0, at, 100, th{"t-ok", 1}), rec(1, 0, at, 100)))
	if _, err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	runsData(t, s, 10)
	mustAppend(t, s, store.Batch{
		Records:     []store.Record{rec(0, 20, at, 5000, th{"t-ok", 9}), rec(2, 40, at, 300, th{"t-run", 9}, th{"t-other", 9})},
		Skipped:     []store.SkippedRange{{Partition: 0, From: 15, To: 20, Reason: store.SkipInvalid}, {Partition: 3, From: 0, To: 9, Reason: store.SkipEvicted}},
		NextOffsets: map[int32]int64{0: 22, 2: 41, 3: 9},
	})
	threads := []string{"t-ok", "t-err", "t-rec", "t-run", "t-other"}
	before := takeSnapshot(t, s, threads...)
	stBefore := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = h.reopen(t, o)
	compareSnapshots(t, takeSnapshot(t, s, threads...), before)
	st := s.Stats()
	if st.Generation != stBefore.Generation || st.Records != stBefore.Records || st.RawBytes != stBefore.RawBytes {
		t.Errorf("Stats after reopen: generation %d, %d records, %d bytes; want %d, %d, %d",
			st.Generation, st.Records, st.RawBytes, stBefore.Generation, stBefore.Records, stBefore.RawBytes)
	}
	// Offsets still apply after reopen; appends continue and update runs.
	wantErr(t, "append below the next offset after reopen", s.Append(ctx, batch(rec(0, 21, at, 20))), store.ErrOffsetOrder)
	mustAppend(t, s, batch(rec(0, 22, at.Add(time.Hour), 20, th{"t-err", 10})))
	if r, ok, err := s.Run(ctx, "t-err"); err != nil || !ok || r.Messages != 3 || r.LastSeq != 10 {
		t.Errorf("run after reopen and append: %+v, %v, %v", r, ok, err)
	}
	if runs, _, _ := s.Runs(ctx, store.RunQuery{Limit: 1}); len(runs) != 1 || runs[0].ThreadID != "t-err" {
		t.Errorf("newest run after reopen and append: %v, want t-err", runIDs(runs))
	}
}

func testFileCap(t *testing.T, h harness) {
	const fileCap = 1 << 20
	s, _ := h.fresh(t, store.Retention{MaxFileBytes: fileCap})
	requireCaps(t, s, "a file cap", func(c store.Capabilities) bool { return c.FileCap })
	at := base()
	// Incompressible 1 KiB records on two partitions, a thread each,
	// written well past the cap: every Append succeeds and the oldest
	// records go first.
	next := map[int32]int64{}
	var all []store.Record
	for b := 0; b < 3*fileCap/(40<<10); b++ {
		var recs []store.Record
		for i := range 40 {
			p := int32(i % 2)
			recs = append(recs, rec(p, next[p], at.Add(time.Duration(len(all)+i)*time.Millisecond), 1<<10,
				th{fmt.Sprintf("cap-%d", p), uint64(next[p] + 1)}))
			next[p]++
		}
		if err := s.Append(ctx, batch(recs...)); err != nil {
			st := s.Stats()
			t.Fatalf("batch %d (%d records written): %v; stats: %d records, file %d, stored %d", b, len(all), err, st.Records, st.FileBytes, st.StoredBytes)
		}
		all = append(all, recs...)
		if st := s.Stats(); st.FileBytes > fileCap {
			t.Fatalf("after batch %d: file %d bytes over the cap %d", b, st.FileBytes, fileCap)
		}
	}
	before := s.Stats()
	if before.Full {
		t.Fatal("Stats.Full after successful appends")
	}
	var oldest []time.Time
	for _, p := range []int32{0, 1} {
		want := ofPartition(all, p)
		got := readPartition(t, s, p, -1, store.Limits{})
		if len(got) == 0 || len(got) >= len(want) {
			t.Fatalf("partition %d keeps %d of %d records", p, len(got), len(want))
		}
		sameRecords(t, fmt.Sprintf("partition %d tail", p), got, want[len(want)-len(got):])
		oldest = append(oldest, got[0].Time)
		if trs := readThread(t, s, fmt.Sprintf("cap-%d", p), store.ThreadKey{}, store.Limits{}); len(trs) != len(got) {
			t.Errorf("thread of partition %d has %d entries, partition %d records", p, len(trs), len(got))
		}
	}
	// Both partitions lost their oldest records: the heads are close in
	// time (eviction may take whole blocks, not single records).
	if d := oldest[0].Sub(oldest[1]).Abs(); d > time.Duration(len(all)/4)*time.Millisecond {
		t.Errorf("oldest retained records %v and %v: eviction is not oldest first", oldest[0], oldest[1])
	}

	// A batch larger than the whole cap fails with ErrFull, writing nothing.
	var big []store.Record
	for i := range 2 * fileCap / (1 << 10) {
		big = append(big, rec(0, next[0]+int64(i), at.Add(time.Hour), 1<<10, th{"huge", uint64(i + 1)}))
	}
	snap := takeSnapshot(t, s, "cap-0", "cap-1")
	err := s.Append(ctx, batch(big...))
	wantErr(t, "batch larger than the cap", err, store.ErrFull)
	if !s.Stats().Full {
		t.Error("Stats.Full is false after ErrFull")
	}
	compareSnapshots(t, takeSnapshot(t, s, "cap-0", "cap-1"), snap)
	if trs, _, _ := s.ReadThread(ctx, "huge", store.ThreadKey{}, store.Limits{}); len(trs) != 0 {
		t.Error("thread of the ErrFull batch is visible")
	}
	if _, ok, _ := s.Run(ctx, "huge"); ok {
		t.Error("run of the ErrFull batch is visible")
	}
	// Ingest retries with normal batches: they go through.
	mustAppend(t, s, batch(rec(0, next[0], at.Add(time.Hour), 1<<10)))
	if s.Stats().Full {
		t.Error("Stats.Full stays after a successful Append")
	}
}
