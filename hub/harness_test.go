package hub

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
	"github.com/dashstream/dashstream/wire"
)

// testServer is a hub on a real memory store behind a real HTTP server.
type testServer struct {
	t       *testing.T
	st      store.Store
	hub     *Hub
	srv     *httptest.Server
	reg     *prometheus.Registry
	metrics *Metrics
	next    map[int32]int64
}

func newTestServer(t *testing.T, cfg Config, st store.Store) *testServer {
	t.Helper()
	if st == nil {
		st = memory.New(memory.Config{MaxRecords: 1 << 20})
	}
	reg := prometheus.NewRegistry()
	ts := &testServer{t: t, st: st, reg: reg, next: map[int32]int64{}}
	h, err := New(cfg, st, nil, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ts.metrics = NewMetrics(reg, time.Now(), func() int { n, _ := h.Tail().Len(); return n })
	h.metrics = ts.metrics
	ts.hub = h
	ts.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		ts.srv.Close()
		st.Close()
	})
	for p, n := range st.IngestOffsets() {
		ts.next[p] = n
	}
	return ts
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// payloadFor is a deterministic payload for (p, o) so tests can check
// bytes. Partitions from 10 on carry 8 KiB payloads, to fill socket buffers.
func payloadFor(p int32, o int64) []byte {
	pad := int(o % 7)
	if p >= 10 {
		pad += 8 << 10
	}
	return []byte(fmt.Sprintf("\x00payload p=%d o=%d %s", p, o, strings.Repeat("x", pad)))
}

// appendRecords commits n records to p (optionally skipping some offsets
// as invalid) and notifies the hub, as ingest does.
func (ts *testServer) appendRecords(p int32, n int, thread string) []int64 {
	ts.t.Helper()
	var offs []int64
	b := store.Batch{NextOffsets: map[int32]int64{}}
	for i := 0; i < n; i++ {
		o := ts.next[p]
		ts.next[p]++
		rec := store.Record{Partition: p, Offset: o, Time: time.Now(), Payload: payloadFor(p, o)}
		if thread != "" {
			rec.Index.Threads = []wire.ThreadSeq{{ThreadID: thread, Seq: uint64(o + 1)}}
		}
		b.Records = append(b.Records, rec)
		offs = append(offs, o)
		if len(b.Records) == 1000 {
			ts.commit(b, p)
			b = store.Batch{NextOffsets: map[int32]int64{}}
		}
	}
	if len(b.Records) > 0 {
		ts.commit(b, p)
	}
	return offs
}

// skip records [next, next+n) of p as invalid.
func (ts *testServer) skip(p int32, n int64) {
	from := ts.next[p]
	ts.next[p] += n
	ts.commit(store.Batch{Skipped: []store.SkippedRange{{Partition: p, From: from, To: from + n, Reason: store.SkipInvalid}},
		NextOffsets: map[int32]int64{}}, p)
}

func (ts *testServer) commit(b store.Batch, p int32) {
	ts.t.Helper()
	b.NextOffsets[p] = ts.next[p]
	if err := ts.st.Append(context.Background(), b); err != nil {
		ts.t.Fatal(err)
	}
	ts.hub.Appended(b)
}

func (ts *testServer) url(query string) string {
	return "ws" + strings.TrimPrefix(ts.srv.URL, "http") + "/ws" + query
}

// client is a real WebSocket client that checks the pairing invariant.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	batch   bool
	pending []event // events of a batch after the one until stopped at
}

func (ts *testServer) dial(query string) *client {
	ts.t.Helper()
	return ts.dialWith(query, nil)
}

// dialSmallBuffer dials with a 64 KiB receive buffer (no autotuning), so
// a client that stops reading blocks the server quickly.
func (ts *testServer) dialSmallBuffer(query string) *client {
	ts.t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}}
	return ts.dialWith(query, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
}

func (ts *testServer) dialWith(query string, opts *websocket.DialOptions) *client {
	ts.t.Helper()
	c, err := ts.tryDial(query, opts, 5*time.Second)
	if err != nil {
		ts.t.Fatalf("dial: %v", err)
	}
	return c
}

// tryDial is dial for goroutines other than the test's.
func (ts *testServer) tryDial(query string, opts *websocket.DialOptions, timeout time.Duration) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, ts.url(query), opts)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20)
	c := &client{t: ts.t, ws: ws, batch: strings.Contains(query, "batch=1")}
	ts.t.Cleanup(func() { ws.CloseNow() })
	return c, nil
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// rec is a record as a client received it.
type rec struct {
	P int32
	O int64
	B []byte
}

// event is one thing the client saw: a record or a control frame.
type event struct {
	Rec  *rec
	Ctl  map[string]any
	Type string
}

