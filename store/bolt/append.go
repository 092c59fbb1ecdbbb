package bolt

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// partWrite is one partition's share of a batch: its new records, the
// tail block they extend (if it has room) and the blocks to put.
type partWrite struct {
	p       int32
	idx     []int  // indices into the batch, in order
	tailKey []byte // key of the tail block merged in (nil if none)
	tailVal []byte // its value, copied out
	tailFP  int64  // its footprint (block only)
	jobs    []blockJob
}

// blockJob is a run of records to encode into one block, or several when
// the value would not fit a page.
type blockJob struct {
	recs    []blockRec
	threads bool
	out     []encodedBlock
}

// encodedBlock is one block value ready to put.
type encodedBlock struct {
	first int64
	val   []byte
	plain int // bytes of the section offered to compression
	zlen  int // bytes it took
}

// Append writes b atomically and durably, then applies retention. A batch
// breaking the offset rules (DECISIONS D3) fails with store.ErrOffsetOrder
// and writes nothing. When the file cap leaves no room even after retention
// evicted the oldest records, it fails with store.ErrFull. Retention after
// the commit only logs its failures (the next Append runs it again), so an
// error always means the batch was not written.
//
// Records join their partition's tail block while it has room, so a block
// fills up across small batches; blocks are built and compressed (in
// parallel) before the write transaction, which only puts them.
func (s *Store) Append(ctx context.Context, b store.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("store %s is open read-only", s.path)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return s.errClosed()
	}
	if err := s.checkBatch(&b); err != nil {
		return err
	}
	if len(b.Records) == 0 && len(b.Skipped) == 0 && len(b.NextOffsets) == 0 {
		return nil
	}
	parts, jobs, est, err := s.prepare(b.Records)
	if err != nil {
		return err
	}
	// Compression runs on worker goroutines while the write transaction
	// does the work that does not need it (thread index, run summaries);
	// the transaction waits for the blocks only to put them. Serially,
	// the transaction's CPU and its fsync left the second core idle.
	encoded := s.encodeAsync(jobs)
	err = s.write(ctx, &b, parts, est, encoded)
	encoded() // also on an error: the workers read the batch
	s.learnRatios(parts)
	if err != nil {
		return err
	}
	// The batch committed: an error now would make ingest retry a stored
	// batch (and fail with ErrOffsetOrder). Retention that failed runs
	// again on the next Append.
	if err := s.applyRetention(); err != nil {
		s.log.Warn("retention failed after append; retrying on the next append", "path", s.path, "err", err)
	}
	if s.recode {
		s.recodeBlocks()
	}
	return nil
}

// checkBatch enforces DECISIONS D3 against the stored offsets.
func (s *Store) checkBatch(b *store.Batch) error {
	st := s.state()
	last := map[int32]int64{}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("store %s: "+format+": %w", append([]any{s.path}, append(args, store.ErrOffsetOrder)...)...)
	}
	for i := range b.Records {
		r := &b.Records[i]
		if r.Offset < 0 {
			return bad("partition %d: negative offset %d", r.Partition, r.Offset)
		}
		if prev, ok := last[r.Partition]; ok {
			if r.Offset <= prev {
				return bad("partition %d: offset %d after %d in one batch", r.Partition, r.Offset, prev)
			}
		} else if ps := st.parts[r.Partition]; ps != nil {
			if ps.next >= 0 && r.Offset < ps.next {
				return bad("partition %d: offset %d below the next ingest offset %d", r.Partition, r.Offset, ps.next)
			}
			if ps.latest >= 0 && r.Offset <= ps.latest {
				return bad("partition %d: offset %d not after the latest stored %d", r.Partition, r.Offset, ps.latest)
			}
		}
		last[r.Partition] = r.Offset
	}
	for p, n := range b.NextOffsets {
		if l, ok := last[p]; ok && n <= l {
			return bad("partition %d: next offset %d not after the batch's last record %d", p, n, l)
		}
		if ps := st.parts[p]; ps != nil && (n < ps.next || n <= ps.latest) {
			return bad("partition %d: next offset %d goes back (stored next %d, latest %d)", p, n, ps.next, ps.latest)
		}
		if n < 0 {
			return bad("partition %d: negative next offset %d", p, n)
		}
	}
	for _, r := range b.Skipped {
		if r.From < 0 || r.To <= r.From {
			return bad("partition %d: empty or negative skipped range [%d, %d)", r.Partition, r.From, r.To)
		}
		if r.Reason == "" {
			return fmt.Errorf("store %s: partition %d: skipped range [%d, %d) without a reason", s.path, r.Partition, r.From, r.To)
		}
	}
	return nil
}

