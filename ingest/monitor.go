package ingest

import (
	"context"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// lagWarnThreshold is the lag above which the monitor warns (reference §5.7).
const lagWarnThreshold = 1000

// monitor runs every LagCheckInterval: the lag and offset-age gauges
// (reference §5.7), the D11 checks (topic id, log start/end against the
// store's next offsets), partition discovery, and the optional group
// commit. Whatever needs the store or the consumer is handed to the Run
// goroutine through wake.
func (i *Ingester) monitor(ctx context.Context) {
	t := time.NewTicker(i.cfg.LagCheckInterval)
	defer t.Stop()
	known := map[int32]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		i.checkOnce(ctx, known)
	}
}

// checkOnce is one monitor pass; known carries the partitions that have
// lag gauges from one pass to the next.
func (i *Ingester) checkOnce(ctx context.Context, known map[int32]bool) {
	// Snapshot next offsets before fetching the log ends, so that a log
	// end read later can only be ahead of these in a healthy log.
	i.mu.Lock()
	next := maps.Clone(i.stat.next)
	advanced := maps.Clone(i.stat.advanced)
	i.mu.Unlock()

	td, terr := i.describeTopic(ctx)
	t0 := time.Now()
	lctx, cancel := context.WithTimeout(ctx, boundsTimeout)
	starts, ends, err := i.listBounds(lctx)
	cancel()
	dur := time.Since(t0).Seconds()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		i.m.LagPollFailures.Inc()
		i.m.LagPollDuration.WithLabelValues("error").Observe(dur)
		i.log.Debug("lag check failed", "err", err)
	} else {
		i.m.LagPollDuration.WithLabelValues("success").Observe(dur)
	}

	present := map[int32]bool{}
	if terr == nil {
		for _, p := range td.Partitions.Numbers() {
			present[p] = true
		}
		// Partitions that went away (topic recreated with fewer
		// partitions): drop their gauges.
		for p := range known {
			if !present[p] {
				i.m.ConsumerLag.DeleteLabelValues(partLabel(p))
				i.m.LagOffsetAge.DeleteLabelValues(partLabel(p))
				i.m.CatchupPhase.DeleteLabelValues(partLabel(p))
				delete(known, p)
			}
		}
	}

	now := time.Now()
	reason := ""
	if err == nil {
		for p, end := range ends {
			if terr == nil && !present[p] {
				continue
			}
			pos, ok := next[p]
			if !ok {
				pos = starts[p] // nothing ingested yet: everything retained is lag
			}
			lag := max(0, end-pos)
			i.m.ConsumerLag.WithLabelValues(partLabel(p)).Set(float64(lag))
			if lag > lagWarnThreshold && i.warnLog.allow() {
				i.log.Warn("consumer lag is high", "partition", p, "lag", lag)
			}
			age := 0.0
			if at, ok := advanced[p]; ok {
				age = now.Sub(at).Seconds()
			}
			i.m.LagOffsetAge.WithLabelValues(partLabel(p)).Set(age)
			if lag > 0 && age > i.cfg.LagStalePartition.Seconds() && i.warnLog.allow() {
				i.log.Warn("partition offset has not advanced", "partition", p, "age_seconds", int64(age), "lag", lag)
			}
			known[p] = true
			if n, ok := next[p]; ok {
				i.heads.track(p, n)
				switch {
				case end < n:
					reason = "log_end_behind_store"
				case starts[p] > n && reason == "":
					reason = "log_start_beyond_store"
				}
			}
		}
	}
	if terr == nil {
		if td.ID != ([16]byte{}) && i.knownTopicID() != ([16]byte{}) && td.ID != i.knownTopicID() {
			reason = "topic_id_changed"
		}
		if reason == "" {
			for p := range present {
				if !i.isConsumed(p) {
					reason = "new_partitions"
					break
				}
			}
		}
	}
	if reason != "" {
		i.log.Info("broker state changed; reconciling", "reason", reason)
		i.wake(reason)
	}
	if i.cfg.CommitGroupOffsets && err == nil && len(next) > 0 && time.Since(i.lastCommitTime()) >= i.cfg.GroupCommitInterval {
		i.commitGroup(ctx, next)
	}
}

// knownTopicID and isConsumed read Run-goroutine state for the monitor.
func (i *Ingester) knownTopicID() [16]byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stat.topicIDRaw
}

func (i *Ingester) isConsumed(p int32) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stat.consumed[p]
}

func (i *Ingester) lastCommitTime() time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stat.lastCommit
}

// commitGroup commits the store's next offsets to KAFKA_GROUP_ID for
// external lag tools. It is never read back: the store is the resume point.
func (i *Ingester) commitGroup(ctx context.Context, next map[int32]int64) {
	os := kadm.Offsets{}
	for p, n := range next {
		os.Add(kadm.Offset{Topic: i.cfg.Topic, Partition: p, At: n, LeaderEpoch: -1})
	}
	cctx, cancel := context.WithTimeout(ctx, boundsTimeout)
	defer cancel()
	resp, err := i.adm.CommitOffsets(cctx, i.cfg.GroupID, os)
	if err == nil {
		err = resp.Error()
	}
	i.mu.Lock()
	i.stat.lastCommit = time.Now()
	i.mu.Unlock()
	if err != nil {
		i.log.Debug("group offset commit failed (informational only)", "group", i.cfg.GroupID, "err", err)
	}
}
