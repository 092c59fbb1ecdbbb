package hub

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/dashstream/dashstream/store"
)

// ServeHTTP upgrades /ws requests. Checks run before the upgrade, in this
// order: token (401), origin (403), global cap (503), per-IP cap (429).
// A limit slot is released on every path.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !Authorized(r, h.cfg.AuthToken, h.cfg.AdminToken) {
		h.countReject(RejectAuth)
		http.Error(w, "missing or wrong token (DASHSTREAM_AUTH_TOKEN)", http.StatusUnauthorized)
		return
	}
	if !h.limiter.originAllowed(r) {
		h.countReject(RejectOrigin)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	ip := h.limiter.clientIP(r)
	switch h.limiter.acquire(ip) {
	case RejectGlobal:
		h.countReject(RejectGlobal)
		http.Error(w, "server at its connection limit", http.StatusServiceUnavailable)
		return
	case RejectPerIP:
		h.countReject(RejectPerIP)
		if h.metrics != nil {
			h.metrics.RejectedConnections.Inc()
		}
		http.Error(w, "Too many connections from this IP", http.StatusTooManyRequests)
		return
	}
	co := &coalescer{timeout: h.cfg.SendTimeout}
	ws, err := websocket.Accept(hijackResponse{w, co}, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // origins are checked above (D5)
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		h.limiter.release(ip)
		return
	}
	c := newConn(h, ws, co, ip, r.URL.Query().Get("batch") == "1", isAdmin(r, h.cfg.AdminToken))
	if !h.register(c) {
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		h.limiter.release(ip)
		return
	}
	// The connection runs on a goroutine of its own (its reader), so that
	// net/http's handler goroutine, request and buffers are released while
	// it lives. Its writer runs only while it has something to send.
	go func() {
		defer h.limiter.release(ip)
		defer h.unregister(c)
		c.run()
	}()
}

// hijackResponse hands websocket.Accept the hijacked connection wrapped in
// a coalescer, with small buffers: the connection's writes go through the
// coalescer, and an idle connection holds a 256-byte read buffer and a
// 16-byte write buffer instead of net/http's 4 KiB ones.
type hijackResponse struct {
	http.ResponseWriter
	co *coalescer
}

// Hijack implements http.Hijacker.
func (hr hijackResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(hr.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	hr.co.Conn = nc
	// Bytes the client sent after its upgrade request are already in
	// net/http's reader: they stay buffered in front of the connection
	// (Accept keeps what the returned reader has buffered).
	br := bufio.NewReaderSize(hr.co, 256)
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), hr.co), max(256, n))
		if _, err := br.Peek(n); err != nil {
			return nil, nil, fmt.Errorf("keeping early client bytes: %w", err)
		}
	}
	return hr.co, bufio.NewReadWriter(br, bufio.NewWriterSize(hr.co, 16)), nil
}

// Coalescer limits (see coalescer).
const (
	coalesceFlushAt = 64 << 10 // a corked buffer this full is written out
	coalesceDirect  = 16 << 10 // a write this large leaves at once, with the buffer in one writev
)

// coalescerBufs recycles corked buffers, so idle connections hold none.
var coalescerBufs = sync.Pool{New: func() any { b := make([]byte, 0, coalesceFlushAt+4<<10); return &b }}

// coalescer wraps the hijacked connection. While the connection's writer
// has it corked, the frames it sends (a cursor frame and its binary frame,
// a page of them, a batch and the text frame after it) collect in a buffer
// and leave in one write when it uncorks or the buffer fills. Every write
// to the socket is bounded by the send timeout. A failed write closes the
// connection: a frame may have been cut.
type coalescer struct {
	net.Conn
	timeout time.Duration

	mu     sync.Mutex
	corked bool
	buf    *[]byte
	failed error
	limit  time.Time // no write may block past it (a resume's budget); zero = none
}

// setLimit bounds every later write by t as well as by the send timeout
// (zero: by the send timeout only).
func (w *coalescer) setLimit(t time.Time) {
	w.mu.Lock()
	w.limit = t
	w.mu.Unlock()
}

// Write implements io.Writer for the WebSocket library.
func (w *coalescer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return 0, w.failed
	}
	switch {
	case !w.corked, len(p) >= coalesceDirect:
		if err := w.flushLocked(p); err != nil {
			return 0, err
		}
	default:
		if w.buf == nil {
			w.buf = coalescerBufs.Get().(*[]byte)
		}
		*w.buf = append(*w.buf, p...)
	}
	return len(p), nil
}

