package storetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/dashstream/dashstream/store"
)

func testEmpty(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	recs, more, err := s.ReadPartition(ctx, 0, -1, store.Limits{})
	if err != nil || len(recs) != 0 || more {
		t.Errorf("ReadPartition on empty store: %d records, more=%v, %v", len(recs), more, err)
	}
	trs, more, err := s.ReadThread(ctx, "nobody", store.ThreadKey{}, store.Limits{})
	if err != nil || len(trs) != 0 || more {
		t.Errorf("ReadThread on empty store: %d records, more=%v, %v", len(trs), more, err)
	}
	if _, _, ok := s.Bounds(0); ok {
		t.Error("Bounds(0) ok on empty store")
	}
	if ps := s.Partitions(); len(ps) != 0 {
		t.Errorf("Partitions on empty store: %v", ps)
	}
	if offs := s.IngestOffsets(); len(offs) != 0 {
		t.Errorf("IngestOffsets on empty store: %v", offs)
	}
	if sk, err := s.Skipped(0, 0, 1<<62); err != nil || len(sk) != 0 {
		t.Errorf("Skipped on empty store: %v, %v", sk, err)
	}
	runs, next, err := s.Runs(ctx, store.RunQuery{})
	if err != nil || len(runs) != 0 || next != "" {
		t.Errorf("Runs on empty store: %v, %q, %v", runs, next, err)
	}
	if _, ok, err := s.Run(ctx, "nobody"); ok || err != nil {
		t.Errorf("Run on empty store: ok=%v, %v", ok, err)
	}
	st := s.Stats()
	if st.Kind == "" || st.Epoch != s.Epoch() || st.Records != 0 || st.RawBytes != 0 || st.StoredBytes != 0 || !st.OldestTime.IsZero() {
		t.Errorf("Stats on empty store: %+v", st)
	}
	if !epochRE.MatchString(s.Epoch()) {
		t.Errorf("Epoch %q does not look like <16 hex>-<generation>", s.Epoch())
	}
}

// pagingData appends records to partitions 0 (contiguous 0..19), 1 (even
// offsets only) and 2 (from 100) in five interleaved batches, and returns
// them in append order.
func pagingData(t *testing.T, s store.Store) []store.Record {
	t.Helper()
	at := base()
	var all []store.Record
	for b := range 5 {
		var recs []store.Record
		for i := range 4 {
			n := int64(b*4 + i)
			size := 10 + int(n*37%300)
			recs = append(recs,
				rec(0, n, at, size),
				rec(1, 2*n, at, size+5),
				rec(2, 100+n, at, size+11))
		}
		mustAppend(t, s, batch(recs...))
		all = append(all, recs...)
	}
	return all
}

func testPartitionPaging(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	all := pagingData(t, s)
	limits := []store.Limits{
		{},
		{MaxRecords: 1},
		{MaxRecords: 3},
		{MaxRecords: 20},
		{MaxBytes: 1}, // every record alone exceeds it: one per page
		{MaxBytes: 250},
		{MaxBytes: 700, MaxRecords: 2},
	}
	for _, p := range []int32{0, 1, 2} {
		want := ofPartition(all, p)
		for _, lim := range limits {
			t.Run(fmt.Sprintf("p%d/%+v", p, lim), func(t *testing.T) {
				got := readPartition(t, s, p, -1, lim)
				sameRecords(t, "read from -1", got, want)
			})
		}
		oldest, latest, ok := s.Bounds(p)
		if !ok || oldest != want[0].Offset || latest != want[len(want)-1].Offset {
			t.Errorf("Bounds(%d) = %d, %d, %v; want %d, %d", p, oldest, latest, ok, want[0].Offset, want[len(want)-1].Offset)
		}
		// After the latest offset (or past it) there is nothing.
		for _, after := range []int64{latest, latest + 1, latest + 1000} {
			recs, more, err := s.ReadPartition(ctx, p, after, store.Limits{})
			if err != nil || len(recs) != 0 || more {
				t.Errorf("ReadPartition(%d, after %d): %d records, more=%v, %v", p, after, len(recs), more, err)
			}
		}
		// The page that ends at the latest record says no more.
		recs, more, err := s.ReadPartition(ctx, p, want[len(want)-3].Offset, store.Limits{MaxRecords: 2})
		if err != nil || len(recs) != 2 || more {
			t.Errorf("ReadPartition(%d) of the last two: %d records, more=%v, %v", p, len(recs), more, err)
		}
		// One short of the end: more.
		recs, more, err = s.ReadPartition(ctx, p, want[len(want)-4].Offset, store.Limits{MaxRecords: 2})
		if err != nil || len(recs) != 2 || !more {
			t.Errorf("ReadPartition(%d) before the last two: %d records, more=%v, %v", p, len(recs), more, err)
		}
	}
	// Reading from inside a hole or below the oldest offset.
	sameRecords(t, "p1 after 3 (a hole)", readPartition(t, s, 1, 3, store.Limits{}), ofPartition(all, 1)[2:])
	sameRecords(t, "p2 after 5 (below oldest)", readPartition(t, s, 2, 5, store.Limits{MaxRecords: 4}), ofPartition(all, 2))
	sameRecords(t, "p0 after 10", readPartition(t, s, 0, 10, store.Limits{MaxRecords: 4}), ofPartition(all, 0)[11:])
	// A partition nobody wrote.
	recs, more, err := s.ReadPartition(ctx, 7, -1, store.Limits{})
	if err != nil || len(recs) != 0 || more {
		t.Errorf("ReadPartition(7): %d records, more=%v, %v", len(recs), more, err)
	}
	if got := sortedPartitions(s); !slices.Equal(got, []int32{0, 1, 2}) {
		t.Errorf("Partitions = %v, want [0 1 2]", got)
	}
	st := s.Stats()
	var raw int64
	for _, r := range all {
		raw += int64(len(r.Payload))
	}
	if st.Records != int64(len(all)) || st.RawBytes != raw {
		t.Errorf("Stats: %d records, %d raw bytes; want %d, %d", st.Records, st.RawBytes, len(all), raw)
	}
	if len(st.Partitions) != 3 {
		t.Errorf("Stats.Partitions = %+v, want 3 partitions", st.Partitions)
	}
	for _, ps := range st.Partitions {
		want := ofPartition(all, ps.Partition)
		if len(want) == 0 || ps.Records != int64(len(want)) || ps.Oldest != want[0].Offset ||
			ps.Latest != want[len(want)-1].Offset || ps.NextOffset != want[len(want)-1].Offset+1 {
			t.Errorf("Stats partition %+v does not match the %d appended records", ps, len(want))
		}
	}
}

