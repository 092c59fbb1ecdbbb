package hub

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/dashstream/dashstream/store"
)

// resume runs one `resume` request to its replay_complete.
func (c *conn) resume(r *resumeRequest) error {
	m := c.h.metrics
	mode := r.Mode
	if m != nil {
		m.ResumeRequests.WithLabelValues(mode).Inc()
	}
	if len(r.Skipped) > 0 {
		c.h.log.Info("resume entries skipped", "ip", c.ip, "skipped", r.Skipped)
	}
	epoch := c.h.Epoch()
	stale := r.Epoch != "" && r.Epoch != epoch
	if stale {
		if err := c.sendText(mustJSON(staleFrame{Type: "cursor_stale", Reason: "epoch", Epoch: epoch,
			Message: "cursors belong to another history (epoch " + r.Epoch + "); replaying from the oldest retained record"})); err != nil {
			return err
		}
	}
	if mode == ModeThread {
		return c.resumeThreads(r)
	}
	start := time.Now()
	c.capped = map[int32]bool{}
	c.live = false
	next := c.h.tail.Next()

	if r.From == FromLatest {
		last := map[int32]int64{}
		for p, n := range next {
			c.cursors[p] = n - 1
			if n > 0 {
				last[p] = n - 1
			}
		}
		f := false
		return c.sendText(mustJSON(replayCompleteFrame{Type: "replay_complete", Mode: FromLatest,
			LastOffsetsByPartition: offsetsJSON(last), Capped: &f, Epoch: epoch}))
	}

	c.cursors = map[int32]int64{}
	if r.From == FromCursor && !stale {
		for p, o := range r.Offsets {
			c.cursors[p] = o
		}
	}
	// Replay up to what is committed now; what follows is live delivery.
	target := next
	for p := range c.cursors {
		if _, ok := target[p]; !ok {
			target[p] = 0
		}
	}
	c.replaying = true
	defer func() { c.replaying = false }()
	replayed := map[int32]int64{}
	var total int64
	capped := false
	lastProgress := time.Now()
	for {
		budget := 0
		if mx := c.h.cfg.ReplayMaxTotal; mx > 0 {
			budget = mx - int(total)
			if budget <= 0 {
				capped = c.capBehind(target)
				break
			}
		}
		before := c.snapshot(target)
		sent, err := c.deliver(target, budget)
		if err != nil {
			return err
		}
		total += int64(sent)
		for p, o := range c.cursors {
			if o > before[p] && o < target[p] {
				replayed[p] = o
			}
		}
		if !c.behind(target) {
			break
		}
		if sent > 0 {
			lastProgress = time.Now()
		} else if time.Since(lastProgress) > c.h.cfg.ReplayTimeout {
			_ = c.sendText(mustJSON(errorFrame{Type: "error", Code: ErrCodeReplayTimeout,
				Message: fmt.Sprintf("replay made no progress for %s", c.h.cfg.ReplayTimeout)}))
			return closeError{CloseReplayTimeout, "replay timeout"}
		} else {
			time.Sleep(10 * time.Millisecond)
		}
		if err := c.pollControls(); err != nil {
			return err
		}
	}
	if m != nil {
		m.ReplayMessages.WithLabelValues(ModePartition).Add(float64(total))
		m.ReplayLatency.WithLabelValues(ModePartition).Observe(float64(time.Since(start).Milliseconds()))
	}
	return c.sendText(mustJSON(replayCompleteFrame{Type: "replay_complete", Mode: r.From,
		TotalReplayed: total, LastOffsetsByPartition: offsetsJSON(replayed), Capped: &capped, Epoch: epoch}))
}

func (c *conn) snapshot(target map[int32]int64) map[int32]int64 {
	out := make(map[int32]int64, len(target))
	for p := range target {
		out[p] = c.cursor(p)
	}
	return out
}

// behind reports whether any partition is still below its replay target.
func (c *conn) behind(target map[int32]int64) bool {
	for p, t := range target {
		if !c.capped[p] && c.cursor(p)+1 < t {
			return true
		}
	}
	return false
}

// capBehind holds back every partition still below its target until the
// client resumes again (DECISIONS D4).
func (c *conn) capBehind(target map[int32]int64) bool {
	any := false
	for p, t := range target {
		if c.cursor(p)+1 < t {
			c.capped[p] = true
			any = true
		}
	}
	return any
}

// pollControls answers pings during a long replay and keeps other control
// frames for after it.
func (c *conn) pollControls() error {
	for {
		select {
		case ctl := <-c.ctrl:
			switch ctl.Type {
			case "ping":
				if err := c.sendText(pongFrame); err != nil {
					return err
				}
			case "oversized", "limit":
				return c.handle(ctl)
			default:
				c.stash = append(c.stash, ctl)
			}
		default:
			return nil
		}
	}
}

