package ingest

import "fmt"

// Sequence validator limits (reference §8.3).
const (
	// DefaultMaxSequenceThreads is how many threads a SequenceValidator
	// tracks by default.
	DefaultMaxSequenceThreads = 100_000
	// maxSequencePruneBatch is how many threads are pruned at once when
	// the tracked set is full.
	maxSequencePruneBatch = 1000
	// maxRememberedPruned bounds the remembered pruned thread ids.
	maxRememberedPruned = 10_000
)

// SequenceKind classifies one observed (thread, sequence) pair.
type SequenceKind uint8

// SequenceKind values. For a thread whose last accepted sequence is L
// (expected next = L+1):
const (
	// SeqIgnored: sequence 0, which means "no sequence"; nothing changes.
	SeqIgnored SequenceKind = iota
	// SeqBaseline: first sighting of the thread (or first since it was
	// pruned); expected := seq+1, no gap.
	SeqBaseline
	// SeqOK: seq == expected; expected := seq+1.
	SeqOK
	// SeqGap: seq > expected; GapSize = seq − expected; expected := seq+1.
	SeqGap
	// SeqDuplicate: seq == expected−1; expected unchanged.
	SeqDuplicate
	// SeqReorder: seq < expected−1; expected unchanged.
	SeqReorder
)

// String returns the kind's lower-case name.
func (k SequenceKind) String() string {
	switch k {
	case SeqIgnored:
		return "ignored"
	case SeqBaseline:
		return "baseline"
	case SeqOK:
		return "ok"
	case SeqGap:
		return "gap"
	case SeqDuplicate:
		return "duplicate"
	case SeqReorder:
		return "reorder"
	default:
		return fmt.Sprintf("SequenceKind(%d)", uint8(k))
	}
}

// SequenceResult is the outcome of SequenceValidator.Observe. The caller
// maps it to the dashstream_sequence_* metrics: SeqGap increments
// dashstream_sequence_gaps_total and observes GapSize in
// dashstream_sequence_gap_size; SeqDuplicate and SeqReorder increment
// their counters.
type SequenceResult struct {
	Kind SequenceKind
	// GapSize is seq − expected for SeqGap, else 0.
	GapSize uint64
	// Expected is the sequence expected before this message; 0 for
	// SeqBaseline and SeqIgnored.
	Expected uint64
	// Rebaseline is true for a SeqBaseline of a thread that was pruned
	// earlier and is still remembered (its baseline is not a first
	// sighting).
	Rebaseline bool
}

// SequenceValidator tracks the next expected sequence per thread (reference
// §8.3). At most maxThreads threads are tracked; inserting beyond that
// prunes the oldest-inserted threads in a batch (1000, or a tenth of
// maxThreads if smaller) and remembers up to 10 000 pruned ids (or
// 10 × maxThreads if smaller), so that their next message reports a
// rebaseline rather than looking like a new thread. Either way a thread
// that is not tracked re-baselines, so pruning never reports a false gap.
//
// A SequenceValidator is not safe for concurrent use: call it from one
// goroutine (the ingest pipeline's), or guard it.
type SequenceValidator struct {
	maxThreads int
	pruneBatch int

	// last is each tracked thread's highest accepted sequence (the
	// expected next one is last+1; storing last avoids overflow).
	last map[string]uint64
	// order lists the tracked threads oldest-inserted first, from
	// order[head]. Threads leave the map only by pruning from the front,
	// so order[head:] and last hold the same threads.
	order []string
	head  int

	pruned prunedSet

	prunedTotal uint64
}

// NewSequenceValidator returns a validator tracking at most maxThreads
// threads; maxThreads <= 0 selects DefaultMaxSequenceThreads.
func NewSequenceValidator(maxThreads int) *SequenceValidator {
	if maxThreads <= 0 {
		maxThreads = DefaultMaxSequenceThreads
	}
	batch := min(maxSequencePruneBatch, max(1, maxThreads/10))
	remember := min(maxRememberedPruned, 10*maxThreads)
	return &SequenceValidator{
		maxThreads: maxThreads,
		pruneBatch: batch,
		last:       make(map[string]uint64),
		pruned:     newPrunedSet(remember),
	}
}