// cork starts collecting writes.
func (w *coalescer) cork() {
	w.mu.Lock()
	w.corked = true
	w.mu.Unlock()
}

// uncork writes out what was collected and stops collecting.
func (w *coalescer) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked = false
	if w.failed != nil {
		return w.failed
	}
	return w.flushLocked(nil)
}

// flushIfFull writes out the collected bytes once they reach
// coalesceFlushAt.
func (w *coalescer) flushIfFull() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return w.failed
	}
	if w.buf == nil || len(*w.buf) < coalesceFlushAt {
		return nil
	}
	return w.flushLocked(nil)
}

// flushLocked writes the collected bytes followed by extra, in one
// system call, within the send timeout, and recycles the buffer.
func (w *coalescer) flushLocked(extra []byte) error {
	var held []byte
	if w.buf != nil {
		held = *w.buf
	}
	if len(held) == 0 && len(extra) == 0 {
		return nil
	}
	deadline := time.Now().Add(w.timeout)
	if !w.limit.IsZero() && w.limit.Before(deadline) {
		deadline = w.limit
	}
	_ = w.Conn.SetWriteDeadline(deadline)
	var err error
	switch {
	case len(held) == 0:
		_, err = w.Conn.Write(extra)
	case len(extra) == 0:
		_, err = w.Conn.Write(held)
	default:
		bufs := net.Buffers{held, extra}
		_, err = bufs.WriteTo(w.Conn)
	}
	_ = w.Conn.SetWriteDeadline(time.Time{})
	if w.buf != nil {
		if cap(*w.buf) <= 4*coalesceFlushAt {
			*w.buf = (*w.buf)[:0]
			coalescerBufs.Put(w.buf)
		}
		w.buf = nil
	}
	if err != nil {
		w.failed = err
		_ = w.Conn.Close()
	}
	return err
}

func (h *Hub) countReject(reason string) {
	if h.metrics != nil {
		h.metrics.RejectedLimit.WithLabelValues(reason).Inc()
	}
}

// conn is one WebSocket connection. Its reader goroutine (run) parses
// control frames and lives as long as the connection; its writer
// goroutine (writer), started by wakeUp whenever there is something to
// send and ended when there is nothing left, is the only one that writes
// (there is at most one at a time), so a cursor frame and its binary frame
// always leave back to back.
type conn struct {
	h     *Hub
	ws    *websocket.Conn
	co    *coalescer // under ws: collects the writer's frames into few socket writes
	ip    string
	batch bool
	admin bool

	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // a token for a writer waiting out a batch's linger
	ctrl   chan control

	// The writer goroutine exists only while there is something to send:
	// an idle connection parks it (it ends), and wakeUp starts a new one.
	// An idle connection thus costs one goroutine, its reader.
	wstate     atomic.Int32  // writerIdle, writerRunning, writerWoken, writerEnded
	writerDone chan struct{} // closed when the writer ended for good

	closeOnce sync.Once
	// resetting: this connection asked for a cursor_reset that is under
	// way; an epoch change leaves it open until its reply is written.
	resetting atomic.Bool

	// Writer-owned state.
	cursors     map[int32]int64 // last offset delivered per partition; absent = never (−1)
	capped      map[int32]bool  // partitions held back by REPLAY_MAX_TOTAL until the next resume
	live        bool            // reached the live tail since the last resume
	replaying   bool
	storeReader bool // counted in Hub.storeReaders
	lagInWindow int64
	cumLag      int64
	windowStart time.Time
	scratch     []*Entry
	pending     []*Entry // D6 batch being built
	pendingSize int
	pendingAt   time.Time      // when the first record joined the pending batch
	stash       []control      // controls that arrived during a replay (stashControl: at most 2)
	staleSent   map[int32]bool // partitions whose cursor_stale this resume already sent
	// replayDeadline ends the running resume (REPLAY_TIMEOUT_SECS); zero
	// outside one. replayWhole: it bounds the whole resume (REPLAY_MAX_TOTAL
	// set), else the time without progress (D4).
	replayDeadline time.Time
	replayWhole    bool
}

