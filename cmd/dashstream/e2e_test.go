package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/wire/synth"
)

// End-to-end tests: the real binary as a child process, kfake as a real
// Kafka-protocol broker in the test process, real WebSocket clients.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func dashstreamBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dashstream-e2e")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "dashstream")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

const e2eTopic = "dashstream-quality"

func startKafka(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, e2eTopic, e2eTopic+"-dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// produced remembers what the test sent, per partition and offset.
type produced struct {
	mu   sync.Mutex
	vals map[int32]map[int64][]byte
}

func produce(t *testing.T, brokers string, recs []synth.Record, into *produced) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(synth.KafkaPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var krs []*kgo.Record
	for _, r := range recs {
		krs = append(krs, &kgo.Record{Topic: e2eTopic, Key: r.Key, Value: r.Value})
	}
	res := cl.ProduceSync(ctx, krs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	into.mu.Lock()
	defer into.mu.Unlock()
	if into.vals == nil {
		into.vals = map[int32]map[int64][]byte{}
	}
	for _, r := range res {
		m := into.vals[r.Record.Partition]
		if m == nil {
			m = map[int64][]byte{}
			into.vals[r.Record.Partition] = m
		}
		m[r.Record.Offset] = r.Record.Value
	}
}

func (p *produced) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.vals {
		n += len(m)
	}
	return n
}

// server is one `dashstream serve` child process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	addr    string
	dataDir string
	env     []string
}

func startServer(t *testing.T, brokers, dataDir string, port int, extraEnv ...string) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, addr: "127.0.0.1:" + strconv.Itoa(port)}
	s.env = append(os.Environ(), "KAFKA_BROKERS="+brokers, "KAFKA_TOPIC="+e2eTopic, "DASHSTREAM_DATA_DIR="+dataDir,
		"WEBSOCKET_PORT="+strconv.Itoa(port), "WEBSOCKET_HOST=127.0.0.1", "KAFKA_LAG_CHECK_INTERVAL_SECS=1")
	s.env = append(s.env, extraEnv...)
	s.start()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("log of the server on %s:\n%s", s.addr, s.log())
		}
	})
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(dashstreamBinary(s.t), "serve")
	s.cmd.Env = s.env
	logf, err := os.OpenFile(filepath.Join(s.dataDir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); logf.Close(); close(exited) }(s.cmd, s.exited)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.addr + "/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("server on %s did not come up; log:\n%s", s.addr, s.log())
}

func (s *server) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dataDir, "serve.log"))
	return string(b)
}

func (s *server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
		}
	}
}

func (s *server) getJSON(path string, v any) {
	s.t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		s.t.Fatal(err)
	}
}

// waitIngested waits until the server's store holds n records.
func (s *server) waitIngested(n int) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var h struct {
		Store struct {
			Records int `json:"records"`
		} `json:"store"`
	}
	for time.Now().Before(deadline) {
		s.getJSON("/health", &h)
		if h.Store.Records >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("server %s holds %d records, want %d; log:\n%s", s.addr, h.Store.Records, n, s.log())
}

// wsClient collects records by (partition, offset) and checks pairing. A
// goroutine reads continuously (a cancelled Read closes the connection), so
// the test can wait with timeouts.
type wsClient struct {
	t       *testing.T
	ws      *websocket.Conn
	frames  chan wsFrame
	last    map[int32]int64
	got     map[int32][]int64
	payload map[[2]int64][]byte
}

type wsFrame struct {
	ctl map[string]any // nil for a record
	p   int32
	o   int64
	b   []byte
	err error
}

func dialWS(t *testing.T, addr string) (*wsClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20)
	c := &wsClient{t: t, ws: ws, frames: make(chan wsFrame, 1024), last: map[int32]int64{}, got: map[int32][]int64{}, payload: map[[2]int64][]byte{}}
	go c.readLoop()
	return c, nil
}

func (c *wsClient) readLoop() {
	defer close(c.frames)
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.frames <- wsFrame{err: err}
			return
		}
		if typ != websocket.MessageText {
			c.frames <- wsFrame{err: fmt.Errorf("binary frame without cursor")}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			c.frames <- wsFrame{err: err}
			return
		}
		if m["type"] != "cursor" {
			c.frames <- wsFrame{ctl: m}
			continue
		}
		p := int32(m["partition"].(float64))
		o, _ := strconv.ParseInt(m["offset"].(string), 10, 64)
		typ, data, err = c.ws.Read(context.Background())
		if err != nil {
			c.frames <- wsFrame{err: err}
			return
		}
		if typ != websocket.MessageBinary {
			c.frames <- wsFrame{err: fmt.Errorf("cursor followed by text %s", data)}
			return
		}
		c.frames <- wsFrame{p: p, o: o, b: data}
	}
}

func (c *wsClient) resume(offsets map[int32]int64, from string) error {
	m := map[string]string{}
	for p, o := range offsets {
		m[strconv.Itoa(int(p))] = strconv.FormatInt(o, 10)
	}
	b, _ := json.Marshal(map[string]any{"type": "resume", "lastOffsetsByPartition": m, "from": from})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}

var errIdle = fmt.Errorf("no frame within the timeout")

