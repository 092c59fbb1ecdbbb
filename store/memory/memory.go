// Package memory owns the in-memory store.Store: a ring bounded by record
// count and payload bytes, with per-partition and per-thread indexes, run
// summaries (store.ApplyRecord), skipped ranges, the epoch (a random topic
// id until SetSource, plus the reset generation) and the retention rules of
// store.Retention. Nothing survives Close; it is for tests, demos and
// deployments that accept losing the buffer on restart.
package memory

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// Defaults of Config and of read Limits.
const (
	DefaultMaxRecords  = 100_000
	DefaultMaxBytes    = 256 << 20
	DefaultPageRecords = 1000
	DefaultPageBytes   = 4 << 20
	// maxSkipsPerPartition bounds the recorded skipped ranges of one
	// partition; the oldest go first.
	maxSkipsPerPartition = 100_000
)

// Config sizes the ring. Zero fields take the defaults.
type Config struct {
	MaxRecords int   // records across all partitions (DefaultMaxRecords)
	MaxBytes   int64 // payload bytes across all partitions (DefaultMaxBytes)
	// Retention applies on top of the ring bounds; Retention.MaxBytes,
	// when smaller than MaxBytes, is the byte budget. MaxFileBytes is
	// ignored.
	Retention store.Retention
	// Now returns the time age retention measures against (time.Now).
	Now func() time.Time
}

// Store is the in-memory store.Store. It is safe for concurrent use.
type Store struct {
	maxRecords int
	maxBytes   int64
	retention  store.Retention
	now        func() time.Time

	mu         sync.RWMutex
	closed     bool
	topicID    [16]byte
	generation uint64
	parts      map[int32]*partition
	threads    map[string][]store.ThreadKey // sorted
	runs       map[string]store.RunSummary
	records    int
	bytes      int64
	appendSeq  uint64 // global append order, drives ring eviction
}

// partition holds one partition's retained records in offset order.
type partition struct {
	recs    []entry // live records are recs[head:]
	head    int
	bytes   int64
	next    int64 // next ingest offset; valid when hasNext
	hasNext bool
	skips   []store.SkippedRange // sorted by From, non-overlapping per reason
}

type entry struct {
	rec store.Record
	seq uint64 // append order
}

func (p *partition) live() []entry { return p.recs[p.head:] }

var _ store.Store = (*Store)(nil)

// New returns an empty store with a random topic id and generation 0.
func New(cfg Config) *Store {
	s := &Store{
		maxRecords: cfg.MaxRecords,
		maxBytes:   cfg.MaxBytes,
		retention:  cfg.Retention,
		now:        cfg.Now,
	}
	if s.maxRecords <= 0 {
		s.maxRecords = DefaultMaxRecords
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxBytes
	}
	if r := cfg.Retention.MaxBytes; r > 0 && r < s.maxBytes {
		s.maxBytes = r
	}
	s.retention.MaxBytes = s.maxBytes
	s.retention.MaxFileBytes = 0
	if s.now == nil {
		s.now = time.Now
	}
	_, _ = rand.Read(s.topicID[:]) // never fails (crypto/rand)
	s.clear(true)
	return s
}

// clear drops records, thread index and runs, and with source also the
// next offsets and skipped ranges.
func (s *Store) clear(source bool) {
	old := s.parts
	s.parts = make(map[int32]*partition)
	s.threads = make(map[string][]store.ThreadKey)
	s.runs = make(map[string]store.RunSummary)
	s.records, s.bytes = 0, 0
	if source {
		return
	}
	for id, p := range old {
		if p.hasNext || len(p.skips) > 0 {
			s.parts[id] = &partition{next: p.next, hasNext: p.hasNext, skips: p.skips}
		}
	}
}

func (s *Store) epoch() string {
	return hex.EncodeToString(s.topicID[:8]) + "-" + strconv.FormatUint(s.generation, 10)
}