// Writer states (conn.wstate).
const (
	writerIdle    int32 = iota // parked: no goroutine; wakeUp starts one
	writerRunning              // a writer goroutine runs
	writerWoken                // it runs and was woken since it last looked for work
	writerEnded                // the connection's writer ended for good
)

// errParked ends a writer goroutine that found nothing to do.
var errParked = errors.New("writer parked")

func newConn(h *Hub, ws *websocket.Conn, co *coalescer, ip string, batch, admin bool) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{h: h, ws: ws, co: co, ip: ip, batch: batch, admin: admin, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), ctrl: make(chan control, 4), writerDone: make(chan struct{}),
		cursors: map[int32]int64{}, capped: map[int32]bool{}, windowStart: time.Now()}
	ws.SetReadLimit(h.cfg.ControlReadLimit)
	// Live from now: a client that never resumes gets what is committed
	// after it connected.
	for p, n := range h.tail.Next() {
		c.cursors[p] = n - 1
	}
	return c
}

// wakeUp makes the writer look for work: it starts a writer goroutine if
// none runs, else marks the running one woken (so that it does not park)
// and wakes it from a batch's linger.
func (c *conn) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
	for {
		switch c.wstate.Load() {
		case writerIdle:
			if c.wstate.CompareAndSwap(writerIdle, writerRunning) {
				go c.writer()
				return
			}
		case writerRunning:
			if c.wstate.CompareAndSwap(writerRunning, writerWoken) {
				return
			}
		default: // already woken, or ended
			return
		}
	}
}

// park ends the writer goroutine unless it was woken since it last
// looked for work; it reports whether it parked.
func (c *conn) park() bool {
	return c.wstate.CompareAndSwap(writerRunning, writerIdle)
}

// stop ends the connection's context and wakes its writer (starting one
// if it is parked), which then ends.
func (c *conn) stop() {
	c.cancel()
	c.wakeUp()
}

// closeWith closes the connection with an application close code.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.countClose(code)
		go func() {
			c.ws.Close(code, reason)
			c.stop()
		}()
	})
}

// run reads the connection until it ends and its writer has ended.
func (c *conn) run() {
	c.wakeUp() // the first writer delivers what is due, then parks
	if c.readLoop() {
		c.stop()
	}
	<-c.writerDone
}

// writer is one writer goroutine: it sends until there is nothing to do
// (it parks and ends; wakeUp starts the next) or the connection ends (it
// closes it).
func (c *conn) writer() {
	err := c.writeLoop()
	if err == errParked {
		return
	}
	var ce closeError
	switch {
	case errors.As(err, &ce):
		c.closeOnce.Do(func() {
			c.countClose(ce.code)
			c.ws.Close(ce.code, ce.reason) // handshake, bounded by the library (5 s)
		})
	case err != nil && c.ctx.Err() == nil:
		// After a failed socket write the coalescer has already dropped
		// the TCP connection (a frame may have been cut), so the client
		// sees an abnormal closure; after any other error (a store read)
		// this close frame reaches it.
		c.h.log.Debug("connection ended", "ip", c.ip, "err", err)
		c.closeWith(websocket.StatusInternalError, "server error; reconnect and resume with your cursor")
	}
	c.setStoreReader(false)
	c.cancel()
	c.ws.CloseNow() // ends the reader's read
	c.wstate.Store(writerEnded)
	close(c.writerDone)
}

func (c *conn) countClose(code websocket.StatusCode) {
	if c.h.metrics != nil {
		c.h.metrics.ClosedByCode.WithLabelValues(strconv.Itoa(int(code))).Inc()
	}
}

// closeError ends a connection with a close code.
type closeError struct {
	code   websocket.StatusCode
	reason string
}

func (e closeError) Error() string { return fmt.Sprintf("close %d: %s", e.code, e.reason) }

