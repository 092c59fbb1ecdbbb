package hub

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hub's Prometheus series, under the reference names
// (DECISIONS D8). The replay_buffer_redis_* and Redis latency series belong
// to the optional Redis store; they are registered here so they always
// exist (at 0 without Redis).
type Metrics struct {
	ConnectedClients     prometheus.Gauge
	DroppedMessages      *prometheus.CounterVec
	SendFailed           prometheus.Counter
	SendTimeout          prometheus.Counter
	ClientLagEvents      *prometheus.CounterVec
	ClientLagMessages    *prometheus.CounterVec
	SlowDisconnects      prometheus.Counter
	ControlOversized     prometheus.Counter
	ControlParseFailures prometheus.Counter
	RejectedConnections  prometheus.Counter
	ResumeRequests       *prometheus.CounterVec
	ReplayMessages       *prometheus.CounterVec
	ReplayGaps           *prometheus.CounterVec
	ReplayGapMessages    *prometheus.CounterVec
	ReplayLatency        *prometheus.HistogramVec
	MemoryHits           prometheus.Counter
	RedisHits            prometheus.Counter
	RedisMisses          prometheus.Counter
	RedisWriteDropped    prometheus.Counter
	RedisWriteFailures   prometheus.Counter
	RedisErrors          prometheus.Counter
	RedisLatency         *prometheus.HistogramVec

	// Ours.
	StoreReads    prometheus.Counter
	ClosedByCode  *prometheus.CounterVec
	TailRecords   prometheus.GaugeFunc
	RejectedLimit *prometheus.CounterVec
}

// Reasons of dashstream_ws_rejected_total: upgrades refused (per_ip 429,
// global 503, origin 403, auth 401) and control requests refused on an
// open connection (cursor_reset without the admin token; a resume over
// the partition or thread limit, closed with 4003).
const (
	RejectPerIP          = "per_ip"
	RejectGlobal         = "global"
	RejectOrigin         = "origin"
	RejectAuth           = "auth"
	RejectCursorReset    = "cursor_reset"
	RejectTooManyParts   = "resume_partitions"
	RejectTooManyThreads = "resume_threads"
)

// RejectReasons lists every dashstream_ws_rejected_total reason.
var RejectReasons = []string{RejectPerIP, RejectGlobal, RejectOrigin, RejectAuth, RejectCursorReset,
	RejectTooManyParts, RejectTooManyThreads}

// NewMetrics creates the hub's series and registers them on reg. tailLen
// reports the in-memory tail size for a gauge; it may be nil.
func NewMetrics(reg prometheus.Registerer, start time.Time, tailLen func() int) *Metrics {
	if tailLen == nil {
		tailLen = func() int { return 0 }
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	// Every label value a series can take is created at startup, so that
	// each reference name is exported at 0 before its first use (D8).
	cv := func(name, help, label string, seed ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		for _, s := range seed {
			v.WithLabelValues(s)
		}
		return v
	}
	hv := func(name, help, label string, buckets []float64, seed ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, []string{label})
		for _, s := range seed {
			v.WithLabelValues(s)
		}
		return v
	}
	severities := []string{"info", "warning", "critical"}
	m := &Metrics{
		ConnectedClients:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "websocket_connected_clients", Help: "Open WebSocket connections."}),
		DroppedMessages:      cv("websocket_dropped_messages_total", "Messages a client never received (kept for compatibility; lossless delivery keeps it at 0).", "reason", "lagged_receiver"),
		SendFailed:           c("websocket_send_failed_total", "WebSocket sends that failed."),
		SendTimeout:          c("websocket_send_timeout_total", "WebSocket sends that timed out."),
		ClientLagEvents:      cv("websocket_client_lag_events_total", "Times a live client fell behind the in-memory tail.", "severity", severities...),
		ClientLagMessages:    cv("websocket_client_lag_messages_total", "Records a live client read from the store after falling behind.", "severity", severities...),
		SlowDisconnects:      c("websocket_slow_client_disconnects_total", "Clients disconnected for lagging past the threshold."),
		ControlOversized:     c("websocket_control_oversized_total", "Inbound control frames over 1 MiB."),
		ControlParseFailures: c("websocket_control_parse_failures_total", "Inbound control frames that were not valid JSON."),
		RejectedConnections:  c("websocket_rejected_connections_total", "Connections refused by the per-IP limit."),
		ResumeRequests:       cv("websocket_resume_requests_total", "Resume requests.", "mode", ModePartition, ModeThread),
		ReplayMessages:       cv("websocket_replay_messages_total", "Records replayed.", "mode", ModePartition, ModeThread),
		ReplayGaps:           cv("websocket_replay_gaps_total", "Gap frames sent during replay.", "mode", ModePartition, ModeThread),
		ReplayGapMessages:    cv("websocket_replay_gap_messages_total", "Records reported missing by replay gap frames.", "mode", ModePartition, ModeThread),
		ReplayLatency: hv("websocket_replay_latency_ms", "Duration of a whole replay, ms.", "mode",
			[]float64{10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}, ModePartition, ModeThread),
		MemoryHits:         c("replay_buffer_memory_hits_total", "Reads served from the in-memory tail."),
		RedisHits:          c("replay_buffer_redis_hits_total", "Replay reads with Redis results."),
		RedisMisses:        c("replay_buffer_redis_misses_total", "Replay reads with empty or failed Redis results."),
		RedisWriteDropped:  c("replay_buffer_redis_write_dropped_total", "Redis writes dropped."),
		RedisWriteFailures: c("replay_buffer_redis_write_failures_total", "Redis write failures."),
		RedisErrors:        c("dashstream_websocket_redis_errors_total", "Redis errors."),
		RedisLatency: hv("dashstream_websocket_redis_latency_ms", "Redis operation latency, ms.", "operation",
			[]float64{1, 5, 10, 25, 50, 100, 250, 500, 1000}, "read", "write"),
		StoreReads:    c("dashstream_hub_store_reads_total", "Pages a connection read from the store (replay or catch-up)."),
		ClosedByCode:  cv("dashstream_ws_closed_total", "Connections the server closed, by close code.", "code"),
		RejectedLimit: cv("dashstream_ws_rejected_total", "Upgrades and control requests refused, by reason.", "reason", RejectReasons...),
		TailRecords: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dashstream_hub_tail_records", Help: "Records in the shared in-memory tail."},
			func() float64 { return float64(tailLen()) }),
	}
	uptime := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "websocket_uptime_seconds", Help: "Process uptime."},
		func() float64 { return time.Since(start).Seconds() })
	reg.MustRegister(m.ConnectedClients, m.DroppedMessages, m.SendFailed, m.SendTimeout, m.ClientLagEvents,
		m.ClientLagMessages, m.SlowDisconnects, m.ControlOversized, m.ControlParseFailures, m.RejectedConnections,
		m.ResumeRequests, m.ReplayMessages, m.ReplayGaps, m.ReplayGapMessages, m.ReplayLatency, m.MemoryHits,
		m.RedisHits, m.RedisMisses, m.RedisWriteDropped, m.RedisWriteFailures, m.RedisErrors, m.RedisLatency,
		m.StoreReads, m.ClosedByCode, m.RejectedLimit, m.TailRecords, uptime)
	return m
}
