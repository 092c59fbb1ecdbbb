package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/dashstream/dashstream/hub"
	"github.com/dashstream/dashstream/store"
)

// fanServer is a WebSocket server the fan-out benchmarks feed with
// committed batches.
type fanServer interface {
	URL() string      // ws://…/ws
	Clients() int     // connections registered and receiving
	Feed(store.Batch) // make a batch available to every client
	Close()
}

// httpServe serves h on a fresh loopback port.
func httpServe(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler(), slog.LevelError)}
	go func() { _ = srv.Serve(ln) }()
	return srv, "ws://" + ln.Addr().String() + "/ws", nil
}

// hubServer is our hub over a store, fed the way ingest feeds it: the
// batch is committed to the store, then Appended.
type hubServer struct {
	st  store.Store
	h   *hub.Hub
	srv *http.Server
	url string
}

// benchHubConfig is the hub configuration of the benchmarks: the defaults,
// with connection limits raised for thousands of loopback clients.
func benchHubConfig() hub.Config {
	cfg := hub.DefaultConfig()
	cfg.MaxConnsPerIP = 1 << 20
	cfg.MaxConns = 1 << 20
	cfg.SendTimeout = time.Minute
	return cfg
}

func newHubServer(cfg hub.Config, st store.Store) (*hubServer, error) {
	h, err := hub.New(cfg, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	srv, url, err := httpServe(h)
	if err != nil {
		return nil, err
	}
	return &hubServer{st: st, h: h, srv: srv, url: url}, nil
}

// URL implements fanServer.
func (s *hubServer) URL() string { return s.url }

// Clients implements fanServer.
func (s *hubServer) Clients() int { return s.h.Clients() }

// Feed commits b to the store and tells the hub, as ingest does.
func (s *hubServer) Feed(b store.Batch) {
	if err := s.st.Append(context.Background(), b); err != nil {
		panic(fmt.Sprintf("bench: appending to the memory store: %v", err))
	}
	s.h.Appended(b)
}

// Close shuts the hub, the HTTP server and the store down.
func (s *hubServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.h.Shutdown(ctx)
	_ = s.srv.Shutdown(ctx)
	_ = s.st.Close()
}

// bareServer is the baseline: the fastest straightforward coder/websocket
// broadcast server. Every connection writes every record as one binary
// frame, straight from a shared in-memory log of the pre-encoded payloads.
type bareServer struct {
	mu     sync.Mutex
	log    [][]byte
	notify chan struct{} // closed and replaced when the log grows
	conns  atomic.Int64
	wg     sync.WaitGroup
	stop   chan struct{}
	srv    *http.Server
	url    string
}

func newBareServer() (*bareServer, error) {
	s := &bareServer{notify: make(chan struct{}), stop: make(chan struct{})}
	srv, url, err := httpServe(s)
	if err != nil {
		return nil, err
	}
	s.srv, s.url = srv, url
	return s, nil
}

// ServeHTTP upgrades and then writes every logged record to the client.
func (s *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	defer ws.CloseNow()
	ctx := ws.CloseRead(context.Background())
	s.mu.Lock()
	next := len(s.log) // live from now, like a hub connection
	s.mu.Unlock()
	s.conns.Add(1)
	defer s.conns.Add(-1)
	for {
		s.mu.Lock()
		recs, wake := s.log[next:], s.notify
		s.mu.Unlock()
		if len(recs) == 0 {
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			}
			continue
		}
		for _, p := range recs {
			if err := ws.Write(ctx, websocket.MessageBinary, p); err != nil {
				return
			}
		}
		next += len(recs)
	}
}

// URL implements fanServer.
func (s *bareServer) URL() string { return s.url }

// Clients implements fanServer.
func (s *bareServer) Clients() int { return int(s.conns.Load()) }

// Feed appends the batch's payloads to the log and wakes every connection.
func (s *bareServer) Feed(b store.Batch) {
	s.mu.Lock()
	for _, r := range b.Records {
		s.log = append(s.log, r.Payload)
	}
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

// Close stops the connections and the HTTP server.
func (s *bareServer) Close() {
	close(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// waitClients waits until srv has n clients.
func waitClients(ctx context.Context, srv fanServer, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for srv.Clients() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clients registered after %s", srv.Clients(), n, timeout)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
