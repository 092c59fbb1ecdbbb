package bolt

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// protoLike returns size bytes that look like a small plain DashStream
// value: framing byte, field tags, ids, words and varints, so zstd gets
// the kind of redundancy real records have (neither zeros nor noise).
func protoLike(rng *rand.Rand, size int, thread string) []byte {
	words := []string{"node_start", "llm_call", "tool_result", "state", "messages", "content", "assistant", "user", "graph", "planner", "search", "retriever"}
	b := make([]byte, 0, size+32)
	b = append(b, wire.FrameRaw, 0x0a, byte(len(thread)))
	b = append(b, thread...)
	for len(b) < size {
		switch rng.IntN(4) {
		case 0:
			b = append(b, 0x12, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()))
		case 1:
			w := words[rng.IntN(len(words))]
			b = append(b, 0x1a, byte(len(w)))
			b = append(b, w...)
		default:
			b = append(b, 0x20, byte(rng.IntN(128)), 0x28, byte(rng.IntN(128)), byte(rng.IntN(128)))
		}
	}
	return b[:size]
}

// streamer appends realistic batches across partitions with a thread per
// run of records, remembering what it wrote.
type streamer struct {
	t       testing.TB
	s       *Store
	rng     *rand.Rand
	next    map[int32]int64
	parts   int32
	size    int
	clock   time.Time
	threads map[string]bool
}

func newStreamer(t testing.TB, s *Store, parts int32, size int) *streamer {
	return &streamer{t: t, s: s, rng: rand.New(rand.NewPCG(1, 2)), next: map[int32]int64{}, parts: parts, size: size,
		clock: time.Now().Add(-time.Hour).Truncate(time.Millisecond), threads: map[string]bool{}}
}

func (w *streamer) batch(n int) store.Batch {
	b := store.Batch{NextOffsets: map[int32]int64{}}
	for i := 0; i < n; i++ {
		p := int32(w.rng.IntN(int(w.parts)))
		off := w.next[p]
		w.next[p]++
		w.clock = w.clock.Add(time.Millisecond)
		id := fmt.Sprintf("thread-%d-%d", p, off/50)
		w.threads[id] = true
		b.Records = append(b.Records, store.Record{
			Partition: p, Offset: off, Time: w.clock,
			Payload: protoLike(w.rng, w.size/2+w.rng.IntN(w.size), id),
			Index: wire.Index{Type: pb.MessageType_MESSAGE_TYPE_EVENT, TimestampUs: w.clock.UnixMicro(),
				Threads: []wire.ThreadSeq{{ThreadID: id, Seq: uint64(off + 1)}}},
		})
		b.NextOffsets[p] = off + 1
	}
	return b
}

func (w *streamer) append(n int) error {
	return w.s.Append(context.Background(), w.batch(n))
}