// prepare groups recs by partition, merges each partition's tail block
// when it has room, splits into blocks and encodes them.
func (s *Store) prepare(recs []store.Record) (parts []*partWrite, jobs []*blockJob, estBytes int64, err error) {
	if len(recs) == 0 {
		return nil, nil, 0, nil
	}
	byPart := map[int32]*partWrite{}
	for i := range recs {
		pw := byPart[recs[i].Partition]
		if pw == nil {
			pw = &partWrite{p: recs[i].Partition}
			byPart[pw.p] = pw
			parts = append(parts, pw)
		}
		pw.idx = append(pw.idx, i)
	}
	// Tail blocks with room, copied out of one short read transaction.
	err = s.view(func(tx *bbolt.Tx) error {
		pbs := tx.Bucket(bParts)
		for _, pw := range parts {
			pb := pbs.Bucket(be32(pw.p))
			if pb == nil {
				continue
			}
			k, v := pb.Cursor().Last()
			if k == nil {
				continue
			}
			h, err := parseBlockHeader(v)
			if err != nil {
				return fmt.Errorf("partition %d block %d: %w", pw.p, beU64(k), err)
			}
			if h.n < blockMaxRecords && len(v) < s.blk.target*9/10 {
				pw.tailKey = slices.Clone(k)
				pw.tailVal = slices.Clone(v)
				pw.tailFP = blockFootprint(len(v))
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("store %s: %w", s.path, err)
	}
	var estimate float64
	for _, pw := range parts {
		ratio := s.ratio[pw.p]
		if ratio == 0 {
			ratio = initialRatio
		}
		// The estimate counts the meta of records whose index is stored
		// (resolveIndexCheap knows it when no extraction is needed);
		// leaving it out made blocks overshoot a page and re-encode.
		est := func(r *blockRec) (stored float64, content int) {
			if isRawPayload(r.payload) {
				return float64(len(r.payload)) + float64(8+len(r.meta))*ratio, len(r.payload) + 8 + len(r.meta)
			}
			n := len(r.payload) + 8 + len(r.meta)
			return float64(n) * ratio, n
		}
		var cur []blockRec
		var size float64
		var content int
		var threads bool
		if pw.tailKey != nil {
			h, trecs, err := s.z.decodeBlockLazy(pw.tailKey, pw.tailVal)
			if err != nil {
				return nil, nil, 0, fmt.Errorf("store %s: partition %d block %d: %w", s.path, pw.p, beU64(pw.tailKey), err)
			}
			cur, threads, size, content = trecs, h.threads, float64(len(pw.tailVal)), h.contentLen(pw.tailVal)
		}
		for _, i := range pw.idx {
			r := &recs[i]
			br := blockRec{off: r.Offset, time: r.Time, payload: r.Payload, ix: &r.Index, extracted: r.Extracted}
			br.resolveIndexCheap()
			e, n := est(&br)
			if len(cur) > 0 && (len(cur) >= blockMaxRecords || size+e > float64(s.blk.target) || content+n > blockMaxContent) {
				pw.jobs = append(pw.jobs, blockJob{recs: cur, threads: threads})
				estimate += size
				cur, size, content, threads = nil, 0, 0, false
			}
			cur = append(cur, br)
			size += e
			content += n
			threads = threads || len(r.Index.Threads) > 0
			s.z.sample(r.Payload)
		}
		pw.jobs = append(pw.jobs, blockJob{recs: cur, threads: threads})
		estimate += size
		estBytes += int64(estimate) - pw.tailFP
		estimate = 0
	}
	for _, pw := range parts {
		for j := range pw.jobs {
			jobs = append(jobs, &pw.jobs[j])
		}
	}
	s.trainDictionary()
	return parts, jobs, estBytes, nil
}

// learnRatios updates each partition's compression ratio estimate from
// the blocks just encoded.
func (s *Store) learnRatios(parts []*partWrite) {
	for _, pw := range parts {
		for _, j := range pw.jobs {
			for _, e := range j.out {
				if e.plain >= 1024 {
					r := float64(e.zlen) / float64(e.plain)
					if old := s.ratio[pw.p]; old > 0 {
						r = 0.8*old + 0.2*r
					}
					s.ratio[pw.p] = r
				}
			}
		}
	}
}

// trainDictionary trains the compression dictionary once enough payloads
// were sampled, persists it and switches to it, so this batch already uses
// it. Failure only means staying with plain zstd.
func (s *Store) trainDictionary() {
	id, d := s.z.trainReady()
	if d == nil {
		return
	}
	err := s.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bDicts).Put(dictKey(id), d)
	})
	if err == nil {
		err = s.z.adopt(id, d)
	}
	if err != nil {
		s.log.Warn("compression dictionary not stored", "path", s.path, "err", err)
		return
	}
	s.recode = true
	s.log.Info("compression dictionary trained", "path", s.path, "id", id, "bytes", len(d))
}

