package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashstream/dashstream/hub"
	"github.com/dashstream/dashstream/hub/api"
	"github.com/dashstream/dashstream/store"
)

var metricKeys = []string{
	"kafka_messages_received", "kafka_errors", "infrastructure_errors", "connected_clients",
	"uptime_seconds", "last_kafka_message_ago_seconds", "dropped_messages", "dropped_messages_last_120s",
	"last_drop_ago_seconds", "decode_errors", "old_data_decode_errors", "payload_missing",
	"last_infrastructure_error_ago_seconds", "decode_errors_last_120s", "messages_last_120s",
	"send_failed", "send_timeout", "send_failed_last_120s", "send_timeout_last_120s",
}

var replayKeys = []string{
	"redis_enabled", "memory_hits", "redis_hits", "redis_misses", "redis_write_dropped",
	"redis_write_failures", "memory_buffer_size", "max_memory_size", "redis_message_ttl_secs",
	"redis_max_sequences",
}

var storeKeys = []string{
	"kind", "epoch", "bytes", "records", "oldest_age_seconds", "full", "paused",
	"paused_partition", "paused_offset",
}

func TestHealth(t *testing.T) {
	flowing := api.IngestFacts{MessagesReceived: 500, LastMessage: testNow.Add(-3 * time.Second),
		MessagesLast120s: 150, PausedPartition: -1, PausedOffset: -1}
	with := func(f func(*api.IngestFacts)) api.IngestFacts {
		in := flowing
		f(&in)
		return in
	}
	tests := []struct {
		name        string
		in          api.IngestFacts
		full        bool
		clients     int
		status      string
		kafka       string
		ws          string
		alert       string // substring; "" = no alert
		pausedPart  any    // JSON value of store.paused_partition
		pausedOff   any
		storeFull   bool
		storePaused bool
	}{
		{name: "healthy", in: flowing, clients: 2, status: "healthy", kafka: "connected", ws: "2_clients_connected"},
		{name: "waiting before any message", in: api.IngestFacts{PausedPartition: -1, PausedOffset: -1},
			status: "waiting", kafka: "waiting_for_messages", ws: "no_clients"},
		{name: "waiting when stale", in: with(func(in *api.IngestFacts) { in.LastMessage = testNow.Add(-61 * time.Second) }),
			status: "waiting", kafka: "no_recent_messages", ws: "no_clients"},
		{name: "reconnecting", in: with(func(in *api.IngestFacts) { in.LastInfraError = testNow.Add(-10 * time.Second) }),
			status: "reconnecting", kafka: "connected", ws: "no_clients"},
		{name: "old infra error is not recent", in: with(func(in *api.IngestFacts) { in.LastInfraError = testNow.Add(-121 * time.Second) }),
			status: "healthy", kafka: "connected", ws: "no_clients"},
		{name: "degraded by decode rate", in: with(func(in *api.IngestFacts) { in.DecodeErrorsLast120s, in.DecodeErrors = 5, 5 }),
			status: "degraded", kafka: "connected", ws: "no_clients", alert: "CRITICAL: High decode error rate"},
		{name: "small sample is INFO only", in: with(func(in *api.IngestFacts) { in.MessagesLast120s, in.DecodeErrorsLast120s = 40, 2 }),
			status: "healthy", kafka: "connected", ws: "no_clients", alert: "INFO: Elevated decode error rate (5.00%)"},
		{name: "payload missing alert", in: with(func(in *api.IngestFacts) { in.PayloadMissing = 1 }),
			status: "healthy", kafka: "connected", ws: "no_clients", alert: "CRITICAL: 1 Kafka messages had missing payloads"},
		{name: "degraded when decode-paused", in: with(func(in *api.IngestFacts) {
			in.Paused, in.PausedPartition, in.PausedOffset = true, 2, 17
		}), status: "degraded", kafka: "connected", ws: "no_clients", alert: "partition 2 offset 17",
			pausedPart: float64(2), pausedOff: float64(17), storePaused: true},
		{name: "degraded when store full", in: flowing, full: true,
			status: "degraded", kafka: "connected", ws: "no_clients", alert: "Store full", storeFull: true},
		{name: "degraded when store unreachable", in: with(func(in *api.IngestFacts) {
			in.Paused, in.StoreError = true, "dial tcp: connection refused"
		}), status: "degraded", kafka: "connected", ws: "no_clients", alert: "store unavailable", storePaused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newMemStore(t)
			newRecBuilder(t, mem).add(0, "t1", 1, testNow.Add(-90*time.Second))
			var st store.Store = mem
			if tc.full {
				st = fullStore{mem}
			}
			srv := start(t, api.Config{Start: testNow.Add(-time.Hour), TailMaxRecords: 1000}, api.Deps{
				Store:   st,
				Clients: func() int { return tc.clients },
				Ingest:  func() api.IngestFacts { return tc.in },
				Hub: func(time.Time) api.HubFacts {
					return api.HubFacts{TailRecords: 7, SendFailed: 3, SendFailedLast120s: 1}
				},
			})
			res := get(t, srv.URL+"/health").want(t, 200)
			if !strings.Contains(string(res.body), `"status":"`+tc.status+`"`) {
				t.Errorf("compact body lacks status %q: %s", tc.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			h := res.object(t)
			if h["status"] != tc.status || h["kafka_status"] != tc.kafka || h["websocket_status"] != tc.ws {
				t.Errorf("status/kafka/ws = %v/%v/%v, want %s/%s/%s",
					h["status"], h["kafka_status"], h["websocket_status"], tc.status, tc.kafka, tc.ws)
			}
			alert, hasAlert := h["alert"].(string)
			switch {
			case tc.alert == "" && hasAlert:
				t.Errorf("unexpected alert %q", alert)
			case tc.alert != "" && !strings.Contains(alert, tc.alert):
				t.Errorf("alert %q lacks %q", alert, tc.alert)
			}
			if _, ok := h["circuit_breaker"]; ok {
				t.Error("circuit_breaker present; we have none")
			}
			m := h["metrics"].(map[string]any)
			for _, k := range metricKeys {
				if _, ok := m[k]; !ok {
					t.Errorf("metrics.%s missing", k)
				}
			}
			if len(m) != len(metricKeys) {
				t.Errorf("metrics has %d keys, want %d", len(m), len(metricKeys))
			}
			if m["connected_clients"] != float64(tc.clients) || m["uptime_seconds"] != float64(3600) ||
				m["send_failed"] != float64(3) || m["send_failed_last_120s"] != float64(1) {
				t.Errorf("metrics = %v", m)
			}
			if m["last_drop_ago_seconds"] != nil {
				t.Errorf("last_drop_ago_seconds = %v, want null", m["last_drop_ago_seconds"])
			}
			rb := h["replay_buffer"].(map[string]any)
			for _, k := range replayKeys {
				if _, ok := rb[k]; !ok {
					t.Errorf("replay_buffer.%s missing", k)
				}
			}
			if rb["redis_enabled"] != false || rb["memory_buffer_size"] != float64(7) || rb["max_memory_size"] != float64(1000) {
				t.Errorf("replay_buffer = %v", rb)
			}
			s := h["store"].(map[string]any)
			for _, k := range storeKeys {
				if _, ok := s[k]; !ok {
					t.Errorf("store.%s missing", k)
				}
			}
			if s["kind"] != "memory" || s["epoch"] != mem.Epoch() || s["records"] != float64(1) ||
				s["oldest_age_seconds"] != float64(90) || s["full"] != tc.storeFull || s["paused"] != tc.storePaused ||
				s["paused_partition"] != tc.pausedPart || s["paused_offset"] != tc.pausedOff {
				t.Errorf("store = %v", s)
			}
		})
	}
}

// TestHealthEmptyDeps: only a store, nothing else wired.
func TestHealthEmptyDeps(t *testing.T) {
	srv := start(t, api.Config{}, api.Deps{Store: newMemStore(t)})
	h := get(t, srv.URL+"/health").want(t, 200).object(t)
	if h["status"] != "waiting" {
		t.Errorf("status %v", h["status"])
	}
	s := h["store"].(map[string]any)
	if s["oldest_age_seconds"] != nil || s["paused_partition"] != nil || s["paused_offset"] != nil {
		t.Errorf("store = %v, want nulls", s)
	}
}

// TestHubFactsFunc reads the hub's real counters and tail.
func TestHubFactsFunc(t *testing.T) {
	st := newMemStore(t)
	reg := prometheus.NewRegistry()
	m := hub.NewMetrics(reg, time.Now(), nil)
	m.SendFailed.Add(2) // before: baseline, not in the window
	h, err := hub.New(hub.Config{}, st, m, quietLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	facts := api.HubFactsFunc(h, m)
	m.SendFailed.Add(3)
	m.SendTimeout.Inc()
	m.DroppedMessages.WithLabelValues("lagged").Add(4)
	m.MemoryHits.Add(9)
	h.Appended(store.Batch{Records: []store.Record{{Partition: 0, Offset: 0, Payload: []byte("x")}},
		NextOffsets: map[int32]int64{0: 1}})
	now := time.Now()
	f := facts(now)
	if f.SendFailed != 5 || f.SendFailedLast120s != 3 || f.SendTimeout != 1 || f.SendTimeoutLast120s != 1 ||
		f.Dropped != 4 || f.DroppedLast120s != 4 || f.MemoryHits != 9 || f.LastDrop.IsZero() {
		t.Errorf("facts = %+v", f)
	}
	if f.TailRecords != 1 {
		t.Errorf("TailRecords = %d, want 1", f.TailRecords)
	}
}

// TestHealthStoreBackendCheck: Deps.StoreHealth makes /health degraded
// when the store's backend does not answer, even with no appends, and
// shows why in store.error; a check that hangs counts as unreachable.
func TestHealthStoreBackendCheck(t *testing.T) {
	flowing := api.IngestFacts{MessagesReceived: 500, LastMessage: testNow.Add(-3 * time.Second),
		MessagesLast120s: 150, PausedPartition: -1, PausedOffset: -1}
	tests := []struct {
		name   string
		check  func(ctx context.Context) error
		status string
		err    string // substring of store.error; "" = absent
	}{
		{"reachable", func(context.Context) error { return nil }, "healthy", ""},
		{"unreachable", func(context.Context) error { return errors.New("dial tcp 127.0.0.1:6379: connection refused") },
			"degraded", "backend unreachable: dial tcp 127.0.0.1:6379: connection refused"},
		{"hangs", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, "degraded", "deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			srv := start(t, api.Config{}, api.Deps{
				Store:  newMemStore(t),
				Ingest: func() api.IngestFacts { return flowing },
				StoreHealth: func(ctx context.Context) error {
					calls++
					if _, ok := ctx.Deadline(); !ok {
						t.Error("StoreHealth called without a deadline")
					}
					return tc.check(ctx)
				},
			})
			h := get(t, srv.URL+"/health").want(t, 200).object(t)
			if calls != 1 {
				t.Errorf("StoreHealth called %d times", calls)
			}
			s := h["store"].(map[string]any)
			for _, k := range storeKeys {
				if _, ok := s[k]; !ok {
					t.Errorf("store.%s missing", k)
				}
			}
			e, hasErr := s["error"].(string)
			alert, _ := h["alert"].(string)
			switch {
			case h["status"] != tc.status:
				t.Errorf("status %v, want %s", h["status"], tc.status)
			case tc.err == "" && (hasErr || alert != ""):
				t.Errorf("store.error %q, alert %q", e, alert)
			case tc.err != "" && (!strings.Contains(e, tc.err) || !strings.Contains(alert, "CRITICAL: Store unavailable")):
				t.Errorf("store.error %q, alert %q; want %q", e, alert, tc.err)
			}
			if s["paused"] != false {
				t.Errorf("store.paused %v: an unreachable backend does not pause by itself", s["paused"])
			}
		})
	}
}
