package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

func testThreadReads(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	at := base()
	// Thread A: sequences 1..6 over partitions 0 and 1, three sequence-0
	// records (ExecutionTrace-like), and an EventBatch shared with B.
	seq0 := func(p int32, off int64) store.Record {
		r := rec(p, off, at, 30, th{"A", 0})
		r.Index.Type = pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE
		return r
	}
	b1 := []store.Record{
		rec(0, 0, at, 40, th{"A", 1}),
		rec(1, 0, at, 40, th{"A", 2}),
		seq0(1, 1),
		rec(0, 1, at, 40, th{"A", 3}),
		rec(0, 2, at, 40, th{"B", 1}),
		seq0(0, 3),
	}
	shared := rec(1, 4, at, 80, th{"A", 7}, th{"B", 3})
	shared.Index.Type = pb.MessageType_MESSAGE_TYPE_EVENT_BATCH
	b2 := []store.Record{
		rec(1, 3, at, 40, th{"A", 4}),
		rec(0, 4, at, 40, th{"A", 5}),
		seq0(0, 5),
		rec(0, 6, at, 40, th{"A", 6}),
		shared,
		rec(0, 7, at, 40, th{"B", 2}),
	}
	mustAppend(t, s, batch(b1...))
	mustAppend(t, s, batch(b2...))

	// A in key order: (seq, partition, offset).
	wantA := []store.Record{b1[5], b2[2], b1[2], b1[0], b1[1], b1[3], b2[0], b2[1], b2[3], shared}
	wantKeysA := []store.ThreadKey{key(0, 0, 3), key(0, 0, 5), key(0, 1, 1), key(1, 0, 0), key(2, 1, 0), key(3, 0, 1), key(4, 1, 3), key(5, 0, 4), key(6, 0, 6), key(7, 1, 4)}
	wantB := []store.Record{b1[4], b2[5], shared}
	wantKeysB := []store.ThreadKey{key(1, 0, 2), key(2, 0, 7), key(3, 1, 4)}

	for _, lim := range []store.Limits{{}, {MaxRecords: 1}, {MaxRecords: 3}, {MaxBytes: 1}, {MaxBytes: 100}} {
		t.Run(fmt.Sprintf("%+v", lim), func(t *testing.T) {
			got := readThread(t, s, "A", store.ThreadKey{}, lim)
			sameRecords(t, "thread A", threadRecords(got), wantA)
			for i, r := range got {
				if r.Key != wantKeysA[i] {
					t.Errorf("thread A entry %d key %+v, want %+v", i, r.Key, wantKeysA[i])
				}
			}
			gotB := readThread(t, s, "B", store.ThreadKey{}, lim)
			sameRecords(t, "thread B", threadRecords(gotB), wantB)
			for i, r := range gotB {
				if r.Key != wantKeysB[i] {
					t.Errorf("thread B entry %d key %+v, want %+v", i, r.Key, wantKeysB[i])
				}
			}
		})
	}
	afterTests := []struct {
		after store.ThreadKey
		want  []store.Record
	}{
		{store.AfterSeq(0), wantA[3:]},
		{store.AfterSeq(3), wantA[6:]},
		{store.AfterSeq(7), nil},
		{store.AfterSeq(100), nil},
		{store.ThreadKey{Seq: 0, Partition: 0, Offset: 3}, wantA[1:]},
		{store.ThreadKey{Seq: 0, Partition: 0, Offset: 4}, wantA[1:]},
		{store.ThreadKey{Seq: 0, Partition: 1, Offset: 1}, wantA[3:]},
		{store.ThreadKey{Seq: 4}, wantA[6:]},
	}
	for _, tc := range afterTests {
		got := readThread(t, s, "A", tc.after, store.Limits{MaxRecords: 2})
		sameRecords(t, fmt.Sprintf("thread A after %+v", tc.after), threadRecords(got), tc.want)
	}
	// The page that ends at the thread's last entry says no more.
	recs, more, err := s.ReadThread(ctx, "A", store.AfterSeq(5), store.Limits{MaxRecords: 2})
	if err != nil || len(recs) != 2 || more {
		t.Errorf("ReadThread last page: %d records, more=%v, %v", len(recs), more, err)
	}
	recs, more, err = s.ReadThread(ctx, "A", store.AfterSeq(4), store.Limits{MaxRecords: 2})
	if err != nil || len(recs) != 2 || !more {
		t.Errorf("ReadThread page before the last: %d records, more=%v, %v", len(recs), more, err)
	}
	for _, id := range []string{"C", "", "a"} {
		recs, more, err := s.ReadThread(ctx, id, store.ThreadKey{}, store.Limits{})
		if err != nil || len(recs) != 0 || more {
			t.Errorf("ReadThread(%q): %d records, more=%v, %v", id, len(recs), more, err)
		}
	}
}

