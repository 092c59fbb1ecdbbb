package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Kinds of sweep, as stored in P:meta "pending" while one runs, so an
// interrupted one is finished by the next Open or SetSource.
const (
	sweepReset  = "reset"  // keep P:meta and P:meta:* (offsets, skipped ranges)
	sweepSource = "source" // keep P:meta only
)

// SetSource implements store.Store. A different topic id than the stored
// one starts a new source: every key of the namespace but P:meta goes
// (SCAN + UNLINK) and the generation is 0. A buffer adopted from the
// reference server takes the first topic id it is told without being
// cleared (changed is false then).
func (s *Store) SetSource(ctx context.Context, topicID [16]byte) (bool, error) {
	if err := s.check(ctx, "set source"); err != nil {
		return false, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.check(ctx, "set source"); err != nil {
		return false, err
	}
	s.mu.RLock()
	same, adopt := topicID == s.topicID, s.adopt
	s.mu.RUnlock()
	idHex := hex.EncodeToString(topicID[:])
	if same {
		pending, err := s.rdb.HGet(ctx, s.metaKey(), "pending").Result()
		if errors.Is(err, goredis.Nil) || (err == nil && pending == "") {
			return false, nil
		}
		if err != nil {
			return false, s.wrap("set source", err)
		}
		if err := s.finishSweep(ctx, pending); err != nil {
			return false, err
		}
		return pending == sweepSource, nil
	}
	if adopt {
		pipe := s.rdb.TxPipeline()
		pipe.HSet(ctx, s.metaKey(), "topic", idHex)
		pipe.HDel(ctx, s.metaKey(), "adopt")
		if _, err := pipe.Exec(ctx); err != nil {
			return false, s.wrap("set source", err)
		}
		s.mu.Lock()
		s.topicID, s.adopt = topicID, false
		s.mu.Unlock()
		s.log.Info("adopted reference buffer now belongs to the topic", "topic_id", idHex, "epoch", s.Epoch())
		return false, nil
	}

	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, s.nextKey(), s.partsKey())
	pipe.HSet(ctx, s.metaKey(), "topic", idHex, "generation", "0", "pending", sweepSource)
	pipe.HDel(ctx, s.metaKey(), "last_batch", "adopt")
	if _, err := pipe.Exec(ctx); err != nil {
		return false, s.wrap("set source", err)
	}
	s.mu.Lock()
	s.topicID, s.generation, s.adopt = topicID, 0, false
	s.next, s.skipParts = map[int32]int64{}, map[int32]bool{}
	s.mu.Unlock()
	clear(s.runCache)
	if err := s.finishSweep(ctx, sweepSource); err != nil {
		return false, err
	}
	s.log.Info("new source: replay buffer cleared", "topic_id", idHex, "epoch", s.Epoch())
	return true, nil
}

// Reset implements store.Store: records, thread index, run summaries and
// byte counts go (SCAN + UNLINK in batches); next offsets and skipped
// ranges stay; the generation goes up by 1 first, so an interrupted clear
// never serves old records under the old epoch.
func (s *Store) Reset(ctx context.Context) (string, error) {
	if err := s.check(ctx, "reset"); err != nil {
		return "", err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.check(ctx, "reset"); err != nil {
		return "", err
	}
	pipe := s.rdb.TxPipeline()
	gen := pipe.HIncrBy(ctx, s.metaKey(), "generation", 1)
	pipe.HSet(ctx, s.metaKey(), "pending", sweepReset)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", s.wrap("reset", err)
	}
	s.mu.Lock()
	s.generation = uint64(gen.Val())
	s.mu.Unlock()
	clear(s.runCache)
	if err := s.finishSweep(ctx, sweepReset); err != nil {
		return "", err
	}
	epoch := s.Epoch()
	s.log.Info("replay buffer reset", "epoch", epoch)
	return epoch, nil
}

// finishSweep deletes the keys a sweep of this kind removes, then clears
// the pending mark.
func (s *Store) finishSweep(ctx context.Context, kind string) error {
	meta := s.metaKey()
	keep := func(k string) bool { return k == meta }
	if kind == sweepReset {
		keep = func(k string) bool { return k == meta || strings.HasPrefix(k, meta+":") }
	}
	n, err := s.sweep(ctx, keep)
	if err != nil {
		return fmt.Errorf("redis: clear namespace (%s, %d keys deleted so far; the next Open or SetSource finishes it): %w",
			kind, n, err)
	}
	if err := s.rdb.HDel(ctx, meta, "pending").Err(); err != nil {
		return s.wrap("clear namespace", err)
	}
	s.log.Debug("namespace cleared", "kind", kind, "keys", n)
	return nil
}

// sweep UNLINKs every key of the namespace keep refuses, SCAN page by SCAN
// page (never KEYS), and returns how many it deleted.
func (s *Store) sweep(ctx context.Context, keep func(string) bool) (int64, error) {
	var deleted int64
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, s.p+":*", scanCount).Result()
		if err != nil {
			return deleted, s.wrap("scan", err)
		}
		del := keys[:0]
		for _, k := range keys {
			if !keep(k) {
				del = append(del, k)
			}
		}
		if len(del) > 0 {
			n, err := s.rdb.Unlink(ctx, del...).Result()
			if err != nil {
				return deleted, s.wrap("unlink", err)
			}
			deleted += n
		}
		if next == 0 {
			return deleted, nil
		}
		cursor = next
	}
}