// recodeBlocks re-encodes, once after the dictionary arrived, the blocks
// written before it (the first few thousand records), in transactions of
// at most recodeChunk blocks. Failure leaves them as they are.
func (s *Store) recodeBlocks() {
	const recodeChunk = 64
	for {
		type old struct {
			p        int32
			key, val []byte
		}
		var olds []old
		err := s.view(func(tx *bbolt.Tx) error {
			return tx.Bucket(bParts).ForEachBucket(func(pk []byte) error {
				c := tx.Bucket(bParts).Bucket(pk).Cursor()
				for k, v := c.First(); k != nil && len(olds) < recodeChunk; k, v = c.Next() {
					if h, err := parseBlockHeader(v); err == nil && h.codec == codecZstd {
						olds = append(olds, old{int32(beU32(pk)), slices.Clone(k), slices.Clone(v)})
					}
				}
				return nil
			})
		})
		if err != nil || len(olds) == 0 {
			s.recode = false
			return
		}
		jobs := make([]*blockJob, 0, len(olds))
		for _, o := range olds {
			h, recs, err := s.z.decodeBlock(o.key, o.val)
			if err != nil {
				s.log.Warn("recode: undecodable block", "path", s.path, "partition", o.p, "block", beU64(o.key), "err", err)
				s.recode = false
				return
			}
			jobs = append(jobs, &blockJob{recs: recs, threads: h.threads})
		}
		s.encodeJobs(jobs)
		var next *state
		err = s.update(func(tx *bbolt.Tx) error {
			st := s.state().clone()
			for i, o := range olds {
				pb := tx.Bucket(bParts).Bucket(be32(o.p))
				pb.FillPercent = 1.0
				ps := st.part(o.p)
				if err := pb.Delete(o.key); err != nil {
					return err
				}
				ps.c.stored -= int64(len(o.val))
				ps.c.footprint -= blockFootprint(len(o.val))
				for _, e := range jobs[i].out {
					if err := pb.Put(offKey(e.first), e.val); err != nil {
						return err
					}
					ps.c.stored += int64(len(e.val))
					ps.c.footprint += blockFootprint(len(e.val))
				}
				if err := tx.Bucket(bMeta).Put(metaPartKey(kStatPfx, o.p), ps.c.encode()); err != nil {
					return err
				}
			}
			next = st
			return nil
		})
		if err != nil {
			s.log.Warn("recode failed", "path", s.path, "err", err)
			s.recode = false
			return
		}
		s.setState(next)
		if len(olds) < recodeChunk {
			s.recode = false
			return
		}
	}
}

// encodeJob encodes a job's records into blocks of at most s.blk.maxValue
// bytes (one bbolt page), re-encoding fewer records when the estimate
// overshot; a single record larger than that keeps a block of its own.
func (s *Store) encodeJob(j *blockJob, sc *encScratch) {
	recs := j.recs
	for len(recs) > 0 {
		n := len(recs)
		for {
			val, plain, zlen := s.z.encodeBlock(nil, recs[:n], j.threads, sc)
			if len(val) <= s.blk.maxValue || n == 1 {
				j.out = append(j.out, encodedBlock{first: recs[0].off, val: val, plain: plain, zlen: zlen})
				break
			}
			n = max(1, min(n-1, n*s.blk.target/len(val)))
		}
		recs = recs[n:]
	}
}

// encodeAsync starts encoding jobs on worker goroutines and returns a
// function that waits for them (idempotent).
func (s *Store) encodeAsync(jobs []*blockJob) (wait func()) {
	if len(jobs) == 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.encodeJobs(jobs)
	}()
	return func() { <-done }
}

