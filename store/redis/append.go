package redis

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// maxExact is the largest integer a zset score (a double) holds exactly.
const maxExact = 1<<53 - 1

// maxRunCache bounds the writer's run summary cache.
const maxRunCache = 50_000

// partPlan is what a batch does to one partition.
type partPlan struct {
	p          int32
	first      int64 // first record offset; -1 without records
	last       int64
	req        int64 // the batch's NextOffsets entry; -1 without
	next       int64 // next offset stored after the batch
	bytes      int64
	hasRecords bool
}

// Append implements store.Store: one Lua script per batch (see the package
// doc). It returns an error wrapping store.ErrOffsetOrder when the batch
// breaks the offset rules (nothing written), store.ErrFull when Redis is
// out of memory, and any other error when Redis cannot be reached; ingest
// pauses and retries the same batch then.
func (s *Store) Append(ctx context.Context, b store.Batch) error {
	if err := s.check(ctx, "append"); err != nil {
		return err
	}
	if err := validate(b); err != nil {
		return fmt.Errorf("redis: append: %w", err)
	}
	if len(b.Records) == 0 && len(b.Skipped) == 0 && len(b.NextOffsets) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.check(ctx, "append"); err != nil {
		return err
	}
	start := time.Now()
	err := s.append(ctx, b)
	s.obs.writeDone(start, err)
	return err
}

// append writes a valid, non-empty batch under wmu.
func (s *Store) append(ctx context.Context, b store.Batch) error {
	s.warnPrecision(b)
	plans := planPartitions(b)

	sums, err := s.runSummaries(ctx, b)
	if err != nil {
		return err
	}
	args, err := s.appendArgs(b, plans, sums)
	if err != nil {
		return fmt.Errorf("redis: append: %w", err)
	}
	for attempt := 0; ; attempt++ {
		res, err := appendScript.Run(ctx, s.rdb, nil, args...).Slice()
		if err != nil {
			// The script may or may not have run: forget what the cache
			// assumed; a retry of the batch is recognised by its
			// fingerprint.
			clear(s.runCache)
			return s.wrap("append", err)
		}
		s.healthy.Store(true)
		code, _ := res[0].(int64)
		switch code {
		case 1:
			s.committed(b, plans, sums, res[1:])
			return nil
		case 2:
			// A retry of a batch whose reply was lost: Redis holds it, and
			// sums were recomputed from summaries that already counted it,
			// so they are not cached; the next batch reads Redis's.
			s.committed(b, plans, nil, nil)
			return nil
		case 0:
			msg, _ := res[1].(string)
			return fmt.Errorf("redis: append: %s: %w", msg, store.ErrOffsetOrder)
		case 3:
			if attempt > 0 {
				return fmt.Errorf("redis: append: the store's meta is missing at %s", s.addr)
			}
			if err := s.restoreMeta(ctx); err != nil {
				return err
			}
			args = s.withToken(args)
		case 4:
			if err := s.reloadMeta(ctx); err != nil {
				return err
			}
			return fmt.Errorf("redis: append: the epoch changed under this writer (another process reset the namespace): %w",
				store.ErrOffsetOrder)
		default:
			return fmt.Errorf("redis: append: unexpected script reply %v", res)
		}
	}
}

