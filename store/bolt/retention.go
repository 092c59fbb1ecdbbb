package bolt

import (
	"errors"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// allocSize is bbolt's DB.AllocSize as Open sets it: above it the file
// grows by the need plus allocSize. bbolt's default, 16 MiB, leaves up to
// 16 MiB of slack at the end of the file; 4 MiB keeps the file closer to
// its data at the cost of a truncate+fsync every 4 MiB of growth.
const allocSize = 4 << 20

// highWaterLimit is the largest data size (bytes up to the page high-water
// mark) bbolt lets the file reach under maxSize. It mirrors db.allocate:
// while the mmap size (a power of two) is at most allocSize the file takes
// the mmap size; beyond, the need plus allocSize; either must stay within
// maxSize.
func highWaterLimit(maxSize int64) int64 {
	if maxSize <= 0 {
		return 1 << 62
	}
	l := int64(32 << 10)
	for l*2 <= min(maxSize, allocSize) {
		l *= 2
	}
	if maxSize-allocSize > allocSize {
		l = maxSize - allocSize
	}
	return l
}

// capReserve is the room kept free under the cap so retention's own
// transactions (which rewrite pages before freeing them) can commit.
func (s *Store) capReserve() int64 {
	l := highWaterLimit(s.opts.Retention.MaxFileBytes)
	return min(max(l/32, 4*int64(s.db.Info().PageSize)), l/4)
}

// room returns how many bytes the file can still take: growth left under
// the cap plus free pages inside the file.
func (s *Store) room() int64 {
	var hw int64
	_ = s.view(func(tx *bbolt.Tx) error {
		hw = tx.Size()
		return nil
	})
	ps := int64(s.db.Info().PageSize)
	bs := s.db.Stats()
	free := int64(bs.FreePageN+bs.PendingPageN) * ps
	return highWaterLimit(s.opts.Retention.MaxFileBytes) - ps - hw + free
}

// protected maps a partition to the tail block a pending batch extends;
// eviction must not touch it (the batch rewrites it).
type protected map[int32][]byte

func protectTails(parts []*partWrite) protected {
	pr := protected{}
	for _, pw := range parts {
		if pw.tailKey != nil {
			pr[pw.p] = pw.tailKey
		}
	}
	return pr
}

// makeRoom evicts the oldest records before a write of need bytes
// (footprint) when the file cap looks too close. A batch that could not
// fit even in an empty store fails with ErrFull at once.
func (s *Store) makeRoom(need int64, n int, parts []*partWrite) error {
	if s.opts.Retention.MaxFileBytes <= 0 {
		return nil
	}
	limit := highWaterLimit(s.opts.Retention.MaxFileBytes)
	want := need*5/4 + int64(n)*8 + s.capReserve()
	if want > limit*9/10 {
		return s.full(need, n)
	}
	for i := 0; i < 64; i++ {
		room := s.room()
		if room >= want {
			return nil
		}
		freed, err := s.evictOldest(want-room, parts)
		if err != nil && !errors.Is(err, store.ErrFull) {
			return err
		}
		if freed == 0 {
			return nil // nothing left to evict; let the write try
		}
	}
	return nil
}

// liveBytes is what the file's pages in use take: the data high-water
// mark minus free and pending pages. It includes everything the records
// cost (blocks, thread index, run summaries, bbolt's branch pages and page
// slack), which the footprint counters only estimate.
func (s *Store) liveBytes() int64 {
	var hw int64
	_ = s.view(func(tx *bbolt.Tx) error {
		hw = tx.Size()
		return nil
	})
	bs := s.db.Stats()
	return hw - int64(bs.FreePageN+bs.PendingPageN)*int64(s.db.Info().PageSize)
}

// liveAllowance is the part of the file's live bytes byte retention does
// not count: meta and freelist pages, empty buckets, branch pages.
const liveAllowance = 256 << 10

// bytesExcess is the footprint to evict so that the footprint counters
// stay within maxBytes and the file's live bytes within maxBytes plus
// liveAllowance. The live excess is scaled to footprint, since evicting a
// footprint byte frees about live/footprint bytes of pages.
func (s *Store) bytesExcess(st *state, maxBytes int64) int64 {
	fp := st.footprint()
	excess := fp - maxBytes
	if fp > 0 {
		if live := s.liveBytes() - liveAllowance; live > maxBytes {
			excess = max(excess, int64(float64(live-maxBytes)*float64(fp)/float64(live))+1)
		}
	}
	return excess
}

// applyRetention enforces the count, age and bytes limits, oldest records
// first, in transactions of at most ChunkKeys deletions.
func (s *Store) applyRetention() error {
	r := s.opts.Retention
	for guard := 0; guard < 1<<20; guard++ {
		st := s.state()
		var (
			victim int32 = -1
			plan   evictPlan
		)
		if r.MaxRecordsPerPartition > 0 {
			for p, ps := range st.parts {
				if ps.c.records > r.MaxRecordsPerPartition {
					victim, plan = p, evictPlan{count: int(ps.c.records - r.MaxRecordsPerPartition)}
					break
				}
			}
		}
		if victim < 0 && r.MaxAge > 0 {
			cutoff := s.now().Add(-r.MaxAge)
			for p, ps := range st.parts {
				if ps.oldest >= 0 && !ps.oldestTime.IsZero() && ps.oldestTime.Before(cutoff) {
					victim, plan = p, evictPlan{before: cutoff}
					break
				}
			}
		}
		if victim < 0 && r.MaxBytes > 0 {
			if excess := s.bytesExcess(st, r.MaxBytes); excess > 0 {
				var ties int64
				victim, plan, ties = oldestHead(st)
				plan.bytes = (excess + ties - 1) / max(ties, 1)
			}
		}
		if victim < 0 {
			return nil
		}
		res, err := s.evictChunk(victim, plan, nil)
		if err != nil {
			return err
		}
		if res.records == 0 {
			return nil
		}
	}
	return nil
}

// oldestHead picks the partition whose oldest record is the oldest (on a
// tie, the one holding more bytes) and bounds the eviction to records not
// newer than the next partition's head. ties counts the partitions whose
// head has the victim's time, so callers share a byte target among them.
func oldestHead(st *state) (victim int32, plan evictPlan, ties int64) {
	victim = -1
	var vt time.Time
	var vf int64
	for p, ps := range st.parts {
		if ps.oldest < 0 {
			continue
		}
		better := victim < 0 || ps.oldestTime.Before(vt) ||
			(ps.oldestTime.Equal(vt) && (ps.c.footprint > vf || (ps.c.footprint == vf && p < victim)))
		if better {
			victim, vt, vf = p, ps.oldestTime, ps.c.footprint
		}
	}
	if victim < 0 {
		return victim, plan, 0
	}
	var second time.Time
	for p, ps := range st.parts {
		if ps.oldest < 0 || p == victim {
			continue
		}
		if ps.oldestTime.Equal(vt) {
			ties++
		}
		if second.IsZero() || ps.oldestTime.Before(second) {
			second = ps.oldestTime
		}
	}
	return victim, evictPlan{notAfter: second}, ties + 1
}

// evictOldest evicts the globally oldest records until at least target
// footprint bytes are freed or nothing is left; it returns what it freed.
// Tail blocks a pending batch extends stay.
func (s *Store) evictOldest(target int64, parts []*partWrite) (int64, error) {
	pr := protectTails(parts)
	var freed int64
	skip := map[int32]bool{}
	for freed < target {
		st := s.state()
		if len(skip) > 0 {
			st = st.clone()
			for p := range skip {
				delete(st.parts, p)
			}
		}
		victim, plan, ties := oldestHead(st)
		if victim < 0 {
			break
		}
		plan.bytes = (target - freed + ties - 1) / ties
		res, err := s.evictChunk(victim, plan, pr[victim])
		if err != nil {
			return freed, err
		}
		if res.records == 0 {
			skip[victim] = true // only its protected tail is left
			continue
		}
		freed += res.footprint
	}
	return freed, nil
}

// evictPlan says where an eviction chunk stops (the first condition met):
// count records, records at or after before, bytes of footprint freed, or
// (after at least one record) a record newer than notAfter.
//
// A bytes plan evicts whole blocks only (overshooting by less than a
// block): splitting the head block would recompress its survivors on every
// Append under a steady stream. Count and age plans are exact.
type evictPlan struct {
	count    int
	before   time.Time
	bytes    int64
	notAfter time.Time
}

func (pl *evictPlan) stop(n int, freed int64, t time.Time) bool {
	switch {
	case pl.count > 0 && n >= pl.count,
		!pl.before.IsZero() && !t.Before(pl.before),
		pl.bytes > 0 && freed >= pl.bytes,
		n > 0 && !pl.notAfter.IsZero() && t.After(pl.notAfter),
		pl.count == 0 && pl.before.IsZero() && pl.bytes == 0:
		return true
	}
	return false
}

type evictResult struct {
	records   int
	footprint int64
}

// evictedRec is a record chosen for eviction.
type evictedRec struct {
	off     int64
	payload int
	threads []wire.ThreadSeq
}

// evictBlock is a head block eviction touches: deleted whole, or (the
// last one) split, its survivors re-encoded under their first offset.
type evictBlock struct {
	key       []byte
	valLen    int
	recs      []evictedRec
	survivors []blockRec
	threads   bool
	newVal    []byte
}

// evictChunk deletes the first records of partition p per plan, at most
// ChunkKeys keys (blocks plus thread entries) in one transaction, never
// touching the block under keep. When the transaction itself hits the
// file cap it retries with fewer keys.
func (s *Store) evictChunk(p int32, plan evictPlan, keep []byte) (evictResult, error) {
	budget := s.chunk
	for {
		res, err := s.evictChunkOnce(p, plan, budget, 0, keep)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, berrors.ErrMaxSizeReached) {
			return res, fmt.Errorf("store %s: retention: %w", s.path, err)
		}
		if budget <= 1 {
			break
		}
		budget /= 4
	}
	// At the cap the free pages are fragmented. Deleting part of a leaf
	// rewrites the blocks left on it into a contiguous run of pages (bbolt
	// keeps two to four full-page blocks on a leaf) that may not exist;
	// deleting whole leaves needs single pages only. bbolt does not say
	// where leaves end, so try each count of head blocks in turn, past
	// the other partitions' heads if need be (a leaf of records early).
	if plan.bytes > 0 {
		plan.notAfter = time.Time{}
	}
	for n := 1; n <= maxLeafBlocks; n++ {
		res, err := s.evictChunkOnce(p, plan, s.chunk, n, keep)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, berrors.ErrMaxSizeReached) {
			return res, fmt.Errorf("store %s: retention: %w", s.path, err)
		}
	}
	return evictResult{}, fmt.Errorf("store %s: retention cannot commit under the file cap: %w", s.path, store.ErrFull)
}