// readLoop reads inbound frames. Protocol pings are answered by the
// library while reading. It reports whether the connection is gone; after
// an oversized or over-limit frame it stops reading and leaves the close
// to the writer.
func (c *conn) readLoop() (gone bool) {
	for {
		// No context: the connection is always closed when it ends, which
		// ends the read, and a cancellable context would cost every idle
		// connection a registration.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if strings.Contains(err.Error(), "read limited") && c.h.metrics != nil {
				c.h.metrics.ControlOversized.Inc() // the transport closed with 1009
			}
			return true
		}
		if typ != websocket.MessageText {
			continue
		}
		var ctl control
		if len(data) > c.h.cfg.MaxControlFrameSize {
			if c.h.metrics != nil {
				c.h.metrics.ControlOversized.Inc()
			}
			ctl = control{Type: "oversized"}
		} else {
			ctl, err = parseControl(data)
			var le *limitError
			switch {
			case errors.As(err, &le):
				ctl = control{Type: "limit", Token: le.Code + "\x00" + le.Message}
			case err != nil:
				if c.h.metrics != nil {
					c.h.metrics.ControlParseFailures.Inc()
				}
				c.h.log.Debug("invalid control frame", "ip", c.ip, "err", err, "frame", truncateForLog(string(data)))
				continue
			}
		}
		switch ctl.Type {
		case "ping", "resume", "cursor_reset", "oversized", "limit":
		default:
			continue // unknown types are ignored
		}
		select {
		case c.ctrl <- ctl:
			c.wakeUp()
		case <-c.ctx.Done():
			return true
		}
		if ctl.Type == "oversized" || ctl.Type == "limit" {
			return false // the writer closes the connection
		}
	}
}

func (c *conn) writeLoop() error {
	var linger *time.Timer
	// Every send below runs with the coalescer corked, so that the frames
	// it sends leave in as few socket writes as possible; uncorked writes
	// them out (also after an error: an error frame precedes its close).
	handle := func(ctl control) error {
		c.co.cork()
		return c.uncorked(c.handle(ctl))
	}
	deliver := func() (int, error) {
		c.co.cork()
		sent, err := c.deliver(nil, 0)
		return sent, c.uncorked(err)
	}
	for {
		// Looking for work from here on: a wake before this point is
		// consumed, one after it keeps the writer from parking.
		c.wstate.Store(writerRunning)
		if err := c.ctx.Err(); err != nil {
			return err
		}
		select {
		case ctl := <-c.ctrl:
			if err := handle(ctl); err != nil {
				return err
			}
			continue
		default:
		}
		sent, err := deliver()
		if err != nil {
			return err
		}
		if sent > 0 {
			continue
		}
		// Nothing more right now. A partial batch may wait for more
		// records until its first record is BatchLinger old.
		if wait := c.lingerLeft(); wait > 0 {
			if linger == nil {
				linger = time.NewTimer(wait)
			} else {
				linger.Reset(wait)
			}
			select {
			case <-c.ctx.Done():
				return c.ctx.Err()
			case ctl := <-c.ctrl:
				if err := handle(ctl); err != nil {
					return err
				}
			case <-c.wake:
			case <-linger.C:
			}
			linger.Stop()
			continue
		}
		c.co.cork()
		if err := c.uncorked(c.flush()); err != nil {
			return err
		}
		linger = nil // idle connections keep no timer
		c.setStoreReader(false)
		c.trimIdle()
		// Idle until a record, a control frame or the end: each of them
		// calls wakeUp, which starts a new writer goroutine.
		if c.park() {
			return errParked
		}
	}
}

// uncorked writes out what the corked coalescer collected and returns
// err, or the write's error.
func (c *conn) uncorked(err error) error {
	if ferr := c.co.uncork(); ferr != nil && err == nil {
		c.countWriteErr(ferr) // a failure the sender saw was counted where it happened
		err = ferr
	}
	return err
}

// trimIdle drops what a connection about to wait holds from its last
// burst: references to tail entries (which would keep evicted payloads
// alive) and large scratch slices.
func (c *conn) trimIdle() {
	clear(c.scratch[:cap(c.scratch)])
	if cap(c.scratch) > 64 {
		c.scratch = nil
	}
	if cap(c.pending) > 64 {
		c.pending = nil
	}
}

func (c *conn) handle(ctl control) error {
	switch ctl.Type {
	case "ping":
		return c.sendText(pongFrame)
	case "resume":
		if err := c.resume(ctl.Resume); err != nil {
			return err
		}
		for len(c.stash) > 0 {
			next := c.stash[0]
			c.stash = c.stash[1:]
			if err := c.handle(next); err != nil {
				return err
			}
		}
		return nil
	case "cursor_reset":
		return c.cursorReset(ctl.Token)
	case "oversized":
		_ = c.sendText(mustJSON(errorFrame{Type: "error", Code: ErrCodeControlTooLarge,
			Message: fmt.Sprintf("control frame over %d bytes", c.h.cfg.MaxControlFrameSize)}))
		return closeError{CloseControlTooLarge, "control frame too large"}
	case "limit":
		code, msg, _ := strings.Cut(ctl.Token, "\x00")
		reason := RejectTooManyParts
		if code == ErrCodeTooManyThreads {
			reason = RejectTooManyThreads
		}
		c.h.countReject(reason)
		_ = c.sendText(mustJSON(errorFrame{Type: "error", Code: code, Message: msg}))
		return closeError{CloseResumeLimits, "resume limits exceeded"}
	}
	return nil
}

