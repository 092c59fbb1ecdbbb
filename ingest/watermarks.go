package ingest

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Budgets of the old-data watermark fetches (reference §5.3).
const (
	startupHeadsBudget = 15 * time.Second
	lazyHeadTimeout    = 5 * time.Second
)

// sessionHeads classifies records as old data (reference §5.3): a record
// below its partition's session head (the high watermark when this process
// started, or when the partition was first seen) is old. It also drives
// websocket_kafka_catchup_phase. Safe for concurrent use: the lazy
// watermark fetches fill heads from their own goroutines.
type sessionHeads struct {
	m       *Metrics
	started time.Time
	useTS   bool
	grace   time.Duration
	// fetch is the one-shot lazy watermark fetch for a partition
	// discovered without a session head; it runs in its own goroutine.
	fetch func(ctx context.Context, p int32) (int64, bool)

	mu        sync.Mutex
	head      map[int32]int64
	firstSeen map[int32]int64
	lazy      map[int32]bool // lazy fetch started
	catching  map[int32]bool // gauge at 1
	done      map[int32]bool // catch-up completed (gauge at 0)
	wg        sync.WaitGroup
}

func newSessionHeads(m *Metrics, useTS bool, grace time.Duration, fetch func(context.Context, int32) (int64, bool)) *sessionHeads {
	return &sessionHeads{
		m: m, started: time.Now(), useTS: useTS, grace: grace, fetch: fetch,
		head: map[int32]int64{}, firstSeen: map[int32]int64{}, lazy: map[int32]bool{},
		catching: map[int32]bool{}, done: map[int32]bool{},
	}
}

// reset forgets every partition (a new source) and sets the heads known
// now; partitions without one get the lazy fallback.
func (h *sessionHeads) reset(heads map[int32]int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.catching {
		h.m.CatchupPhase.DeleteLabelValues(partLabel(p))
	}
	for p := range h.done {
		h.m.CatchupPhase.DeleteLabelValues(partLabel(p))
	}
	h.head = maps.Clone(heads)
	if h.head == nil {
		h.head = map[int32]int64{}
	}
	h.firstSeen = map[int32]int64{}
	h.lazy = map[int32]bool{}
	h.catching = map[int32]bool{}
	h.done = map[int32]bool{}
}

// setIfMissing records a head for p unless one is known.
func (h *sessionHeads) setIfMissing(p int32, head int64) {
	h.mu.Lock()
	if _, ok := h.head[p]; !ok {
		h.head[p] = head
	}
	h.mu.Unlock()
}

// classify reports whether the record at (p, offset) with Kafka timestamp
// ts is old data, and updates the catch-up state. ctx bounds the lazy
// fetch it may start.
func (h *sessionHeads) classify(ctx context.Context, p int32, offset int64, ts time.Time) bool {
	h.mu.Lock()
	head, known := h.head[p]
	if !known {
		if _, seen := h.firstSeen[p]; !seen {
			h.firstSeen[p] = offset
		}
		if !h.lazy[p] && h.fetch != nil {
			h.lazy[p] = true
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				fctx, cancel := context.WithTimeout(ctx, lazyHeadTimeout)
				defer cancel()
				if hw, ok := h.fetch(fctx, p); ok {
					h.setIfMissing(p, hw)
				}
			}()
		}
	}
	ref := head
	if !known {
		ref = h.firstSeen[p]
	}
	// Catch-up phase: 1 when first seen, 0 once a record at or past a
	// known head arrives.
	if !h.catching[p] && !h.done[p] {
		h.catching[p] = true
		h.m.CatchupPhase.WithLabelValues(partLabel(p)).Set(1)
	}
	if known && offset >= head && h.catching[p] {
		delete(h.catching, p)
		h.done[p] = true
		h.m.CatchupPhase.WithLabelValues(partLabel(p)).Set(0)
	}
	h.mu.Unlock()

	if h.useTS {
		return !ts.IsZero() && ts.UnixMilli() >= 0 && ts.Before(h.started.Add(-h.grace))
	}
	return offset < ref
}

// track sets p's catch-up state from its consumer position (next
// offset) without waiting for a record: caught up (0) when next has
// reached a known head, else catching up (1). Partitions without a known
// head are left to classify.
func (h *sessionHeads) track(p int32, next int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	head, known := h.head[p]
	if !known || h.done[p] {
		return
	}
	if next >= head {
		delete(h.catching, p)
		h.done[p] = true
		h.m.CatchupPhase.WithLabelValues(partLabel(p)).Set(0)
		return
	}
	if !h.catching[p] {
		h.catching[p] = true
		h.m.CatchupPhase.WithLabelValues(partLabel(p)).Set(1)
	}
}

// snapshot returns the known heads and the partitions catching up.
func (h *sessionHeads) snapshot() (heads map[int32]int64, catching map[int32]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.head), maps.Clone(h.catching)
}

// wait waits for lazy fetches to end.
func (h *sessionHeads) wait() { h.wg.Wait() }
