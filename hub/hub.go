package hub

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/dashstream/dashstream/store"
)

// Config holds the hub's settings. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	TailRecords         int           // WEBSOCKET_BUFFER_SIZE
	TailBytes           int64         // 64 MiB
	SendTimeout         time.Duration // WEBSOCKET_SEND_TIMEOUT_SECS
	ReplayTimeout       time.Duration // REPLAY_TIMEOUT_SECS: bounds a resume's time without progress, the whole resume with ReplayMaxTotal (then error REPLAY_TIMEOUT, close 4004)
	ReplayMaxTotal      int           // REPLAY_MAX_TOTAL: 0 = no cap (D4)
	SlowThreshold       int64         // SLOW_CLIENT_DISCONNECT_THRESHOLD: 0 = never
	SlowWindow          time.Duration // SLOW_CLIENT_LAG_WINDOW_SECS: 0 = lifetime
	PageRecords         int           // store page size for replay and catch-up
	PageBytes           int
	BatchMaxBytes       int           // D6: payload bytes per batched frame
	BatchMaxRecords     int           // D6: records per batched frame
	ReplayMemory        int64         // what connections reading from the store hold together (pages, batches, frames), about
	BatchLinger         time.Duration // D6: how long a batch waits for more records
	MaxConnsPerIP       int           // WEBSOCKET_MAX_CONNECTIONS_PER_IP; negative rejects everyone
	MaxConns            int           // DASHSTREAM_MAX_CONNECTIONS
	TrustedProxies      []string      // WEBSOCKET_TRUSTED_PROXY_IPS
	AllowedOrigins      []string      // DASHSTREAM_ALLOWED_ORIGINS; empty = any
	AuthToken           string        // DASHSTREAM_AUTH_TOKEN
	AdminToken          string        // DASHSTREAM_ADMIN_TOKEN
	ControlReadLimit    int64         // transport read limit: 1 MiB + 4 KiB
	MaxControlFrameSize int           // 1 MiB
}

// DefaultConfig returns the reference defaults with DECISIONS D4's changes.
func DefaultConfig() Config {
	return Config{
		TailRecords:         1000,
		TailBytes:           64 << 20,
		SendTimeout:         5 * time.Second,
		ReplayTimeout:       30 * time.Second,
		SlowThreshold:       1000,
		SlowWindow:          60 * time.Second,
		PageRecords:         1000,
		PageBytes:           1 << 20,
		BatchMaxBytes:       1 << 20,
		BatchMaxRecords:     1000,
		ReplayMemory:        256 << 20,
		BatchLinger:         2 * time.Millisecond,
		MaxConnsPerIP:       10,
		MaxConns:            10000,
		ControlReadLimit:    1<<20 + 4<<10,
		MaxControlFrameSize: 1 << 20,
	}
}