// read consumes frames until stop (called with the control frame, or nil
// after a record) says so, a read error, or timeout of silence.
func (c *wsClient) read(timeout time.Duration, stop func(ctl map[string]any) bool) error {
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return fmt.Errorf("connection closed")
			}
			if f.err != nil {
				return f.err
			}
			if f.ctl != nil {
				if stop(f.ctl) {
					return nil
				}
				continue
			}
			c.got[f.p] = append(c.got[f.p], f.o)
			c.payload[[2]int64{int64(f.p), f.o}] = f.b
			c.last[f.p] = f.o
			if stop(nil) {
				return nil
			}
		case <-time.After(timeout):
			return errIdle
		}
	}
}

// checkExactly asserts the client got every produced offset once, in order,
// with identical bytes (optionally only those after from[p]).
func (c *wsClient) checkExactly(want *produced, from map[int32]int64) {
	c.t.Helper()
	want.mu.Lock()
	defer want.mu.Unlock()
	for p, vals := range want.vals {
		start, ok := from[p]
		if !ok {
			start = -1
		}
		exp := int64(0)
		for o := range vals {
			if o > start {
				exp++
			}
		}
		got := c.got[p]
		if int64(len(got)) != exp {
			c.t.Fatalf("partition %d: got %d records, want %d", p, len(got), exp)
		}
		for i, o := range got {
			if i > 0 && o <= got[i-1] {
				c.t.Fatalf("partition %d: offset %d after %d", p, o, got[i-1])
			}
			if string(c.payload[[2]int64{int64(p), o}]) != string(vals[o]) {
				c.t.Fatalf("partition %d offset %d: payload differs", p, o)
			}
		}
	}
}

func isReplayComplete(m map[string]any) bool { return m != nil && m["type"] == "replay_complete" }

func TestE2EMultiNodeSameEpochAndPortableCursors(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	brokers := startKafka(t)
	var sent produced
	recs, err := synth.Corpus(11, 20)
	if err != nil {
		t.Fatal(err)
	}
	half := len(recs) / 2
	produce(t, brokers, recs[:half], &sent)
	a := startServer(t, brokers, t.TempDir(), freePort(t))
	b := startServer(t, brokers, t.TempDir(), freePort(t))
	a.waitIngested(half)
	b.waitIngested(half)

	var va, vb map[string]any
	a.getJSON("/version", &va)
	b.getJSON("/version", &vb)
	if va["epoch"] != vb["epoch"] || va["resume_namespace"] != vb["resume_namespace"] || va["epoch"] == "" {
		t.Fatalf("nodes disagree: A %v / %v, B %v / %v", va["epoch"], va["resume_namespace"], vb["epoch"], vb["resume_namespace"])
	}

	// A client reads everything from node A ...
	ca, err := dialWS(t, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.ws.CloseNow()
	if err := ca.resume(map[int32]int64{}, "earliest"); err != nil {
		t.Fatal(err)
	}
	if err := ca.read(30*time.Second, isReplayComplete); err != nil {
		t.Fatal(err)
	}
	ca.checkExactly(&sent, nil)
	cursors := map[int32]int64{}
	for p, o := range ca.last {
		cursors[p] = o
	}
	ca.ws.Close(websocket.StatusNormalClosure, "")

	// ... more arrives, and it resumes on node B with A's cursors.
	produce(t, brokers, recs[half:], &sent)
	b.waitIngested(len(recs))
	cb, err := dialWS(t, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.ws.CloseNow()
	if err := cb.resume(cursors, "cursor"); err != nil {
		t.Fatal(err)
	}
	if err := cb.read(30*time.Second, func(m map[string]any) bool {
		if m != nil && (m["type"] == "gap" || m["type"] == "cursor_stale") {
			t.Errorf("unexpected %v", m)
		}
		return isReplayComplete(m)
	}); err != nil {
		t.Fatal(err)
	}
	cb.checkExactly(&sent, cursors)
}

func TestE2EServerKilledMidStreamClientsResumeWithoutLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	brokers := startKafka(t)
	recs, err := synth.Corpus(12, 30)
	if err != nil {
		t.Fatal(err)
	}
	var sent produced
	port := freePort(t)
	srv := startServer(t, brokers, t.TempDir(), port)

	// The producer streams in small chunks for the whole test.
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := 0; i < len(recs); i += 50 {
			produce(t, brokers, recs[i:min(i+50, len(recs))], &sent)
			time.Sleep(50 * time.Millisecond)
		}
	}()

	c, err := dialWS(t, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.resume(map[int32]int64{}, "earliest"); err != nil {
		t.Fatal(err)
	}
	// Read for a while, then SIGKILL the server mid-stream and restart it.
	n := 0
	if err := c.read(30*time.Second, func(ctl map[string]any) bool { n++; return n >= 800 }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-prodDone:
		t.Fatal("the producer finished before the kill; the test did not kill mid-stream")
	default:
	}
	srv.kill()
	c.ws.CloseNow()
	srv.start()
	nc, err := dialWS(t, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.got, nc.payload, nc.last = c.got, c.payload, c.last
	c = nc
	defer c.ws.CloseNow()
	if err := c.resume(c.last, "cursor"); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		select {
		case <-prodDone:
			done = true
		default:
			_ = c.read(time.Second, func(map[string]any) bool { return false })
		}
	}
	// Once everything is ingested, one more resume with the client's
	// cursors brings it up to date; nothing may be missing or doubled.
	srv.waitIngested(sent.count())
	if err := c.resume(c.last, "cursor"); err != nil {
		t.Fatal(err)
	}
	if err := c.read(30*time.Second, isReplayComplete); err != nil {
		t.Fatal(err)
	}
	c.checkExactly(&sent, nil)
}
