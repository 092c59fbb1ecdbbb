// Package store owns the replay buffer contract: the Store interface that
// ingest writes and the hub reads, the records, skipped ranges and run
// summaries it holds, and the rules every implementation follows
// (DECISIONS D2–D3). Implementations live in subpackages: bolt (the
// default, one bbolt file), memory (a bounded ring) and redis (optional).
// storetest holds the contract suite every implementation must pass.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/dashstream/dashstream/wire"
)

// Record is one Kafka record as the store keeps it. Payload is the Kafka
// value exactly as it came from Kafka; a replay returns it byte for byte.
type Record struct {
	Partition int32
	Offset    int64
	Time      time.Time  // Kafka record timestamp; drives age retention
	Payload   []byte     // original Kafka value
	Index     wire.Index // type, header timestamp, threads, run events
	// Extracted says Index is exactly wire.Extract(Payload,
	// wire.DefaultMaxPayload), as ingest extracted it. A backend that
	// derives indexes from payloads (bolt) then trusts it instead of
	// extracting again to check; false only costs that check. Reads may
	// return it false.
	Extracted bool
}

// Skip reasons for SkippedRange.
const (
	SkipInvalid = "invalid" // records ingest rejected (decode error, oversized, missing payload)
	SkipEvicted = "evicted" // records Kafka deleted before we read them
)

// SkippedRange is a half-open offset range [From, To) of one partition that
// the store will never hold, with the reason. Holes nobody recorded produce
// no gap.
type SkippedRange struct {
	Partition int32
	From, To  int64
	Reason    string
}

// Batch is one atomic, durable append: the records (strictly increasing
// offsets per partition, each at or above the stored next offset), the
// skipped ranges, and each touched partition's next ingest offset.
type Batch struct {
	Records     []Record
	Skipped     []SkippedRange
	NextOffsets map[int32]int64
}

// Limits bounds one page read. Zero means the implementation default.
// At least one record is returned when one exists, even if it alone is
// over MaxBytes.
type Limits struct {
	MaxRecords int
	MaxBytes   int
	// PayloadOnly: the caller needs Partition, Offset and Payload only
	// (a replay to sockets). A backend may then leave Time and Index zero
	// where filling them costs work; bolt skips re-extracting indexes.
	PayloadOnly bool
}

// ThreadKey orders a thread's index entries: sequence, then partition,
// then offset (DECISIONS D3). ThreadKey{} sorts before everything.
type ThreadKey struct {
	Seq       uint64
	Partition int32
	Offset    int64
}

// AfterSeq is the ThreadKey to pass to ReadThread to get entries with a
// sequence strictly greater than seq.
func AfterSeq(seq uint64) ThreadKey {
	return ThreadKey{Seq: seq, Partition: 1<<31 - 1, Offset: 1<<63 - 1}
}

// ThreadRecord is a record found through a thread index entry.
type ThreadRecord struct {
	Key ThreadKey
	Record
}

// RunStatus values of RunSummary.Status.
const (
	RunRunning   = "running"
	RunCompleted = "completed"
	RunError     = "error"
)

// RunSummary is one run (thread) as the run list shows it (DECISIONS D7).
type RunSummary struct {
	ThreadID  string // bounded thread id
	GraphName string
	Status    string
	StartedAt time.Time
	EndedAt   time.Time // zero while running
	FirstSeq  uint64
	LastSeq   uint64
	Messages  int64 // Kafka records touching this thread
	LastError string
	UpdatedAt time.Time // time of the newest record; orders the list
}

// RunQuery filters and pages the run list (newest first).
type RunQuery struct {
	Status string // "" = any
	Graph  string // exact graph name, "" = any
	Text   string // substring of thread id, graph name or last error
	Limit  int    // default 50, max 500
	Before string // opaque cursor from a previous page
}