// validate applies the offset rules of DECISIONS D3 that need no stored
// state; the script checks the rest.
func validate(b store.Batch) error {
	last := make(map[int32]int64)
	for _, r := range b.Records {
		if r.Partition < 0 {
			return fmt.Errorf("partition %d negative: %w", r.Partition, store.ErrOffsetOrder)
		}
		if r.Offset < 0 {
			return fmt.Errorf("partition %d offset %d negative: %w", r.Partition, r.Offset, store.ErrOffsetOrder)
		}
		if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
			return fmt.Errorf("partition %d offset %d after %d in the batch: %w",
				r.Partition, r.Offset, prev, store.ErrOffsetOrder)
		}
		last[r.Partition] = r.Offset
	}
	for _, sk := range b.Skipped {
		if sk.Partition < 0 || sk.From < 0 || sk.To <= sk.From {
			return fmt.Errorf("partition %d skipped range [%d, %d) invalid: %w",
				sk.Partition, sk.From, sk.To, store.ErrOffsetOrder)
		}
		if sk.Reason == "" {
			// Gap frames report it; a range without one is a caller bug.
			return fmt.Errorf("partition %d skipped range [%d, %d) has no reason", sk.Partition, sk.From, sk.To)
		}
	}
	for p, next := range b.NextOffsets {
		if p < 0 || next < 0 {
			return fmt.Errorf("partition %d next offset %d invalid: %w", p, next, store.ErrOffsetOrder)
		}
		if l, ok := last[p]; ok && next <= l {
			return fmt.Errorf("partition %d next offset %d not after record %d: %w",
				p, next, l, store.ErrOffsetOrder)
		}
	}
	return nil
}

// planPartitions summarises the batch per partition, in partition order.
func planPartitions(b store.Batch) []partPlan {
	idx := map[int32]int{}
	var plans []partPlan
	get := func(p int32) *partPlan {
		i, ok := idx[p]
		if !ok {
			i = len(plans)
			idx[p] = i
			plans = append(plans, partPlan{p: p, first: -1, last: -1, req: -1, next: -1})
		}
		return &plans[i]
	}
	for i := range b.Records {
		r := &b.Records[i]
		pp := get(r.Partition)
		if !pp.hasRecords {
			pp.first, pp.hasRecords = r.Offset, true
		}
		pp.last = r.Offset
		pp.bytes += int64(len(r.Payload))
	}
	for p, n := range b.NextOffsets {
		get(p).req = n
	}
	for i := range plans {
		pp := &plans[i]
		pp.next = max(pp.req, pp.last+1)
		if !pp.hasRecords {
			pp.next = pp.req
		}
	}
	slices.SortFunc(plans, func(a, b partPlan) int { return int(a.p) - int(b.p) })
	return plans
}

// warnPrecision logs once per kind when an offset or sequence passes 2^53
// (zset scores are doubles; reference M-689, M-1011).
func (s *Store) warnPrecision(b store.Batch) {
	for i := range b.Records {
		r := &b.Records[i]
		if r.Offset > maxExact && s.warnedOffset.CompareAndSwap(false, true) {
			s.log.Warn("offset above 2^53: its zset score loses precision (ordering and ranges may be off by a few offsets)",
				"partition", r.Partition, "offset", r.Offset)
		}
		for _, th := range r.Index.Threads {
			if th.Seq > maxExact && s.warnedSeq.CompareAndSwap(false, true) {
				s.log.Warn("sequence above 2^53: its zset score loses precision (thread order may be off)",
					"thread_id", th.ThreadID, "sequence", th.Seq)
			}
		}
	}
}

// runUpdate is a thread's summary after the batch.
type runUpdate struct {
	tid string
	sum store.RunSummary
}