func (c *Config) fillDefaults() {
	d := DefaultConfig()
	if c.TailRecords <= 0 {
		c.TailRecords = d.TailRecords
	}
	if c.TailBytes <= 0 {
		c.TailBytes = d.TailBytes
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = d.SendTimeout
	}
	if c.ReplayTimeout <= 0 {
		c.ReplayTimeout = d.ReplayTimeout
	}
	if c.PageRecords <= 0 {
		c.PageRecords = d.PageRecords
	}
	if c.PageBytes <= 0 {
		c.PageBytes = d.PageBytes
	}
	if c.BatchMaxBytes <= 0 {
		c.BatchMaxBytes = d.BatchMaxBytes
	}
	if c.BatchMaxRecords <= 0 {
		c.BatchMaxRecords = d.BatchMaxRecords
	}
	if c.ReplayMemory <= 0 {
		c.ReplayMemory = d.ReplayMemory
	}
	if c.BatchLinger < 0 {
		c.BatchLinger = 0
	}
	switch {
	case c.MaxConnsPerIP == 0:
		c.MaxConnsPerIP = d.MaxConnsPerIP
	case c.MaxConnsPerIP < 0: // WEBSOCKET_MAX_CONNECTIONS_PER_IP=0 rejects everyone
		c.MaxConnsPerIP = 0
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.ControlReadLimit <= 0 {
		c.ControlReadLimit = d.ControlReadLimit
	}
	if c.MaxControlFrameSize <= 0 {
		c.MaxControlFrameSize = d.MaxControlFrameSize
	}
}

// Hub serves the WebSocket protocol over a store. Ingest calls Appended
// after every committed batch; connections pull what they need from the
// shared tail or, when behind, from the store.
type Hub struct {
	cfg     Config
	st      store.Store
	tail    *Tail
	metrics *Metrics
	log     *slog.Logger
	limiter *limiter

	epochMu sync.Mutex // serialises epoch changes
	epoch   atomic.Pointer[string]

	// storeReaders counts connections whose last read went to the store
	// (replaying or behind the tail); their page size shrinks with it.
	storeReaders atomic.Int64

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool

	// OnReset is called after a cursor_reset succeeded (metrics, logs).
	OnReset func(newEpoch string)
}

// New returns a hub serving st. metrics may be nil (tests).
func New(cfg Config, st store.Store, metrics *Metrics, logger *slog.Logger) (*Hub, error) {
	cfg.fillDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	lim, err := newLimiter(cfg)
	if err != nil {
		return nil, err
	}
	h := &Hub{
		cfg:     cfg,
		st:      st,
		tail:    NewTail(cfg.TailRecords, cfg.TailBytes),
		metrics: metrics,
		log:     logger,
		limiter: lim,
		conns:   map[*conn]struct{}{},
	}
	ep := st.Epoch()
	h.epoch.Store(&ep)
	h.tail.Reset(st.IngestOffsets())
	return h, nil
}

// Tail exposes the shared tail (health, metrics).
func (h *Hub) Tail() *Tail { return h.tail }

// Epoch is the epoch connections are serving.
func (h *Hub) Epoch() string { return *h.epoch.Load() }

// Clients returns the number of open WebSocket connections.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Appended is the ingest notification: b was committed to the store. It
// must be called in commit order from one goroutine.
func (h *Hub) Appended(b store.Batch) {
	if h.checkEpoch() {
		return // the tail was rebuilt from the store, which includes b
	}
	h.tail.Append(b)
	h.wakeAll()
}

// checkEpoch compares the store's epoch with the one being served; on a
// change (new source, reset) it rebuilds the tail and closes every
// connection with 4001. It reports whether the epoch changed.
func (h *Hub) checkEpoch() bool {
	cur := h.st.Epoch()
	if cur == h.Epoch() {
		return false
	}
	h.epochMu.Lock()
	defer h.epochMu.Unlock()
	if cur = h.st.Epoch(); cur == h.Epoch() {
		return false
	}
	h.mu.Lock()
	open := len(h.conns)
	h.mu.Unlock()
	// A fresh store takes the topic's epoch when ingest first sees the
	// topic; with nobody connected that is routine, not a warning.
	level := slog.LevelWarn
	if open == 0 {
		level = slog.LevelInfo
	}
	h.log.Log(context.Background(), level, "epoch changed; closing every connection", "old", h.Epoch(), "new", cur, "connections", open)
	h.tail.Reset(h.st.IngestOffsets())
	h.epoch.Store(&cur)
	h.closeAll(CloseEpochChanged, "epoch_changed")
	return true
}

// EpochChanged tells the hub that the store's epoch may have changed
// outside Append (ingest starting a new source).
func (h *Hub) EpochChanged() { h.checkEpoch() }

func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		c.wakeUp()
	}
}

func (h *Hub) closeAll(code websocket.StatusCode, reason string) {
	h.mu.Lock()
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		if code == CloseEpochChanged && c.resetting.Load() {
			continue // it closes itself once its cursor_reset_complete is out
		}
		c.closeWith(code, reason)
	}
}

// Shutdown closes every connection with 1001 and refuses new ones. It waits
// for the connections' goroutines until ctx ends.
func (h *Hub) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.closeAll(websocket.StatusGoingAway, "server shutting down")
	for {
		if h.Clients() == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	if h.metrics != nil {
		h.metrics.ConnectedClients.Set(float64(len(h.conns)))
	}
	return true
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	if h.metrics != nil {
		h.metrics.ConnectedClients.Set(float64(len(h.conns)))
	}
}
