package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func us(s int) int64 { return at(s).UnixMicro() }

// ev builds a run event of thread th at second s.
func ev(th string, typ pb.EventType, s int) wire.RunEvent {
	return wire.RunEvent{ThreadID: th, TimestampUs: us(s), EventType: typ}
}

func graphStart(th, graph string, s int) wire.RunEvent {
	e := ev(th, pb.EventType_EVENT_TYPE_GRAPH_START, s)
	e.GraphName = graph
	return e
}

func failure(th string, typ pb.EventType, text string, s int) wire.RunEvent {
	e := ev(th, typ, s)
	e.ErrorText = text
	return e
}

// step is one record applied to thread "t".
type step struct {
	kafka  int    // Kafka time, seconds after t0 (-1: zero time)
	header int    // header time, seconds after t0 (-1: none)
	seq    uint64 // the thread's sequence in the record
	events []wire.RunEvent
}

func (s step) record() Record {
	r := Record{Index: wire.Index{Events: s.events}}
	if s.kafka >= 0 {
		r.Time = at(s.kafka)
	}
	if s.header >= 0 {
		r.Index.TimestampUs = us(s.header)
	}
	return r
}

func TestApplyRecord(t *testing.T) {
	const (
		start     = pb.EventType_EVENT_TYPE_GRAPH_START
		end       = pb.EventType_EVENT_TYPE_GRAPH_END
		nodeStart = pb.EventType_EVENT_TYPE_NODE_START
		nodeErr   = pb.EventType_EVENT_TYPE_NODE_ERROR
		graphErr  = pb.EventType_EVENT_TYPE_GRAPH_ERROR
	)
	tests := []struct {
		name  string
		steps []step
		want  RunSummary
	}{
		{
			name: "completed",
			steps: []step{
				{kafka: 11, header: 10, seq: 1, events: []wire.RunEvent{graphStart("t", "g", 10)}},
				{kafka: 12, header: 12, seq: 2},
				{kafka: 21, header: 20, seq: 3, events: []wire.RunEvent{ev("t", end, 20)}},
			},
			want: RunSummary{ThreadID: "t", GraphName: "g", Status: RunCompleted,
				StartedAt: at(10), EndedAt: at(20), FirstSeq: 1, LastSeq: 3, Messages: 3, UpdatedAt: at(21)},
		},
		{
			name: "running without graph start: first header time",
			steps: []step{
				{kafka: 6, header: 5, seq: 7, events: []wire.RunEvent{ev("t", nodeStart, 5)}},
				{kafka: 7, header: 6, seq: 8},
			},
			want: RunSummary{ThreadID: "t", Status: RunRunning, StartedAt: at(5),
				FirstSeq: 7, LastSeq: 8, Messages: 2, UpdatedAt: at(7)},
		},
		{
			name: "no header time: Kafka time starts it",
			steps: []step{
				{kafka: 3, header: -1},
			},
			want: RunSummary{ThreadID: "t", Status: RunRunning, StartedAt: at(3), Messages: 1, UpdatedAt: at(3)},
		},
		{
			name: "no Kafka time: header time updates it",
			steps: []step{
				{kafka: -1, header: 4},
			},
			want: RunSummary{ThreadID: "t", Status: RunRunning, StartedAt: at(4), Messages: 1, UpdatedAt: at(4)},
		},
		{
			name: "late graph start sets started",
			steps: []step{
				{kafka: 9, header: 9, seq: 2},
				{kafka: 9, header: 9, seq: 1, events: []wire.RunEvent{graphStart("t", "g", 8)}},
			},
			want: RunSummary{ThreadID: "t", GraphName: "g", Status: RunRunning, StartedAt: at(8),
				FirstSeq: 1, LastSeq: 2, Messages: 2, UpdatedAt: at(9)},
		},
		{
			name: "node error",
			steps: []step{
				{kafka: 1, header: 1, seq: 1, events: []wire.RunEvent{graphStart("t", "g", 1)}},
				{kafka: 2, header: 2, seq: 2, events: []wire.RunEvent{failure("t", nodeErr, "boom", 2)}},
			},
			want: RunSummary{ThreadID: "t", GraphName: "g", Status: RunError, StartedAt: at(1), EndedAt: at(2),
				FirstSeq: 1, LastSeq: 2, Messages: 2, LastError: "boom", UpdatedAt: at(2)},
		},
		{
			name: "graph error",
			steps: []step{
				{kafka: 1, header: 1, seq: 1, events: []wire.RunEvent{failure("t", graphErr, "bad graph", 1)}},
			},
			want: RunSummary{ThreadID: "t", Status: RunError, StartedAt: at(1), EndedAt: at(1),
				FirstSeq: 1, LastSeq: 1, Messages: 1, LastError: "bad graph", UpdatedAt: at(1)},
		},
		{
			name: "error then graph end completes",
			steps: []step{
				{kafka: 1, header: 1, seq: 1, events: []wire.RunEvent{graphStart("t", "g", 1)}},
				{kafka: 2, header: 2, seq: 2, events: []wire.RunEvent{failure("t", nodeErr, "retry me", 2)}},
				{kafka: 3, header: 3, seq: 3, events: []wire.RunEvent{ev("t", end, 3)}},
			},
			want: RunSummary{ThreadID: "t", GraphName: "g", Status: RunCompleted, StartedAt: at(1), EndedAt: at(3),
				FirstSeq: 1, LastSeq: 3, Messages: 3, LastError: "retry me", UpdatedAt: at(3)},
		},
		{
			name: "graph end then error",
			steps: []step{
				{kafka: 1, header: 1, seq: 1, events: []wire.RunEvent{ev("t", end, 1)}},
				{kafka: 2, header: 2, seq: 2, events: []wire.RunEvent{failure("t", nodeErr, "late", 2)}},
			},
			want: RunSummary{ThreadID: "t", Status: RunError, StartedAt: at(1), EndedAt: at(2),
				FirstSeq: 1, LastSeq: 2, Messages: 2, LastError: "late", UpdatedAt: at(2)},
		},
		{
			name: "graph start after end restarts",
			steps: []step{
				{kafka: 1, header: 1, seq: 1, events: []wire.RunEvent{graphStart("t", "g", 1)}},
				{kafka: 2, header: 2, seq: 2, events: []wire.RunEvent{failure("t", nodeErr, "x", 2)}},
				{kafka: 5, header: 5, seq: 3, events: []wire.RunEvent{graphStart("t", "g2", 5)}},
			},
			want: RunSummary{ThreadID: "t", GraphName: "g2", Status: RunRunning, StartedAt: at(5),
				FirstSeq: 1, LastSeq: 3, Messages: 3, UpdatedAt: at(5)},
		},
		{
			name: "second graph start while running keeps start",
			steps: []step{
				{kafka: 1, header: 1, seq: 1, events: []wire.RunEvent{graphStart("t", "g", 1)}},
				{kafka: 2, header: 2, seq: 2, events: []wire.RunEvent{graphStart("t", "g", 2)}},
			},
			want: RunSummary{ThreadID: "t", GraphName: "g", Status: RunRunning, StartedAt: at(1),
				FirstSeq: 1, LastSeq: 2, Messages: 2, UpdatedAt: at(2)},
		},
		{
			name: "batch: other threads' events ignored, event order kept",
			steps: []step{
				{kafka: 1, header: 1, seq: 4, events: []wire.RunEvent{
					graphStart("t", "g", 1),
					failure("u", graphErr, "not mine", 1),
					ev("u", end, 1),
					failure("t", nodeErr, "mine", 2),
					ev("t", end, 3),
					failure("t", nodeErr, "after end", 4),
				}},
			},
			want: RunSummary{ThreadID: "t", GraphName: "g", Status: RunError, StartedAt: at(1), EndedAt: at(4),
				FirstSeq: 4, LastSeq: 4, Messages: 1, LastError: "after end", UpdatedAt: at(1)},
		},
		{
			name: "event without timestamp uses header time",
			steps: []step{
				{kafka: 9, header: 7, events: []wire.RunEvent{{ThreadID: "t", EventType: end}}},
			},
			want: RunSummary{ThreadID: "t", Status: RunCompleted, StartedAt: at(7), EndedAt: at(7),
				Messages: 1, UpdatedAt: at(9)},
		},
		{
			name: "sequences: zero ignored, min and max kept, older record keeps UpdatedAt",
			steps: []step{
				{kafka: 5, header: 5, seq: 5},
				{kafka: 4, header: 4, seq: 0},
				{kafka: 3, header: 3, seq: 2},
				{kafka: 6, header: 6, seq: 9},
			},
			want: RunSummary{ThreadID: "t", Status: RunRunning, StartedAt: at(5),
				FirstSeq: 2, LastSeq: 9, Messages: 4, UpdatedAt: at(6)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got RunSummary
			for _, s := range tc.steps {
				ApplyRecord(&got, s.record(), wire.ThreadSeq{ThreadID: "t", Seq: s.seq})
			}
			if !summaryEqual(got, tc.want) {
				t.Errorf("summary\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func summaryEqual(a, b RunSummary) bool {
	return a.ThreadID == b.ThreadID && a.GraphName == b.GraphName && a.Status == b.Status &&
		a.StartedAt.Equal(b.StartedAt) && a.EndedAt.Equal(b.EndedAt) &&
		a.FirstSeq == b.FirstSeq && a.LastSeq == b.LastSeq && a.Messages == b.Messages &&
		a.LastError == b.LastError && a.UpdatedAt.Equal(b.UpdatedAt)
}

func TestNormalized(t *testing.T) {
	tests := []struct{ in, want int }{
		{0, DefaultRunLimit}, {-3, DefaultRunLimit}, {1, 1}, {500, 500}, {501, MaxRunLimit}, {1 << 30, MaxRunLimit},
	}
	for _, tc := range tests {
		if got := (RunQuery{Limit: tc.in}).Normalized().Limit; got != tc.want {
			t.Errorf("Limit %d normalised to %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestMatches(t *testing.T) {
	s := RunSummary{ThreadID: "Thread-ABC", GraphName: "research_pipeline", Status: RunError, LastError: "Tool TIMEOUT"}
	tests := []struct {
		q    RunQuery
		want bool
	}{
		{RunQuery{}, true},
		{RunQuery{Status: RunError}, true},
		{RunQuery{Status: RunRunning}, false},
		{RunQuery{Status: "ERROR"}, false},
		{RunQuery{Graph: "research_pipeline"}, true},
		{RunQuery{Graph: "research"}, false},
		{RunQuery{Text: "thread-abc"}, true},
		{RunQuery{Text: "PIPE"}, true},
		{RunQuery{Text: "timeout"}, true},
		{RunQuery{Text: "nothing"}, false},
		{RunQuery{Status: RunError, Graph: "research_pipeline", Text: "abc"}, true},
		{RunQuery{Status: RunError, Graph: "other", Text: "abc"}, false},
	}
	for _, tc := range tests {
		if got := tc.q.Matches(s); got != tc.want {
			t.Errorf("%+v.Matches = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestRunCursor(t *testing.T) {
	tests := []RunSummary{
		{ThreadID: "t1", UpdatedAt: at(1)},
		{ThreadID: "", UpdatedAt: at(0)},
		{ThreadID: "with/odd chars ü\x00", UpdatedAt: at(-100)},
		{ThreadID: "zero-time"},
	}
	for _, s := range tests {
		c := CursorOf(s)
		got, err := DecodeRunCursor(c.Encode())
		if err != nil || got != c {
			t.Errorf("round trip of %+v: %+v, %v", c, got, err)
		}
		if c.Precedes(s) {
			t.Errorf("cursor of %q precedes its own run", s.ThreadID)
		}
	}
	for _, bad := range []string{"!!!", "AAAA", "a b"} {
		if _, err := DecodeRunCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("DecodeRunCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestCompareRuns(t *testing.T) {
	tests := []struct {
		a, b RunSummary
		want int
	}{
		{RunSummary{ThreadID: "a", UpdatedAt: at(2)}, RunSummary{ThreadID: "b", UpdatedAt: at(1)}, -1},
		{RunSummary{ThreadID: "b", UpdatedAt: at(1)}, RunSummary{ThreadID: "a", UpdatedAt: at(2)}, 1},
		{RunSummary{ThreadID: "a", UpdatedAt: at(1)}, RunSummary{ThreadID: "b", UpdatedAt: at(1)}, -1},
		{RunSummary{ThreadID: "a", UpdatedAt: at(1)}, RunSummary{ThreadID: "a", UpdatedAt: at(1)}, 0},
		{RunSummary{ThreadID: "a"}, RunSummary{ThreadID: "b", UpdatedAt: at(-1000)}, 1},
	}
	for _, tc := range tests {
		if got := CompareRuns(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareRuns(%s@%v, %s@%v) = %d, want %d", tc.a.ThreadID, tc.a.UpdatedAt, tc.b.ThreadID, tc.b.UpdatedAt, got, tc.want)
		}
	}
}

func TestPageRuns(t *testing.T) {
	var runs []RunSummary
	for i := range 23 {
		status := RunRunning
		if i%3 == 0 {
			status = RunError
		}
		// Pairs share an UpdatedAt so the thread id tie-break matters.
		runs = append(runs, RunSummary{ThreadID: fmt.Sprintf("t%02d", i), Status: status, UpdatedAt: at(i / 2)})
	}
	tests := []struct {
		name  string
		q     RunQuery
		total int
	}{
		{"all one page", RunQuery{}, 23},
		{"limit 1", RunQuery{Limit: 1}, 23},
		{"limit 5", RunQuery{Limit: 5}, 23},
		{"limit 23", RunQuery{Limit: 23}, 23},
		{"filtered", RunQuery{Status: RunError, Limit: 3}, 8},
		{"nothing", RunQuery{Text: "zzz", Limit: 3}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []RunSummary
			q := tc.q
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("paging does not end")
				}
				page, next, err := PageRuns(runs, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > q.Normalized().Limit {
					t.Fatalf("page of %d over limit %d", len(page), q.Normalized().Limit)
				}
				got = append(got, page...)
				if next == "" {
					break
				}
				if len(page) == 0 {
					t.Fatal("empty page with a next cursor")
				}
				q.Before = next
			}
			if len(got) != tc.total {
				t.Fatalf("got %d runs, want %d", len(got), tc.total)
			}
			for i := range got {
				if !tc.q.Matches(got[i]) {
					t.Errorf("run %s does not match the query", got[i].ThreadID)
				}
				if i > 0 && CompareRuns(got[i-1], got[i]) >= 0 {
					t.Errorf("runs %s and %s out of order", got[i-1].ThreadID, got[i].ThreadID)
				}
			}
		})
	}
	if _, _, err := PageRuns(runs, RunQuery{Before: "%%"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v, want ErrBadCursor", err)
	}
	if runs[0].ThreadID != "t00" {
		t.Error("PageRuns modified its input")
	}
}