// PartitionStats describes one partition's retained records.
type PartitionStats struct {
	Partition   int32
	Oldest      int64 // -1 when empty
	Latest      int64 // -1 when empty
	Records     int64
	RawBytes    int64 // payload bytes as received
	StoredBytes int64 // payload bytes as stored (after compression)
	NextOffset  int64 // next ingest offset, -1 if none
}

// Stats is the store's state for health, metrics and inspect.
type Stats struct {
	Kind        string // "bolt", "memory", "redis"
	Epoch       string
	Generation  uint64
	FileBytes   int64 // whole file on disk; 0 for memory
	Records     int64
	RawBytes    int64
	StoredBytes int64
	Threads     int64
	OldestTime  time.Time // zero when empty
	Full        bool      // the last Append failed with ErrFull
	Partitions  []PartitionStats
	Retention   Retention
}

// Retention is the retention in force. Zero fields mean "no limit".
type Retention struct {
	MaxRecordsPerPartition int64
	MaxAge                 time.Duration
	MaxBytes               int64 // total stored bytes
	MaxFileBytes           int64 // hard file cap (bbolt MaxSize)
}

// Capabilities says which parts of the contract a backend implements, so
// the contract suite runs what applies.
type Capabilities struct {
	RetainByCount bool
	RetainByAge   bool
	RetainByBytes bool
	FileCap       bool
	Durable       bool // survives Close/reopen
}

// Errors every implementation returns (wrapped with context).
var (
	// ErrFull: retention could not make room; nothing was written.
	// Ingest pauses and retries; it never drops the batch.
	ErrFull = errors.New("store full")
	// ErrOffsetOrder: a batch broke the offset rules of DECISIONS D3;
	// nothing was written.
	ErrOffsetOrder = errors.New("offset out of order")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// Store is the replay buffer. Append is called by one writer (ingest);
// every other method may be called concurrently with it and each other.
type Store interface {
	// Append writes b atomically and durably (unless the backend was
	// opened non-durable), then applies retention. An error means none
	// of b was written (ingest retries it); retention failing after the
	// commit is logged and retried by the backend, never returned.
	Append(ctx context.Context, b Batch) error
	// ReadPartition returns retained records of p with offset > after,
	// in offset order, and whether more follow.
	ReadPartition(ctx context.Context, p int32, after int64, lim Limits) (recs []Record, more bool, err error)
	// ReadThread returns the records of a (bounded) thread id whose index
	// key is > after, in key order, and whether more follow.
	ReadThread(ctx context.Context, threadID string, after ThreadKey, lim Limits) (recs []ThreadRecord, more bool, err error)
	// Bounds returns the oldest and latest retained offsets of p.
	Bounds(p int32) (oldest, latest int64, ok bool)
	// Skipped returns the recorded skipped ranges of p overlapping [from, to).
	Skipped(p int32, from, to int64) ([]SkippedRange, error)
	// Partitions lists partitions that have records, offsets or skips.
	Partitions() []int32
	// IngestOffsets returns the next ingest offset of each partition.
	IngestOffsets() map[int32]int64
	// Epoch names the history cursors belong to (DECISIONS D2).
	Epoch() string
	// SetSource tells the store the Kafka topic id. A different id than
	// the stored one starts a new source: records, offsets and skipped
	// ranges are cleared and the generation goes back to 0.
	SetSource(ctx context.Context, topicID [16]byte) (changed bool, err error)
	// Reset removes records, thread index and run summaries, keeps the
	// next ingest offsets and adds 1 to the generation.
	Reset(ctx context.Context) (newEpoch string, err error)
	// Runs lists run summaries newest first; next is "" on the last page.
	Runs(ctx context.Context, q RunQuery) (runs []RunSummary, next string, err error)
	// Run returns one run summary.
	Run(ctx context.Context, threadID string) (RunSummary, bool, error)
	// Stats reports sizes, counts and retention.
	Stats() Stats
	// Capabilities says what this backend implements.
	Capabilities() Capabilities
	Close() error
}