func key(seq uint64, p int32, off int64) store.ThreadKey {
	return store.ThreadKey{Seq: seq, Partition: p, Offset: off}
}

// runEvent builds a lifecycle event of thread id at time at.
func runEvent(id string, seq uint64, typ pb.EventType, at time.Time) wire.RunEvent {
	return wire.RunEvent{ThreadID: id, Seq: seq, TimestampUs: at.UnixMicro(), EventType: typ}
}

// runRecord is a one-thread record carrying events.
func runRecord(p int32, off int64, at time.Time, id string, seq uint64, evs ...wire.RunEvent) store.Record {
	r := rec(p, off, at, 50, th{id, seq})
	r.Index.Events = evs
	return r
}

// runsData appends the runs scenario and returns the expected summaries,
// newest first.
func runsData(t *testing.T, s store.Store, offset int64) []store.RunSummary {
	t.Helper()
	t0 := base().Add(-time.Hour)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	start := func(id, graph string, i int) wire.RunEvent {
		e := runEvent(id, 1, pb.EventType_EVENT_TYPE_GRAPH_START, at(i))
		e.GraphName = graph
		return e
	}
	fail := func(id string, seq uint64, typ pb.EventType, text string, i int) wire.RunEvent {
		e := runEvent(id, seq, typ, at(i))
		e.ErrorText = text
		return e
	}
	end := func(id string, seq uint64, i int) wire.RunEvent {
		return runEvent(id, seq, pb.EventType_EVENT_TYPE_GRAPH_END, at(i))
	}
	o := offset
	mustAppend(t, s, batch(
		runRecord(0, o+0, at(1), "t-ok", 1, start("t-ok", "g1", 1)),
		runRecord(0, o+1, at(2), "t-err", 1, start("t-err", "g2", 2)),
		runRecord(1, o+0, at(3), "t-rec", 1, start("t-rec", "g1", 3)),
	))
	mustAppend(t, s, batch(
		runRecord(0, o+2, at(4), "t-ok", 2, runEvent("t-ok", 2, pb.EventType_EVENT_TYPE_NODE_START, at(4))),
		runRecord(1, o+1, at(5), "t-err", 2, fail("t-err", 2, pb.EventType_EVENT_TYPE_NODE_ERROR, "Boom: tool failed", 5)),
		runRecord(1, o+2, at(6), "t-rec", 2, fail("t-rec", 2, pb.EventType_EVENT_TYPE_NODE_ERROR, "transient", 6)),
	))
	multi := rec(2, o+1, at(10), 90, th{"t-run", 2}, th{"t-other", 1})
	multi.Index.Type = pb.MessageType_MESSAGE_TYPE_EVENT_BATCH
	multi.Index.Events = []wire.RunEvent{
		start("t-other", "g3", 10),
		runEvent("t-run", 2, pb.EventType_EVENT_TYPE_NODE_START, at(10)),
		fail("t-other", 1, pb.EventType_EVENT_TYPE_GRAPH_ERROR, "other failed", 10),
	}
	mustAppend(t, s, batch(
		runRecord(0, o+3, at(7), "t-ok", 3, end("t-ok", 3, 7)),
		runRecord(1, o+3, at(8), "t-rec", 3, end("t-rec", 3, 8)),
		runRecord(2, o+0, at(9), "t-run", 1, start("t-run", "g2", 9)),
		multi,
	))
	return []store.RunSummary{
		{ThreadID: "t-other", GraphName: "g3", Status: store.RunError, StartedAt: at(10), EndedAt: at(10),
			FirstSeq: 1, LastSeq: 1, Messages: 1, LastError: "other failed", UpdatedAt: at(10)},
		{ThreadID: "t-run", GraphName: "g2", Status: store.RunRunning, StartedAt: at(9),
			FirstSeq: 1, LastSeq: 2, Messages: 2, UpdatedAt: at(10)},
		{ThreadID: "t-rec", GraphName: "g1", Status: store.RunCompleted, StartedAt: at(3), EndedAt: at(8),
			FirstSeq: 1, LastSeq: 3, Messages: 3, LastError: "transient", UpdatedAt: at(8)},
		{ThreadID: "t-ok", GraphName: "g1", Status: store.RunCompleted, StartedAt: at(1), EndedAt: at(7),
			FirstSeq: 1, LastSeq: 3, Messages: 3, UpdatedAt: at(7)},
		{ThreadID: "t-err", GraphName: "g2", Status: store.RunError, StartedAt: at(2), EndedAt: at(5),
			FirstSeq: 1, LastSeq: 2, Messages: 2, LastError: "Boom: tool failed", UpdatedAt: at(5)},
	}
}

