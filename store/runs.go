package store

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// Run list paging bounds (DECISIONS D7).
const (
	DefaultRunLimit = 50
	MaxRunLimit     = 500
)

// ErrBadCursor: a RunQuery.Before cursor that no Runs call produced.
var ErrBadCursor = errors.New("bad run cursor")

// ApplyRecord folds one record into the summary of one thread it touches.
// Every backend calls it once per (record, thread) pair of
// rec.Index.Threads, in append order, so all backends agree on the rules:
//
//   - Messages counts records (an EventBatch once per thread it touches).
//   - FirstSeq/LastSeq span the thread's nonzero sequences.
//   - GraphName comes from GRAPH_START.
//   - StartedAt is the GRAPH_START time, else the header time of the first
//     record (else its Kafka time).
//   - Status is running; error after NODE_ERROR or GRAPH_ERROR (LastError is
//     the error text, EndedAt its time) unless a later GRAPH_END makes it
//     completed (EndedAt its time). A GRAPH_START after the run ended
//     starts it again: running, EndedAt and LastError cleared.
//   - UpdatedAt is the newest record time (Kafka time, else header time).
//
// Only events of thread.ThreadID count: an EventBatch spanning several
// threads carries the others' events too. Times are UTC.
func ApplyRecord(sum *RunSummary, rec Record, thread wire.ThreadSeq) {
	if sum.ThreadID == "" {
		sum.ThreadID = thread.ThreadID
	}
	if sum.Status == "" {
		sum.Status = RunRunning
	}
	sum.Messages++
	if thread.Seq != 0 {
		if sum.FirstSeq == 0 || thread.Seq < sum.FirstSeq {
			sum.FirstSeq = thread.Seq
		}
		if thread.Seq > sum.LastSeq {
			sum.LastSeq = thread.Seq
		}
	}

	recTime := microTime(rec.Index.TimestampUs)
	if recTime.IsZero() {
		recTime = rec.Time.UTC()
	}
	if sum.StartedAt.IsZero() {
		sum.StartedAt = recTime
	}
	for _, ev := range rec.Index.Events {
		if ev.ThreadID != thread.ThreadID {
			continue
		}
		at := microTime(ev.TimestampUs)
		if at.IsZero() {
			at = recTime
		}
		switch ev.EventType {
		case pb.EventType_EVENT_TYPE_GRAPH_START:
			switch {
			case sum.Status != RunRunning: // a new run on the same thread
				sum.Status = RunRunning
				sum.EndedAt = time.Time{}
				sum.LastError = ""
				sum.StartedAt = at
			case sum.GraphName == "": // the first GRAPH_START seen
				sum.StartedAt = at
			}
			if ev.GraphName != "" {
				sum.GraphName = ev.GraphName
			}
		case pb.EventType_EVENT_TYPE_GRAPH_END:
			sum.Status = RunCompleted
			sum.EndedAt = at
		case pb.EventType_EVENT_TYPE_GRAPH_ERROR, pb.EventType_EVENT_TYPE_NODE_ERROR:
			sum.Status = RunError
			sum.LastError = ev.ErrorText
			sum.EndedAt = at
		}
	}

	updated := rec.Time.UTC()
	if rec.Time.IsZero() {
		updated = microTime(rec.Index.TimestampUs)
	}
	if updated.After(sum.UpdatedAt) {
		sum.UpdatedAt = updated
	}
}

// microTime converts a header timestamp; 0 gives the zero time.
func microTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// Normalized returns q with the limit defaulted (DefaultRunLimit) and
// capped (MaxRunLimit).
func (q RunQuery) Normalized() RunQuery {
	switch {
	case q.Limit <= 0:
		q.Limit = DefaultRunLimit
	case q.Limit > MaxRunLimit:
		q.Limit = MaxRunLimit
	}
	return q
}

// Matches reports whether s passes q's filters: Status and Graph exact,
// Text a case-insensitive substring of the thread id, graph name or last
// error. Empty filters match everything. The cursor is not considered.
func (q RunQuery) Matches(s RunSummary) bool {
	if q.Status != "" && s.Status != q.Status {
		return false
	}
	if q.Graph != "" && s.GraphName != q.Graph {
		return false
	}
	if q.Text == "" {
		return true
	}
	text := strings.ToLower(q.Text)
	for _, field := range []string{s.ThreadID, s.GraphName, s.LastError} {
		if strings.Contains(strings.ToLower(field), text) {
			return true
		}
	}
	return false
}

// RunCursor is a position in the run list: the UpdatedAt key and thread id
// of the last run of a page.
type RunCursor struct {
	UpdatedAt int64 // RunTimeKey of UpdatedAt
	ThreadID  string
}

// RunTimeKey is the ordering key of a run's UpdatedAt: Unix nanoseconds,
// with the zero time sorting oldest.
func RunTimeKey(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// CompareRuns orders the run list, newest first: UpdatedAt descending, then
// thread id ascending. It returns a negative number when a comes first.
func CompareRuns(a, b RunSummary) int {
	if c := cmp.Compare(RunTimeKey(b.UpdatedAt), RunTimeKey(a.UpdatedAt)); c != 0 {
		return c
	}
	return strings.Compare(a.ThreadID, b.ThreadID)
}

// CursorOf is the cursor that continues the run list after s.
func CursorOf(s RunSummary) RunCursor {
	return RunCursor{UpdatedAt: RunTimeKey(s.UpdatedAt), ThreadID: s.ThreadID}
}

// Encode returns the opaque form of c used in RunQuery.Before.
func (c RunCursor) Encode() string {
	buf := make([]byte, 8, 8+len(c.ThreadID))
	binary.BigEndian.PutUint64(buf, uint64(c.UpdatedAt))
	buf = append(buf, c.ThreadID...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// DecodeRunCursor parses a RunQuery.Before cursor; the error wraps
// ErrBadCursor.
func DecodeRunCursor(s string) (RunCursor, error) {
	buf, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return RunCursor{}, fmt.Errorf("%w: %v", ErrBadCursor, err)
	}
	if len(buf) < 8 {
		return RunCursor{}, fmt.Errorf("%w: %d bytes", ErrBadCursor, len(buf))
	}
	return RunCursor{
		UpdatedAt: int64(binary.BigEndian.Uint64(buf)),
		ThreadID:  string(buf[8:]),
	}, nil
}

// Precedes reports whether s comes strictly after the cursor in list
// order, i.e. belongs to the page the cursor starts.
func (c RunCursor) Precedes(s RunSummary) bool {
	if k := RunTimeKey(s.UpdatedAt); k != c.UpdatedAt {
		return k < c.UpdatedAt
	}
	return s.ThreadID > c.ThreadID
}

// PageRuns applies q to a backend's run summaries: it filters them,
// orders them newest first, starts after q.Before and returns at most
// q.Limit (normalised) runs, with the cursor of the next page or "" on the
// last. runs is not modified.
func PageRuns(runs []RunSummary, q RunQuery) ([]RunSummary, string, error) {
	q = q.Normalized()
	var after *RunCursor
	if q.Before != "" {
		c, err := DecodeRunCursor(q.Before)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}
	var sel []RunSummary
	for _, s := range runs {
		if q.Matches(s) && (after == nil || after.Precedes(s)) {
			sel = append(sel, s)
		}
	}
	slices.SortFunc(sel, CompareRuns)
	if len(sel) <= q.Limit {
		return sel, "", nil
	}
	sel = sel[:q.Limit:q.Limit]
	return sel, CursorOf(sel[len(sel)-1]).Encode(), nil
}
