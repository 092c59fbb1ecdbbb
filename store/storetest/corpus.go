package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/synth"
)

// testCorpus stores a realistic synthetic corpus (wire/synth, the
// `produce` generator) and checks partitions, threads and run summaries
// against a model built with store.ApplyRecord.
func testCorpus(t *testing.T, h harness) {
	corpus, err := synth.Corpus(1, 10)
	if err != nil {
		t.Fatalf("synth.Corpus: %v", err)
	}
	at := base()
	next := map[int32]int64{}
	var recs []store.Record
	byThread := map[string][]store.Record{}
	model := map[string]*store.RunSummary{}
	for i, c := range corpus {
		idx, err := wire.Extract(c.Value, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatalf("wire.Extract(corpus record %d): %v", i, err)
		}
		r := store.Record{Partition: c.Partition, Offset: next[c.Partition], Time: at, Payload: c.Value, Index: idx}
		if idx.TimestampUs > 0 { // the producer's time, at Kafka's precision
			r.Time = time.UnixMilli(idx.TimestampUs / 1000)
		}
		next[c.Partition]++
		recs = append(recs, r)
		for _, ts := range idx.Threads {
			byThread[ts.ThreadID] = append(byThread[ts.ThreadID], r)
			if model[ts.ThreadID] == nil {
				model[ts.ThreadID] = &store.RunSummary{}
			}
			store.ApplyRecord(model[ts.ThreadID], r, ts)
		}
	}
	s, _ := h.fresh(t, store.Retention{})
	for chunk := range slices.Chunk(recs, 97) {
		mustAppend(t, s, batch(chunk...))
	}

	for p := range next {
		sameRecords(t, fmt.Sprintf("partition %d", p), readPartition(t, s, p, -1, store.Limits{MaxBytes: 64 << 10}), ofPartition(recs, p))
	}
	if len(byThread) < 10 {
		t.Fatalf("corpus of 10 runs has %d threads", len(byThread))
	}
	for id, want := range byThread {
		got := readThread(t, s, id, store.ThreadKey{}, store.Limits{MaxRecords: 50})
		if len(got) != len(want) {
			t.Fatalf("thread %s: %d records, want %d", id, len(got), len(want))
		}
		at := map[[2]int64]store.Record{}
		for _, g := range got {
			at[[2]int64{int64(g.Partition), g.Offset}] = g.Record
		}
		for _, w := range want {
			g, ok := at[[2]int64{int64(w.Partition), w.Offset}]
			if !ok {
				t.Fatalf("thread %s: record %d/%d missing", id, w.Partition, w.Offset)
			}
			sameRecord(t, "thread "+id, g, w)
		}
	}
	var wantRuns []store.RunSummary
	for _, m := range model {
		wantRuns = append(wantRuns, *m)
	}
	slices.SortFunc(wantRuns, store.CompareRuns)
	checkRuns(t, "corpus runs", allRuns(t, s, store.RunQuery{Limit: 7}), wantRuns)
	statuses := map[string]int{}
	for _, r := range wantRuns {
		statuses[r.Status]++
	}
	t.Logf("%d records, %d runs by status %v", len(recs), len(wantRuns), statuses)
}
