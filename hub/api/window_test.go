package api_test

import (
	"testing"
	"time"

	"github.com/dashstream/dashstream/hub/api"
)

func TestWindow(t *testing.T) {
	var w api.Window
	t0 := time.Unix(1_000_000, 0)
	w.Add(t0, 5)
	w.Add(t0.Add(55*time.Second), 2)
	if got := w.Sum(t0.Add(60 * time.Second)); got != 7 {
		t.Errorf("sum at +60s = %d, want 7", got)
	}
	if got := w.Sum(t0.Add(125 * time.Second)); got != 2 {
		t.Errorf("sum at +125s = %d, want 2 (first bucket expired)", got)
	}
	if got := w.Sum(t0.Add(10 * time.Minute)); got != 0 {
		t.Errorf("sum at +10m = %d, want 0", got)
	}
	w.Add(t0.Add(10*time.Minute), 1) // reuses a slot
	if got := w.Sum(t0.Add(10 * time.Minute)); got != 1 {
		t.Errorf("sum after slot reuse = %d, want 1", got)
	}
}

func TestCounterWindow(t *testing.T) {
	var c api.CounterWindow
	t0 := time.Unix(2_000_000, 0)
	if c.Increase(t0) != 0 || !c.LastIncrease().IsZero() {
		t.Fatal("empty window not zero")
	}
	c.Observe(t0, 10)          // baseline
	for i := 1; i <= 20; i++ { // +1 every 10 s for 200 s
		c.Observe(t0.Add(time.Duration(i)*10*time.Second), int64(10+i))
	}
	now := t0.Add(200 * time.Second)
	if got := c.Increase(now); got != 12 {
		t.Errorf("increase over last 120 s = %d, want 12", got)
	}
	if !c.LastIncrease().Equal(now) {
		t.Errorf("LastIncrease %v, want %v", c.LastIncrease(), now)
	}
	// No growth for 3 minutes.
	later := now.Add(3 * time.Minute)
	c.Observe(later, 30)
	if got := c.Increase(later); got != 0 {
		t.Errorf("increase after a quiet 3 minutes = %d, want 0", got)
	}
	// A reset starts over.
	c.Observe(later.Add(time.Second), 2)
	if got := c.Increase(later.Add(time.Second)); got != 0 {
		t.Errorf("increase right after a reset = %d, want 0", got)
	}
}
