package ingest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/store"
)

// reconcile compares the topic with the store (DECISIONS D11) and acts:
//
//   - a new topic id ⇒ new source in the store (D2), consumption restarts
//     from the reset policy (reason topic_recreated);
//   - a partition's log end behind the store's next offset ⇒ new source
//     too (reason log_truncated);
//   - a log start beyond the next offset ⇒ [next, start) is recorded as an
//     `evicted` skipped range and consumption continues from start;
//   - partitions not consumed yet are added.
//
// It runs at startup, after out-of-range / data-loss errors and when the
// monitor sees one of these conditions. Kafka errors are logged and leave
// things as they are (the monitor retries); store errors other than a
// closed store are retried on the next wake.
func (i *Ingester) reconcile(ctx context.Context, reason string) error {
	atStartup := reason == "startup"
	td, err := i.describeTopic(ctx)
	if err != nil {
		if ctx.Err() == nil && i.warnLog.allow() {
			i.log.Warn("topic check failed", "reason", reason, "err", err)
		}
		return nil
	}
	bctx, cancel := context.WithTimeout(ctx, boundsTimeout)
	if atStartup {
		cancel()
		bctx, cancel = context.WithTimeout(ctx, startupHeadsBudget)
	}
	starts, ends, berr := i.listBounds(bctx)
	cancel()
	if berr != nil && ctx.Err() == nil {
		i.log.Warn("log bounds unavailable", "reason", reason, "err", berr)
	}

	restart, err := i.checkTopicID(ctx, td.ID, ends)
	if err != nil {
		return err
	}
	if !restart && berr == nil {
		for _, p := range slices.Sorted(maps.Keys(i.next)) {
			n := i.next[p]
			if end, ok := ends[p]; ok && end < n {
				i.log.Error("Kafka log end is behind the store: the log was truncated or replaced; starting a new source",
					"partition", p, "log_end", end, "store_next", n)
				if err := i.newSource(ctx, ResetLogTruncated, td.ID, ends); err != nil {
					return err
				}
				restart = true
				break
			}
		}
	}
	if atStartup {
		i.heads.reset(ends)
		for p, e := range ends {
			if n, ok := i.next[p]; ok {
				i.heads.track(p, n)
			} else if s, ok := starts[p]; ok && i.cfg.AutoOffsetReset == ResetEarliest {
				i.heads.track(p, s)
			} else if i.cfg.AutoOffsetReset == ResetLatest {
				i.heads.track(p, e)
			}
		}
	}
	if !restart && berr == nil {
		bb := newBatchBuilder(i.cfg.BatchMaxRecords, i.cfg.BatchMaxBytes)
		var moved []int32
		for _, p := range slices.Sorted(maps.Keys(i.next)) {
			n := i.next[p]
			if s, ok := starts[p]; ok && s > n {
				i.log.Error("records evicted from Kafka before ingest read them", "partition", p, "from", n, "to", s, "count", s-n)
				bb.evict(p, n, s)
				moved = append(moved, p)
			}
		}
		if !bb.empty() {
			if err := i.flush(ctx, bb); err != nil {
				if errors.Is(err, store.ErrClosed) || errors.Is(err, errResync) {
					return err
				}
				i.wake(reason)
				return nil
			}
			if i.cons != nil {
				set := map[int32]kgo.EpochOffset{}
				for _, p := range moved {
					set[p] = kgo.EpochOffset{Epoch: -1, Offset: i.next[p]}
					// A partition paused at a record Kafka has since
					// deleted has nothing left to stop at.
					if o, paused := i.decodePaused[p]; paused && o < i.next[p] {
						i.resumeDecode(p)
					}
				}
				i.cons.SetOffsets(map[string]map[int32]kgo.EpochOffset{i.cfg.Topic: set})
			}
		}
	}
	if restart || (i.cons == nil && !atStartup) {
		return i.startConsumer(ctx, true)
	}
	i.addPartitions(td)
	return nil
}