// encodeJobs encodes blocks, on several goroutines when there are several.
func (s *Store) encodeJobs(jobs []*blockJob) {
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	if workers <= 1 {
		var sc encScratch
		for _, j := range jobs {
			s.encodeJob(j, &sc)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc encScratch
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				s.encodeJob(jobs[i], &sc)
			}
		}()
	}
	wg.Wait()
}

// write commits the batch, making room under the file cap first when it
// looks short (by the blocks' estimated size: they are still being
// encoded) and again, by their real size, whenever bbolt reports the cap
// reached. encoded waits for the blocks.
func (s *Store) write(ctx context.Context, b *store.Batch, parts []*partWrite, est int64, encoded func()) error {
	var threads int64
	for i := range b.Records {
		threads += int64(len(b.Records[i].Index.Threads)) * threadEntrySize
	}
	need := est + threads
	if err := s.makeRoom(need, len(b.Records), parts); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		var next *state
		err := s.update(func(tx *bbolt.Tx) error {
			var err error
			next, err = s.appendTx(tx, b, parts, encoded)
			return err
		})
		if err == nil {
			next.fullLatest = false
			s.setState(next)
			return nil
		}
		if !errors.Is(err, berrors.ErrMaxSizeReached) {
			return fmt.Errorf("store %s: append: %w", s.path, err)
		}
		if attempt == 0 { // from now on, the blocks' real size
			encoded()
			need = threads
			for _, pw := range parts {
				for _, j := range pw.jobs {
					for _, e := range j.out {
						need += blockFootprint(len(e.val))
					}
				}
				need -= pw.tailFP
			}
		}
		if ctx.Err() != nil || attempt >= 64 {
			return s.full(need, len(b.Records))
		}
		freed, eerr := s.evictOldest(max(need*2, s.capReserve()), parts)
		if eerr != nil && !errors.Is(eerr, store.ErrFull) {
			return eerr
		}
		if freed == 0 {
			return s.full(need, len(b.Records))
		}
	}
}

// full marks the store full and returns the ErrFull error of a batch.
func (s *Store) full(need int64, n int) error {
	s.mu.Lock()
	st := s.st.clone()
	st.fullLatest = true
	s.st = st
	s.mu.Unlock()
	s.log.Warn("store full", "path", s.path, "batch_records", n, "batch_bytes", need, "max_file_bytes", s.opts.Retention.MaxFileBytes)
	return fmt.Errorf("store %s: batch of %d records (%d bytes) does not fit under the file cap of %d bytes: %w",
		s.path, n, need, s.opts.Retention.MaxFileBytes, store.ErrFull)
}

// appendTx writes one batch in tx and returns the state it leaves. The
// thread index and run summaries come first: they do not need the blocks,
// which encoded waits for.
func (s *Store) appendTx(tx *bbolt.Tx, b *store.Batch, parts []*partWrite, encoded func()) (*state, error) {
	st := s.state().clone()
	if err := s.indexThreads(tx, b.Records, st); err != nil {
		return nil, err
	}
	if err := s.updateRuns(tx, b.Records); err != nil {
		return nil, err
	}
	encoded()
	pbs := tx.Bucket(bParts)
	touched := map[int32]bool{}
	for _, pw := range parts {
		pb, err := pbs.CreateBucketIfNotExists(be32(pw.p))
		if err != nil {
			return nil, err
		}
		pb.FillPercent = 1.0
		ps := st.part(pw.p)
		ps.c.stored -= int64(len(pw.tailVal))
		ps.c.footprint -= pw.tailFP
		for _, j := range pw.jobs {
			for _, e := range j.out {
				if err := pb.Put(offKey(e.first), e.val); err != nil {
					return nil, fmt.Errorf("partition %d block %d: %w", pw.p, e.first, err)
				}
				ps.c.stored += int64(len(e.val))
				ps.c.footprint += blockFootprint(len(e.val))
			}
		}
		first := &b.Records[pw.idx[0]]
		last := &b.Records[pw.idx[len(pw.idx)-1]]
		if ps.oldest < 0 {
			ps.oldest, ps.oldestTime = first.Offset, first.Time
		}
		ps.latest = last.Offset
		ps.next = max(ps.next, last.Offset+1)
		for _, i := range pw.idx {
			r := &b.Records[i]
			ps.c.records++
			ps.c.raw += int64(len(r.Payload))
			ps.c.footprint += int64(len(r.Index.Threads)) * threadEntrySize
		}
		touched[pw.p] = true
	}
	meta := tx.Bucket(bMeta)
	for p, n := range b.NextOffsets {
		st.part(p).next = n
		touched[p] = true
	}
	for p := range touched {
		if err := meta.Put(metaPartKey(kNextPfx, p), offKey(st.parts[p].next)); err != nil {
			return nil, err
		}
	}
	sk := tx.Bucket(bSkipped)
	for _, r := range b.Skipped {
		k := skipKey(r.Partition, r.From)
		if sk.Get(k) == nil {
			st.part(r.Partition).skips++
		}
		if err := sk.Put(k, skipValue(r.To, r.Reason)); err != nil {
			return nil, err
		}
	}
	for _, pw := range parts {
		if err := meta.Put(metaPartKey(kStatPfx, pw.p), st.parts[pw.p].c.encode()); err != nil {
			return nil, err
		}
	}
	if err := meta.Put(kThreads, be64(uint64(st.threads))); err != nil {
		return nil, err
	}
	if err := s.hook("append"); err != nil {
		return nil, err
	}
	return st, nil
}