func (s *Store) check(ctx context.Context, op string) error {
	if s.closed {
		return fmt.Errorf("memory: %s: %w", op, store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %s: %w", op, err)
	}
	return nil
}

// Append implements store.Store. The batch is validated completely before
// anything is written; retention runs afterwards and may evict records of
// the batch itself when the ring is too small for it.
func (s *Store) Append(ctx context.Context, b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, "append"); err != nil {
		return err
	}
	if err := s.validate(b); err != nil {
		return fmt.Errorf("memory: append: %w", err)
	}
	touched := make(map[int32]bool)
	for _, r := range b.Records {
		p := s.part(r.Partition)
		rec := copyRecord(r)
		s.appendSeq++
		p.recs = append(p.recs, entry{rec: rec, seq: s.appendSeq})
		n := int64(len(rec.Payload))
		p.bytes += n
		s.bytes += n
		s.records++
		touched[r.Partition] = true
		if !p.hasNext || p.next <= r.Offset {
			p.next, p.hasNext = r.Offset+1, true
		}
		for _, th := range rec.Index.Threads {
			if th.ThreadID == "" {
				continue
			}
			s.threads[th.ThreadID] = insertKey(s.threads[th.ThreadID],
				store.ThreadKey{Seq: th.Seq, Partition: r.Partition, Offset: r.Offset})
			sum := s.runs[th.ThreadID]
			store.ApplyRecord(&sum, rec, th)
			s.runs[th.ThreadID] = sum
		}
	}
	for _, sk := range b.Skipped {
		p := s.part(sk.Partition)
		p.skips = addSkip(p.skips, sk)
	}
	for id, next := range b.NextOffsets {
		p := s.part(id)
		if !p.hasNext || next > p.next {
			p.next, p.hasNext = next, true
		}
	}
	s.applyRetention(touched)
	return nil
}

// validate applies the offset rules of DECISIONS D3 to b.
func (s *Store) validate(b store.Batch) error {
	last := make(map[int32]int64)
	for _, r := range b.Records {
		if r.Offset < 0 {
			return fmt.Errorf("partition %d offset %d negative: %w", r.Partition, r.Offset, store.ErrOffsetOrder)
		}
		if prev, ok := last[r.Partition]; ok {
			if r.Offset <= prev {
				return fmt.Errorf("partition %d offset %d after %d in the batch: %w",
					r.Partition, r.Offset, prev, store.ErrOffsetOrder)
			}
		} else if p := s.parts[r.Partition]; p != nil {
			if p.hasNext && r.Offset < p.next {
				return fmt.Errorf("partition %d offset %d below next offset %d: %w",
					r.Partition, r.Offset, p.next, store.ErrOffsetOrder)
			}
			if l := p.live(); len(l) > 0 && r.Offset <= l[len(l)-1].rec.Offset {
				return fmt.Errorf("partition %d offset %d not after stored %d: %w",
					r.Partition, r.Offset, l[len(l)-1].rec.Offset, store.ErrOffsetOrder)
			}
		}
		last[r.Partition] = r.Offset
	}
	for _, sk := range b.Skipped {
		if sk.From < 0 || sk.To <= sk.From {
			return fmt.Errorf("partition %d skipped range [%d, %d) empty or invalid: %w",
				sk.Partition, sk.From, sk.To, store.ErrOffsetOrder)
		}
		if sk.Reason == "" {
			return fmt.Errorf("partition %d skipped range [%d, %d) without a reason", sk.Partition, sk.From, sk.To)
		}
	}
	for id, next := range b.NextOffsets {
		if next < 0 {
			return fmt.Errorf("partition %d next offset %d negative: %w", id, next, store.ErrOffsetOrder)
		}
		if l, ok := last[id]; ok && next <= l {
			return fmt.Errorf("partition %d next offset %d not after record %d: %w",
				id, next, l, store.ErrOffsetOrder)
		}
		if p := s.parts[id]; p != nil && p.hasNext && next < p.next {
			return fmt.Errorf("partition %d next offset %d below stored %d: %w",
				id, next, p.next, store.ErrOffsetOrder)
		}
	}
	return nil
}

