package redis_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
	"github.com/dashstream/dashstream/store/redis"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// TestAgainstMemoryModel appends the same random batches to the Redis
// store and to the memory store and compares thread pages and run pages
// under many limits, including score groups larger than a page (hundreds
// of sequence-0 records in one thread, hundreds of runs with one
// UpdatedAt) and duplicate sequences.
func TestAgainstMemoryModel(t *testing.T) {
	srv := sharedRedis(t)
	ns := "v1_model_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	rs := openAt(t, srv.url(), ns, store.Retention{})
	defer rs.Close()
	ms := memory.New(memory.Config{})
	rng := rand.New(rand.NewPCG(7, 9))
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var next [3]int64
	for b := range 6 {
		var recs []store.Record
		for range 120 {
			p := int32(rng.IntN(3))
			// One Kafka time for all: every run ties on UpdatedAt, one
			// score group larger than a chunk of the run list.
			at := t0
			r := store.Record{Partition: p, Offset: next[p], Time: at,
				Payload: []byte(fmt.Sprintf("\x00%d/%d %s", p, next[p], strings.Repeat("y", rng.IntN(200)))),
				Index:   wire.Index{Type: pb.MessageType_MESSAGE_TYPE_EVENT}}
			next[p] += 1 + int64(rng.IntN(2))
			switch k := rng.IntN(20); {
			case k < 5: // the big sequence-0 thread
				r.Index.Threads = []wire.ThreadSeq{{ThreadID: "zero", Seq: 0}}
			case k < 8: // duplicate-heavy thread: sequences 1..20
				r.Index.Threads = []wire.ThreadSeq{{ThreadID: "dup:" + strconv.Itoa(b%2), Seq: uint64(1 + rng.IntN(20))}}
			case k < 19: // many short runs
				id := "run-" + strconv.Itoa(rng.IntN(2000))
				r.Index.Threads = []wire.ThreadSeq{{ThreadID: id, Seq: uint64(b + 1)}}
				if rng.IntN(4) == 0 {
					r.Index.Events = []wire.RunEvent{{ThreadID: id, EventType: pb.EventType_EVENT_TYPE_GRAPH_END}}
				}
			default: // two threads
				r.Index.Threads = []wire.ThreadSeq{{ThreadID: "zero", Seq: 0}, {ThreadID: "dup:0", Seq: uint64(rng.IntN(20))}}
				r.Index.MultiThread = true
			}
			recs = append(recs, r)
		}
		bt := batchOf(recs...)
		mustAppend(t, rs, bt)
		mustAppend(t, ms, bt)
	}

	for _, id := range []string{"zero", "dup:0", "dup:1", "run-7"} {
		for _, lim := range []store.Limits{{}, {MaxRecords: 1}, {MaxRecords: 7}, {MaxRecords: 500}, {MaxBytes: 3000}} {
			got := pageThread(t, rs, id, store.ThreadKey{}, lim)
			want := pageThread(t, ms, id, store.ThreadKey{}, lim)
			if len(got) != len(want) {
				t.Fatalf("thread %s %+v: %d entries, memory has %d", id, lim, len(got), len(want))
			}
			for i := range got {
				if got[i].Key != want[i].Key || !bytes.Equal(got[i].Payload, want[i].Payload) || !got[i].Time.Equal(want[i].Time) {
					t.Fatalf("thread %s %+v entry %d: %+v, memory %+v", id, lim, i, got[i].Key, want[i].Key)
				}
			}
		}
	}
	if n := len(pageRuns(t, ms, store.RunQuery{Limit: 500})); n <= 200 {
		t.Fatalf("only %d runs: the run list has no score group larger than a chunk", n)
	}
	for _, q := range []store.RunQuery{{}, {Limit: 7}, {Limit: 500}, {Status: store.RunCompleted, Limit: 3}, {Text: "RUN-1", Limit: 11}} {
		got, want := pageRuns(t, rs, q), pageRuns(t, ms, q)
		if len(got) != len(want) {
			t.Fatalf("runs %+v: %d, memory %d", q, len(got), len(want))
		}
		for i := range got {
			if got[i].ThreadID != want[i].ThreadID || got[i].Messages != want[i].Messages || got[i].Status != want[i].Status ||
				!got[i].UpdatedAt.Equal(want[i].UpdatedAt) {
				t.Fatalf("runs %+v entry %d: %+v, memory %+v", q, i, got[i], want[i])
			}
		}
	}
}

func pageThread(t *testing.T, s store.Store, id string, after store.ThreadKey, lim store.Limits) []store.ThreadRecord {
	t.Helper()
	var out []store.ThreadRecord
	for range 100_000 {
		recs, more, err := s.ReadThread(ctx, id, after, lim)
		if err != nil {
			t.Fatal(err)
		}
		if more && len(recs) == 0 {
			t.Fatalf("ReadThread(%q, %+v): empty page with more", id, after)
		}
		out = append(out, recs...)
		if !more {
			return out
		}
		after = recs[len(recs)-1].Key
	}
	t.Fatal("paging does not end")
	return nil
}

func pageRuns(t *testing.T, s store.Store, q store.RunQuery) []store.RunSummary {
	t.Helper()
	var out []store.RunSummary
	for range 10_000 {
		runs, next, err := s.Runs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, runs...)
		if next == "" {
			return out
		}
		q.Before = next
	}
	t.Fatal("run paging does not end")
	return nil
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestPrecisionWarning: offsets above 2^53 are stored and compared exactly
// (the scripts compare decimal strings) and logged once as imprecise
// scores.
func TestPrecisionWarning(t *testing.T) {
	srv := sharedRedis(t)
	var logs logBuf
	s, err := redis.Open(ctx, srv.url(), redis.Options{Namespace: "v1_big_" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const big = int64(1) << 60
	mustAppend(t, s, batchOf(plainRec(0, big, wire.ThreadSeq{ThreadID: "b", Seq: 1 << 60}), plainRec(0, big+1)))
	if o, l, ok := s.Bounds(0); !ok || o != big || l != big+1 {
		t.Errorf("Bounds = %d, %d, %v; want %d, %d", o, l, ok, big, big+1)
	}
	if err := s.Append(ctx, batchOf(plainRec(0, big+1))); err == nil {
		t.Error("Append of a stored offset above 2^53 accepted")
	}
	mustAppend(t, s, batchOf(plainRec(0, big+2)))
	out := logs.b.String()
	if strings.Count(out, "offset above 2^53") != 1 || strings.Count(out, "sequence above 2^53") != 1 {
		t.Errorf("precision warnings: %s", out)
	}
}