// partitions returns every partition the connection may deliver, sorted.
func (c *conn) partitions(next map[int32]int64) []int32 {
	ps := make([]int32, 0, len(next))
	for p := range next {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func (c *conn) cursor(p int32) int64 {
	if o, ok := c.cursors[p]; ok {
		return o
	}
	return -1
}

// deliver sends at most one page per partition of what the connection has
// not seen. With a target (replay), it only sends offsets below target[p]
// and at most budget records (0 = no limit). It returns how many records it
// sent.
func (c *conn) deliver(target map[int32]int64, budget int) (int, error) {
	next := c.h.tail.Next()
	if target != nil {
		next = target
	}
	sent := 0
	for _, p := range c.partitions(next) {
		if c.capped[p] {
			continue
		}
		after := c.cursor(p)
		limit := next[p]
		if after+1 >= limit {
			continue
		}
		max := c.h.cfg.PageRecords
		if budget > 0 && budget-sent < max {
			max = budget - sent
		}
		if max <= 0 {
			break
		}
		entries, err := c.read(p, after, max)
		if err != nil {
			return sent, err
		}
		// Clip to the target (replay) and to the partition's limit.
		n := 0
		for n < len(entries) && entries[n].Offset < limit {
			n++
		}
		entries = entries[:n]
		first := limit
		if len(entries) > 0 {
			first = entries[0].Offset
		}
		if first > after+1 {
			if err := c.reportHole(p, after, first); err != nil {
				return sent, err
			}
			if len(entries) == 0 {
				c.cursors[p] = limit - 1 // skipped or evicted to the end
			}
		}
		for i, e := range entries {
			if i > 0 && e.Offset > entries[i-1].Offset+1 {
				if err := c.reportHole(p, entries[i-1].Offset, e.Offset); err != nil {
					return sent, err
				}
			}
			if err := c.sendEntry(e); err != nil {
				return sent, err
			}
			c.cursors[p] = e.Offset
			sent++
		}
		// A batch whose first record has waited BatchLinger leaves now,
		// also while records keep coming (live) or a replay pages on.
		if len(c.pending) > 0 && c.h.cfg.BatchLinger > 0 && c.lingerLeft() <= 0 {
			if err := c.flush(); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

// lingerLeft is how long the pending batch may still wait for more
// records (0 or less: none, or it is due).
func (c *conn) lingerLeft() time.Duration {
	if len(c.pending) == 0 || c.h.cfg.BatchLinger <= 0 {
		return 0
	}
	return c.h.cfg.BatchLinger - time.Since(c.pendingAt)
}

// read returns up to max entries of p after the given offset: from the
// shared tail when it covers them, else a page from the store.
func (c *conn) read(p int32, after int64, max int) ([]*Entry, error) {
	var ok bool
	c.scratch, ok = c.h.tail.After(c.scratch[:0], p, after, max, c.h.cfg.PageBytes)
	c.setStoreReader(!ok)
	if ok {
		if c.h.metrics != nil {
			c.h.metrics.MemoryHits.Inc()
		}
		if !c.replaying {
			c.live = true
		}
		return c.scratch, nil
	}
	recs, _, err := c.h.st.ReadPartition(c.ctx, p, after, store.Limits{MaxRecords: max, MaxBytes: c.storePageBytes(), PayloadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("reading partition %d after %d: %w", p, after, err)
	}
	if c.h.metrics != nil {
		c.h.metrics.StoreReads.Inc()
	}
	c.scratch = c.scratch[:0]
	for _, r := range recs {
		c.scratch = append(c.scratch, newConnEntry(r.Partition, r.Offset, r.Payload, c.batch))
	}
	if c.live && !c.replaying && len(recs) > 0 {
		if err := c.accountLag(int64(len(recs))); err != nil {
			return nil, err
		}
	}
	return c.scratch, nil
}

// minStorePageBytes is the smallest store page storePageBytes shrinks to.
const minStorePageBytes = 64 << 10

// setStoreReader notes whether the connection reads from the store.
func (c *conn) setStoreReader(on bool) {
	if on == c.storeReader {
		return
	}
	c.storeReader = on
	if on {
		c.h.storeReaders.Add(1)
	} else {
		c.h.storeReaders.Add(-1)
	}
}

// storePageBytes is the byte budget of one store page and, while the
// connection reads from the store, of one batched frame: PageBytes,
// shrunk when many connections read from the store at once, so that
// together they hold about ReplayMemory. Such a connection holds a page, a
// pending batch and a frame buffer; at 1 MiB each, a reconnect storm of a
// thousand replaying clients would hold gigabytes.
func (c *conn) storePageBytes() int {
	b := c.h.cfg.PageBytes
	if n := c.h.storeReaders.Load(); n > 0 {
		b = min(b, int(c.h.cfg.ReplayMemory/(3*n)))
	}
	return max(b, minStorePageBytes)
}

// accountLag applies the slow-client rule of DECISIONS D4 to n records the
// connection had to read from the store after reaching the live tail.
func (c *conn) accountLag(n int64) error {
	m := c.h.metrics
	if m != nil {
		sev := gapSeverity(n)
		m.ClientLagEvents.WithLabelValues(sev).Inc()
		m.ClientLagMessages.WithLabelValues(sev).Add(float64(n))
	}
	now := time.Now()
	if w := c.h.cfg.SlowWindow; w > 0 && now.Sub(c.windowStart) > w {
		c.lagInWindow, c.windowStart = 0, now
	}
	c.lagInWindow += n
	c.cumLag += n
	if th := c.h.cfg.SlowThreshold; th > 0 && c.lagInWindow >= th {
		if m != nil {
			m.SlowDisconnects.Inc()
		}
		_ = c.sendText(mustJSON(disconnectFrame{Type: "disconnect", Reason: "backpressure",
			LagInWindow: c.lagInWindow, CumulativeLag: c.cumLag, Threshold: th,
			WindowSecs: int64(c.h.cfg.SlowWindow / time.Second),
			Message:    "client too slow; reconnect and resume with your cursor"}))
		return closeError{CloseResumeWithCursor, "slow client: resume with your cursor"}
	}
	return nil
}

// reportHole tells the client about records in [after+1, first) of p that
// it will never get: evicted by retention (cursor_stale, unless the
// resume's pre-pass sent it already, then gap) or skipped as invalid.
// Holes nobody recorded produce nothing, and neither does a partition the
// client never saw (after = −1; quirk Q5).
func (c *conn) reportHole(p int32, after, first int64) error {
	if after < 0 {
		return nil
	}
	from := after + 1
	oldest, count, err := c.evicted(p, after, first)
	if err != nil {
		return err
	}
	if count > 0 {
		if !c.staleSent[p] {
			if err := c.sendStaleFrame(p, after, oldest); err != nil {
				return err
			}
		}
		delete(c.staleSent, p)
		if err := c.sendGap(p, count, store.SkipEvicted, from, min(oldest, first)-1); err != nil {
			return err
		}
	}
	skipped, err := c.h.st.Skipped(p, from, first)
	if err != nil {
		return fmt.Errorf("reading skipped ranges of partition %d: %w", p, err)
	}
	for _, s := range skipped {
		lo, hi := max(s.From, from), min(s.To, first)
		if s.Reason == store.SkipEvicted {
			lo = max(lo, oldest) // already reported with the retention span
		}
		if lo >= hi {
			continue
		}
		if err := c.sendGap(p, hi-lo, s.Reason, lo, hi-1); err != nil {
			return err
		}
	}
	return nil
}

// evicted returns p's oldest retained offset and how many records in
// [after+1, min(oldest, first)) retention evicted; invalid ranges inside
// that span do not count (they are reported as invalid).
func (c *conn) evicted(p int32, after, first int64) (oldest, count int64, err error) {
	from := after + 1
	oldest, _, ok := c.h.st.Bounds(p)
	if !ok {
		oldest = c.h.tail.NextOf(p)
	}
	evEnd := min(oldest, first)
	if from >= evEnd {
		return oldest, 0, nil
	}
	skipped, err := c.h.st.Skipped(p, from, evEnd)
	if err != nil {
		return 0, 0, fmt.Errorf("reading skipped ranges of partition %d: %w", p, err)
	}
	count = evEnd - from
	for _, s := range skipped {
		if s.Reason == store.SkipInvalid {
			count -= overlap(s.From, s.To, from, evEnd)
		}
	}
	return oldest, count, nil
}

func (c *conn) sendStaleFrame(p int32, after, oldest int64) error {
	return c.sendText(mustJSON(staleFrame{Type: "cursor_stale", Partition: &p,
		Requested: strconv.FormatInt(after, 10), Oldest: strconv.FormatInt(oldest, 10), Reason: "evicted",
		Message: "requested offset is older than the oldest retained record; some records are gone"}))
}

func overlap(a0, a1, b0, b1 int64) int64 {
	lo, hi := max(a0, b0), min(a1, b1)
	if hi > lo {
		return hi - lo
	}
	return 0
}

func (c *conn) sendGap(p int32, count int64, reason string, from, to int64) error {
	mode := ModePartition
	if m := c.h.metrics; m != nil {
		m.ReplayGaps.WithLabelValues(mode).Inc()
		m.ReplayGapMessages.WithLabelValues(mode).Add(float64(count))
	}
	msg := fmt.Sprintf("%d records of partition %d were skipped as invalid", count, p)
	if reason == store.SkipEvicted {
		msg = fmt.Sprintf("%d records of partition %d were evicted before delivery", count, p)
	}
	return c.sendText(mustJSON(gapFrame{Type: "gap", Partition: p, Count: count, Reason: reason,
		From: strconv.FormatInt(from, 10), To: strconv.FormatInt(to, 10), Severity: gapSeverity(count), Message: msg}))
}

// sendEntry sends one record: a cursor frame and its binary frame back to
// back, or, in batched mode (D6), into the pending batch.
func (c *conn) sendEntry(e *Entry) error {
	if err := c.replayExpired(); err != nil {
		return err
	}
	if c.batch {
		if len(c.pending) == 0 {
			c.pendingAt = time.Now()
		}
		c.pending = append(c.pending, e)
		c.pendingSize += len(e.Payload)
		limit := c.h.cfg.BatchMaxBytes
		if c.storeReader {
			limit = min(limit, c.storePageBytes())
		}
		if c.pendingSize >= limit || len(c.pending) >= c.h.cfg.BatchMaxRecords {
			if err := c.flush(); err != nil {
				return err
			}
		}
		c.replayProgressed()
		return nil
	}
	if err := c.write(websocket.MessageText, e.Cursor); err != nil {
		return err
	}
	if err := c.write(websocket.MessageBinary, e.Payload); err != nil {
		return err
	}
	c.replayProgressed()
	return nil
}

// sendText sends a control frame, after any pending batch.
func (c *conn) sendText(b []byte) error {
	if err := c.flush(); err != nil {
		return err
	}
	return c.write(websocket.MessageText, b)
}

var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// flush sends the pending batch as one D6 frame.
func (c *conn) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	bp := batchBufs.Get().(*[]byte)
	buf := batchHeader((*bp)[:0], len(c.pending))
	for i, e := range c.pending {
		buf = appendBatchRecord(buf, e)
		c.pending[i] = nil
	}
	c.pending, c.pendingSize = c.pending[:0], 0
	err := c.write(websocket.MessageBinary, buf)
	if cap(buf) <= 4<<20 {
		*bp = buf[:0]
		batchBufs.Put(bp)
	}
	return err
}

// write sends one frame. The coalescer bounds every socket write by the
// send timeout, so the library needs no per-frame context: while corked,
// the frame only joins the coalescer's buffer, which is written out when
// it fills.
func (c *conn) write(typ websocket.MessageType, b []byte) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	err := c.ws.Write(context.Background(), typ, b)
	if err == nil {
		err = c.co.flushIfFull()
	}
	c.countWriteErr(err)
	return err
}

// countWriteErr counts a failed or timed-out send.
func (c *conn) countWriteErr(err error) {
	if err == nil || c.h.metrics == nil {
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		c.h.metrics.SendTimeout.Inc()
	} else if c.ctx.Err() == nil {
		c.h.metrics.SendFailed.Inc()
	}
}