// next reads until one record or control frame is complete.
func (c *client) next(timeout time.Duration) ([]event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ == websocket.MessageBinary {
		if !c.batch {
			return nil, errors.New("binary frame without a cursor frame")
		}
		return decodeBatch(data)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("bad text frame %q: %w", data, err)
	}
	t, _ := m["type"].(string)
	if t != "cursor" {
		return []event{{Ctl: m, Type: t}}, nil
	}
	if c.batch {
		return nil, errors.New("cursor frame on a batched connection")
	}
	p := int32(m["partition"].(float64))
	o, err := strconv.ParseInt(m["offset"].(string), 10, 64)
	if err != nil {
		return nil, err
	}
	typ, data, err = c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, fmt.Errorf("cursor frame followed by text %q", data)
	}
	return []event{{Rec: &rec{P: p, O: o, B: data}, Type: "record"}}, nil
}

func decodeBatch(b []byte) ([]event, error) {
	if len(b) == 0 || b[0] != BatchFrameType {
		return nil, errors.New("batched frame without type byte 0x02")
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad record count")
	}
	b = b[k:]
	var out []event
	for i := uint64(0); i < n; i++ {
		if len(b) < 12 {
			return nil, errors.New("truncated record header")
		}
		p := int32(binary.BigEndian.Uint32(b))
		o := int64(binary.BigEndian.Uint64(b[4:]))
		b = b[12:]
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, errors.New("truncated record")
		}
		out = append(out, event{Rec: &rec{P: p, O: o, B: b[k : k+int(l)]}, Type: "record"})
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("trailing bytes in batch")
	}
	return out, nil
}

// untilErr is until for goroutines other than the test's.
func (c *client) untilErr(timeout time.Duration, stop func(event) bool) ([]event, error) {
	deadline := time.Now().Add(timeout)
	var all []event
	for {
		evs, err := c.next(time.Until(deadline))
		if err != nil {
			return all, fmt.Errorf("after %d events: %w", len(all), err)
		}
		for _, e := range evs {
			all = append(all, e)
			if stop(e) {
				return all, nil
			}
		}
	}
}

// until reads events until stop returns true for one of them, or fails.
func (c *client) until(timeout time.Duration, stop func(event) bool) []event {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var all []event
	for len(c.pending) > 0 {
		e := c.pending[0]
		c.pending = c.pending[1:]
		all = append(all, e)
		if stop(e) {
			return all
		}
	}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("timed out; saw %d events, last %v", len(all), lastEvent(all))
		}
		evs, err := c.next(left)
		if err != nil {
			c.t.Fatalf("read after %d events: %v", len(all), err)
		}
		for i, e := range evs {
			all = append(all, e)
			if stop(e) {
				c.pending = append(c.pending, evs[i+1:]...)
				return all
			}
		}
	}
}

func lastEvent(evs []event) any {
	if len(evs) == 0 {
		return nil
	}
	e := evs[len(evs)-1]
	if e.Rec != nil {
		return fmt.Sprintf("record %d/%d", e.Rec.P, e.Rec.O)
	}
	return e.Ctl
}

func isType(t string) func(event) bool { return func(e event) bool { return e.Type == t } }

// records extracts the records of evs and checks their payload bytes.
func records(t *testing.T, evs []event) []rec {
	t.Helper()
	var out []rec
	for _, e := range evs {
		if e.Rec != nil {
			if want := payloadFor(e.Rec.P, e.Rec.O); string(e.Rec.B) != string(want) {
				t.Fatalf("payload of %d/%d differs", e.Rec.P, e.Rec.O)
			}
			out = append(out, *e.Rec)
		}
	}
	return out
}

// checkExactlyOnce asserts that got holds exactly want's offsets of p, in
// order, once each.
func checkExactlyOnce(t *testing.T, got []rec, p int32, want []int64) {
	t.Helper()
	var offs []int64
	for _, r := range got {
		if r.P == p {
			offs = append(offs, r.O)
		}
	}
	if len(offs) != len(want) {
		t.Fatalf("partition %d: got %d records, want %d (first %v)", p, len(offs), len(want), head(offs))
	}
	for i := range want {
		if offs[i] != want[i] {
			t.Fatalf("partition %d: record %d is offset %d, want %d", p, i, offs[i], want[i])
		}
	}
}

func head(x []int64) []int64 {
	if len(x) > 10 {
		return x[:10]
	}
	return x
}

func seq(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

var _ http.Handler = (*Hub)(nil)

// roundTrip sends a ping and waits for its pong: once it returns, the
// server has registered the connection and will deliver what is committed
// next.
func (c *client) roundTrip() {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	c.until(wait, isType("pong"))
}