// checkTopicID tells the store the topic id. A different id than the one
// ingest knows starts a new source when the store held anything.
func (i *Ingester) checkTopicID(ctx context.Context, id [16]byte, ends map[int32]int64) (restart bool, err error) {
	if id == ([16]byte{}) || id == i.topicID {
		return false, nil // no topic ids on this broker: the store keeps its own random id (D2)
	}
	hadState := len(i.db.IngestOffsets()) > 0 || len(i.db.Partitions()) > 0
	changed, err := i.db.SetSource(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrClosed) {
			return false, fmt.Errorf("ingest: set source: %w", err)
		}
		i.log.Warn("store SetSource failed; retrying later", "err", err)
		return false, nil
	}
	first := i.topicID == ([16]byte{})
	i.topicID = id
	i.setTopicIDStatus()
	if !changed {
		return false, nil
	}
	if !hadState {
		i.next = map[int32]int64{}
		i.publishNext(nil)
		return false, nil
	}
	i.log.Error("Kafka topic was recreated (new topic id): the store starts a new source and its old history is dropped",
		"topic_id", hex.EncodeToString(id[:]), "epoch", i.db.Epoch(), "at_startup", first)
	i.afterNewSource(ResetTopicRecreated, ends)
	return true, nil
}

// newSource starts a new source in the store for the current topic id
// (log truncated: same topic id, history gone). The store only starts a
// new source when the id differs, so a different id is set first; with
// no topic ids on the broker a new random id is used (D2).
func (i *Ingester) newSource(ctx context.Context, reason string, id [16]byte, ends map[int32]int64) error {
	oldEpoch := i.db.Epoch()
	if id == ([16]byte{}) {
		id = randomID()
	} else {
		tmp := id
		tmp[15] ^= 0xff
		if _, err := i.db.SetSource(ctx, tmp); err != nil {
			return fmt.Errorf("ingest: new source: %w", err)
		}
	}
	if _, err := i.db.SetSource(ctx, id); err != nil {
		return fmt.Errorf("ingest: new source: %w", err)
	}
	// A new source of the same topic id starts at generation 0 again: if
	// the history it replaces was at 0 too, the epoch would not change and
	// old cursors would pass for current ones (D2). One more generation
	// tells the histories apart.
	if i.db.Epoch() == oldEpoch {
		if _, err := i.db.Reset(ctx); err != nil {
			return fmt.Errorf("ingest: new source: next generation: %w", err)
		}
	}
	i.topicID = id
	i.setTopicIDStatus()
	i.afterNewSource(reason, ends)
	return nil
}

// afterNewSource resets ingest's per-source state.
func (i *Ingester) afterNewSource(reason string, ends map[int32]int64) {
	i.m.StoreResets.WithLabelValues(reason).Inc()
	i.next = i.db.IngestOffsets()
	i.decodePaused = map[int32]int64{}
	i.m.Paused.WithLabelValues(PauseDecode).Set(0)
	i.mu.Lock()
	i.stat.decodePaused = map[int32]int64{}
	i.stat.decodeOrder = nil
	i.stat.advanced = map[int32]time.Time{}
	i.mu.Unlock()
	i.publishNext(nil)
	i.heads.reset(ends)
	i.seq = NewSequenceValidator(0)
	epoch := i.db.Epoch()
	i.log.Error("new store source", "reason", reason, "epoch", epoch)
	if sn, ok := i.notify.(SourceNotifier); ok {
		sn.SourceChanged(epoch)
	}
}

func (i *Ingester) setTopicIDStatus() {
	i.mu.Lock()
	i.stat.topicID = hex.EncodeToString(i.topicID[:])
	i.stat.topicIDRaw = i.topicID
	i.mu.Unlock()
}

// addPartitions starts consuming partitions of td not consumed yet: from
// the store's next offset, else from the log start.
func (i *Ingester) addPartitions(td kadm.TopicDetail) {
	if i.cons == nil {
		return
	}
	add := map[int32]kgo.Offset{}
	for _, p := range td.Partitions.Numbers() {
		if !i.consumed[p] {
			add[p] = i.startOffset(p, false)
			i.consumed[p] = true
		}
	}
	if len(add) == 0 {
		return
	}
	i.publishConsumed()
	i.log.Info("new partitions discovered", "offsets", fmtOffsets(add))
	i.cons.AddConsumePartitions(map[string]map[int32]kgo.Offset{i.cfg.Topic: add})
}
