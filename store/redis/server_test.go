package redis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dashstream/dashstream/store/redis"
)

// redisServer is a real redis-server the tests start on a free loopback
// port and kill at cleanup.
type redisServer struct {
	port    int
	dir     string
	persist bool
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// redisServerPath finds redis-server; without it the test is skipped, or
// fails when CI is set (CI installs Debian's redis-server).
func redisServerPath(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("redis-server not found (CI must install Debian's redis-server): %v", err)
		}
		tb.Skipf("redis-server not installed: %v", err)
	}
	return path
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRedis starts a server. With persist, it keeps an append-only file
// in dir (fsync on every write), so a killed server restarts with its
// data.
func startRedis(tb testing.TB, persist bool) *redisServer {
	tb.Helper()
	redisServerPath(tb)
	srv := &redisServer{port: freePort(tb), dir: tb.TempDir(), persist: persist}
	if err := srv.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.stop)
	return srv
}

func (r *redisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *redisServer) start() error {
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning", "--databases", "1"}
	if r.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	cl := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port), DialerRetries: 1, Protocol: 2})
	defer cl.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cl.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start", r.port)
		default:
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("redis-server on port %d does not answer PING: %v", r.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server with SIGKILL (no shutdown save) and waits.
func (r *redisServer) kill() {
	r.signal(syscall.SIGKILL)
}

func (r *redisServer) stop() { r.signal(syscall.SIGTERM) }

func (r *redisServer) signal(sig syscall.Signal) {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// client is a plain go-redis client of the server, for tests that write
// or inspect keys directly.
func (r *redisServer) client(tb testing.TB) *goredis.Client {
	tb.Helper()
	cl := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port), Protocol: 2})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

// shared is one server for the tests that only need isolation by
// namespace; TestMain stops it.
var shared struct {
	once sync.Once
	srv  *redisServer
	err  error
}

func sharedRedis(tb testing.TB) *redisServer {
	tb.Helper()
	redisServerPath(tb)
	shared.once.Do(func() {
		srv := &redisServer{dir: os.TempDir()}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			shared.err = err
			return
		}
		srv.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		dir, err := os.MkdirTemp("", "dashstream-redis-test-")
		if err != nil {
			shared.err = err
			return
		}
		srv.dir = dir
		shared.srv, shared.err = srv, srv.start()
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.srv
}

func TestMain(m *testing.M) {
	redis.SetClientLogger(testLogger())
	code := m.Run()
	if shared.srv != nil {
		shared.srv.stop()
		_ = os.RemoveAll(shared.srv.dir)
	}
	os.Exit(code)
}
