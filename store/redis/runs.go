package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// runChunk is how many run ids one round of Runs reads at least.
const runChunk = 200

// Runs implements store.Store. It walks P:runs:updated from the newest
// (or from the cursor) in chunks of whole score groups, reads the
// summaries with HMGET and applies store.PageRuns' rules, so an unfiltered
// page reads about Limit summaries, not all of them.
func (s *Store) Runs(ctx context.Context, q store.RunQuery) ([]store.RunSummary, string, error) {
	if err := s.check(ctx, "runs"); err != nil {
		return nil, "", err
	}
	q = q.Normalized()
	var after *store.RunCursor
	hi := "+inf"
	if q.Before != "" {
		c, err := store.DecodeRunCursor(q.Before)
		if err != nil {
			return nil, "", fmt.Errorf("redis: runs: %w", err)
		}
		after = &c
		hi = cursorScore(c.UpdatedAt)
	}
	chunk := max(q.Limit+1, runChunk)
	var sel []store.RunSummary
	for {
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, s.runsUpdatedKey(), &goredis.ZRangeBy{
			Min: "-inf", Max: hi, Count: int64(chunk),
		}).Result()
		if err != nil {
			return nil, "", s.wrap("runs", err)
		}
		if len(zs) == 0 {
			break
		}
		complete := len(zs) < chunk
		if !complete {
			// Keep whole score groups: the order within one is by
			// thread id, which Redis does not give for a cut group.
			last := zs[len(zs)-1].Score
			cut := len(zs) - 1
			for cut > 0 && zs[cut-1].Score == last {
				cut--
			}
			if cut > 0 {
				zs = zs[:cut]
			} else if zs, err = s.rdb.ZRevRangeByScoreWithScores(ctx, s.runsUpdatedKey(), &goredis.ZRangeBy{
				Min: formatScore(last), Max: formatScore(last),
			}).Result(); err != nil {
				return nil, "", s.wrap("runs", err)
			}
			hi = "(" + formatScore(last)
		}
		ids := make([]string, len(zs))
		for i, z := range zs {
			ids[i], _ = z.Member.(string)
		}
		vals, err := s.rdb.HMGet(ctx, s.runsKey(), ids...).Result()
		if err != nil {
			return nil, "", s.wrap("runs", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			sum, err := decodeRun(str)
			if err != nil {
				s.log.Warn("unreadable run summary skipped", "thread_key", ids[i], "err", err)
				continue
			}
			if q.Matches(sum) && (after == nil || after.Precedes(sum)) {
				sel = append(sel, sum)
			}
		}
		if complete || len(sel) > q.Limit || math.IsInf(zs[len(zs)-1].Score, -1) {
			break
		}
	}
	slices.SortFunc(sel, store.CompareRuns)
	if len(sel) <= q.Limit {
		return sel, "", nil
	}
	sel = sel[:q.Limit:q.Limit]
	return sel, store.CursorOf(sel[len(sel)-1]).Encode(), nil
}

// cursorScore is the highest runs:updated score a page after a cursor with
// this UpdatedAt key (store.RunTimeKey, nanoseconds) can hold.
func cursorScore(key int64) string {
	if key == math.MinInt64 {
		return "-inf"
	}
	us := key / 1000
	if key < 0 && key%1000 != 0 {
		us--
	}
	return strconv.FormatInt(us, 10)
}

// Run implements store.Store.
func (s *Store) Run(ctx context.Context, threadID string) (store.RunSummary, bool, error) {
	if err := s.check(ctx, "run"); err != nil {
		return store.RunSummary{}, false, err
	}
	v, err := s.rdb.HGet(ctx, s.runsKey(), wire.SanitizeKey(threadID)).Result()
	if errors.Is(err, goredis.Nil) {
		return store.RunSummary{}, false, nil
	}
	if err != nil {
		return store.RunSummary{}, false, s.wrap("run", err)
	}
	sum, err := decodeRun(v)
	if err != nil {
		return store.RunSummary{}, false, fmt.Errorf("redis: run %q: %w", threadID, err)
	}
	if sum.ThreadID != threadID {
		return store.RunSummary{}, false, nil // another id with the same key
	}
	return sum, true, nil
}
