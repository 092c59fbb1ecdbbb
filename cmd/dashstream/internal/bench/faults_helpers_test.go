package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/wire/synth"
)

// The fault harness drives the real `dashstream serve` wiring end to end:
// the binary as a child process, the embedded kfake broker in the test
// process, real WebSocket clients. Long variants run with
// DASHSTREAM_LONG=1 (scripts/faults.sh).

func longRun() bool { return os.Getenv("DASHSTREAM_LONG") == "1" }

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// dashstreamExe builds the dashstream binary once per test binary.
func dashstreamExe(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dashstream-faults-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "dashstream")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/dashstream/dashstream/cmd/dashstream").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// testCorpus is a small synthetic corpus (40 runs of the D9 generator).
var testCorpus = sync.OnceValues(func() (*Corpus, error) { return LoadCorpus(40) })

func corpusRecords(t *testing.T) []synth.Record {
	t.Helper()
	c, err := testCorpus()
	if err != nil {
		t.Fatal(err)
	}
	return c.Valid
}

// rig is a broker, a `dashstream serve` child and a producer.
type rig struct {
	t         *testing.T
	exe       string
	dir       string
	brokerDir string
	broker    *ingest.Broker
	addr      string
	srv       *ServeProc
	env       map[string]string
	prod      *kgo.Client

	mu       sync.Mutex
	produced map[PO][]byte
	end      map[int32]int64
}

// newRig starts a broker (persistent when brokerDir is set) and the
// server with env.
func newRig(t *testing.T, persistentBroker bool, env map[string]string) *rig {
	t.Helper()
	r := &rig{t: t, exe: dashstreamExe(t), dir: t.TempDir(), env: env, produced: map[PO][]byte{}, end: map[int32]int64{}}
	if persistentBroker {
		r.brokerDir = filepath.Join(r.dir, "kafka")
	}
	r.startBroker("127.0.0.1:0")
	r.startServe(0)
	prod, err := NewProducer(r.addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.prod = prod
	t.Cleanup(func() {
		prod.Close()
		if r.srv != nil {
			if t.Failed() {
				r.keepLog()
			}
			r.srv.Kill()
		}
		if r.broker != nil {
			r.broker.Close()
		}
	})
	return r
}

func (r *rig) startBroker(addr string) {
	r.t.Helper()
	b, err := StartBroker(context.Background(), BrokerOptions{Addr: addr, DataDir: r.brokerDir})
	if err != nil {
		r.t.Fatal(err)
	}
	r.broker, r.addr = b, b.Addr()
}

// startServe starts the server on port (0: a free one) over the rig's
// data directory.
func (r *rig) startServe(port int) {
	r.t.Helper()
	srv, err := StartServe(context.Background(), ServeOptions{Exe: r.exe, Brokers: r.addr, DataDir: filepath.Join(r.dir, "data"),
		Port: port, Env: r.env, LogPath: filepath.Join(r.dir, "serve.log")})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
}

// secondServer starts another `dashstream serve` on the rig's broker,
// with a data directory of its own: a second node reading the same topic.
func (r *rig) secondServer() *ServeProc {
	r.t.Helper()
	srv, err := StartServe(context.Background(), ServeOptions{Exe: r.exe, Brokers: r.addr, DataDir: filepath.Join(r.dir, "data2"),
		Env: r.env, LogPath: filepath.Join(r.dir, "serve2.log")})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(srv.Kill)
	return srv
}

// produce sends recs and waits for their acknowledgement, remembering
// every value by partition and offset.
func (r *rig) produce(recs []synth.Record) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	krs := make([]*kgo.Record, len(recs))
	for i, rec := range recs {
		krs[i] = &kgo.Record{Topic: Topic, Partition: rec.Partition, Key: rec.Key, Value: rec.Value}
	}
	res := r.prod.ProduceSync(ctx, krs...)
	if err := res.FirstErr(); err != nil {
		r.t.Fatalf("produce: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pr := range res {
		r.produced[PO{pr.Record.Partition, pr.Record.Offset}] = pr.Record.Value
		r.end[pr.Record.Partition] = max(r.end[pr.Record.Partition], pr.Record.Offset+1)
	}
}

// producePaced produces recs cyclically at perSecond until ctx ends, then
// waits for the acknowledgements; it returns the count.
func (r *rig) producePaced(ctx context.Context, recs []synth.Record, perSecond float64) int {
	start := time.Now()
	n := 0
	for ctx.Err() == nil {
		due := int(time.Since(start).Seconds() * perSecond)
		for ; n < due; n++ {
			rec := recs[n%len(recs)]
			r.prod.Produce(context.Background(), &kgo.Record{Topic: Topic, Partition: rec.Partition, Key: rec.Key, Value: rec.Value},
				func(kr *kgo.Record, err error) {
					if err != nil {
						r.t.Errorf("produce: %v", err)
						return
					}
					r.mu.Lock()
					r.produced[PO{kr.Partition, kr.Offset}] = kr.Value
					r.end[kr.Partition] = max(r.end[kr.Partition], kr.Offset+1)
					r.mu.Unlock()
				})
		}
		time.Sleep(2 * time.Millisecond)
	}
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.prod.Flush(fctx); err != nil {
		r.t.Errorf("flush: %v", err)
	}
	return n
}

// ends returns a copy of the next offset of every partition produced to.
func (r *rig) ends() map[int32]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int32]int64, len(r.end))
	for p, n := range r.end {
		out[p] = n
	}
	return out
}