// runSummaries folds the batch into the summaries of the threads it
// touches (store.ApplyRecord), reading the ones not cached.
func (s *Store) runSummaries(ctx context.Context, b store.Batch) ([]runUpdate, error) {
	order := map[string]int{}
	var ups []runUpdate
	var missing []string
	stale := time.Now().Add(-s.ttl / 2)
	for i := range b.Records {
		for _, th := range b.Records[i].Index.Threads {
			if th.ThreadID == "" {
				continue
			}
			tid := wire.SanitizeKey(th.ThreadID)
			if _, ok := order[tid]; ok {
				continue
			}
			order[tid] = len(ups)
			ups = append(ups, runUpdate{tid: tid})
			if c, ok := s.runCache[tid]; ok && c.at.After(stale) {
				ups[len(ups)-1].sum = c.sum
			} else {
				missing = append(missing, tid)
			}
		}
	}
	if len(missing) > 0 {
		vals, err := s.rdb.HMGet(ctx, s.runsKey(), missing...).Result()
		if err != nil {
			return nil, s.wrap("append: read run summaries", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			sum, err := decodeRun(str)
			if err != nil {
				s.log.Warn("unreadable run summary replaced", "thread_key", missing[i], "err", err)
				continue
			}
			ups[order[missing[i]]].sum = sum
		}
	}
	for i := range b.Records {
		r := &b.Records[i]
		for _, th := range r.Index.Threads {
			if th.ThreadID == "" {
				continue
			}
			u := &ups[order[wire.SanitizeKey(th.ThreadID)]]
			if u.sum.ThreadID != "" && u.sum.ThreadID != th.ThreadID {
				// Two ids with one key (a raw id spelled "b64_…", the
				// reference's quirk): the newer one takes the summary.
				u.sum = store.RunSummary{}
			}
			store.ApplyRecord(&u.sum, *r, th)
		}
	}
	return ups, nil
}

// appendArgs builds the script's ARGV (layout in scripts.go).
func (s *Store) appendArgs(b store.Batch, plans []partPlan, runs []runUpdate) ([]any, error) {
	args := make([]any, 0, 16+len(plans)*5+len(b.Records)*9+len(b.Skipped)*4+len(runs)*3)
	s.mu.RLock()
	topic, gen := hex.EncodeToString(s.topicID[:]), strconv.FormatUint(s.generation, 10)
	s.mu.RUnlock()
	args = append(args, s.p, s.ttlSecs, fingerprint(b), topic, gen,
		strconv.FormatInt(s.retention.MaxRecordsPerPartition, 10), strconv.Itoa(maxSkipsPerPartition))

	args = append(args, strconv.Itoa(len(plans)))
	for _, pp := range plans {
		first, req := "", ""
		if pp.hasRecords {
			first = strconv.FormatInt(pp.first, 10)
		}
		if pp.req >= 0 {
			req = strconv.FormatInt(pp.req, 10)
		}
		args = append(args, itoa32(pp.p), first, req, strconv.FormatInt(pp.next, 10), strconv.FormatInt(pp.bytes, 10))
	}

	args = append(args, strconv.Itoa(len(b.Records)))
	tids := make([]string, 0, 4)
	for i := range b.Records {
		r := &b.Records[i]
		tids = tids[:0]
		n := 0
		for _, th := range r.Index.Threads {
			tid := ""
			if th.ThreadID != "" {
				tid = wire.SanitizeKey(th.ThreadID)
				n++
			}
			tids = append(tids, tid)
		}
		args = append(args, itoa32(r.Partition), strconv.FormatInt(r.Offset, 10), r.Payload,
			encodeMeta(r, tids), cursorPrefix(r.Partition, r.Offset),
			fmt.Sprintf("%010d.%019d", r.Partition, r.Offset), strconv.Itoa(n))
		for j, th := range r.Index.Threads {
			if th.ThreadID != "" {
				args = append(args, tids[j], strconv.FormatUint(th.Seq, 10))
			}
		}
	}

	var skips []store.SkippedRange
	for _, sk := range b.Skipped {
		if sk.From < sk.To {
			skips = append(skips, sk)
		}
	}
	args = append(args, strconv.Itoa(len(skips)))
	for _, sk := range skips {
		args = append(args, itoa32(sk.Partition), strconv.FormatInt(sk.From, 10), strconv.FormatInt(sk.To, 10), sk.Reason)
	}

	args = append(args, strconv.Itoa(len(runs)))
	for _, u := range runs {
		js, err := json.Marshal(u.sum)
		if err != nil {
			return nil, fmt.Errorf("encode run summary: %w", err)
		}
		args = append(args, u.tid, js, runScore(u.sum.UpdatedAt))
	}
	return args, nil
}

// withToken replaces the topic and generation of built args after the
// meta was restored or reloaded.
func (s *Store) withToken(args []any) []any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	args[3], args[4] = hex.EncodeToString(s.topicID[:]), strconv.FormatUint(s.generation, 10)
	return args
}

