package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dashstream/dashstream/hub/api"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// testNow is the fixed clock of most tests.
var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// quietLogger discards logs unless the test runs verbose.
func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&testWriter{t}, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// start serves api.New(cfg, deps) on a real HTTP server.
func start(t *testing.T, cfg api.Config, deps api.Deps) *httptest.Server {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = quietLogger(t)
	}
	if deps.Now == nil {
		deps.Now = func() time.Time { return testNow }
	}
	srv := httptest.NewServer(api.New(cfg, deps))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends one request and reads the whole response.
func do(t *testing.T, method, url string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: res.StatusCode, header: res.Header, body: b}
}

func get(t *testing.T, url string, header ...string) response {
	t.Helper()
	return do(t, http.MethodGet, url, nil, header...)
}

// object decodes a JSON object body.
func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (r response) want(t *testing.T, code int) response {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body %s", r.code, code, r.body)
	}
	return r
}

// newMemStore returns an empty memory store closed at cleanup.
func newMemStore(t *testing.T) *memory.Store {
	t.Helper()
	st := memory.New(memory.Config{Now: func() time.Time { return testNow }})
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// recBuilder appends hand-indexed records (wire.Encode/Extract may still
// be stubs) with increasing offsets per partition.
type recBuilder struct {
	t    *testing.T
	st   store.Store
	next map[int32]int64
	all  []store.Record
}

func newRecBuilder(t *testing.T, st store.Store) *recBuilder {
	return &recBuilder{t: t, st: st, next: map[int32]int64{}}
}

// add appends one record on partition p touching thread at seq, with the
// given run events, and returns it.
func (b *recBuilder) add(p int32, thread string, seq uint64, at time.Time, events ...wire.RunEvent) store.Record {
	b.t.Helper()
	off := b.next[p]
	b.next[p] = off + 1
	payload := []byte(fmt.Sprintf("\x00payload p%d o%d %s seq %d", p, off, thread, seq))
	for i := range events {
		events[i].ThreadID = thread
		events[i].Seq = seq
		if events[i].TimestampUs == 0 {
			events[i].TimestampUs = at.UnixMicro()
		}
	}
	rec := store.Record{
		Partition: p,
		Offset:    off,
		Time:      at,
		Payload:   payload,
		Index: wire.Index{
			Type:        pb.MessageType_MESSAGE_TYPE_EVENT,
			TimestampUs: at.UnixMicro(),
			Threads:     []wire.ThreadSeq{{ThreadID: thread, Seq: seq}},
			Events:      events,
		},
	}
	if seq == 0 {
		rec.Index.Type = pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE
	}
	err := b.st.Append(context.Background(), store.Batch{
		Records:     []store.Record{rec},
		NextOffsets: map[int32]int64{p: off + 1},
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.all = append(b.all, rec)
	return rec
}

func graphStart(name string) wire.RunEvent {
	return wire.RunEvent{EventType: pb.EventType_EVENT_TYPE_GRAPH_START, GraphName: name}
}

func graphEnd() wire.RunEvent {
	return wire.RunEvent{EventType: pb.EventType_EVENT_TYPE_GRAPH_END}
}

func nodeError(text string) wire.RunEvent {
	return wire.RunEvent{EventType: pb.EventType_EVENT_TYPE_NODE_ERROR, ErrorText: text}
}

// batchRecord is one record of a D6 batch body.
type batchRecord struct {
	Partition int32
	Offset    int64
	Payload   []byte
}

// decodeBatch parses a D6 batch: 0x02, uvarint count, then per record
// partition int32 BE, offset int64 BE, uvarint length, payload.
func decodeBatch(b []byte) ([]batchRecord, error) {
	if len(b) == 0 || b[0] != 0x02 {
		return nil, errors.New("missing 0x02 type byte")
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad count")
	}
	b = b[k:]
	out := make([]batchRecord, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(b) < 12 {
			return nil, fmt.Errorf("record %d: short header", i)
		}
		r := batchRecord{
			Partition: int32(binary.BigEndian.Uint32(b)),
			Offset:    int64(binary.BigEndian.Uint64(b[4:])),
		}
		b = b[12:]
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, fmt.Errorf("record %d: bad length", i)
		}
		r.Payload = b[k : k+int(l)]
		b = b[k+int(l):]
		out = append(out, r)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(b))
	}
	return out, nil
}

// fullStore reports Full like a store whose last append hit ErrFull.
type fullStore struct{ store.Store }

func (f fullStore) Stats() store.Stats {
	s := f.Store.Stats()
	s.Full = true
	return s
}
