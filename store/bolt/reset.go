package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Reset removes records, thread index and run summaries, keeps the next
// ingest offsets and adds 1 to the generation (DECISIONS D3).
//
// The switch is one short transaction: the data buckets move into trash
// (bbolt MoveBucket only rewrites the parent) and empty ones take their
// place, so the new epoch is atomic. The trash is then deleted in chunks
// of at most ChunkKeys keys, so no transaction grows large; a crash
// mid-way leaves trash that the next Open drains.
func (s *Store) Reset(ctx context.Context) (string, error) {
	st, err := s.switchOut(ctx, false, [16]byte{})
	if err != nil {
		return "", err
	}
	return st.epoch(), nil
}

// SetSource records the Kafka topic id. A different id than the stored
// one starts a new source: records, thread index, runs, offsets and
// skipped ranges are cleared and the generation goes back to 0.
func (s *Store) SetSource(ctx context.Context, topicID [16]byte) (bool, error) {
	if s.state().topic == topicID {
		return false, nil
	}
	if _, err := s.switchOut(ctx, true, topicID); err != nil {
		return false, err
	}
	return true, nil
}

// switchOut moves the data (and for a new source the offsets and skipped
// ranges) to trash, sets the generation and topic, then drains the trash.
func (s *Store) switchOut(ctx context.Context, source bool, topic [16]byte) (*state, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.opts.ReadOnly {
		return nil, fmt.Errorf("store %s is open read-only", s.path)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return nil, s.errClosed()
	}
	old := s.state()
	if source && old.topic == topic {
		return old, nil // raced with another SetSource
	}
	next := old.clone()
	next.threads = 0
	next.fullLatest = false
	next.trash = true
	if source {
		next.topic, next.gen = topic, 0
		next.parts = map[int32]*partState{}
	} else {
		next.gen++
		for p, ps := range next.parts {
			ps.oldest, ps.latest, ps.oldestTime, ps.c = -1, -1, time.Time{}, pstat{}
			if ps.next < 0 && ps.skips == 0 {
				delete(next.parts, p)
			}
		}
	}
	move := dataBuckets
	if source {
		move = append(append([][]byte(nil), dataBuckets...), sourceBuckets...)
	}
	err := s.update(func(tx *bbolt.Tx) error {
		meta, trash := tx.Bucket(bMeta), tx.Bucket(bTrash)
		seq, _ := getBE64(meta.Get(kTrashSeq))
		seq++
		dst, err := trash.CreateBucket(be64(seq))
		if err != nil {
			return err
		}
		for _, name := range move {
			if err := tx.MoveBucket(name, nil, dst); err != nil {
				return fmt.Errorf("move %s to trash: %w", name, err)
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		// Partition counters (and for a new source the next offsets).
		var dead [][]byte
		c := meta.Cursor()
		for _, pfx := range [][]byte{kStatPfx, kNextPfx} {
			if !source && string(pfx) == string(kNextPfx) {
				continue
			}
			for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
				dead = append(dead, bytes.Clone(k))
			}
		}
		for _, k := range dead {
			if err := meta.Delete(k); err != nil {
				return err
			}
		}
		for _, kv := range [][2][]byte{
			{kTrashSeq, be64(seq)},
			{kGen, be64(next.gen)},
			{kTopic, next.topic[:]},
			{kThreads, be64(0)},
		} {
			if err := meta.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		if err := s.hook("reset"); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: reset: %w", s.path, err)
	}
	s.setState(next)
	reason := "reset"
	if source {
		reason = "new source"
	}
	s.log.Info("store cleared", "path", s.path, "reason", reason, "epoch", next.epoch())
	if err := s.drainTrash(ctx); err != nil {
		// The epoch switched; what is left in trash drains later.
		s.log.Warn("store trash not drained", "path", s.path, "err", err)
	}
	return next, nil
}

// drainTrash deletes the trash in transactions of at most ChunkKeys keys.
// ctx (may be nil) stops it early; the rest drains on a later call. The
// caller holds wmu (or is Open).
func (s *Store) drainTrash(ctx context.Context) error {
	for {
		if ctx != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		var done bool
		err := s.update(func(tx *bbolt.Tx) error {
			if s.opts.drainWhole { // measurement only: one DeleteBucket
				if err := tx.DeleteBucket(bTrash); err != nil {
					return err
				}
				_, err := tx.CreateBucket(bTrash)
				done = true
				return err
			}
			budget := s.chunk
			empty, err := drainBucket(tx.Bucket(bTrash), &budget)
			if err != nil {
				return err
			}
			done = empty
			if err := s.hook("drain"); err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store %s: drain trash: %w", s.path, err)
		}
		if done {
			st := s.state().clone()
			st.trash = false
			s.setState(st)
			return nil
		}
	}
}

// drainBucket deletes keys and nested buckets of b depth first, spending at
// most *budget key deletions. It reports whether b is now empty.
func drainBucket(b *bbolt.Bucket, budget *int) (bool, error) {
	var dead, deadBuckets [][]byte
	c := b.Cursor()
	k, v := c.First()
	for ; k != nil && *budget > 0; k, v = c.Next() {
		if v != nil {
			dead = append(dead, append([]byte(nil), k...))
			*budget--
			continue
		}
		sub := b.Bucket(k)
		if sub.Root() == 0 {
			// Inline bucket: deleting it frees no pages and costs little.
			deadBuckets = append(deadBuckets, append([]byte(nil), k...))
			*budget--
			continue
		}
		empty, err := drainBucket(sub, budget)
		if err != nil {
			return false, err
		}
		if empty {
			deadBuckets = append(deadBuckets, append([]byte(nil), k...))
			*budget--
		}
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return false, err
		}
	}
	for _, k := range deadBuckets {
		if err := b.DeleteBucket(k); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return false, err
		}
	}
	return firstKey(b) == nil, nil
}

func firstKey(b *bbolt.Bucket) []byte {
	k, _ := b.Cursor().First()
	return k
}
