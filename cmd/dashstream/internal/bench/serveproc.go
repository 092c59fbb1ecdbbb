package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ServeProc is `dashstream serve` running as a child process: the real
// server wiring, end to end.
type ServeProc struct {
	Cmd     *exec.Cmd
	Port    int
	DataDir string
	LogPath string
	exited  chan struct{}
	err     error
}

// ServeOptions configure StartServe.
type ServeOptions struct {
	Exe     string            // the dashstream binary
	Brokers string            // KAFKA_BROKERS
	DataDir string            // DASHSTREAM_DATA_DIR
	Port    int               // WEBSOCKET_PORT; 0 picks a free one
	Env     map[string]string // more settings, overriding the defaults below
	LogPath string            // child stderr+stdout; default <DataDir>/../serve-<port>.log
}

// StartServe starts `dashstream serve` on 127.0.0.1 with fsync on, a high
// per-IP limit, warn-level logs and the given settings, and waits until
// /health answers.
func StartServe(ctx context.Context, o ServeOptions) (*ServeProc, error) {
	if o.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		o.Port = p
	}
	env := map[string]string{
		"KAFKA_BROKERS":                    o.Brokers,
		"KAFKA_TOPIC":                      Topic,
		"WEBSOCKET_HOST":                   "127.0.0.1",
		"WEBSOCKET_PORT":                   strconv.Itoa(o.Port),
		"DASHSTREAM_DATA_DIR":              o.DataDir,
		"DASHSTREAM_FSYNC":                 "true",
		"WEBSOCKET_MAX_CONNECTIONS_PER_IP": "100000",
		"DASHSTREAM_MAX_CONNECTIONS":       "100000",
		"KAFKA_LAG_CHECK_INTERVAL_SECS":    "2",
		"RUST_LOG":                         "warn",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	// Experiments: DASHSTREAM_BENCH_SERVE_ENV="K=V,K=V" adds settings.
	for _, kv := range strings.Split(os.Getenv("DASHSTREAM_BENCH_SERVE_ENV"), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			env[k] = v
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// A clean environment: the operator's KAFKA_* or DASHSTREAM_* must not
	// leak into the child.
	envList := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for _, k := range keys {
		envList = append(envList, k+"="+env[k])
	}
	if o.LogPath == "" {
		o.LogPath = filepath.Join(filepath.Dir(filepath.Clean(o.DataDir)), "serve-"+strconv.Itoa(o.Port)+".log")
	}
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("serve log: %w", err)
	}
	cmd := exec.Command(o.Exe, "serve")
	cmd.Env = envList
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s serve: %w", o.Exe, err)
	}
	p := &ServeProc{Cmd: cmd, Port: o.Port, DataDir: o.DataDir, LogPath: o.LogPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	if err := p.waitHealthy(ctx, time.Minute); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%w (log: %s)", err, tail(o.LogPath, 2000))
	}
	return p, nil
}

// URL is the server's WebSocket URL.
func (p *ServeProc) URL() string { return "ws://127.0.0.1:" + strconv.Itoa(p.Port) + "/ws" }

// HTTP is the server's base HTTP URL.
func (p *ServeProc) HTTP() string { return "http://127.0.0.1:" + strconv.Itoa(p.Port) }

// Pid is the child's process id.
func (p *ServeProc) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed when the child has exited.
func (p *ServeProc) Exited() <-chan struct{} { return p.exited }

func (p *ServeProc) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("dashstream serve exited during startup: %v", p.err)
		default:
		}
		resp, err := hc.Get(p.HTTP() + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 || resp.StatusCode == http.StatusServiceUnavailable {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dashstream serve not healthy after %s: %v", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM and waits up to 20 s, then SIGKILLs. It returns the
// exit error of a graceful stop.
func (p *ServeProc) Stop() error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			return fmt.Errorf("dashstream serve: %w", p.err)
		}
		return nil
	case <-time.After(20 * time.Second):
		p.Kill()
		return errors.New("dashstream serve did not stop within 20s of SIGTERM")
	}
}

// Kill SIGKILLs the child and waits for it.
func (p *ServeProc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}