func testPayloadIsolation(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	r := rec(0, 0, base(), 64, th{"iso", 1})
	orig := slices.Clone(r.Payload)
	mustAppend(t, s, batch(r))
	clear(r.Payload) // the caller reuses its buffer
	for range 2 {
		recs, _, err := s.ReadPartition(ctx, 0, -1, store.Limits{})
		if err != nil || len(recs) != 1 {
			t.Fatalf("ReadPartition: %d records, %v", len(recs), err)
		}
		if !slices.Equal(recs[0].Payload, orig) {
			t.Fatal("stored payload changed with the caller's buffer or a reader's slice")
		}
		clear(recs[0].Payload) // a reader scribbles on what it got
		trs, _, err := s.ReadThread(ctx, "iso", store.ThreadKey{}, store.Limits{})
		if err != nil || len(trs) != 1 || !slices.Equal(trs[0].Payload, orig) {
			t.Fatalf("ReadThread after a reader changed its copy: %d records, %v", len(trs), err)
		}
		clear(trs[0].Payload)
	}
}

func testBoundsOffsetsSkips(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	at := base()
	// Holes between records; next offset beyond the last record
	// (transaction markers); a partition with only skipped ranges.
	b := store.Batch{
		Records: []store.Record{rec(0, 0, at, 10), rec(0, 2, at, 10), rec(0, 5, at, 10), rec(1, 3, at, 10)},
		Skipped: []store.SkippedRange{
			{Partition: 0, From: 3, To: 5, Reason: store.SkipInvalid},
			{Partition: 3, From: 0, To: 7, Reason: store.SkipEvicted},
		},
		NextOffsets: map[int32]int64{0: 8, 1: 4, 3: 7},
	}
	mustAppend(t, s, b)
	got := readPartition(t, s, 0, -1, store.Limits{})
	sameRecords(t, "p0 with holes", got, b.Records[:3])
	if want := map[int32]int64{0: 8, 1: 4, 3: 7}; !maps.Equal(s.IngestOffsets(), want) {
		t.Errorf("IngestOffsets = %v, want %v", s.IngestOffsets(), want)
	}
	if got := sortedPartitions(s); !slices.Equal(got, []int32{0, 1, 3}) {
		t.Errorf("Partitions = %v, want [0 1 3]", got)
	}
	if o, l, ok := s.Bounds(0); !ok || o != 0 || l != 5 {
		t.Errorf("Bounds(0) = %d, %d, %v; want 0, 5", o, l, ok)
	}
	if _, _, ok := s.Bounds(3); ok {
		t.Error("Bounds(3) ok for a partition with only skipped ranges")
	}

	// A later batch: only skipped ranges and offsets, no records.
	mustAppend(t, s, store.Batch{
		Skipped: []store.SkippedRange{
			{Partition: 0, From: 10, To: 20, Reason: store.SkipEvicted},
			{Partition: 0, From: 30, To: 31, Reason: store.SkipInvalid},
		},
		NextOffsets: map[int32]int64{0: 31},
	})
	if got := s.IngestOffsets()[0]; got != 31 {
		t.Errorf("IngestOffsets[0] = %d after a records-free batch, want 31", got)
	}
	r1 := store.SkippedRange{Partition: 0, From: 3, To: 5, Reason: store.SkipInvalid}
	r2 := store.SkippedRange{Partition: 0, From: 10, To: 20, Reason: store.SkipEvicted}
	r3 := store.SkippedRange{Partition: 0, From: 30, To: 31, Reason: store.SkipInvalid}
	r4 := store.SkippedRange{Partition: 3, From: 0, To: 7, Reason: store.SkipEvicted}
	tests := []struct {
		p        int32
		from, to int64
		want     []store.SkippedRange
	}{
		{0, 0, 100, []store.SkippedRange{r1, r2, r3}},
		{0, -1, 1 << 62, []store.SkippedRange{r1, r2, r3}},
		{0, 4, 5, []store.SkippedRange{r1}},
		{0, 0, 4, []store.SkippedRange{r1}},
		{0, 0, 3, nil},  // half-open: [0,3) ends where r1 starts
		{0, 5, 10, nil}, // between r1 and r2
		{0, 19, 30, []store.SkippedRange{r2}},
		{0, 15, 16, []store.SkippedRange{r2}},
		{0, 4, 11, []store.SkippedRange{r1, r2}},
		{0, 31, 100, nil},
		{1, 0, 100, nil},
		{3, 6, 8, []store.SkippedRange{r4}},
		{9, 0, 100, nil},
	}
	for _, tc := range tests {
		got, err := s.Skipped(tc.p, tc.from, tc.to)
		if err != nil {
			t.Fatalf("Skipped(%d, %d, %d): %v", tc.p, tc.from, tc.to, err)
		}
		slices.SortFunc(got, func(a, b store.SkippedRange) int { return cmpInt(a.From, b.From) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("Skipped(%d, %d, %d) = %+v, want %+v", tc.p, tc.from, tc.to, got, tc.want)
		}
	}
	// Records continue after a next offset past the last record.
	mustAppend(t, s, batch(rec(0, 31, at, 10)))
	if _, l, _ := s.Bounds(0); l != 31 {
		t.Errorf("latest of p0 = %d, want 31", l)
	}
}

func testRejectsBadOffsets(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	at := base()
	good := store.Batch{
		Records: []store.Record{rec(0, 10, at, 20, th{"ok", 1}), rec(1, 5, at, 20), rec(0, 11, at, 20, th{"ok", 2})},
		Skipped: []store.SkippedRange{{Partition: 0, From: 8, To: 10, Reason: store.SkipInvalid}},
	}
	good.NextOffsets = map[int32]int64{0: 12, 1: 9} // 6..8: transaction markers
	mustAppend(t, s, good)
	wantOffsets := map[int32]int64{0: 12, 1: 9}
	okRun, _, _ := s.Run(ctx, "ok")

	// Each bad batch also carries a valid part (partition 2, a skipped
	// range, next offsets, a new thread) that must not become visible.
	extra := func(b store.Batch) store.Batch {
		b.Records = append([]store.Record{rec(2, 0, at, 20, th{"ghost", 1})}, b.Records...)
		b.Skipped = append(b.Skipped, store.SkippedRange{Partition: 2, From: 50, To: 60, Reason: store.SkipEvicted})
		if b.NextOffsets == nil {
			b.NextOffsets = map[int32]int64{}
		}
		b.NextOffsets[2] = 1
		return b
	}
	bad := []struct {
		name string
		b    store.Batch
	}{
		{"decreasing in batch", batch(rec(0, 12, at, 20), rec(0, 14, at, 20), rec(0, 13, at, 20))},
		{"duplicate in batch", batch(rec(0, 12, at, 20), rec(0, 12, at, 20))},
		{"below next offset", batch(rec(0, 9, at, 20))},
		{"duplicate of stored", batch(rec(0, 11, at, 20, th{"ok", 3}))},
		{"below next, other partition", batch(rec(0, 12, at, 20), rec(1, 4, at, 20))},
		{"below next after a hole", batch(rec(1, 0, at, 20))},
		{"above latest, below next", store.Batch{Records: []store.Record{rec(1, 7, at, 20)}}},
		{"negative offset", batch(rec(3, -1, at, 20))},
		{"negative offset, stored partition", batch(rec(0, -5, at, 20))},
		{"negative next offset", store.Batch{NextOffsets: map[int32]int64{3: -1}}},
		{"next offset at the last record", store.Batch{Records: []store.Record{rec(0, 12, at, 20), rec(0, 13, at, 20)},
			NextOffsets: map[int32]int64{0: 13}}},
		{"next offset below the last record", store.Batch{Records: []store.Record{rec(0, 12, at, 20), rec(0, 13, at, 20)},
			NextOffsets: map[int32]int64{0: 12}}},
		{"next offset going back", store.Batch{NextOffsets: map[int32]int64{0: 11}}},
		{"next offset going back, other partition", store.Batch{Records: []store.Record{rec(0, 12, at, 20)},
			NextOffsets: map[int32]int64{0: 13, 1: 8}}},
		{"empty skipped range", store.Batch{Skipped: []store.SkippedRange{{Partition: 0, From: 20, To: 20, Reason: store.SkipInvalid}},
			NextOffsets: map[int32]int64{0: 21}}},
		{"inverted skipped range", store.Batch{Skipped: []store.SkippedRange{{Partition: 0, From: 20, To: 15, Reason: store.SkipInvalid}},
			NextOffsets: map[int32]int64{0: 21}}},
		{"negative skipped range", store.Batch{Skipped: []store.SkippedRange{{Partition: 3, From: -2, To: 3, Reason: store.SkipEvicted}},
			NextOffsets: map[int32]int64{3: 3}}},
		{"skipped range without a reason", store.Batch{Skipped: []store.SkippedRange{{Partition: 0, From: 12, To: 14}},
			NextOffsets: map[int32]int64{0: 14}}},
	}
	for _, tc := range bad {
		err := s.Append(ctx, extra(tc.b))
		if tc.name == "skipped range without a reason" {
			// Not an offset rule; any error will do.
			if err == nil {
				t.Fatalf("%s: accepted", tc.name)
			}
		} else {
			wantErr(t, tc.name, err, store.ErrOffsetOrder)
		}
		if _, _, ok := s.Bounds(2); ok {
			t.Fatalf("%s: records of the rejected batch are visible", tc.name)
		}
		if got := readPartition(t, s, 0, -1, store.Limits{}); len(got) != 2 {
			t.Fatalf("%s: partition 0 has %d records after a rejected batch, want 2", tc.name, len(got))
		}
		for _, p := range []int32{0, 1, 2, 3} {
			want := good.Skipped[:0]
			if p == 0 {
				want = good.Skipped
			}
			if sk, _ := s.Skipped(p, -10, 100); !slices.Equal(sk, want) {
				t.Fatalf("%s: skipped ranges of partition %d = %+v, want %+v", tc.name, p, sk, want)
			}
		}
		if _, _, ok := s.Bounds(3); ok {
			t.Fatalf("%s: partition 3 has records", tc.name)
		}
		if got := readPartition(t, s, 1, -1, store.Limits{}); len(got) != 1 {
			t.Fatalf("%s: partition 1 has %d records after a rejected batch, want 1", tc.name, len(got))
		}
		if !maps.Equal(s.IngestOffsets(), wantOffsets) {
			t.Fatalf("%s: IngestOffsets = %v, want %v", tc.name, s.IngestOffsets(), wantOffsets)
		}
		if trs, _, _ := s.ReadThread(ctx, "ghost", store.ThreadKey{}, store.Limits{}); len(trs) != 0 {
			t.Fatalf("%s: thread of the rejected batch is visible", tc.name)
		}
		if _, ok, _ := s.Run(ctx, "ghost"); ok {
			t.Fatalf("%s: run of the rejected batch is visible", tc.name)
		}
		if r, _, _ := s.Run(ctx, "ok"); r.Messages != okRun.Messages || r.LastSeq != okRun.LastSeq {
			t.Fatalf("%s: run of an existing thread changed: %+v", tc.name, r)
		}
		if got := sortedPartitions(s); !slices.Equal(got, []int32{0, 1}) {
			t.Fatalf("%s: Partitions = %v", tc.name, got)
		}
	}
	// A good batch still works.
	mustAppend(t, s, extra(batch(rec(0, 12, at, 20, th{"ok", 3}), rec(0, 13, at, 20))))
	if o, l, ok := s.Bounds(0); !ok || o != 10 || l != 13 {
		t.Errorf("Bounds(0) after a good batch = %d, %d, %v; want 10, 13", o, l, ok)
	}
	if o, l, ok := s.Bounds(2); !ok || o != 0 || l != 0 {
		t.Errorf("Bounds(2) after a good batch = %d, %d, %v; want 0, 0", o, l, ok)
	}
	if r, ok, _ := s.Run(ctx, "ok"); !ok || r.Messages != 3 || r.LastSeq != 3 {
		t.Errorf("run after a good batch: %+v", r)
	}
}
