package redis

import (
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dashstream/dashstream/store"
)

// Stats implements store.Store. Records are zset members: members whose
// payload expired count until a read or count retention removes them.
// RawBytes (= StoredBytes: payloads are stored as received) is kept
// exactly by Append and count retention; members found expired take an
// estimate off. Threads is the number of run summaries. FileBytes is 0.
// When Redis does not answer, the cached epoch, generation and next
// offsets are reported without counts.
func (s *Store) Stats() store.Stats {
	st := store.Stats{Kind: "redis", Retention: s.retention}
	if s.closed.Load() {
		return st
	}
	s.mu.RLock()
	st.Generation = s.generation
	next := make(map[int32]int64, len(s.next))
	for p, n := range s.next {
		next[p] = n
	}
	s.mu.RUnlock()
	st.Epoch = s.Epoch()
	parts := s.Partitions()

	ctx, cancel := s.opCtx()
	defer cancel()
	pipe := s.rdb.Pipeline()
	bytesCmd := pipe.HGetAll(ctx, s.bytesKey())
	runsCmd := pipe.HLen(ctx, s.runsKey())
	cards := make([]*goredis.IntCmd, len(parts))
	firsts := make([]*goredis.StringSliceCmd, len(parts))
	lasts := make([]*goredis.StringSliceCmd, len(parts))
	for i, p := range parts {
		cards[i] = pipe.ZCard(ctx, s.partZKey(p))
		firsts[i] = pipe.ZRange(ctx, s.partZKey(p), 0, 0)
		lasts[i] = pipe.ZRange(ctx, s.partZKey(p), -1, -1)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		_ = s.wrap("stats", err)
	}
	byteCounts := bytesCmd.Val()
	st.Threads = runsCmd.Val()
	var oldestMeta []string
	for i, p := range parts {
		ps := store.PartitionStats{Partition: p, Oldest: -1, Latest: -1, NextOffset: -1}
		if n, ok := next[p]; ok {
			ps.NextOffset = n
		}
		if err == nil {
			ps.Records = cards[i].Val()
			if ps.Records > 0 {
				ps.RawBytes, _ = strconv.ParseInt(byteCounts[itoa32(p)], 10, 64)
				ps.RawBytes = max(ps.RawBytes, 0)
				ps.StoredBytes = ps.RawBytes
				if f := firsts[i].Val(); len(f) > 0 {
					ps.Oldest, _ = offsetOfMember(f[0])
					oldestMeta = append(oldestMeta, metaOf(f[0]))
				}
				if l := lasts[i].Val(); len(l) > 0 {
					ps.Latest, _ = offsetOfMember(l[0])
				}
			}
		}
		st.Records += ps.Records
		st.RawBytes += ps.RawBytes
		st.StoredBytes += ps.StoredBytes
		st.Partitions = append(st.Partitions, ps)
	}
	if len(oldestMeta) > 0 {
		vals, err := s.rdb.MGet(ctx, oldestMeta...).Result()
		if err != nil {
			_ = s.wrap("stats", err)
			return st
		}
		for _, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			if t, _, err := decodeMeta(str); err == nil && !t.IsZero() && (st.OldestTime.IsZero() || t.Before(st.OldestTime)) {
				st.OldestTime = t
			}
		}
	}
	return st
}
