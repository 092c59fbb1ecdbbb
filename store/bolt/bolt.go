// Package bolt is the default replay buffer: one bbolt file holding the
// retained Kafka records of every partition (compressed with zstd), the
// thread index, the run summaries and the store's meta (layout version,
// epoch, next ingest offsets, skipped ranges, retention in force,
// compression dictionaries). It owns that file's layout, compression,
// retention (count, age, bytes and the hard file cap) and the Reset and
// new-source rules of DECISIONS D2–D3. The contract it implements is
// store.Store.
package bolt

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dashstream/dashstream/store"
)

// FileName is the store file's name inside the data directory.
const FileName = "dashstream.db"

// Defaults of Options and page reads.
const (
	DefaultLockTimeout = time.Second
	DefaultChunkKeys   = 10000
	DefaultPageRecords = 256
	DefaultPageBytes   = 1 << 20
	// minFileCap is the smallest accepted MaxFileBytes.
	minFileCap = 256 << 10
	// maxInitialMmap bounds InitialMmapSize (address space, not memory).
	maxInitialMmap = 4 << 30
	// defaultInitialMmap is used without a file cap.
	defaultInitialMmap = 256 << 20
	// defaultPageSize is the bbolt page size of new files. A block of
	// records fills one page, so the page size sets the block size: 8 KiB
	// blocks store 0.40 of the corpus's plain bytes, 4 KiB ones 0.41
	// (larger blocks compress better; pages much larger make every
	// index update rewrite more). Existing files keep their page size.
	defaultPageSize = 8192
)

// Options configure Open.
type Options struct {
	// Retention in force; zero fields mean no limit. MaxFileBytes is the
	// hard file cap (bbolt MaxSize). Ignored when ReadOnly.
	Retention store.Retention
	// Fsync: every Append is durable on return. false (DASHSTREAM_FSYNC=
	// false) skips fsync: a power loss may lose the last batches and, on
	// some file systems, corrupt the file. Ingest re-fetches lost batches
	// from Kafka, since the next ingest offsets live in the same file.
	Fsync bool
	// ReadOnly opens with a shared lock and never writes (inspect).
	ReadOnly bool
	// Logger gets store events; nil discards them.
	Logger *slog.Logger
	// LockTimeout bounds waiting for the file lock (default 1s).
	LockTimeout time.Duration
	// ChunkKeys bounds the keys one retention or reset transaction
	// deletes (default 10 000).
	ChunkKeys int
	// Level is the zstd level for blocks (default SpeedFastest: with the
	// dictionary it stores as little as SpeedDefault on the D9 corpus, and
	// its per-block dictionary reset copies 256 KiB of tables instead of
	// 1.3 MiB; see TestStoreReport).
	Level zstd.EncoderLevel
	// NoDictionary disables training a compression dictionary.
	NoDictionary bool
	// Now is the clock for age retention (default time.Now).
	Now func() time.Time

	// pageSize overrides defaultPageSize for a new file (experiments).
	pageSize int
	// drainWhole deletes the trash in one transaction (measurement of
	// the chunked drain against dropping the buckets).
	drainWhole bool

	// testHook, when set, is called inside each write transaction before
	// it commits, with the kind of transaction ("append", "evict",
	// "reset", "drain"); an error aborts the transaction.
	testHook func(stage string) error
}

// DefaultRetention returns the retention defaults of DECISIONS D1 for
// "serve" (and "") or "demo".
func DefaultRetention(mode string) (store.Retention, error) {
	switch mode {
	case "", "serve":
		return store.Retention{MaxAge: 168 * time.Hour, MaxBytes: 1 << 30, MaxFileBytes: 2 << 30}, nil
	case "demo":
		return store.Retention{MaxAge: 24 * time.Hour, MaxBytes: 256 << 20, MaxFileBytes: 512 << 20}, nil
	}
	return store.Retention{}, fmt.Errorf("unknown retention mode %q (want serve or demo)", mode)
}