// fingerprint identifies a batch by what it claims: record offsets and
// sizes, skipped ranges and next offsets. A batch retried after its reply
// was lost has the same fingerprint as the one stored.
func fingerprint(b store.Batch) string {
	h := xxhash.New()
	var buf [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		_, _ = h.Write(buf[:])
	}
	put(uint64(len(b.Records)))
	for i := range b.Records {
		r := &b.Records[i]
		put(uint64(r.Partition))
		put(uint64(r.Offset))
		put(uint64(len(r.Payload)))
	}
	put(uint64(len(b.Skipped)))
	for _, sk := range b.Skipped {
		put(uint64(sk.Partition))
		put(uint64(sk.From))
		put(uint64(sk.To))
		_, _ = h.WriteString(sk.Reason)
	}
	ps := make([]int32, 0, len(b.NextOffsets))
	for p := range b.NextOffsets {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		put(uint64(p))
		put(uint64(b.NextOffsets[p]))
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// committed updates the caches after the script applied the batch; dropped
// lists the run summaries the script deleted.
func (s *Store) committed(b store.Batch, plans []partPlan, runs []runUpdate, dropped []any) {
	s.mu.Lock()
	for _, pp := range plans {
		if pp.next >= 0 {
			if cur, ok := s.next[pp.p]; !ok || pp.next > cur {
				s.next[pp.p] = pp.next
			}
		}
	}
	for _, sk := range b.Skipped {
		if sk.From < sk.To {
			s.skipParts[sk.Partition] = true
		}
	}
	s.mu.Unlock()
	if len(s.runCache)+len(runs) > maxRunCache {
		clear(s.runCache)
	}
	total := 0
	for i := range b.Records {
		total += len(b.Records[i].Payload)
	}
	s.noteSizes(len(b.Records), total)
	now := time.Now()
	for _, u := range runs {
		s.runCache[u.tid] = cachedRun{sum: u.sum, at: now}
	}
	for _, d := range dropped {
		if tid, ok := d.(string); ok {
			delete(s.runCache, tid)
		}
	}
}

// restoreMeta writes the cached meta back after Redis lost it (flushed, or
// restarted without persistence): the epoch and next offsets continue; the
// records are gone.
func (s *Store) restoreMeta(ctx context.Context) error {
	s.mu.RLock()
	fields := map[string]any{"topic": hex.EncodeToString(s.topicID[:]),
		"generation": strconv.FormatUint(s.generation, 10), "layout": layoutVersion}
	next := map[string]any{}
	for p, n := range s.next {
		next[itoa32(p)] = strconv.FormatInt(n, 10)
	}
	s.mu.RUnlock()
	s.log.Error("Redis lost the replay buffer's meta (flushed, or restarted without persistence); restoring epoch and offsets from memory, the records are gone")
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.metaKey(), fields)
	if len(next) > 0 {
		pipe.HSet(ctx, s.nextKey(), next)
		for p := range next {
			pipe.SAdd(ctx, s.partsKey(), p)
		}
	}
	_, err := pipe.Exec(ctx)
	return s.wrap("append: restore meta", err)
}

// reloadMeta reads the meta another process changed into the cache.
func (s *Store) reloadMeta(ctx context.Context) error {
	m, err := s.rdb.HGetAll(ctx, s.metaKey()).Result()
	if err != nil {
		return s.wrap("append: reload meta", err)
	}
	if len(m) == 0 {
		return nil
	}
	if err := s.setMetaCache(m); err != nil {
		return fmt.Errorf("redis: append: reload meta: %w", err)
	}
	clear(s.runCache)
	if err := s.loadOffsets(ctx); err != nil {
		return s.wrap("append: reload meta", err)
	}
	s.log.Warn("the store's epoch changed under this writer; reloaded", "epoch", s.Epoch())
	return nil
}

// runScore is the runs:updated score of an UpdatedAt: Unix microseconds
// (exact as a double until the year 2255), -inf for the zero time.
func runScore(t time.Time) string {
	if t.IsZero() {
		return "-inf"
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func decodeRun(v string) (store.RunSummary, error) {
	var sum store.RunSummary
	if err := json.Unmarshal([]byte(v), &sum); err != nil {
		return store.RunSummary{}, fmt.Errorf("decode run summary: %w", err)
	}
	return sum, nil
}