func (s *Store) part(id int32) *partition {
	p := s.parts[id]
	if p == nil {
		p = &partition{}
		s.parts[id] = p
	}
	return p
}

// applyRetention evicts from the partition heads: count per partition,
// age, then the ring bounds (total records, total bytes) oldest append
// first.
func (s *Store) applyRetention(touched map[int32]bool) {
	if n := s.retention.MaxRecordsPerPartition; n > 0 {
		for id := range touched {
			p := s.parts[id]
			for int64(len(p.live())) > n {
				s.evictHead(p)
			}
		}
	}
	if age := s.retention.MaxAge; age > 0 {
		cutoff := s.now().Add(-age)
		for _, p := range s.parts {
			for l := p.live(); len(l) > 0; l = p.live() {
				t := l[0].rec.Time
				if t.IsZero() || !t.Before(cutoff) {
					break
				}
				s.evictHead(p)
			}
		}
	}
	for s.records > s.maxRecords || s.bytes > s.maxBytes {
		var oldest *partition
		for _, p := range s.parts {
			if l := p.live(); len(l) > 0 && (oldest == nil || l[0].seq < oldest.live()[0].seq) {
				oldest = p
			}
		}
		if oldest == nil {
			break
		}
		s.evictHead(oldest)
	}
}

// evictHead removes p's oldest record with its thread entries; a thread
// left without records loses its run summary too, so memory stays bounded.
func (s *Store) evictHead(p *partition) {
	e := p.recs[p.head]
	p.recs[p.head] = entry{}
	p.head++
	if p.head == len(p.recs) {
		p.recs, p.head = p.recs[:0], 0
	} else if p.head >= 1024 && p.head*2 >= len(p.recs) {
		n := copy(p.recs, p.recs[p.head:])
		clear(p.recs[n:])
		p.recs, p.head = p.recs[:n], 0
	}
	n := int64(len(e.rec.Payload))
	p.bytes -= n
	s.bytes -= n
	s.records--
	for _, th := range e.rec.Index.Threads {
		keys := removeKey(s.threads[th.ThreadID],
			store.ThreadKey{Seq: th.Seq, Partition: e.rec.Partition, Offset: e.rec.Offset})
		if len(keys) == 0 {
			delete(s.threads, th.ThreadID)
			delete(s.runs, th.ThreadID)
		} else {
			s.threads[th.ThreadID] = keys
		}
	}
}

func compareKeys(a, b store.ThreadKey) int {
	if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
		return c
	}
	return cmp.Compare(a.Offset, b.Offset)
}

func insertKey(keys []store.ThreadKey, k store.ThreadKey) []store.ThreadKey {
	if n := len(keys); n == 0 || compareKeys(keys[n-1], k) < 0 {
		return append(keys, k)
	}
	i, found := slices.BinarySearchFunc(keys, k, compareKeys)
	if found {
		return keys
	}
	return slices.Insert(keys, i, k)
}

func removeKey(keys []store.ThreadKey, k store.ThreadKey) []store.ThreadKey {
	i, found := slices.BinarySearchFunc(keys, k, compareKeys)
	switch {
	case !found:
		return keys
	case i == 0:
		return keys[1:] // the common case: the thread's oldest entry
	default:
		return slices.Delete(keys, i, i+1)
	}
}

