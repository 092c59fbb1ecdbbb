package hub

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/dashstream/dashstream/store"
)

// errReplayTimeout ends a resume that ran out of its REPLAY_TIMEOUT_SECS
// budget; it is checked before each record, never between a cursor frame
// and its binary frame.
var errReplayTimeout = errors.New("replay timeout")

// resume runs one `resume` request to its replay_complete, bounded by
// REPLAY_TIMEOUT_SECS as DECISIONS D4 says. With REPLAY_MAX_TOTAL set, a
// resume is bounded in size and the timeout wraps the whole of it, as in
// the reference (§3.6.1, §10.2 #19). Without a cap a resume pages through
// whatever backlog the store retains, so the timeout bounds the time
// without progress instead: every record sent moves the deadline on, and
// a large replay to a client that keeps reading never times out. Once the
// deadline passes no further record is sent (never half a cursor/binary
// pair): the client gets `error REPLAY_TIMEOUT` and close 4004, and
// resumes with its cursor. A blocked socket write is bounded by the send
// timeout and, during a resume, by the deadline plus one send timeout.
func (c *conn) resume(r *resumeRequest) error {
	c.replayWhole = c.h.cfg.ReplayMaxTotal > 0
	c.setReplayDeadline(time.Now())
	err := c.runResume(r)
	c.replayDeadline = time.Time{}
	clear(c.staleSent)
	if errors.Is(err, errReplayTimeout) {
		c.h.log.Info("replay timeout", "ip", c.ip, "timeout", c.h.cfg.ReplayTimeout)
		_ = c.sendText(mustJSON(errorFrame{Type: "error", Code: ErrCodeReplayTimeout,
			Message: c.replayTimeoutMessage()}))
		return closeError{CloseReplayTimeout, "replay timeout"}
	}
	if err == nil {
		// Failed connections keep the limit: their error frame and
		// close still go out within it.
		c.co.setLimit(time.Time{})
	}
	return err
}

// setReplayDeadline starts the resume's deadline at now.
func (c *conn) setReplayDeadline(now time.Time) {
	c.replayDeadline = now.Add(c.h.cfg.ReplayTimeout)
	c.co.setLimit(c.replayDeadline.Add(c.h.cfg.SendTimeout))
}

// replayProgressed moves an uncapped resume's deadline on after a record
// went out; it takes the coalescer's lock only once half the timeout has
// passed, not per record. A deadline already passed stays passed: the
// write that just returned blocked past it, which is no progress.
func (c *conn) replayProgressed() {
	if c.replayWhole || c.replayDeadline.IsZero() {
		return
	}
	now := time.Now()
	if left := c.replayDeadline.Sub(now); left > 0 && left < c.h.cfg.ReplayTimeout/2 {
		c.setReplayDeadline(now)
	}
}

// replayExpired reports errReplayTimeout once a resume's deadline passed.
func (c *conn) replayExpired() error {
	if !c.replayDeadline.IsZero() && time.Now().After(c.replayDeadline) {
		return errReplayTimeout
	}
	return nil
}

func (c *conn) replayTimeoutMessage() string {
	if c.replayWhole {
		return fmt.Sprintf("resume did not finish within %s; reconnect and resume with your cursor", c.h.cfg.ReplayTimeout)
	}
	return fmt.Sprintf("resume made no progress for %s; reconnect and resume with your cursor", c.h.cfg.ReplayTimeout)
}

func (c *conn) runResume(r *resumeRequest) error {
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
		if stale {
			// Sequences of another history mean nothing here either:
			// every requested thread replays from its start (D2).
			for id := range r.Threads {
				r.Threads[id] = 0
			}
		}
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
	// Every cursor_stale comes before any replay frame (§10.1 #11); each
	// partition's gap comes just before its records.
	if err := c.sendStale(target); err != nil {
		return err
	}
	c.replaying = true
	defer func() { c.replaying = false }()
	replayed := map[int32]int64{}
	var total int64
	capped := false
	for {
		if err := c.replayExpired(); err != nil {
			return err
		}
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
		if sent == 0 {
			time.Sleep(10 * time.Millisecond) // not expected: deliver moves every cursor it reads
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
				c.stashControl(ctl)
			}
		default:
			return nil
		}
	}
}

// stashControl keeps a control frame that arrived during a replay for
// after it. Only the latest resume matters (each one restarts delivery
// from its cursors) and one pending cursor_reset is as good as many (the
// latest is kept, for its token), so the stash never holds more than two
// frames, however many a client sends.
func (c *conn) stashControl(ctl control) {
	for i, old := range c.stash {
		if old.Type == ctl.Type {
			c.stash = append(c.stash[:i], c.stash[i+1:]...)
			break
		}
	}
	c.stash = append(c.stash, ctl)
}

// sendStale sends, before a partition-mode replay, one cursor_stale for
// each partition whose cursor is older than its oldest retained record,
// in partition order; reportHole then sends only the gap.
func (c *conn) sendStale(target map[int32]int64) error {
	for _, p := range c.partitions(target) {
		after, ok := c.cursors[p]
		if !ok || after < 0 || after+1 >= target[p] {
			continue
		}
		oldest, count, err := c.evicted(p, after, target[p])
		if err != nil {
			return err
		}
		if count > 0 {
			if err := c.sendStaleFrame(p, after, oldest); err != nil {
				return err
			}
			if c.staleSent == nil {
				c.staleSent = map[int32]bool{}
			}
			c.staleSent[p] = true
		}
	}
	return nil
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
		c.h.countReject(RejectCursorReset)
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
