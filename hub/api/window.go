package api

import (
	"sync"
	"time"
)

// Window sizes of the /health "last 120 s" figures (reference §2.3).
const (
	WindowSpan   = 120 * time.Second
	WindowBucket = 10 * time.Second
	windowSlots  = int(WindowSpan / WindowBucket)
)

// Window counts events in a sliding 120 s window of twelve 10 s buckets,
// like the reference's messages_last_120s (approximate to one bucket). The
// zero value is ready to use and it is safe for concurrent use.
type Window struct {
	mu      sync.Mutex
	buckets [windowSlots]int64
	starts  [windowSlots]int64 // bucket number (unix time / 10 s) of each slot
}

func bucketOf(t time.Time) int64 { return t.UnixNano() / int64(WindowBucket) }

// Add counts n events at now.
func (w *Window) Add(now time.Time, n int64) {
	b := bucketOf(now)
	i := int(((b % int64(windowSlots)) + int64(windowSlots)) % int64(windowSlots))
	w.mu.Lock()
	if w.starts[i] != b {
		w.starts[i], w.buckets[i] = b, 0
	}
	w.buckets[i] += n
	w.mu.Unlock()
}

// Sum returns the events counted in the window ending at now.
func (w *Window) Sum(now time.Time) int64 {
	b := bucketOf(now)
	var total int64
	w.mu.Lock()
	for i, s := range w.starts {
		if s > b-int64(windowSlots) && s <= b {
			total += w.buckets[i]
		}
	}
	w.mu.Unlock()
	return total
}

// CounterWindow turns a monotonic counter (for example a Prometheus
// counter the hub increments) into a "last 120 s" figure by sampling it.
// Each Observe records the counter's value; Increase is the growth since
// the newest sample at least WindowSpan old (or the oldest sample when none
// is that old). Sampling at least every WindowBucket keeps the figure
// accurate to one bucket; sparser sampling under-reports. A counter that
// goes backwards (a reset) starts over. The zero value is ready to use and
// it is safe for concurrent use.
type CounterWindow struct {
	mu       sync.Mutex
	samples  []counterSample // oldest first, at most one per bucket
	last     int64
	lastSeen bool
	lastInc  time.Time
}

type counterSample struct {
	at    time.Time
	value int64
}

// Observe records the counter's value at now.
func (c *CounterWindow) Observe(now time.Time, value int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastSeen && value < c.last { // counter reset
		c.samples = c.samples[:0]
	}
	if c.lastSeen && value > c.last {
		c.lastInc = now
	}
	if !c.lastSeen && value > 0 {
		c.lastInc = now // grown before we started watching: best guess
	}
	c.last, c.lastSeen = value, true
	if n := len(c.samples); n == 0 || bucketOf(c.samples[n-1].at) != bucketOf(now) {
		c.samples = append(c.samples, counterSample{at: now, value: value})
	}
	// Keep one sample at or before the window start as the baseline.
	start := now.Add(-WindowSpan)
	drop := 0
	for drop+1 < len(c.samples) && !c.samples[drop+1].at.After(start) {
		drop++
	}
	c.samples = append(c.samples[:0], c.samples[drop:]...)
}

// Increase returns how much the counter grew in the window ending at now.
func (c *CounterWindow) Increase(now time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) == 0 {
		return 0
	}
	base := c.samples[0]
	start := now.Add(-WindowSpan)
	for _, s := range c.samples[1:] {
		if s.at.After(start) {
			break
		}
		base = s
	}
	return c.last - base.value
}

// LastIncrease is when an Observe first saw the counter grow most
// recently; zero if it never did.
func (c *CounterWindow) LastIncrease() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastInc
}