// addSkip inserts sk into skips (sorted by From), merging it with
// overlapping or adjacent ranges of the same reason.
func addSkip(skips []store.SkippedRange, sk store.SkippedRange) []store.SkippedRange {
	i := sort.Search(len(skips), func(i int) bool { return skips[i].From > sk.From })
	skips = slices.Insert(skips, i, sk)
	// Merge with the previous range, then absorb following ones.
	if i > 0 && skips[i-1].Reason == sk.Reason && skips[i-1].To >= sk.From {
		skips[i-1].To = max(skips[i-1].To, sk.To)
		skips = slices.Delete(skips, i, i+1)
		i--
	}
	for i+1 < len(skips) && skips[i+1].Reason == skips[i].Reason && skips[i+1].From <= skips[i].To {
		skips[i].To = max(skips[i].To, skips[i+1].To)
		skips = slices.Delete(skips, i+1, i+2)
	}
	if len(skips) > maxSkipsPerPartition {
		skips = slices.Delete(skips, 0, len(skips)-maxSkipsPerPartition)
	}
	return skips
}

// copyRecord deep-copies r so neither the caller nor a reader can change
// what the store holds.
func copyRecord(r store.Record) store.Record {
	r.Payload = slices.Clone(r.Payload)
	r.Index = copyIndex(r.Index)
	return r
}

func copyIndex(x wire.Index) wire.Index {
	x.Threads = slices.Clone(x.Threads)
	x.Events = slices.Clone(x.Events)
	return x
}

func normLimits(lim store.Limits) store.Limits {
	if lim.MaxRecords <= 0 {
		lim.MaxRecords = DefaultPageRecords
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultPageBytes
	}
	return lim
}

// ReadPartition implements store.Store.
func (s *Store) ReadPartition(ctx context.Context, id int32, after int64, lim store.Limits) ([]store.Record, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx, "read partition"); err != nil {
		return nil, false, err
	}
	p := s.parts[id]
	if p == nil {
		return nil, false, nil
	}
	lim = normLimits(lim)
	l := p.live()
	i := sort.Search(len(l), func(i int) bool { return l[i].rec.Offset > after })
	var out []store.Record
	size := 0
	for ; i < len(l) && len(out) < lim.MaxRecords; i++ {
		n := len(l[i].rec.Payload)
		if len(out) > 0 && size+n > lim.MaxBytes {
			break
		}
		size += n
		out = append(out, copyRecord(l[i].rec))
	}
	return out, i < len(l), nil
}

// find returns the record at (id, offset).
func (s *Store) find(id int32, offset int64) (*store.Record, bool) {
	p := s.parts[id]
	if p == nil {
		return nil, false
	}
	l := p.live()
	i := sort.Search(len(l), func(i int) bool { return l[i].rec.Offset >= offset })
	if i == len(l) || l[i].rec.Offset != offset {
		return nil, false
	}
	return &l[i].rec, true
}

// ReadThread implements store.Store.
func (s *Store) ReadThread(ctx context.Context, threadID string, after store.ThreadKey, lim store.Limits) ([]store.ThreadRecord, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx, "read thread"); err != nil {
		return nil, false, err
	}
	keys := s.threads[threadID]
	lim = normLimits(lim)
	i := sort.Search(len(keys), func(i int) bool { return compareKeys(keys[i], after) > 0 })
	var out []store.ThreadRecord
	size := 0
	for ; i < len(keys) && len(out) < lim.MaxRecords; i++ {
		rec, ok := s.find(keys[i].Partition, keys[i].Offset)
		if !ok {
			continue // cannot happen: eviction removes the key
		}
		n := len(rec.Payload)
		if len(out) > 0 && size+n > lim.MaxBytes {
			break
		}
		size += n
		out = append(out, store.ThreadRecord{Key: keys[i], Record: copyRecord(*rec)})
	}
	return out, i < len(keys), nil
}

// Bounds implements store.Store.
func (s *Store) Bounds(id int32) (oldest, latest int64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return -1, -1, false
	}
	p := s.parts[id]
	if p == nil || len(p.live()) == 0 {
		return -1, -1, false
	}
	l := p.live()
	return l[0].rec.Offset, l[len(l)-1].rec.Offset, true
}

