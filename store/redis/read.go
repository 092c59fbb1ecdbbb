package redis

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// maxReadRounds bounds the pages a read skips when every member it fetched
// had expired (or, in a thread, was at or before the cursor).
const maxReadRounds = 64

func normLimits(lim store.Limits) store.Limits {
	if lim.MaxRecords <= 0 {
		lim.MaxRecords = DefaultPageRecords
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultPageBytes
	}
	return lim
}

// fetchCount is how many records a page fetches: MaxRecords, unless
// MaxBytes would be reached well before at the recent mean payload size,
// so one MGET never carries much more than the page can use.
func (s *Store) fetchCount(lim store.Limits) int {
	mean := max(s.meanSize.Load(), 1)
	return int(min(int64(lim.MaxRecords), max(16, 2*int64(lim.MaxBytes)/mean+1)))
}

// noteSizes folds n payloads of total bytes into the mean payload size.
func (s *Store) noteSizes(n, total int) {
	if n == 0 {
		return
	}
	m := int64(total / n)
	old := s.meanSize.Load()
	s.meanSize.Store(old + (m-old)/4)
}

// mgetKeys returns the keys and their meta keys, for one MGET.
func mgetKeys(members []string) []string {
	keys := make([]string, 2*len(members))
	copy(keys, members)
	for i, m := range members {
		keys[len(members)+i] = metaOf(m)
	}
	return keys
}

// fillMeta sets r's time and index from its meta value, or derives them
// from the payload when there is none (a record the reference wrote).
func (s *Store) fillMeta(r *store.Record, meta any) {
	if v, ok := meta.(string); ok {
		t, ix, err := decodeMeta(v)
		if err == nil {
			r.Time, r.Index = t, ix
			return
		}
		s.log.Warn("unreadable record meta; deriving it from the payload",
			"partition", r.Partition, "offset", r.Offset, "err", err)
	}
	r.Time, r.Index = deriveMeta(r.Payload)
}

// ReadPartition implements store.Store: one ZRANGEBYSCORE with LIMIT and
// one MGET per page (M-700). Members whose payload expired are skipped
// and removed. With Limits.PayloadOnly the MGET skips the meta keys and
// Time and Index stay zero.
func (s *Store) ReadPartition(ctx context.Context, p int32, after int64, lim store.Limits) ([]store.Record, bool, error) {
	if err := s.check(ctx, "read partition"); err != nil {
		return nil, false, err
	}
	start := time.Now()
	out, more, err := s.readPartition(ctx, p, after, lim)
	s.obs.readDone(start, len(out), err)
	return out, more, err
}

func (s *Store) readPartition(ctx context.Context, p int32, after int64, lim store.Limits) ([]store.Record, bool, error) {
	lim = normLimits(lim)
	zk := s.partZKey(p)
	for round := 0; ; round++ {
		n := s.fetchCount(lim)
		members, err := s.rdb.ZRangeByScore(ctx, zk, &goredis.ZRangeBy{
			Min: "(" + strconv.FormatInt(after, 10), Max: "+inf", Count: int64(n) + 1,
		}).Result()
		if err != nil {
			return nil, false, s.wrap("read partition", err)
		}
		if len(members) == 0 {
			return nil, false, nil
		}
		more := len(members) > n
		members = members[:min(len(members), n)]
		keys := members
		if !lim.PayloadOnly {
			keys = mgetKeys(members)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, false, s.wrap("read partition", err)
		}
		var out []store.Record
		var gone []string
		size := 0
		for i, m := range members {
			v, ok := vals[i].(string)
			o, okOff := offsetOfMember(m)
			if !ok || !okOff {
				gone = append(gone, m)
				continue
			}
			if len(out) > 0 && size+len(v) > lim.MaxBytes {
				more = true
				break
			}
			size += len(v)
			r := store.Record{Partition: p, Offset: o, Payload: []byte(v)}
			if !lim.PayloadOnly {
				s.fillMeta(&r, vals[len(members)+i])
			}
			out = append(out, r)
		}
		s.forget(ctx, zk, p, gone)
		s.noteSizes(len(out), size)
		if len(out) > 0 || !more || round >= maxReadRounds {
			return out, more && len(out) > 0, nil
		}
		// The whole page had expired: go on after it.
		o, _ := offsetOfMember(members[len(members)-1])
		after = max(after, o)
	}
}

