package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoProc is one `dashstream demo` child process.
type demoProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the exit error, once exited is closed

	mu      sync.Mutex
	out     strings.Builder // stdout and stderr
	url     string          // from "open http://… in your browser"
	brokerA string          // from "embedded Kafka broker on …"
	lines   chan struct{}   // pinged on every output line
}

var (
	demoOpenRe   = regexp.MustCompile(`open (http://\S+) in your browser`)
	demoBrokerRe = regexp.MustCompile(`embedded Kafka broker on (\S+) `)
)

func startDemo(t *testing.T, dataDir string, args ...string) *demoProc {
	t.Helper()
	d := &demoProc{t: t, exited: make(chan struct{}), lines: make(chan struct{}, 1)}
	d.cmd = exec.Command(dashstreamBinary(t), append([]string{"demo", "--data-dir", dataDir}, args...)...)
	// The embedded broker's address must not leak into the store's
	// namespace; the environment must not change what the test asks for.
	d.cmd.Env = append(os.Environ(), "KAFKA_BROKERS=", "WEBSOCKET_PORT=", "DASHSTREAM_STORE=")
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.out.WriteString(line + "\n")
			if m := demoOpenRe.FindStringSubmatch(line); m != nil {
				d.url = m[1]
			}
			if m := demoBrokerRe.FindStringSubmatch(line); m != nil {
				d.brokerA = m[1]
			}
			d.mu.Unlock()
			select {
			case d.lines <- struct{}{}:
			default:
			}
		}
	}()
	go func() { d.err = d.cmd.Wait(); pw.Close(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
		if t.Failed() {
			t.Logf("demo output:\n%s", d.output())
		}
	})
	return d
}

func (d *demoProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// waitURL waits for the "open http://…" line and returns the URL.
func (d *demoProc) waitURL(timeout time.Duration) string {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		u := d.url
		d.mu.Unlock()
		if u != "" {
			return u
		}
		select {
		case <-d.lines:
		case <-d.exited:
			d.t.Fatalf("demo exited before printing its URL (%v)", d.err)
		case <-deadline:
			d.t.Fatalf("demo printed no URL within %v", timeout)
		}
	}
}

func (d *demoProc) broker() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.brokerA
}

func getJSONFrom(t *testing.T, url string, v any) error {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type demoHealth struct {
	Store struct {
		Epoch   string `json:"epoch"`
		Records int64  `json:"records"`
	} `json:"store"`
}

// waitRecords waits until /health reports more than n records and returns
// the epoch and count.
func waitRecords(t *testing.T, url string, n int64, timeout time.Duration) (string, int64) {
	t.Helper()
	var h demoHealth
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := getJSONFrom(t, url+"/health", &h); err == nil && h.Store.Records > n {
			return h.Store.Epoch, h.Store.Records
		}
	}
	t.Fatalf("%s/health: %d records after %v, want more than %d", url, h.Store.Records, timeout, n)
	return "", 0
}

// stopDemo sends SIGTERM and wants exit status 0 within 10 s (the
// shutdown promise).
func (d *demoProc) stop() {
	d.t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.t.Fatalf("demo still running 10 s after SIGTERM")
	}
	if d.err != nil {
		d.t.Fatalf("demo exited with %v after SIGTERM, want status 0", d.err)
	}
	d.t.Logf("demo stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestDemoRunsStopsAndRestarts runs `dashstream demo` twice on one data
// dir: it lists runs, stops cleanly on SIGTERM, and after a restart keeps
// the epoch and goes on growing the same history (the embedded topic
// continues; it is not a new source).
func TestDemoRunsStopsAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	kafkaAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	d := startDemo(t, dir, "--addr", addr, "--kafka-addr", kafkaAddr, "--runs-per-second", "5")
	url := d.waitURL(60 * time.Second)
	if url != "http://"+addr {
		t.Fatalf("demo printed %s, want http://%s", url, addr)
	}
	if b := d.broker(); b != kafkaAddr {
		t.Errorf("embedded broker on %q, want %q", b, kafkaAddr)
	}
	var runs struct {
		Runs []struct {
			ThreadID string `json:"thread_id"`
		} `json:"runs"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := getJSONFrom(t, url+"/api/runs", &runs); err == nil && len(runs.Runs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/runs lists no run after 30 s")
		}
	}
	epoch1, n1 := waitRecords(t, url, 0, 30*time.Second)
	d.stop()

	// The store keeps what the first process ingested (a new source would
	// have cleared it before the server listens), and the count grows past
	// it: the producer appends to the same topic.
	d2 := startDemo(t, dir, "--addr", addr, "--kafka-addr", kafkaAddr, "--runs-per-second", "5")
	d2.waitURL(60 * time.Second)
	var h demoHealth
	if err := getJSONFrom(t, url+"/health", &h); err != nil {
		t.Fatal(err)
	}
	if h.Store.Records < n1 {
		t.Fatalf("%d records right after the restart, want at least the %d stored before", h.Store.Records, n1)
	}
	epoch2, n2 := waitRecords(t, url, n1, 30*time.Second)
	if epoch2 != epoch1 || epoch1 == "" {
		t.Fatalf("epoch %q after restart, want %q", epoch2, epoch1)
	}
	var v struct {
		Epoch string `json:"epoch"`
	}
	if err := getJSONFrom(t, url+"/version", &v); err != nil || v.Epoch != epoch1 {
		t.Fatalf("/version epoch %q (%v), want %q", v.Epoch, err, epoch1)
	}
	t.Logf("epoch %s: %d records before the restart, %d after", epoch1, n1, n2)
	d2.stop()
}

// TestDemoKafkaAddrTakenFallsBack: when --kafka-addr is taken, the demo's
// broker listens on a free port instead and says which.
func TestDemoKafkaAddrTakenFallsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	d := startDemo(t, t.TempDir(), "--addr", addr, "--kafka-addr", taken, "--runs-per-second", "5")
	url := d.waitURL(60 * time.Second)
	b := d.broker()
	if b == "" || b == taken {
		t.Fatalf("embedded broker on %q; want a free port instead of the taken %s", b, taken)
	}
	if host, _, err := net.SplitHostPort(b); err != nil || host != "127.0.0.1" {
		t.Fatalf("embedded broker on %q, want 127.0.0.1:PORT", b)
	}
	waitRecords(t, url, 0, 30*time.Second) // ingest found the broker where it really is
	d.stop()
}