// Observe records that thread sent seq and classifies it. seq 0 is
// ignored (SeqIgnored). thread should already be bounded (wire.BoundThreadID).
func (v *SequenceValidator) Observe(thread string, seq uint64) SequenceResult {
	if seq == 0 {
		return SequenceResult{Kind: SeqIgnored}
	}
	last, ok := v.last[thread]
	if !ok {
		rebase := v.pruned.remove(thread)
		v.insert(thread, seq)
		return SequenceResult{Kind: SeqBaseline, Rebaseline: rebase}
	}
	// Comparing with last rather than last+1 keeps sequence MaxUint64
	// from wrapping the expected value.
	expected := last + 1
	switch {
	case seq == expected && seq > last:
		v.last[thread] = seq
		return SequenceResult{Kind: SeqOK, Expected: expected}
	case seq > last:
		v.last[thread] = seq
		return SequenceResult{Kind: SeqGap, Expected: expected, GapSize: seq - expected}
	case seq == last:
		return SequenceResult{Kind: SeqDuplicate, Expected: expected}
	default:
		return SequenceResult{Kind: SeqReorder, Expected: expected}
	}
}

// insert tracks a new thread, pruning first if the tracked set is full.
func (v *SequenceValidator) insert(thread string, seq uint64) {
	if len(v.last) >= v.maxThreads {
		v.prune()
	}
	v.last[thread] = seq
	v.order = append(v.order, thread)
}

// prune forgets the pruneBatch oldest-inserted threads and remembers them.
func (v *SequenceValidator) prune() {
	n := min(v.pruneBatch, len(v.order)-v.head)
	for _, t := range v.order[v.head : v.head+n] {
		delete(v.last, t)
		v.pruned.add(t)
	}
	clear(v.order[v.head : v.head+n])
	v.head += n
	v.prunedTotal += uint64(n)
	// Compact once the dead prefix is the larger half.
	if v.head > len(v.order)/2 {
		v.order = append(v.order[:0], v.order[v.head:]...)
		v.head = 0
	}
}

// Tracked returns how many threads are tracked.
func (v *SequenceValidator) Tracked() int { return len(v.last) }

// PrunedTotal returns how many threads have been pruned since creation.
func (v *SequenceValidator) PrunedTotal() uint64 { return v.prunedTotal }

// Remembered returns how many pruned thread ids are remembered.
func (v *SequenceValidator) Remembered() int { return len(v.pruned.ids) }

// prunedSet is a bounded FIFO set of pruned thread ids. Removed ids leave
// stale ring entries, told apart by their insertion stamp.
type prunedSet struct {
	ids   map[string]uint64 // id → stamp of its live ring entry
	ring  []prunedEntry
	start int // index of the oldest ring entry
	n     int // ring entries in use
	stamp uint64
}

type prunedEntry struct {
	id    string
	stamp uint64
}

func newPrunedSet(capacity int) prunedSet {
	return prunedSet{ids: make(map[string]uint64), ring: make([]prunedEntry, max(1, capacity))}
}

// add remembers id, evicting the oldest entry when the ring is full.
func (s *prunedSet) add(id string) {
	if s.n == len(s.ring) {
		old := s.ring[s.start]
		if st, ok := s.ids[old.id]; ok && st == old.stamp {
			delete(s.ids, old.id)
		}
		s.ring[s.start] = prunedEntry{}
		s.start = (s.start + 1) % len(s.ring)
		s.n--
	}
	s.stamp++
	s.ring[(s.start+s.n)%len(s.ring)] = prunedEntry{id: id, stamp: s.stamp}
	s.n++
	s.ids[id] = s.stamp
}

// remove forgets id and reports whether it was remembered.
func (s *prunedSet) remove(id string) bool {
	if _, ok := s.ids[id]; !ok {
		return false
	}
	delete(s.ids, id)
	return true
}