// forget removes members of a partition zset whose payload expired
// (reference §4.6: lazily, during reads), with an estimate of their bytes.
// Errors are logged only: the read itself succeeded.
func (s *Store) forget(ctx context.Context, zk string, p int32, members []string) {
	if len(members) == 0 {
		return
	}
	args := make([]any, 0, len(members)+1)
	args = append(args, itoa32(p))
	for _, m := range members {
		args = append(args, m)
	}
	if err := forgetScript.Run(ctx, s.rdb, []string{zk, s.bytesKey()}, args...).Err(); err != nil {
		s.log.Debug("could not remove expired index members", "key", zk, "members", len(members), "err", err)
	}
}

// threadEntry is one member of a thread zset, resolved.
type threadEntry struct {
	key store.ThreadKey
	rec store.Record
}

// ReadThread implements store.Store. Entries are ordered by (sequence,
// partition, offset) and de-duplicated. The sanitised key is read first;
// the legacy "h_" key only when the sanitised one holds nothing after
// `after` and differs (reference §4.4). Limits.PayloadOnly skips the MGET
// of the records' meta.
func (s *Store) ReadThread(ctx context.Context, threadID string, after store.ThreadKey, lim store.Limits) ([]store.ThreadRecord, bool, error) {
	if err := s.check(ctx, "read thread"); err != nil {
		return nil, false, err
	}
	if threadID == "" {
		return nil, false, nil
	}
	start := time.Now()
	lim = normLimits(lim)
	key := wire.SanitizeKey(threadID)
	out, more, found, err := s.readThreadKey(ctx, s.threadZKey(key), after, lim)
	if err == nil && !found {
		if legacy := wire.LegacyKey(threadID); legacy != key {
			out, more, _, err = s.readThreadKey(ctx, s.threadZKey(legacy), after, lim)
		}
	}
	s.obs.readDone(start, len(out), err)
	return out, more, err
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

// readThreadKey reads one page of the thread zset tz after `after`.
//
// Members of one sequence (one zset score) are ordered by Redis by name,
// not by (partition, offset) (the reference-format member carries them in
// its value only), so a page only uses whole score groups: it fetches
// MaxRecords+2 members from the cursor's sequence on, drops the last group
// when the fetch was full (it may be cut), and orders the rest itself. A
// single group larger than the fetch is read whole. found reports whether
// the zset had any member from the cursor's sequence on.
func (s *Store) readThreadKey(ctx context.Context, tz string, after store.ThreadKey, lim store.Limits) (out []store.ThreadRecord, more, found bool, err error) {
	minScore := strconv.FormatUint(after.Seq, 10)
	if after.Partition == math.MaxInt32 && after.Offset == math.MaxInt64 {
		minScore = "(" + minScore // AfterSeq: nothing of this sequence is wanted
	}
	fetch := s.fetchCount(lim) + 2
	for round := 0; ; round++ {
		zs, err := s.rdb.ZRangeByScoreWithScores(ctx, tz, &goredis.ZRangeBy{
			Min: minScore, Max: "+inf", Count: int64(fetch),
		}).Result()
		if err != nil {
			return nil, false, false, s.wrap("read thread", err)
		}
		if len(zs) == 0 {
			return nil, false, found, nil
		}
		found = true
		complete := len(zs) < fetch
		if !complete {
			last := zs[len(zs)-1].Score
			cut := len(zs) - 1
			for cut > 0 && zs[cut-1].Score == last {
				cut--
			}
			if cut > 0 {
				zs = zs[:cut]
			} else if zs, err = s.rdb.ZRangeByScoreWithScores(ctx, tz, &goredis.ZRangeBy{
				Min: formatScore(last), Max: formatScore(last),
			}).Result(); err != nil {
				return nil, false, false, s.wrap("read thread", err)
			}
		}
		members := make([]string, len(zs))
		for i, z := range zs {
			members[i], _ = z.Member.(string)
		}
		vals, err := s.rdb.MGet(ctx, members...).Result()
		if err != nil {
			return nil, false, false, s.wrap("read thread", err)
		}
		entries := make([]threadEntry, 0, len(members))
		var gone []string
		for i, m := range members {
			v, ok := vals[i].(string)
			if !ok {
				gone = append(gone, m)
				continue
			}
			seq, ok := seqOfMember(m)
			if !ok {
				seq = uint64(zs[i].Score)
			}
			p, o, payload := parseThreadValue(v)
			k := store.ThreadKey{Seq: seq, Partition: p, Offset: o}
			if compareKeys(k, after) <= 0 {
				continue
			}
			entries = append(entries, threadEntry{key: k, rec: store.Record{Partition: p, Offset: o, Payload: payload}})
		}
		if len(gone) > 0 {
			if err := s.rdb.ZRem(ctx, tz, anySlice(gone)...).Err(); err != nil {
				s.log.Debug("could not remove expired index members", "key", tz, "members", len(gone), "err", err)
			}
		}
		slices.SortFunc(entries, func(a, b threadEntry) int { return compareKeys(a.key, b.key) })
		entries = slices.CompactFunc(entries, func(a, b threadEntry) bool { return a.key == b.key })

		size, n := 0, 0
		for _, e := range entries {
			if n >= lim.MaxRecords || (n > 0 && size+len(e.rec.Payload) > lim.MaxBytes) {
				break
			}
			size += len(e.rec.Payload)
			out = append(out, store.ThreadRecord{Key: e.key, Record: e.rec})
			n++
		}
		if !lim.PayloadOnly {
			if err := s.threadMeta(ctx, out); err != nil {
				return nil, false, false, err
			}
		}
		more = n < len(entries) || !complete
		if len(out) > 0 || !more || round >= maxReadRounds {
			return out, more && len(out) > 0, found, nil
		}
		// Nothing after the cursor in the groups read: go on after them.
		minScore = "(" + formatScore(zs[len(zs)-1].Score)
	}
}

// threadMeta fills the time and index of thread records from their
// partition records' meta (one MGET), deriving them from the payload when
// there is none.
func (s *Store) threadMeta(ctx context.Context, recs []store.ThreadRecord) error {
	if len(recs) == 0 {
		return nil
	}
	keys := make([]string, len(recs))
	for i := range recs {
		keys[i] = metaOf(s.payloadKey(recs[i].Partition, recs[i].Offset))
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return s.wrap("read thread", err)
	}
	for i := range recs {
		s.fillMeta(&recs[i].Record, vals[i])
	}
	return nil
}

// formatScore prints a score so Redis parses the same double back.
func formatScore(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Bounds implements store.Store: the first and last members of the
// partition's zset (whose payloads may have expired since; reads skip
// those).
func (s *Store) Bounds(p int32) (oldest, latest int64, ok bool) {
	if s.closed.Load() {
		return -1, -1, false
	}
	ctx, cancel := s.opCtx()
	defer cancel()
	pipe := s.rdb.Pipeline()
	first := pipe.ZRange(ctx, s.partZKey(p), 0, 0)
	last := pipe.ZRange(ctx, s.partZKey(p), -1, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		_ = s.wrap("bounds", err)
		return -1, -1, false
	}
	if len(first.Val()) == 0 || len(last.Val()) == 0 {
		return -1, -1, false
	}
	o, ok1 := offsetOfMember(first.Val()[0])
	l, ok2 := offsetOfMember(last.Val()[0])
	if !ok1 || !ok2 {
		return -1, -1, false
	}
	return o, l, true
}

// Skipped implements store.Store.
func (s *Store) Skipped(p int32, from, to int64) ([]store.SkippedRange, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("redis: skipped: %w", store.ErrClosed)
	}
	if to <= from {
		return nil, nil
	}
	ctx, cancel := s.opCtx()
	defer cancel()
	sk := s.skipKey(p)
	pipe := s.rdb.Pipeline()
	// The range starting before `from` that may reach into it, then
	// every range starting in [from, to).
	before := pipe.ZRevRangeByScore(ctx, sk, &goredis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(from, 10), Count: 1,
	})
	inside := pipe.ZRangeByScore(ctx, sk, &goredis.ZRangeBy{
		Min: strconv.FormatInt(from, 10), Max: "(" + strconv.FormatInt(to, 10),
	})
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.wrap("skipped", err)
	}
	var out []store.SkippedRange
	for _, m := range append(before.Val(), inside.Val()...) {
		r, ok := parseSkip(p, m)
		if !ok {
			s.log.Warn("unreadable skipped range", "partition", p, "member", m)
			continue
		}
		if r.From < to && r.To > from {
			out = append(out, r)
		}
	}
	return out, nil
}

// parseSkip parses a skipped-range member "from:to:reason".
func parseSkip(p int32, m string) (store.SkippedRange, bool) {
	parts := strings.SplitN(m, ":", 3)
	if len(parts) != 3 {
		return store.SkippedRange{}, false
	}
	from, err1 := strconv.ParseInt(parts[0], 10, 64)
	to, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return store.SkippedRange{}, false
	}
	return store.SkippedRange{Partition: p, From: from, To: to, Reason: parts[2]}, true
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, v := range ss {
		out[i] = v
	}
	return out
}