// ValidateRetention checks r the way startup must (DECISIONS D1).
func ValidateRetention(r store.Retention) error {
	switch {
	case r.MaxRecordsPerPartition < 0:
		return fmt.Errorf("retention records %d is negative", r.MaxRecordsPerPartition)
	case r.MaxAge < 0:
		return fmt.Errorf("retention age %s is negative", r.MaxAge)
	case r.MaxBytes < 0:
		return fmt.Errorf("retention bytes %d is negative", r.MaxBytes)
	case r.MaxFileBytes < 0:
		return fmt.Errorf("max db bytes %d is negative", r.MaxFileBytes)
	case r.MaxFileBytes > 0 && r.MaxFileBytes < minFileCap:
		return fmt.Errorf("max db bytes %d is below the minimum %d", r.MaxFileBytes, minFileCap)
	case r.MaxFileBytes > 0 && r.MaxBytes > r.MaxFileBytes/10*8:
		return fmt.Errorf("retention bytes %d is above 0.8 × max db bytes %d (%d): lower DASHSTREAM_RETENTION_BYTES or raise DASHSTREAM_MAX_DB_BYTES",
			r.MaxBytes, r.MaxFileBytes, r.MaxFileBytes/10*8)
	}
	return nil
}

// partState mirrors one partition in memory, so Bounds, Stats and the
// offset checks need no transaction.
type partState struct {
	oldest, latest int64 // -1 when empty
	oldestTime     time.Time
	next           int64 // -1 when unknown
	skips          int   // recorded skipped ranges
	c              pstat
}

// state is the in-memory mirror of meta, replaced under Store.mu after
// each commit.
type state struct {
	topic      [16]byte
	gen        uint64
	threads    int64
	parts      map[int32]*partState
	retention  store.Retention // in force (stored one when read-only)
	trash      bool            // trash holds buckets still to drain
	fullLatest bool
}

func (st *state) part(p int32) *partState {
	ps := st.parts[p]
	if ps == nil {
		ps = &partState{oldest: -1, latest: -1, next: -1}
		st.parts[p] = ps
	}
	return ps
}

func (st *state) clone() *state {
	c := *st
	c.parts = make(map[int32]*partState, len(st.parts))
	for p, ps := range st.parts {
		cp := *ps
		c.parts[p] = &cp
	}
	return &c
}

func (st *state) epoch() string {
	return hex.EncodeToString(st.topic[:8]) + "-" + strconv.FormatUint(st.gen, 10)
}