// maxLeafBlocks bounds the head blocks evictChunk tries to delete to end
// on a leaf boundary.
const maxLeafBlocks = 16

// evictChunkOnce is one eviction transaction of at most budget keys and,
// when maxBlocks > 0, at most maxBlocks blocks.
func (s *Store) evictChunkOnce(p int32, plan evictPlan, budget, maxBlocks int, keep []byte) (evictResult, error) {
	var blocks []*evictBlock
	var res evictResult
	// Choose in a read transaction, on copies: block by block from the
	// head, record by record, until the plan or the key budget stops.
	err := s.view(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bParts).Bucket(be32(p))
		if pb == nil {
			return nil
		}
		c := pb.Cursor()
		keys, n := 0, 0
		var freed int64
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if keep != nil && string(k) == string(keep) || maxBlocks > 0 && len(blocks) >= maxBlocks {
				return nil
			}
			val := slices.Clone(v)
			h, recs, err := s.z.decodeBlock(k, val)
			if err != nil {
				return fmt.Errorf("partition %d block %d: %w", p, beU64(k), err)
			}
			eb := &evictBlock{key: slices.Clone(k), valLen: len(v), threads: h.threads}
			share := blockFootprint(len(v)) / int64(len(recs))
			keys++ // the block key itself
			whole := plan.bytes > 0
			if whole && plan.stop(n, freed, recs[0].time) {
				return nil
			}
			for i := range recs {
				r := &recs[i]
				if !whole && plan.stop(n, freed, r.time) {
					break
				}
				var ts []wire.ThreadSeq
				if h.threads {
					// An index that no longer derives leaves its thread
					// entries behind; reads skip entries of gone records.
					if ts, err = r.threads(); err != nil && !errors.Is(err, errNotDerivable) {
						return fmt.Errorf("partition %d offset %d: %w", p, r.off, err)
					}
				}
				if n > 0 && keys+len(ts) > budget && !whole {
					break
				}
				keys += len(ts)
				freed += share + int64(len(ts))*threadEntrySize
				n++
				eb.recs = append(eb.recs, evictedRec{off: r.off, payload: len(r.payload), threads: ts})
			}
			if len(eb.recs) == 0 {
				return nil
			}
			blocks = append(blocks, eb)
			if keys > budget {
				return nil
			}
			if len(eb.recs) < len(recs) {
				eb.survivors = recs[len(eb.recs):]
				return nil
			}
		}
		return nil
	})
	if err != nil || len(blocks) == 0 {
		return res, err
	}
	if last := blocks[len(blocks)-1]; last.survivors != nil {
		var sc encScratch
		last.newVal, _, _ = s.z.encodeBlock(nil, last.survivors, last.threads, &sc)
	}
	var next *state
	err = s.update(func(tx *bbolt.Tx) error {
		st := s.state().clone()
		ps := st.part(p)
		pb := tx.Bucket(bParts).Bucket(be32(p))
		pb.FillPercent = 1.0
		removals := map[string][]store.ThreadKey{}
		ids := map[string]string{} // sanitized name → a thread id it indexes
		var names []string
		var lastOff int64
		for _, eb := range blocks {
			if err := pb.Delete(eb.key); err != nil {
				return err
			}
			ps.c.stored -= int64(eb.valLen)
			ps.c.footprint -= blockFootprint(eb.valLen)
			res.footprint += blockFootprint(eb.valLen)
			if eb.newVal != nil {
				if err := pb.Put(offKey(eb.survivors[0].off), eb.newVal); err != nil {
					return err
				}
				ps.c.stored += int64(len(eb.newVal))
				ps.c.footprint += blockFootprint(len(eb.newVal))
				res.footprint -= blockFootprint(len(eb.newVal))
			}
			for _, r := range eb.recs {
				for _, t := range r.threads {
					name := wire.SanitizeKey(t.ThreadID)
					if name == "" {
						continue
					}
					if _, ok := removals[name]; !ok {
						names = append(names, name)
						ids[name] = t.ThreadID
					}
					removals[name] = append(removals[name], store.ThreadKey{Seq: t.Seq, Partition: p, Offset: r.off})
				}
				ps.c.records--
				ps.c.raw -= int64(r.payload)
				ps.c.footprint -= int64(len(r.threads)) * threadEntrySize
				res.footprint += int64(len(r.threads)) * threadEntrySize
				res.records++
				lastOff = r.off
			}
		}
		// Threads left without entries lose their run summary too.
		tb := tx.Bucket(bThreads)
		for _, name := range names {
			es := removals[name]
			slices.SortFunc(es, compareTK)
			empty, err := removeThreadEntries(tb, name, es)
			if err != nil {
				return err
			}
			if empty {
				st.threads--
				if err := deleteRun(tx, ids[name]); err != nil {
					return err
				}
			}
		}
		if err := s.loadBounds(pb, ps); err != nil {
			return err
		}
		if ps.oldest < 0 {
			ps.c = pstat{} // exact zero
		}
		if err := pruneSkips(tx, p, ps, lastOff+1); err != nil {
			return err
		}
		if err := tx.Bucket(bMeta).Put(metaPartKey(kStatPfx, p), ps.c.encode()); err != nil {
			return err
		}
		if err := tx.Bucket(bMeta).Put(kThreads, be64(uint64(st.threads))); err != nil {
			return err
		}
		if err := s.hook("evict"); err != nil {
			return err
		}
		next = st
		return nil
	})
	if err != nil {
		return evictResult{}, err
	}
	s.setState(next)
	s.log.Debug("retention evicted", "path", s.path, "partition", p, "records", res.records, "bytes", res.footprint)
	return res, nil
}