// resumeThreads replays the given threads through the thread index, with
// cursor frames. A record indexed under several threads is sent once per
// resume; offsets may step back between threads.
func (c *conn) resumeThreads(r *resumeRequest) error {
	start := time.Now()
	ids := make([]string, 0, len(r.Threads))
	for id := range r.Threads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	type po struct {
		p int32
		o int64
	}
	seen := map[po]bool{}
	var total int64
	capped := false
	mx := c.h.cfg.ReplayMaxTotal
	c.replaying = true
	defer func() { c.replaying = false }()
threads:
	for _, id := range ids {
		after := store.AfterSeq(r.Threads[id])
		for {
			c.setStoreReader(true)
			recs, more, err := c.h.st.ReadThread(c.ctx, id, after, store.Limits{MaxRecords: c.h.cfg.PageRecords, MaxBytes: c.storePageBytes(), PayloadOnly: true})
			if err != nil {
				return fmt.Errorf("reading thread %q: %w", truncateForLog(id), err)
			}
			for _, tr := range recs {
				after = tr.Key
				k := po{tr.Partition, tr.Offset}
				if seen[k] {
					continue
				}
				if mx > 0 && total >= int64(mx) {
					capped = true
					break threads
				}
				seen[k] = true
				if err := c.sendEntry(newConnEntry(tr.Partition, tr.Offset, tr.Payload, c.batch)); err != nil {
					return err
				}
				total++
			}
			if !more || len(recs) == 0 {
				break
			}
			if err := c.pollControls(); err != nil {
				return err
			}
		}
	}
	if m := c.h.metrics; m != nil {
		m.ReplayMessages.WithLabelValues(ModeThread).Add(float64(total))
		m.ReplayLatency.WithLabelValues(ModeThread).Observe(float64(time.Since(start).Milliseconds()))
	}
	f := replayCompleteFrame{Type: "replay_complete", Mode: ModeThread, TotalReplayed: total, Epoch: c.h.Epoch()}
	if capped {
		f.Capped = &capped
	}
	return c.sendText(mustJSON(f))
}

// cursorReset handles `cursor_reset` (DECISIONS D5): only with the admin
// token; it resets the store, which moves every client to a new epoch.
func (c *conn) cursorReset(token string) error {
	adminToken := c.h.cfg.AdminToken
	if adminToken == "" || !(c.admin || tokenMatches(token, adminToken)) {
		if m := c.h.metrics; m != nil {
			m.RejectedLimit.WithLabelValues("cursor_reset").Inc()
		}
		msg := "cursor_reset needs the admin token (DASHSTREAM_ADMIN_TOKEN)"
		if adminToken == "" {
			msg = "cursor_reset is disabled: no admin token is configured (DASHSTREAM_ADMIN_TOKEN)"
		}
		c.h.log.Warn("cursor_reset refused", "ip", c.ip)
		return c.sendText(mustJSON(errorFrame{Type: "error", Code: ErrCodeResetRefused, Message: msg}))
	}
	next := c.h.tail.Next()
	ps := make([]int32, 0, len(next))
	for p := range next {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	latest := map[int32]int64{}
	for i, p := range ps {
		if i == 100 {
			break
		}
		latest[p] = next[p] - 1
	}
	// A commit racing the reset may see the new epoch first and close
	// every connection; this one stays open until its reply is out.
	c.resetting.Store(true)
	defer c.resetting.Store(false)
	newEpoch, err := c.h.st.Reset(c.ctx)
	if err != nil {
		c.h.log.Error("cursor_reset failed", "ip", c.ip, "err", err)
		return c.sendText(mustJSON(resetCompleteFrame{Type: "cursor_reset_complete", LatestOffsetsByPartition: offsetsJSON(latest),
			BufferCleared: false, Truncated: len(ps) > 100, TotalPartitions: len(ps), Epoch: c.h.Epoch(),
			Message: "reset failed: " + err.Error()}))
	}
	c.h.log.Warn("cursor_reset: replay buffer cleared", "ip", c.ip, "epoch", newEpoch)
	if err := c.sendText(mustJSON(resetCompleteFrame{Type: "cursor_reset_complete", LatestOffsetsByPartition: offsetsJSON(latest),
		BufferCleared: true, Truncated: len(ps) > 100, TotalPartitions: len(ps), Epoch: newEpoch,
		Message: "replay buffer cleared; new epoch " + newEpoch + " (" + strconv.Itoa(len(ps)) + " partitions)"})); err != nil {
		return err
	}
	if c.h.OnReset != nil {
		c.h.OnReset(newEpoch)
	}
	c.h.checkEpoch() // closes every other connection with 4001
	c.closeWith(CloseEpochChanged, "epoch_changed")
	return nil
}