// Store is the bbolt replay buffer. Create it with Open.
type Store struct {
	path   string
	db     *bbolt.DB
	opts   Options
	log    *slog.Logger
	z      *compressor
	now    func() time.Time
	chunk  int
	closed atomic.Bool
	// broken is set when a write transaction panicked (a damaged file);
	// every later write fails with it.
	broken atomic.Pointer[error]

	wmu sync.Mutex // serialises writers (Append, Reset, SetSource, retention)

	mu sync.RWMutex
	st *state

	ratio  map[int32]float64 // recent compression ratio per partition (under wmu)
	blk    blockLimits
	recode bool // blocks from before the dictionary await re-encoding (under wmu)
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path.
func Open(path string, opts Options) (s *Store, err error) {
	if !opts.ReadOnly {
		if err := ValidateRetention(opts.Retention); err != nil {
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.ChunkKeys <= 0 {
		opts.ChunkKeys = DefaultChunkKeys
	}
	if opts.Level == 0 {
		opts.Level = zstd.SpeedFastest
	}
	if opts.pageSize == 0 {
		opts.pageSize = defaultPageSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("store %s does not exist", path)
			}
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	bopts := boltOptions(opts)
	if err := checkFile(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, bopts)
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("store %s is locked by another process (is a server running?)", path)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
			errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("store %s is corrupted or not a bbolt file: %w", path, err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.AllocSize = allocSize
	s = &Store{path: path, db: db, opts: opts, log: log, now: now, chunk: opts.ChunkKeys, ratio: map[int32]float64{},
		blk: limitsFor(db.Info().PageSize)}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if err := s.load(); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		return s, nil
	}
	if s.st.trash {
		if err := s.drainTrash(nil); err != nil {
			s.z.close()
			return nil, err
		}
	}
	if err := s.applyRetention(); err != nil && !errors.Is(err, store.ErrFull) {
		s.z.close()
		return nil, err
	}
	return s, nil
}

// boltOptions are the bbolt options of a store opened with opts (defaults
// filled in).
func boltOptions(opts Options) *bbolt.Options {
	mmap := defaultInitialMmap
	if c := opts.Retention.MaxFileBytes; c > 0 {
		mmap = int(min(c, maxInitialMmap))
	}
	bopts := &bbolt.Options{
		Timeout:         opts.LockTimeout,
		FreelistType:    bbolt.FreelistMapType,
		ReadOnly:        opts.ReadOnly,
		InitialMmapSize: mmap,
		MaxSize:         int(opts.Retention.MaxFileBytes),
		NoSync:          !opts.Fsync,
		PageSize:        opts.pageSize,
	}
	if opts.ReadOnly {
		bopts.InitialMmapSize = 0
		bopts.MaxSize = 0
	}
	return bopts
}

// OpenRaw opens a plain bbolt file with the bbolt options a durable store
// without a file cap uses (page size, freelist, mmap, AllocSize), so a
// benchmark's raw bbolt baseline differs from the store only in what the
// store does on top.
func OpenRaw(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, boltOptions(Options{Fsync: true, LockTimeout: DefaultLockTimeout, pageSize: defaultPageSize}))
	if err != nil {
		return nil, err
	}
	db.AllocSize = allocSize
	return db, nil
}

// HasDictionary reports whether the store compresses with a trained
// dictionary (benchmarks warm up until it does).
func (s *Store) HasDictionary() bool {
	return len(s.z.cur.Load().dicts) > 0
}

// openBolt is bbolt.Open, with a panic or memory fault (a damage
// checkFile did not see) turned into an error. The file handle and lock
// of such a failed open leak; the caller is about to exit.
func openBolt(path string, bopts *bbolt.Options) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("store %s is corrupted: bbolt: %v", path, r)
		}
	}()
	return bbolt.Open(path, 0o600, bopts)
}