// highWater is the file's data size: pages up to bbolt's high-water mark.
func highWater(t testing.TB, s *Store) int64 {
	var hw int64
	if err := s.db.View(func(tx *bbolt.Tx) error { hw = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return hw
}

func fileSize(t testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// checkThreadsConsistent verifies every thread entry points at a retained
// record, every retained record's threads have an entry, and Stats agree.
func checkThreadsConsistent(t *testing.T, s *Store, threads map[string]bool) {
	t.Helper()
	ctx := context.Background()
	perThread := map[string]int{}
	var total int64
	for _, p := range s.Partitions() {
		after := int64(-1)
		prev := int64(-1)
		for {
			recs, more, err := s.ReadPartition(ctx, p, after, store.Limits{MaxRecords: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if prev >= 0 && r.Offset != prev+1 {
					t.Fatalf("partition %d: hole between %d and %d", p, prev, r.Offset)
				}
				prev = r.Offset
				for _, th := range r.Index.Threads {
					perThread[th.ThreadID]++
				}
				after = r.Offset
				total++
			}
			if !more {
				break
			}
		}
	}
	if st := s.Stats(); st.Records != total || st.Threads != int64(len(perThread)) {
		t.Fatalf("Stats: %d records, %d threads; read %d records, %d threads", st.Records, st.Threads, total, len(perThread))
	}
	for id := range threads {
		trs, _, err := s.ReadThread(ctx, id, store.ThreadKey{}, store.Limits{MaxRecords: 1 << 20, MaxBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != perThread[id] {
			t.Fatalf("thread %s: %d entries, %d retained records", id, len(trs), perThread[id])
		}
		for _, tr := range trs {
			if o, _, ok := s.Bounds(tr.Partition); !ok || tr.Offset < o {
				t.Fatalf("thread %s: entry for evicted record %d/%d", id, tr.Partition, tr.Offset)
			}
		}
		_, ok, err := s.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (perThread[id] > 0) {
			t.Fatalf("thread %s: run summary present=%v with %d retained records", id, ok, perThread[id])
		}
	}
}

// TestRetentionLevelsOff streams far past the byte budget: the file levels
// off, the oldest offsets advance, and evicted records leave no thread
// entries or run summaries behind.
func TestRetentionLevelsOff(t *testing.T) {
	budget, cycles, perCycle := int64(2<<20), 40, 10
	if testing.Short() || raceEnabled {
		budget, cycles, perCycle = 1<<20, 20, 5
	}
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{Retention: store.Retention{MaxBytes: budget, MaxRecordsPerPartition: 1 << 30, MaxAge: 24 * time.Hour}, Fsync: false, ChunkKeys: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newStreamer(t, s, 3, 300)
	var hwHalf, fileHalf, hwMax int64
	var oldest0 int64 = -1
	for c := 0; c < cycles; c++ {
		// ~1 MiB of raw records per cycle (half under -race/-short).
		for i := 0; i < perCycle; i++ {
			if err := w.append(300); err != nil {
				t.Fatalf("cycle %d: %v", c, err)
			}
		}
		hw := highWater(t, s)
		hwMax = max(hwMax, hw)
		if c == cycles/2 {
			hwHalf, fileHalf = hw, fileSize(t, path)
			oldest0, _, _ = s.Bounds(0)
		}
		if fp := s.state().footprint(); fp > budget {
			t.Fatalf("cycle %d: footprint %d over the budget %d", c, fp, budget)
		}
	}
	hw, fsz := highWater(t, s), fileSize(t, path)
	st := s.Stats()
	bs := s.db.Stats()
	t.Logf("free pages %d, pending %d, live %d, footprint %d", bs.FreePageN, bs.PendingPageN, s.liveBytes(), s.state().footprint())
	t.Logf("budget %d: data high-water %d (%.2f× budget; %d at half-time), file %d (%d at half-time), %d records retained, stored %d bytes of %d raw",
		budget, hw, float64(hw)/float64(budget), hwHalf, fsz, fileHalf, st.Records, st.StoredBytes, st.RawBytes)
	// bbolt overhead beyond the budget: branch pages, meta, freelist, the
	// run summaries; the file adds up to allocSize of preallocation.
	const overhead = 512 << 10
	if hwMax > budget*13/10+overhead {
		t.Errorf("data size peaked at %d, over 1.3 × budget %d + %d", hwMax, budget, overhead)
	}
	if hw > hwHalf*11/10+64<<10 || fsz > fileHalf+allocSize {
		t.Errorf("file still grows: high-water %d → %d, file %d → %d", hwHalf, hw, fileHalf, fsz)
	}
	if fsz > budget*13/10+overhead+allocSize {
		t.Errorf("file %d over 1.3 × budget + overhead + bbolt preallocation", fsz)
	}
	if o, _, _ := s.Bounds(0); o <= oldest0 || oldest0 <= 0 {
		t.Errorf("oldest offset of partition 0 did not advance: %d at half-time, %d now", oldest0, o)
	}
	checkThreadsConsistent(t, s, w.threads)
}

// TestRetentionAgeAndCount: age (with a fake clock) and count limits evict
// the oldest records and their thread entries.
func TestRetentionAgeAndCount(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var now time.Time
	s, err := Open(path, Options{Retention: store.Retention{MaxAge: 10 * time.Second, MaxRecordsPerPartition: 500}, Fsync: false,
		ChunkKeys: 100, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newStreamer(t, s, 2, 200)
	for i := 0; i < 40; i++ {
		b := w.batch(100)
		now = w.clock
		if err := s.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Partitions() {
			st := s.Stats()
			for _, ps := range st.Partitions {
				if ps.Records > 500 {
					t.Fatalf("partition %d keeps %d records over the count limit", p, ps.Records)
				}
			}
		}
	}
	// Jump the clock: everything older than 10 s of the last record goes.
	now = w.clock.Add(10*time.Second - 50*time.Millisecond)
	if err := s.Append(context.Background(), store.Batch{NextOffsets: map[int32]int64{0: w.next[0]}}); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Records == 0 || st.Records > 60 {
		t.Errorf("after the age cut %d records remain, want about 50", st.Records)
	}
	if !st.OldestTime.IsZero() && st.OldestTime.Before(now.Add(-10*time.Second)) {
		t.Errorf("oldest record %v older than the age limit", st.OldestTime)
	}
	checkThreadsConsistent(t, s, w.threads)
}

// TestStoreFull: with only the file cap, Append evicts the oldest records
// to make room and never fails; a batch that cannot fit at all fails with
// ErrFull, writes nothing, and the file reopens consistent.
func TestStoreFull(t *testing.T) {
	const fileCap = 4 << 20
	path := filepath.Join(t.TempDir(), FileName)
	opts := Options{Retention: store.Retention{MaxFileBytes: fileCap}, Fsync: false, ChunkKeys: 1000}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	w := newStreamer(t, s, 3, 800)
	w.rng = rand.New(rand.NewPCG(3, 4))
	written := 0
	rounds := 3
	if raceEnabled {
		rounds = 2
	}
	for i := 0; written < rounds*fileCap; i++ {
		b := w.batch(100)
		for _, r := range b.Records {
			written += len(r.Payload)
		}
		if err := s.Append(context.Background(), b); err != nil {
			t.Fatalf("batch %d (%d bytes written): %v", i, written, err)
		}
		if fsz := fileSize(t, path); fsz > fileCap {
			t.Fatalf("file %d over the cap %d", fsz, fileCap)
		}
	}
	if o, _, ok := s.Bounds(0); !ok || o == 0 {
		t.Fatalf("nothing was evicted: Bounds(0) oldest %d, %v", o, ok)
	}
	if s.Stats().Full {
		t.Fatal("Stats.Full after successful appends")
	}
	before := s.Stats()

	// One batch larger than the whole cap.
	big := w.batch(0)
	off := w.next[0]
	for i := 0; i < 6000; i++ {
		big.Records = append(big.Records, store.Record{Partition: 0, Offset: off, Time: w.clock,
			Payload: protoLike(w.rng, 1000, "huge"), Index: wire.Index{Threads: []wire.ThreadSeq{{ThreadID: "huge", Seq: uint64(i + 1)}}}})
		off++
	}
	big.NextOffsets = map[int32]int64{0: off}
	err = s.Append(context.Background(), big)
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("oversized batch: %v, want ErrFull", err)
	}
	t.Logf("oversized batch: %v", err)
	after := s.Stats()
	if !after.Full || after.Records != before.Records || s.IngestOffsets()[0] != w.next[0] {
		t.Fatalf("ErrFull batch changed the store: full=%v records %d → %d, next %d", after.Full, before.Records, after.Records, s.IngestOffsets()[0])
	}
	// Ingest pauses and retries with normal batches: they go through.
	if err := w.append(50); err != nil {
		t.Fatalf("append after ErrFull: %v", err)
	}
	if s.Stats().Full {
		t.Fatal("Stats.Full stays after a successful append")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	checkThreadsConsistent(t, s, w.threads)
	if fsz := fileSize(t, path); fsz > fileCap {
		t.Fatalf("file %d over the cap %d", fsz, fileCap)
	}
}

// TestRetentionFailsAfterCommit: when retention fails after a batch
// committed (here its eviction transaction reports the file cap, which
// evictChunk turns into ErrFull), Append still succeeds, since ingest
// would otherwise retry a stored batch and fail with ErrOffsetOrder; the
// next Append applies retention again.
func TestRetentionFailsAfterCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	fail := false
	opts := Options{Retention: store.Retention{MaxRecordsPerPartition: 100}, ChunkKeys: 50}
	opts.testHook = func(stage string) error {
		if fail && stage == "evict" {
			return berrors.ErrMaxSizeReached
		}
		return nil
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newStreamer(t, s, 1, 200)
	if err := w.append(100); err != nil {
		t.Fatal(err)
	}
	fail = true
	b := w.batch(60)
	if err := s.Append(context.Background(), b); err != nil {
		t.Fatalf("Append of a committed batch whose retention failed: %v", err)
	}
	if st := s.Stats(); st.Records != 160 || st.Full {
		t.Fatalf("after failed retention: %d records (want 160, over the limit), full %v", st.Records, st.Full)
	}
	if err := s.Append(context.Background(), b); !errors.Is(err, store.ErrOffsetOrder) {
		t.Fatalf("the batch again: %v, want ErrOffsetOrder (it is stored)", err)
	}
	fail = false
	if err := w.append(10); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 100 {
		t.Fatalf("retention on the next Append left %d records, want 100", st.Records)
	}
	if o, l, _ := s.Bounds(0); o != 70 || l != 169 {
		t.Fatalf("Bounds(0) = %d, %d; want 70, 169", o, l)
	}
	checkThreadsConsistent(t, s, w.threads)
}

// TestEvictChunkKeys: a large eviction runs in transactions of at most
// ChunkKeys keys (records' thread entries and the block keys), so none
// grows large. Each record here has one thread entry and every eviction
// transaction touches at least one block, so one deletes at most
// ChunkKeys-1 records. (A bytes plan deletes whole blocks and may pass
// the budget by one block's keys; age and count plans are exact.)
func TestEvictChunkKeys(t *testing.T) {
	const chunk = 40
	path := filepath.Join(t.TempDir(), FileName)
	now := time.Now()
	var s *Store
	var before []int64 // Records at each eviction transaction, before it commits
	opts := Options{Retention: store.Retention{MaxAge: 2 * time.Hour}, ChunkKeys: chunk, Now: func() time.Time { return now }}
	opts.testHook = func(stage string) error {
		if stage == "evict" {
			before = append(before, s.Stats().Records)
		}
		return nil
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newStreamer(t, s, 2, 200)
	for i := 0; i < 10; i++ {
		if err := w.append(100); err != nil {
			t.Fatal(err)
		}
	}
	if len(before) != 0 {
		t.Fatalf("%d evictions before the clock moved", len(before))
	}
	now = now.Add(3 * time.Hour) // every record is now too old
	if err := s.Append(context.Background(), store.Batch{NextOffsets: w.next}); err != nil {
		t.Fatal(err)
	}
	counts := append(before, s.Stats().Records)
	if counts[0] != 1000 || counts[len(counts)-1] != 0 {
		t.Fatalf("records per eviction transaction: %v, want 1000 down to 0", counts)
	}
	for i := 1; i < len(counts); i++ {
		if n := counts[i-1] - counts[i]; n <= 0 || n > chunk-1 {
			t.Fatalf("eviction transaction %d deleted %d records (%d keys at least), budget %d keys", i, n, n+1, chunk)
		}
	}
	t.Logf("%d eviction transactions for 1000 records", len(counts)-1)
	checkThreadsConsistent(t, s, w.threads)
}