// deleteRun removes a run summary and its run list entry.
func deleteRun(tx *bbolt.Tx, id string) error {
	t := tx.Bucket(bThreads)
	k := runKey(id)
	v := t.Get(k)
	if v == nil {
		return nil
	}
	if sum, ok := decodeRun(v); ok {
		if err := tx.Bucket(bRunTime).Delete(runTimeKey(sum.UpdatedAt, sum.ThreadID)); err != nil {
			return err
		}
	}
	return t.Delete(k)
}

// pruneSkips drops skipped ranges of p that end at or before the oldest
// retained offset (or below, the first offset not evicted).
func pruneSkips(tx *bbolt.Tx, p int32, ps *partState, evictedTo int64) error {
	if ps.skips == 0 {
		return nil
	}
	floor := evictedTo
	if ps.oldest >= 0 {
		floor = ps.oldest
	}
	sk := tx.Bucket(bSkipped)
	c := sk.Cursor()
	var dead [][]byte
	prefix := be32(p)
	for k, v := c.Seek(prefix); k != nil && string(k[:4]) == string(prefix); k, v = c.Next() {
		r, ok := parseSkip(k, v)
		if !ok || r.From >= floor {
			break
		}
		if r.To <= floor {
			dead = append(dead, append([]byte(nil), k...))
		}
	}
	for _, k := range dead {
		if err := sk.Delete(k); err != nil {
			return err
		}
		ps.skips--
	}
	return nil
}