// Skipped implements store.Store.
func (s *Store) Skipped(id int32, from, to int64) ([]store.SkippedRange, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("memory: skipped: %w", store.ErrClosed)
	}
	p := s.parts[id]
	if p == nil {
		return nil, nil
	}
	var out []store.SkippedRange
	for _, sk := range p.skips {
		if sk.From >= to {
			break
		}
		if sk.To > from {
			out = append(out, sk)
		}
	}
	return out, nil
}

// Partitions implements store.Store.
func (s *Store) Partitions() []int32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	ids := make([]int32, 0, len(s.parts))
	for id, p := range s.parts {
		if len(p.live()) > 0 || p.hasNext || len(p.skips) > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// IngestOffsets implements store.Store.
func (s *Store) IngestOffsets() map[int32]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[int32]int64)
	if s.closed {
		return out
	}
	for id, p := range s.parts {
		if p.hasNext {
			out[id] = p.next
		}
	}
	return out
}

// Epoch implements store.Store.
func (s *Store) Epoch() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ""
	}
	return s.epoch()
}

// SetSource implements store.Store.
func (s *Store) SetSource(ctx context.Context, topicID [16]byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, "set source"); err != nil {
		return false, err
	}
	if topicID == s.topicID {
		return false, nil
	}
	s.topicID = topicID
	s.generation = 0
	s.clear(true)
	return true, nil
}

// Reset implements store.Store. Skipped ranges are kept with the offsets.
func (s *Store) Reset(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, "reset"); err != nil {
		return "", err
	}
	s.generation++
	s.clear(false)
	return s.epoch(), nil
}

// Runs implements store.Store.
func (s *Store) Runs(ctx context.Context, q store.RunQuery) ([]store.RunSummary, string, error) {
	s.mu.RLock()
	if err := s.check(ctx, "runs"); err != nil {
		s.mu.RUnlock()
		return nil, "", err
	}
	all := make([]store.RunSummary, 0, len(s.runs))
	for _, r := range s.runs {
		all = append(all, r)
	}
	s.mu.RUnlock()
	runs, next, err := store.PageRuns(all, q)
	if err != nil {
		return nil, "", fmt.Errorf("memory: runs: %w", err)
	}
	return runs, next, nil
}

// Run implements store.Store.
func (s *Store) Run(ctx context.Context, threadID string) (store.RunSummary, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx, "run"); err != nil {
		return store.RunSummary{}, false, err
	}
	r, ok := s.runs[threadID]
	return r, ok, nil
}

// Stats implements store.Store. StoredBytes equals RawBytes: payloads are
// kept as received.
func (s *Store) Stats() store.Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := store.Stats{Kind: "memory", Retention: s.retention}
	if s.closed {
		return st
	}
	st.Epoch = s.epoch()
	st.Generation = s.generation
	st.Records = int64(s.records)
	st.RawBytes = s.bytes
	st.StoredBytes = s.bytes
	st.Threads = int64(len(s.threads))
	ids := make([]int32, 0, len(s.parts))
	for id := range s.parts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := s.parts[id]
		ps := store.PartitionStats{Partition: id, Oldest: -1, Latest: -1, NextOffset: -1,
			Records: int64(len(p.live())), RawBytes: p.bytes, StoredBytes: p.bytes}
		if l := p.live(); len(l) > 0 {
			ps.Oldest, ps.Latest = l[0].rec.Offset, l[len(l)-1].rec.Offset
			if t := l[0].rec.Time; !t.IsZero() && (st.OldestTime.IsZero() || t.Before(st.OldestTime)) {
				st.OldestTime = t
			}
		}
		if p.hasNext {
			ps.NextOffset = p.next
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st
}

// Capabilities implements store.Store.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{RetainByCount: true, RetainByAge: true, RetainByBytes: true}
}

// Close releases the contents; every later call fails with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: close: %w", store.ErrClosed)
	}
	s.closed = true
	s.parts, s.threads, s.runs = nil, nil, nil
	s.records, s.bytes = 0, 0
	return nil
}