func (r *rig) value(k PO) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.produced[k]
	return v, ok
}

// waitIngested waits until the server has committed every record
// produced so far: a resume from latest reports where "now" is.
func (r *rig) waitIngested() { r.waitIngestedOn(r.srv) }

// waitIngestedOn is waitIngested for another server on the rig's broker.
func (r *rig) waitIngestedOn(srv *ServeProc) {
	r.t.Helper()
	end := r.ends()
	c, err := NewDialer(1).Dial(context.Background(), srv.URL(), ModeBatch)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var last map[string]any
		if err := c.SendJSON(context.Background(), map[string]any{"type": "resume", "from": "latest", "lastOffsetsByPartition": map[string]any{}}); err != nil {
			r.t.Fatal(err)
		}
		for last == nil {
			err := c.ReadFrame(context.Background(), Handler{Control: func(typ string, raw []byte) {
				var m map[string]any
				if typ == "replay_complete" && json.Unmarshal(raw, &m) == nil {
					last, _ = m["lastOffsetsByPartition"].(map[string]any)
					if last == nil {
						last = map[string]any{}
					}
				}
			}})
			if err != nil {
				r.t.Fatal(err)
			}
		}
		caught := true
		for p, e := range end {
			if last[strconv.Itoa(int(p))] != strconv.FormatInt(e-1, 10) {
				caught = false
			}
		}
		if caught {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the server has not ingested up to %v after 2 minutes (at %v)", end, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// health returns the server's /health document.
func (r *rig) health() map[string]any {
	r.t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(r.srv.HTTP() + "/health")
	if err != nil {
		r.t.Fatalf("health: %v", err)
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		r.t.Fatalf("health: %v", err)
	}
	return h
}

// recorder is a WebSocket client that keeps every record it got, per
// partition, checking the bytes against what the rig produced.
type recorder struct {
	c   *Client
	rig *rig

	mu      sync.Mutex
	cond    *sync.Cond
	offs    map[int32][]int64
	vals    map[PO][]byte
	n       int
	ctls    []map[string]any
	err     error // what ended the connection
	stopped bool
}

func (r *rig) record(d *Dialer, mode string) *recorder {
	r.t.Helper()
	c, err := d.Dial(context.Background(), r.srv.URL(), mode)
	if err != nil {
		r.t.Fatal(err)
	}
	rc := &recorder{c: c, rig: r, offs: map[int32][]int64{}, vals: map[PO][]byte{}}
	rc.cond = sync.NewCond(&rc.mu)
	go rc.read()
	r.t.Cleanup(c.Close)
	return rc
}

func (rc *recorder) read() {
	h := Handler{
		Record: func(p int32, o int64, payload []byte) {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			// A record may arrive before the producer's acknowledgement
			// does: the bytes are compared when the test checks.
			rc.vals[PO{p, o}] = bytes.Clone(payload)
			rc.offs[p] = append(rc.offs[p], o)
			rc.n++
			rc.cond.Broadcast()
		},
		Control: func(typ string, raw []byte) {
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			rc.mu.Lock()
			rc.ctls = append(rc.ctls, m)
			rc.mu.Unlock()
			rc.cond.Broadcast()
		},
	}
	for {
		if err := rc.c.ReadFrame(context.Background(), h); err != nil {
			rc.mu.Lock()
			if rc.err == nil {
				rc.err = err
			}
			rc.stopped = true
			rc.mu.Unlock()
			rc.cond.Broadcast()
			return
		}
	}
}

// waitFor waits until cond (called under the recorder's lock) holds.
func (rc *recorder) waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	timer := time.AfterFunc(d, rc.cond.Broadcast)
	defer timer.Stop()
	deadline := time.Now().Add(d)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for !cond() {
		if rc.stopped {
			t.Fatalf("waiting for %s: connection ended after %d records: %v", what, rc.n, rc.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %d records after %s (connection open, last control frames %v)", what, rc.n, d, rc.ctls[max(0, len(rc.ctls)-3):])
		}
		rc.cond.Wait()
	}
}

func (rc *recorder) waitRecords(t *testing.T, n int, d time.Duration) {
	t.Helper()
	rc.waitFor(t, d, fmt.Sprintf("%d records", n), func() bool { return rc.n >= n })
}

func (rc *recorder) waitControl(t *testing.T, typ string, d time.Duration) map[string]any {
	t.Helper()
	var got map[string]any
	rc.waitFor(t, d, typ, func() bool {
		for _, c := range rc.ctls {
			if c["type"] == typ {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

// check fails unless the recorder holds, per partition, exactly the
// offsets from[p]+1 … to[p]−1 once each and in order, with no error.
func (rc *recorder) check(t *testing.T, from, to map[int32]int64) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.compareBytes(t)
	for p, end := range to {
		start := from[p] + 1
		got := rc.offs[p]
		if int64(len(got)) != end-start {
			t.Fatalf("partition %d: %d records, want %d (offsets %d…%d)", p, len(got), end-start, start, end-1)
		}
		for i, o := range got {
			if o != start+int64(i) {
				t.Fatalf("partition %d: record %d has offset %d, want %d", p, i, o, start+int64(i))
			}
		}
	}
}

// compareBytes fails unless every record received has the bytes that
// were produced at its partition and offset.
func (rc *recorder) compareBytes(t *testing.T) {
	t.Helper()
	for k, got := range rc.vals {
		want, ok := rc.rig.value(k)
		if !ok || !bytes.Equal(want, got) {
			t.Fatalf("record %d/%d: %d bytes differ from what was produced (produced: %v)", k.P, k.O, len(got), ok)
		}
	}
}

// checkAccounted fails unless every offset of from[p]+1 … to[p]−1 was
// either received (once, in order) or reported in an evicted or invalid
// gap, and nothing else arrived: the lossless-or-reported contract of
// DECISIONS D4 for a client that fell behind retention.
func (rc *recorder) checkAccounted(t *testing.T, from, to map[int32]int64) (received, gapped int64) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.compareBytes(t)
	type span struct{ lo, hi int64 } // inclusive
	for p, end := range to {
		var spans []span
		for _, o := range rc.offs[p] {
			spans = append(spans, span{o, o})
			received++
		}
		for _, c := range rc.ctls {
			if c["type"] != "gap" || int32(c["partition"].(float64)) != p {
				continue
			}
			lo, _ := strconv.ParseInt(c["from"].(string), 10, 64)
			hi, _ := strconv.ParseInt(c["to"].(string), 10, 64)
			spans = append(spans, span{lo, hi})
			gapped += hi - lo + 1
		}
		sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
		next := from[p] + 1
		for _, sp := range spans {
			if sp.lo != next {
				t.Fatalf("partition %d: expected offset %d next, got %d…%d (received and gaps overlap or leave a hole)", p, next, sp.lo, sp.hi)
			}
			next = sp.hi + 1
		}
		if next != end {
			t.Fatalf("partition %d: accounted up to %d, want %d", p, next, end)
		}
	}
	return received, gapped
}

// randomCursors picks a cursor in [−1, end−1] per partition.
func randomCursors(rnd *rand.Rand, end map[int32]int64) map[int32]int64 {
	out := map[int32]int64{}
	for p, n := range end {
		out[p] = rnd.Int63n(n+1) - 1
	}
	return out
}

func resumeFrame(cur map[int32]int64) map[string]any {
	offs := map[string]any{}
	for p, o := range cur {
		offs[strconv.Itoa(int(p))] = strconv.FormatInt(o, 10)
	}
	return map[string]any{"type": "resume", "lastOffsetsByPartition": offs}
}

// keepLog makes the server dump its goroutines (SIGQUIT) and keeps its
// log where a failed test's temporary directory does not remove it.
func (r *rig) keepLog() {
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(r.srv.HTTP() + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if (strings.HasPrefix(l, "websocket_") || strings.HasPrefix(l, "dashstream_")) && !strings.Contains(l, "_bucket") {
				keep = append(keep, l)
			}
		}
		r.t.Logf("server metrics at failure:\n%s", strings.Join(keep, "\n"))
	}
	if out, err := exec.Command("ss", "-tnpi", fmt.Sprintf("( sport = :%d or dport = :%d )", r.srv.Port, r.srv.Port)).CombinedOutput(); err == nil {
		r.t.Logf("sockets of the server port:\n%s", out)
	}
	_ = r.srv.Cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-r.srv.Exited():
	case <-time.After(5 * time.Second):
	}
	dst := filepath.Join(os.TempDir(), "dashstream-faults", r.t.Name()+"-serve.log")
	if b, err := os.ReadFile(r.srv.LogPath); err == nil && os.MkdirAll(filepath.Dir(dst), 0o755) == nil &&
		os.WriteFile(dst, b, 0o644) == nil {
		r.t.Logf("server log with a goroutine dump: %s", dst)
	}
	r.t.Logf("server log (first lines):\n%s", head(r.srv.LogPath, 3000))
}

// head returns the first n bytes of the file at path.
func head(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b[:min(len(b), n)])
}
