package ingest

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dashstream/dashstream/store"
)

// Notifier learns about every committed store append. The hub implements
// it; Appended is called from the ingest goroutine right after the append
// is durable, in commit order, with the batch that was committed: its
// records (the hub keeps them in its in-memory tail, so live delivery needs
// no store read) and the new next offsets (high-water marks) of the
// partitions it touched. It must not block for long and must not modify b.
type Notifier interface {
	Appended(b store.Batch)
}

// Status is a snapshot of ingest for /health (DECISIONS D7) and inspect.
type Status struct {
	Topic   string
	TopicID string // hex, "" until known
	Policy  Policy // KAFKA_ON_DECODE_ERROR
	Running bool   // Run is consuming (false before startup and after shutdown)

	// Paused is true while any pause is in force: the store refusing
	// appends (StorePaused) or a partition stopped by
	// KAFKA_ON_DECODE_ERROR=pause (PausedPartition ≥ 0).
	Paused      bool
	StorePaused bool
	// StoreError is the last store append error while StorePaused, else "".
	StoreError string
	StoreFull  bool // the last append error was store.ErrFull
	// PausedPartition and PausedOffset name the first partition stopped by
	// the decode policy and the offset it stopped at (the record that
	// failed; a restart reads it again); −1 when none.
	PausedPartition int32
	PausedOffset    int64
	// DecodePaused lists every partition stopped by the decode policy.
	DecodePaused map[int32]int64

	// NextOffsets is the next ingest offset of each partition (the store's
	// committed view).
	NextOffsets map[int32]int64
	// SessionHeads is each partition's high watermark at startup (or when
	// first seen); records below it are old data (reference §5.3).
	SessionHeads map[int32]int64
	// CatchingUp lists partitions still below their session head.
	CatchingUp map[int32]bool
	// CaughtUp is true once no partition is catching up.
	CaughtUp bool

	LastMessage        time.Time // zero: never
	LastInfraError     time.Time // zero: never
	LastInfraErrorText string

	// Lifetime counters (reference /health metrics).
	MessagesReceived int64 // every record, incl. missing payloads
	MessagesSuccess  int64
	KafkaErrors      int64 // new-data failures incl. oversized
	DecodeErrors     int64 // same set as KafkaErrors (reference keeps both)
	OldDataErrors    int64
	PayloadMissing   int64
	InfraErrors      int64
	// Sliding 120 s windows (1 s buckets).
	MessagesLast120s     int64
	DecodeErrorsLast120s int64
}

// window counts events in a sliding window of one-second buckets.
type window struct {
	mu      sync.Mutex
	buckets [120]int64
	stamps  [120]int64 // unix second of each bucket
}

func (w *window) add(now time.Time, n int64) {
	s := now.Unix()
	i := s % int64(len(w.buckets))
	w.mu.Lock()
	if w.stamps[i] != s {
		w.stamps[i], w.buckets[i] = s, 0
	}
	w.buckets[i] += n
	w.mu.Unlock()
}

func (w *window) sum(now time.Time) int64 {
	s := now.Unix()
	var total int64
	w.mu.Lock()
	for i, st := range w.stamps {
		if st > s-int64(len(w.buckets)) && st <= s {
			total += w.buckets[i]
		}
	}
	w.mu.Unlock()
	return total
}

// statusState is the mutable part of Status, guarded by Ingester.mu.
type statusState struct {
	topicID       string
	running       bool
	storePaused   bool
	storeFull     bool
	storeError    string
	decodePaused  map[int32]int64
	decodeOrder   []int32 // pause order, first is reported
	next          map[int32]int64
	advanced      map[int32]time.Time // when next last moved
	lastInfraText string
	topicIDRaw    [16]byte
	consumed      map[int32]bool // partitions the consumer was given
	lastCommit    time.Time      // last group commit attempt
}

// counters are the lifetime record counters, updated per record without
// taking Ingester.mu.
type counters struct {
	received, ok, kafkaErrors, oldData, missing, infra atomic.Int64
}

// Status returns a snapshot of the ingest state. It is safe to call from
// any goroutine.
func (i *Ingester) Status() Status {
	now := time.Now()
	i.mu.Lock()
	s := Status{
		Topic:              i.cfg.Topic,
		TopicID:            i.stat.topicID,
		Policy:             i.cfg.OnDecodeError,
		Running:            i.stat.running,
		StorePaused:        i.stat.storePaused,
		StoreFull:          i.stat.storeFull,
		StoreError:         i.stat.storeError,
		PausedPartition:    -1,
		PausedOffset:       -1,
		DecodePaused:       maps.Clone(i.stat.decodePaused),
		NextOffsets:        maps.Clone(i.stat.next),
		LastInfraErrorText: i.stat.lastInfraText,
		MessagesReceived:   i.cnt.received.Load(),
		MessagesSuccess:    i.cnt.ok.Load(),
		KafkaErrors:        i.cnt.kafkaErrors.Load(),
		DecodeErrors:       i.cnt.kafkaErrors.Load(),
		OldDataErrors:      i.cnt.oldData.Load(),
		PayloadMissing:     i.cnt.missing.Load(),
		InfraErrors:        i.cnt.infra.Load(),
	}
	if len(i.stat.decodeOrder) > 0 {
		p := i.stat.decodeOrder[0]
		s.PausedPartition, s.PausedOffset = p, i.stat.decodePaused[p]
	}
	i.mu.Unlock()
	if s.DecodePaused == nil {
		s.DecodePaused = map[int32]int64{}
	}
	if s.NextOffsets == nil {
		s.NextOffsets = map[int32]int64{}
	}
	s.Paused = s.StorePaused || s.PausedPartition >= 0
	s.SessionHeads, s.CatchingUp = i.heads.snapshot()
	s.CaughtUp = len(s.CatchingUp) == 0
	if t := i.m.lastMessage.Load(); t != 0 {
		s.LastMessage = time.Unix(0, t)
	}
	if t := i.m.lastInfraError.Load(); t != 0 {
		s.LastInfraError = time.Unix(0, t)
	}
	s.MessagesLast120s = i.msgWindow.sum(now)
	s.DecodeErrorsLast120s = i.errWindow.sum(now)
	return s
}