// indexThreads adds the thread index entries of recs.
func (s *Store) indexThreads(tx *bbolt.Tx, recs []store.Record, st *state) error {
	byName := map[string][]store.ThreadKey{}
	var names []string
	sanitized := map[string]string{} // a batch repeats its threads
	for i := range recs {
		r := &recs[i]
		for _, t := range r.Index.Threads {
			name, ok := sanitized[t.ThreadID]
			if !ok {
				name = wire.SanitizeKey(t.ThreadID)
				sanitized[t.ThreadID] = name
			}
			if name == "" {
				continue
			}
			if _, ok := byName[name]; !ok {
				names = append(names, name)
			}
			byName[name] = append(byName[name], store.ThreadKey{Seq: t.Seq, Partition: r.Partition, Offset: r.Offset})
		}
	}
	tb := tx.Bucket(bThreads)
	for _, name := range names {
		es := byName[name]
		slices.SortFunc(es, compareTK)
		es = slices.CompactFunc(es, func(a, b store.ThreadKey) bool { return a == b })
		isNew, err := addThreadEntries(tb, name, es)
		if err != nil {
			return err
		}
		if isNew {
			st.threads++
		}
	}
	return nil
}

var emptyValue = []byte{}

// runEntry is a run summary being updated in one transaction.
type runEntry struct {
	sum     store.RunSummary
	oldTime []byte // runtime key before this batch, nil if new
}

// updateRuns folds recs into the run summaries of the threads they touch
// (store.ApplyRecord) and keeps the run list index in step.
func (s *Store) updateRuns(tx *bbolt.Tx, recs []store.Record) error {
	runs, rt := tx.Bucket(bThreads), tx.Bucket(bRunTime)
	entries := map[string]*runEntry{}
	keys := map[string]string{} // thread id → run key, once per batch
	var order []string
	for i := range recs {
		r := &recs[i]
		for _, t := range r.Index.Threads {
			if t.ThreadID == "" {
				continue
			}
			rk, ok := keys[t.ThreadID]
			if !ok {
				rk = string(runKey(t.ThreadID))
				keys[t.ThreadID] = rk
			}
			e := entries[rk]
			if e == nil {
				e = &runEntry{}
				if v := runs.Get([]byte(rk)); v != nil {
					sum, ok := decodeRun(v)
					if ok {
						e.sum = sum
						e.oldTime = runTimeKey(sum.UpdatedAt, sum.ThreadID)
					}
				}
				entries[rk] = e
				order = append(order, rk)
			}
			store.ApplyRecord(&e.sum, *r, t)
		}
	}
	for _, id := range order {
		e := entries[id]
		nk := runTimeKey(e.sum.UpdatedAt, e.sum.ThreadID)
		if e.oldTime != nil && string(e.oldTime) != string(nk) {
			if err := rt.Delete(e.oldTime); err != nil {
				return err
			}
		}
		if e.oldTime == nil || string(e.oldTime) != string(nk) {
			if err := rt.Put(nk, emptyValue); err != nil {
				return err
			}
		}
		if err := runs.Put([]byte(id), encodeRun(&e.sum)); err != nil {
			return err
		}
	}
	return nil
}
