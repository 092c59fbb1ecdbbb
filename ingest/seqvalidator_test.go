package ingest

import (
	"fmt"
	"math"
	"testing"
)

type seqTestStep struct {
	thread string
	seq    uint64
	want   SequenceResult
}

func runSeqTestSteps(t *testing.T, v *SequenceValidator, steps []seqTestStep) {
	t.Helper()
	for i, s := range steps {
		got := v.Observe(s.thread, s.seq)
		if got != s.want {
			t.Fatalf("step %d Observe(%q, %d) = %+v (%v), want %+v (%v)", i, s.thread, s.seq, got, got.Kind, s.want, s.want.Kind)
		}
	}
}

func TestSequenceValidatorRules(t *testing.T) {
	base := SequenceResult{Kind: SeqBaseline}
	ok := func(exp uint64) SequenceResult { return SequenceResult{Kind: SeqOK, Expected: exp} }
	gap := func(exp, size uint64) SequenceResult {
		return SequenceResult{Kind: SeqGap, Expected: exp, GapSize: size}
	}
	dup := func(exp uint64) SequenceResult { return SequenceResult{Kind: SeqDuplicate, Expected: exp} }
	reorder := func(exp uint64) SequenceResult { return SequenceResult{Kind: SeqReorder, Expected: exp} }
	ignored := SequenceResult{Kind: SeqIgnored}

	tests := []struct {
		name  string
		steps []seqTestStep
	}{
		{"in order from 1", []seqTestStep{
			{"a", 1, base}, {"a", 2, ok(2)}, {"a", 3, ok(3)},
		}},
		{"first sighting mid-stream is a baseline, not a gap", []seqTestStep{
			{"a", 500, base}, {"a", 501, ok(501)},
		}},
		{"gap sets expected past it", []seqTestStep{
			{"a", 1, base}, {"a", 5, gap(2, 3)}, {"a", 6, ok(6)}, {"a", 8, gap(7, 1)},
		}},
		{"duplicate is expected-1 and leaves expected", []seqTestStep{
			{"a", 1, base}, {"a", 2, ok(2)}, {"a", 2, dup(3)}, {"a", 2, dup(3)}, {"a", 3, ok(3)},
		}},
		{"reorder below expected-1 leaves expected", []seqTestStep{
			{"a", 1, base}, {"a", 2, ok(2)}, {"a", 3, ok(3)}, {"a", 1, reorder(4)}, {"a", 4, ok(4)},
		}},
		{"late message after a gap is a reorder", []seqTestStep{
			{"a", 1, base}, {"a", 4, gap(2, 2)}, {"a", 2, reorder(5)}, {"a", 3, reorder(5)}, {"a", 4, dup(5)}, {"a", 5, ok(5)},
		}},
		{"sequence 0 is ignored and never baselines", []seqTestStep{
			{"a", 0, ignored}, {"a", 0, ignored}, {"a", 7, base}, {"a", 0, ignored}, {"a", 8, ok(8)},
		}},
		{"threads are independent", []seqTestStep{
			{"a", 1, base}, {"b", 10, base}, {"a", 2, ok(2)}, {"b", 12, gap(11, 1)}, {"a", 2, dup(3)}, {"b", 1, reorder(13)},
		}},
		{"empty thread id is a thread like any other", []seqTestStep{
			{"", 3, base}, {"", 4, ok(4)},
		}},
		{"max uint64 does not wrap", []seqTestStep{
			{"a", math.MaxUint64 - 1, base}, {"a", math.MaxUint64, ok(math.MaxUint64)},
			{"a", math.MaxUint64, dup(0)}, {"a", 5, reorder(0)},
		}},
		{"huge gap", []seqTestStep{
			{"a", 1, base}, {"a", math.MaxUint64, gap(2, math.MaxUint64-2)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSeqTestSteps(t, NewSequenceValidator(0), tc.steps)
		})
	}
}

func TestSequenceValidatorDefaults(t *testing.T) {
	v := NewSequenceValidator(0)
	if v.maxThreads != DefaultMaxSequenceThreads || v.pruneBatch != 1000 || len(v.pruned.ring) != 10_000 {
		t.Fatalf("defaults: maxThreads=%d pruneBatch=%d remember=%d, want 100000/1000/10000",
			v.maxThreads, v.pruneBatch, len(v.pruned.ring))
	}
}

func TestSequenceValidatorPruning(t *testing.T) {
	tests := []struct {
		name       string
		maxThreads int
		// threads inserted in order t0, t1, … each with seq 1..seqs
		threads      int
		wantTracked  int
		wantPruned   uint64
		wantRemember int
	}{
		// 10 threads → batch 1, remember 100.
		{"at the limit nothing is pruned", 10, 10, 10, 0, 0},
		{"one past the limit prunes the oldest", 10, 11, 10, 1, 1},
		{"remembered ids are bounded", 10, 200, 10, 190, 100},
		// 100 threads → batch 10, remember 1000.
		{"batch prune", 100, 101, 91, 10, 10},
		{"batch prune twice", 100, 111, 91, 20, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := NewSequenceValidator(tc.maxThreads)
			for i := range tc.threads {
				if r := v.Observe(fmt.Sprintf("t%d", i), 1); r.Kind != SeqBaseline || r.Rebaseline {
					t.Fatalf("thread %d: %+v, want plain baseline", i, r)
				}
			}
			if v.Tracked() != tc.wantTracked || v.PrunedTotal() != tc.wantPruned || v.Remembered() != tc.wantRemember {
				t.Fatalf("tracked=%d pruned=%d remembered=%d, want %d/%d/%d",
					v.Tracked(), v.PrunedTotal(), v.Remembered(), tc.wantTracked, tc.wantPruned, tc.wantRemember)
			}
			if v.Tracked() > tc.maxThreads {
				t.Fatalf("tracked %d > max %d", v.Tracked(), tc.maxThreads)
			}
			if got := len(v.order) - v.head; got != v.Tracked() {
				t.Fatalf("order holds %d threads, map %d", got, v.Tracked())
			}
		})
	}
}

