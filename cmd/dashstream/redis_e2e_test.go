//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dashstream/dashstream/wire/synth"
)

// redisProc is a real redis-server on a fixed loopback port, persisting
// to an append-only file fsynced on every write, so a SIGKILLed server
// comes back with its data. The start logic follows store/redis's tests.
type redisProc struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedisProc(t *testing.T) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found (CI must install Debian's redis-server): %v", err)
		}
		t.Skipf("redis-server not installed: %v", err)
	}
	r := &redisProc{t: t, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisProc) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *redisProc) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning", "--databases", "1",
		"--appendonly", "yes", "--appendfsync", "always")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(r.cmd)
	r.done = done
	cl := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port), DialerRetries: 1, Protocol: 2})
	defer cl.Close()
	addr := "127.0.0.1:" + strconv.Itoa(r.port)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Dial first: go-redis logs every refused connection.
		var err error
		if conn, derr := net.DialTimeout("tcp", addr, time.Second); derr != nil {
			err = derr
		} else {
			conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = cl.Ping(ctx).Err()
			cancel()
		}
		if err == nil {
			return
		}
		select {
		case <-done:
			r.t.Fatalf("redis-server on port %d exited at start", r.port)
		default:
		}
		if time.Now().After(deadline) {
			r.kill()
			r.t.Fatalf("redis-server on port %d does not answer PING: %v", r.port, err)
		}
	}
}

// kill stops the server with SIGKILL and waits for it.
func (r *redisProc) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

type redisHealth struct {
	Status string `json:"status"`
	Store  struct {
		Kind    string `json:"kind"`
		Records int    `json:"records"`
	} `json:"store"`
	ReplayBuffer struct {
		RedisEnabled        bool  `json:"redis_enabled"`
		RedisMessageTTLSecs int64 `json:"redis_message_ttl_secs"`
		RedisMaxSequences   int64 `json:"redis_max_sequences"`
		RedisHits           int64 `json:"redis_hits"`
		RedisWriteFailures  int64 `json:"redis_write_failures"`
	} `json:"replay_buffer"`
}

// waitStatus waits until /health reports status.
func (s *server) waitStatus(status string, timeout time.Duration) {
	s.t.Helper()
	var h redisHealth
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		s.getJSON("/health", &h)
		if h.Status == status {
			return
		}
	}
	s.t.Fatalf("/health status %q after %v, want %q", h.Status, timeout, status)
}

// TestE2ERedisStoreOutageNoLoss runs serve with DASHSTREAM_STORE=redis,
// checks /health reports the Redis settings in force, kills redis-server
// and wants /health "degraded" with nothing to append, sends records
// during the outage, restarts Redis on the same port, and wants /health
// healthy again and a client to get every record exactly once.
func TestE2ERedisStoreOutageNoLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	rds := startRedisProc(t)
	brokers := startKafka(t)
	recs, err := synth.Corpus(31, 12)
	if err != nil {
		t.Fatal(err)
	}
	var sent produced
	third := len(recs) / 3
	produce(t, brokers, recs[:third], &sent)
	srv := startServer(t, brokers, t.TempDir(), freePort(t),
		"DASHSTREAM_STORE=redis", "REDIS_URL="+rds.url(), "REDIS_MESSAGE_TTL_SECS=7200")
	srv.waitIngested(third)

	var h redisHealth
	srv.getJSON("/health", &h)
	if h.Store.Kind != "redis" || !h.ReplayBuffer.RedisEnabled || h.ReplayBuffer.RedisMessageTTLSecs != 7200 ||
		h.ReplayBuffer.RedisMaxSequences != 10000 {
		t.Fatalf("/health: store %q, replay_buffer %+v; want redis, enabled, TTL 7200, max sequences 10000",
			h.Store.Kind, h.ReplayBuffer)
	}

	if h.Status != "healthy" {
		t.Fatalf("/health status %q before the outage, want healthy", h.Status)
	}

	// Redis dies while ingest has nothing to append: only the backend
	// check (api.Deps.StoreHealth) can tell.
	rds.kill()
	srv.waitStatus("degraded", 20*time.Second)
	// Records arrive during the outage; ingest retries its append.
	produce(t, brokers, recs[third:2*third], &sent)
	time.Sleep(time.Second)
	rds.start()
	produce(t, brokers, recs[2*third:], &sent)
	srv.waitIngested(len(recs))
	srv.waitStatus("healthy", 20*time.Second)

	c, err := dialWS(t, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.CloseNow()
	if err := c.resume(map[int32]int64{}, "earliest"); err != nil {
		t.Fatal(err)
	}
	if err := c.read(30*time.Second, func(m map[string]any) bool {
		if m != nil && (m["type"] == "gap" || m["type"] == "cursor_stale") {
			t.Errorf("unexpected %v", m)
		}
		return isReplayComplete(m)
	}); err != nil {
		t.Fatal(fmt.Errorf("replay after the Redis restart: %w", err))
	}
	c.checkExactly(&sent, nil)

	// The store's observer feeds the reference's Redis series.
	srv.getJSON("/health", &h)
	if h.ReplayBuffer.RedisWriteFailures == 0 || h.ReplayBuffer.RedisHits == 0 {
		t.Errorf("replay_buffer %+v: want the outage's write failures and the replay's hits counted", h.ReplayBuffer)
	}
}