// load initialises a new file or reads an existing one into memory; a
// bbolt panic on a damaged file becomes an error (view, update).
func (s *Store) load() (err error) {
	defer func() {
		if errors.Is(err, errCorrupt) {
			err = fmt.Errorf("store %s: %w", s.path, err)
		}
	}()
	if !s.opts.ReadOnly {
		if err := s.update(s.initTx); err != nil {
			return err
		}
	}
	st := &state{parts: map[int32]*partState{}}
	dicts := map[uint32][]byte{}
	var maxDict uint32
	err = s.view(func(tx *bbolt.Tx) error {
		if err := s.checkLayout(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bMeta)
		if t := meta.Get(kTopic); len(t) == 16 {
			copy(st.topic[:], t)
		} else {
			return fmt.Errorf("store %s is corrupted: bad topic id in meta", s.path)
		}
		st.gen, _ = getBE64(meta.Get(kGen))
		n, _ := getBE64(meta.Get(kThreads))
		st.threads = int64(n)
		if v := meta.Get(kRetention); v != nil {
			if err := json.Unmarshal(v, &st.retention); err != nil {
				return fmt.Errorf("store %s is corrupted: retention: %w", s.path, err)
			}
		}
		if err := tx.Bucket(bDicts).ForEach(func(k, v []byte) error {
			if len(k) != 4 {
				return fmt.Errorf("store %s is corrupted: bad dictionary key %x", s.path, k)
			}
			id := beU32(k)
			dicts[id] = slices.Clone(v)
			maxDict = max(maxDict, id)
			return nil
		}); err != nil {
			return err
		}
		c := meta.Cursor()
		for k, v := c.Seek(kNextPfx); k != nil && bytes.HasPrefix(k, kNextPfx); k, v = c.Next() {
			n, ok := getBE64(v)
			if len(k) != len(kNextPfx)+4 || !ok {
				return fmt.Errorf("store %s is corrupted: bad next offset entry", s.path)
			}
			st.part(int32(beU32(k[len(kNextPfx):]))).next = int64(n)
		}
		for k, v := c.Seek(kStatPfx); k != nil && bytes.HasPrefix(k, kStatPfx); k, v = c.Next() {
			pc, ok := decodePStat(v)
			if len(k) != len(kStatPfx)+4 || !ok {
				return fmt.Errorf("store %s is corrupted: bad partition stats", s.path)
			}
			st.part(int32(beU32(k[len(kStatPfx):]))).c = pc
		}
		if err := tx.Bucket(bSkipped).ForEach(func(k, v []byte) error {
			r, ok := parseSkip(k, v)
			if !ok {
				return fmt.Errorf("store %s is corrupted: bad skipped range", s.path)
			}
			st.part(r.Partition).skips++
			return nil
		}); err != nil {
			return err
		}
		parts := tx.Bucket(bParts)
		if err := parts.ForEachBucket(func(k []byte) error {
			if len(k) != 4 {
				return fmt.Errorf("store %s is corrupted: bad partition bucket %x", s.path, k)
			}
			ps := st.part(int32(beU32(k)))
			return s.loadBounds(parts.Bucket(k), ps)
		}); err != nil {
			return fmt.Errorf("store %s: %w", s.path, err)
		}
		if tb := tx.Bucket(bTrash); tb != nil {
			k, _ := tb.Cursor().First()
			st.trash = k != nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !s.opts.ReadOnly {
		st.retention = s.opts.Retention
	}
	z, err := newCompressor(s.opts.Level, dicts, maxDict, !s.opts.NoDictionary && !s.opts.ReadOnly)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	s.z = z
	s.st = st
	return nil
}

func beU32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// loadBounds reads the first and last offsets of a partition bucket and the
// time of its first record from the block headers.
func (s *Store) loadBounds(b *bbolt.Bucket, ps *partState) error {
	c := b.Cursor()
	k, v := c.First()
	if k == nil {
		ps.oldest, ps.latest, ps.oldestTime = -1, -1, time.Time{}
		return nil
	}
	h, err := parseBlockHeader(v)
	if err != nil || len(k) != 8 {
		return fmt.Errorf("block %x: %w", k, err)
	}
	ps.oldest = int64(beU64(k))
	ps.oldestTime = h.headTime
	lk, lv := c.Last()
	if h, err = parseBlockHeader(lv); err != nil || len(lk) != 8 {
		return fmt.Errorf("block %x: %w", lk, err)
	}
	ps.latest = blockLast(lk, h)
	return nil
}

func beU64(b []byte) uint64 {
	v, _ := getBE64(b)
	return v
}

// initTx creates the layout in a new file and records the retention in
// force. A file with buckets but no meta is refused as foreign.
func (s *Store) initTx(tx *bbolt.Tx) error {
	if tx.Bucket(bMeta) == nil {
		var names []string
		_ = tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			names = append(names, strconv.Quote(string(name)))
			return nil
		})
		if len(names) > 0 {
			sort.Strings(names)
			return fmt.Errorf("store %s is not a DashStream store (no meta bucket; it holds %v)", s.path, names)
		}
		meta, err := tx.CreateBucket(bMeta)
		if err != nil {
			return err
		}
		var topic [16]byte
		if _, err := rand.Read(topic[:]); err != nil {
			return err
		}
		for _, kv := range [][2][]byte{
			{kLayout, be32(LayoutVersion)},
			{kTopic, topic[:]},
			{kGen, be64(0)},
			{kCreated, be64(uint64(s.now().UnixNano()))},
			{kThreads, be64(0)},
		} {
			if err := meta.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		s.log.Info("store created", "path", s.path, "layout", LayoutVersion)
	}
	if err := s.checkLayout(tx); err != nil {
		return err
	}
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	ret, err := json.Marshal(s.opts.Retention)
	if err != nil {
		return err
	}
	meta := tx.Bucket(bMeta)
	if string(meta.Get(kRetention)) != string(ret) {
		return meta.Put(kRetention, ret)
	}
	return nil
}

// checkLayout refuses files of another layout version.
func (s *Store) checkLayout(tx *bbolt.Tx) error {
	meta := tx.Bucket(bMeta)
	if meta == nil {
		return fmt.Errorf("store %s is not a DashStream store (no meta bucket)", s.path)
	}
	v := meta.Get(kLayout)
	if len(v) != 4 {
		return fmt.Errorf("store %s is not a DashStream store or is corrupted (no layout version)", s.path)
	}
	switch ver := beU32(v); {
	case ver == LayoutVersion:
		return nil
	case ver > LayoutVersion:
		return fmt.Errorf("store %s has layout version %d, newer than this build supports (%d): upgrade dashstream, or move the file away to start an empty buffer", s.path, ver, LayoutVersion)
	default:
		return fmt.Errorf("store %s has layout version %d, which this build (layout %d) cannot migrate: no migration exists from that version; move the file away and the buffer refills from Kafka", s.path, ver, LayoutVersion)
	}
}

// Path returns the store file's path.
func (s *Store) Path() string { return s.path }

// Close waits for the writer and closes the file.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.db.Close()
	s.z.close()
	if err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) errClosed() error {
	return fmt.Errorf("store %s: %w", s.path, store.ErrClosed)
}

func (s *Store) state() *state {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st
}

// setState publishes a new mirror after a commit.
func (s *Store) setState(st *state) {
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
}

// Epoch names the history cursors belong to (DECISIONS D2).
func (s *Store) Epoch() string { return s.state().epoch() }

// Bounds returns the oldest and latest retained offsets of p.
func (s *Store) Bounds(p int32) (oldest, latest int64, ok bool) {
	ps := s.state().parts[p]
	if ps == nil || ps.oldest < 0 {
		return -1, -1, false
	}
	return ps.oldest, ps.latest, true
}

// Partitions lists partitions that have records, offsets or skips.
func (s *Store) Partitions() []int32 {
	st := s.state()
	var out []int32
	for p, ps := range st.parts {
		if ps.oldest >= 0 || ps.next >= 0 || ps.skips > 0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// IngestOffsets returns the next ingest offset of each partition.
func (s *Store) IngestOffsets() map[int32]int64 {
	st := s.state()
	out := make(map[int32]int64)
	for p, ps := range st.parts {
		if ps.next >= 0 {
			out[p] = ps.next
		}
	}
	return out
}

// Capabilities: bolt implements the whole contract.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{RetainByCount: true, RetainByAge: true, RetainByBytes: true, FileCap: true, Durable: true}
}

// Stats reports sizes, counts and retention.
func (s *Store) Stats() store.Stats {
	st := s.state()
	out := store.Stats{
		Kind:       "bolt",
		Epoch:      st.epoch(),
		Generation: st.gen,
		Threads:    st.threads,
		Full:       st.fullLatest,
		Retention:  st.retention,
	}
	if fi, err := os.Stat(s.path); err == nil {
		out.FileBytes = fi.Size()
	}
	ps := make([]int32, 0, len(st.parts))
	for p := range st.parts {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		x := st.parts[p]
		if x.oldest < 0 && x.next < 0 && x.skips == 0 {
			continue
		}
		out.Partitions = append(out.Partitions, store.PartitionStats{
			Partition: p, Oldest: x.oldest, Latest: x.latest, Records: x.c.records,
			RawBytes: x.c.raw, StoredBytes: x.c.stored, NextOffset: x.next,
		})
		out.Records += x.c.records
		out.RawBytes += x.c.raw
		out.StoredBytes += x.c.stored
		if x.oldest >= 0 && !x.oldestTime.IsZero() && (out.OldestTime.IsZero() || x.oldestTime.Before(out.OldestTime)) {
			out.OldestTime = x.oldestTime
		}
	}
	return out
}

// footprint is the total byte-retention measure of st.
func (st *state) footprint() int64 {
	var n int64
	for _, ps := range st.parts {
		n += ps.c.footprint
	}
	return n
}