func sameRun(a, b store.RunSummary) bool {
	return a.ThreadID == b.ThreadID && a.GraphName == b.GraphName && a.Status == b.Status &&
		a.StartedAt.Equal(b.StartedAt) && a.EndedAt.Equal(b.EndedAt) &&
		a.FirstSeq == b.FirstSeq && a.LastSeq == b.LastSeq && a.Messages == b.Messages &&
		a.LastError == b.LastError && a.UpdatedAt.Equal(b.UpdatedAt)
}

func checkRuns(t *testing.T, what string, got, want []store.RunSummary) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d runs %v, want %d %v", what, len(got), runIDs(got), len(want), runIDs(want))
	}
	for i := range got {
		if !sameRun(got[i], want[i]) {
			t.Errorf("%s: run %d\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
}

func runIDs(rs []store.RunSummary) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ThreadID
	}
	return ids
}

// allRuns pages through the run list with q.
func allRuns(t *testing.T, s store.Store, q store.RunQuery) []store.RunSummary {
	t.Helper()
	var all []store.RunSummary
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("Runs paging does not end")
		}
		runs, next, err := s.Runs(ctx, q)
		if err != nil {
			t.Fatalf("Runs(%+v): %v", q, err)
		}
		if lim := q.Normalized().Limit; len(runs) > lim {
			t.Fatalf("Runs(%+v): %d runs over the limit %d", q, len(runs), lim)
		}
		all = append(all, runs...)
		if next == "" {
			return all
		}
		if len(runs) == 0 {
			t.Fatalf("Runs(%+v): empty page with a next cursor", q)
		}
		q.Before = next
	}
}

func testRuns(t *testing.T, h harness) {
	s, _ := h.fresh(t, store.Retention{})
	want := runsData(t, s, 0)
	byID := func(ids ...string) []store.RunSummary {
		var out []store.RunSummary
		for _, w := range want {
			for _, id := range ids {
				if w.ThreadID == id {
					out = append(out, w)
				}
			}
		}
		return out
	}
	tests := []struct {
		name string
		q    store.RunQuery
		want []store.RunSummary
	}{
		{"all", store.RunQuery{}, want},
		{"limit 2", store.RunQuery{Limit: 2}, want},
		{"limit 1", store.RunQuery{Limit: 1}, want},
		{"limit exact", store.RunQuery{Limit: 5}, want},
		{"limit over max", store.RunQuery{Limit: 10_000}, want},
		{"status error", store.RunQuery{Status: store.RunError}, byID("t-other", "t-err")},
		{"status running", store.RunQuery{Status: store.RunRunning}, byID("t-run")},
		{"status completed", store.RunQuery{Status: store.RunCompleted, Limit: 1}, byID("t-rec", "t-ok")},
		{"graph g1", store.RunQuery{Graph: "g1"}, byID("t-rec", "t-ok")},
		{"graph prefix is not a match", store.RunQuery{Graph: "g"}, nil},
		{"text in error, any case", store.RunQuery{Text: "BOOM"}, byID("t-err")},
		{"text in thread id", store.RunQuery{Text: "T-RE"}, byID("t-rec")},
		{"text in graph name", store.RunQuery{Text: "g3"}, byID("t-other")},
		{"text in several", store.RunQuery{Text: "failed", Limit: 1}, byID("t-other", "t-err")},
		{"combined", store.RunQuery{Status: store.RunError, Graph: "g2"}, byID("t-err")},
		{"no match", store.RunQuery{Text: "zzz"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkRuns(t, tc.name, allRuns(t, s, tc.q), tc.want)
		})
	}
	// A full first page of exactly the rest has no next cursor.
	runs, next, err := s.Runs(ctx, store.RunQuery{Limit: 5})
	if err != nil || len(runs) != 5 || next != "" {
		t.Errorf("Runs(limit 5): %d runs, next %q, %v; want 5 and no cursor", len(runs), next, err)
	}
	runs, next, err = s.Runs(ctx, store.RunQuery{Limit: 4})
	if err != nil || len(runs) != 4 || next == "" {
		t.Errorf("Runs(limit 4): %d runs, next %q, %v; want 4 and a cursor", len(runs), next, err)
	}
	if _, _, err := s.Runs(ctx, store.RunQuery{Before: "not a cursor!"}); err == nil {
		t.Error("Runs with a malformed cursor: no error")
	}
	for _, w := range want {
		got, ok, err := s.Run(ctx, w.ThreadID)
		if err != nil || !ok || !sameRun(got, w) {
			t.Errorf("Run(%q) = %+v, %v, %v; want %+v", w.ThreadID, got, ok, err, w)
		}
	}
	if _, ok, err := s.Run(ctx, "t-none"); ok || err != nil {
		t.Errorf("Run(t-none): ok=%v, %v", ok, err)
	}
}