func TestSequenceValidatorPrunedThreadRebaselines(t *testing.T) {
	v := NewSequenceValidator(3) // batch 1, remember 30
	runSeqTestSteps(t, v, []seqTestStep{
		{"a", 1, SequenceResult{Kind: SeqBaseline}},
		{"a", 2, SequenceResult{Kind: SeqOK, Expected: 2}},
		{"b", 1, SequenceResult{Kind: SeqBaseline}},
		{"c", 1, SequenceResult{Kind: SeqBaseline}},
		// "a" is the oldest inserted: "d" prunes it even though it
		// was used most recently but one.
		{"d", 1, SequenceResult{Kind: SeqBaseline}},
		// a's messages 3..9 went by while it was pruned: no false gap,
		// a rebaseline instead.
		{"a", 10, SequenceResult{Kind: SeqBaseline, Rebaseline: true}},
		{"a", 11, SequenceResult{Kind: SeqOK, Expected: 11}},
		// Inserting "a" pruned "b"; b's old message re-baselines too
		// instead of being called a reorder.
		{"b", 1, SequenceResult{Kind: SeqBaseline, Rebaseline: true}},
		// A thread never seen is a plain baseline.
		{"z", 4, SequenceResult{Kind: SeqBaseline}},
	})
	if v.Tracked() != 3 {
		t.Fatalf("tracked = %d, want 3", v.Tracked())
	}
}

func TestSequenceValidatorForgottenPrunedIsPlainBaseline(t *testing.T) {
	v := NewSequenceValidator(1) // batch 1, remember 10
	for i := range 12 {
		v.Observe(fmt.Sprintf("t%d", i), 1)
	}
	// t0..t10 were pruned (t11 is tracked); the ring keeps the last 10,
	// so t0 is forgotten and t1..t10 are remembered.
	if v.Remembered() != 10 {
		t.Fatalf("remembered = %d, want 10", v.Remembered())
	}
	if r := v.Observe("t0", 5); r.Kind != SeqBaseline || r.Rebaseline {
		t.Fatalf("t0: %+v, want plain baseline", r)
	}
	if r := v.Observe("t2", 5); r.Kind != SeqBaseline || !r.Rebaseline {
		t.Fatalf("t2: %+v, want rebaseline", r)
	}
}

func TestSequenceValidatorRePrunedStampsAreDistinct(t *testing.T) {
	// A thread pruned, re-seen and pruned again must stay remembered
	// when its first (stale) ring entry is evicted.
	v := NewSequenceValidator(1) // batch 1, remember 10
	v.Observe("x", 1)
	v.Observe("y", 1)  // prunes x (ring: x)
	v.Observe("x", 1)  // rebaseline x, prunes y (ring: x(stale), y)
	v.Observe("z", 1)  // prunes x again (ring: x(stale), y, x)
	for i := range 8 { // fill the ring: evicts x(stale) on the 8th
		v.Observe(fmt.Sprintf("f%d", i), 1)
	}
	if r := v.Observe("x", 2); !r.Rebaseline {
		t.Fatalf("x: %+v, want rebaseline (its live entry is still remembered)", r)
	}
}

func TestSequenceValidatorOrderCompacts(t *testing.T) {
	v := NewSequenceValidator(50)
	for i := range 10_000 {
		v.Observe(fmt.Sprintf("t%d", i), uint64(i)+1)
	}
	if cap(v.order) > 1000 {
		t.Fatalf("order slice grew to cap %d for 50 tracked threads", cap(v.order))
	}
}

func BenchmarkSequenceValidatorObserve(b *testing.B) {
	v := NewSequenceValidator(0)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("thread-%d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v.Observe(ids[i%len(ids)], uint64(i/len(ids))+1)
	}
}
