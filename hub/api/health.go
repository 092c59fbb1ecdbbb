package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dashstream/dashstream/hub"
)

// IngestFacts is the snapshot of ingest that /health needs. The caller
// fills it from ingest.Status; zero values mean "nothing happened yet".
type IngestFacts struct {
	// Lifetime counters (reference §2.3 metrics).
	MessagesReceived    int64 // kafka_messages_received: every record, incl. missing payloads
	KafkaErrors         int64 // kafka_errors
	InfraErrors         int64 // infrastructure_errors
	DecodeErrors        int64 // decode_errors
	OldDataDecodeErrors int64 // old_data_decode_errors
	PayloadMissing      int64 // payload_missing

	LastMessage    time.Time // zero: never
	LastInfraError time.Time // zero: never

	// Sliding 120 s windows (ingest keeps them; see also Window).
	MessagesLast120s     int64
	DecodeErrorsLast120s int64

	// Paused is true while any pause is in force (store refusing appends
	// or a partition stopped by KAFKA_ON_DECODE_ERROR=pause).
	Paused bool
	// PausedPartition and PausedOffset name the partition stopped by the
	// decode policy and the offset it stopped at; −1 when none.
	PausedPartition int32
	PausedOffset    int64
	// StoreFull: the last append failed with store.ErrFull.
	StoreFull bool
	// StoreError is the last store append error while ingest is paused on
	// the store (backend unreachable, full, …), else "".
	StoreError string
}

// HubFacts is the snapshot of the delivery side that /health needs. The
// caller fills it, usually with HubFactsFunc.
type HubFacts struct {
	Dropped             int64 // dropped_messages (lifetime)
	DroppedLast120s     int64
	LastDrop            time.Time // zero: never
	SendFailed          int64
	SendTimeout         int64
	SendFailedLast120s  int64
	SendTimeoutLast120s int64

	MemoryHits         int64
	RedisHits          int64
	RedisMisses        int64
	RedisWriteDropped  int64
	RedisWriteFailures int64
	TailRecords        int64 // memory_buffer_size: records in the shared tail
}

// HubFactsFunc returns a HubFacts source reading the hub's Prometheus
// counters (m may be nil) and tail. The 120 s windows come from
// CounterWindows sampled on every call, so they are exact to one 10 s
// bucket when the function runs at least every 10 s (call it from a ticker
// if /health is polled rarely) and under-report otherwise.
//
// Counts already there when HubFactsFunc is called are the baseline: they
// show in the lifetime figures but not in the windows.
func HubFactsFunc(h *hub.Hub, m *hub.Metrics) func(now time.Time) HubFacts {
	var dropped, failed, timedOut CounterWindow
	if m != nil {
		start := time.Now()
		dropped.Observe(start, CounterTotal(m.DroppedMessages))
		failed.Observe(start, CounterTotal(m.SendFailed))
		timedOut.Observe(start, CounterTotal(m.SendTimeout))
	}
	return func(now time.Time) HubFacts {
		var f HubFacts
		if h != nil {
			recs, _ := h.Tail().Len()
			f.TailRecords = int64(recs)
		}
		if m == nil {
			return f
		}
		f.Dropped = CounterTotal(m.DroppedMessages)
		f.SendFailed = CounterTotal(m.SendFailed)
		f.SendTimeout = CounterTotal(m.SendTimeout)
		f.MemoryHits = CounterTotal(m.MemoryHits)
		f.RedisHits = CounterTotal(m.RedisHits)
		f.RedisMisses = CounterTotal(m.RedisMisses)
		f.RedisWriteDropped = CounterTotal(m.RedisWriteDropped)
		f.RedisWriteFailures = CounterTotal(m.RedisWriteFailures)
		dropped.Observe(now, f.Dropped)
		failed.Observe(now, f.SendFailed)
		timedOut.Observe(now, f.SendTimeout)
		f.DroppedLast120s = dropped.Increase(now)
		f.SendFailedLast120s = failed.Increase(now)
		f.SendTimeoutLast120s = timedOut.Increase(now)
		f.LastDrop = dropped.LastIncrease()
		return f
	}
}

// CounterTotal sums every counter (or gauge, or untyped) series c
// collects, rounded down to an integer. A nil collector gives 0.
func CounterTotal(c prometheus.Collector) int64 {
	if c == nil {
		return 0
	}
	ch := make(chan prometheus.Metric, 16)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var total float64
	for m := range ch {
		var pm dto.Metric
		if err := m.Write(&pm); err != nil {
			continue
		}
		switch {
		case pm.Counter != nil:
			total += pm.Counter.GetValue()
		case pm.Gauge != nil:
			total += pm.Gauge.GetValue()
		case pm.Untyped != nil:
			total += pm.Untyped.GetValue()
		}
	}
	return int64(math.Floor(total))
}

// Health thresholds (reference §2.3).
const (
	minSampleForDegraded = 100
	decodeRateThreshold  = 0.01
	staleMessageSecs     = 60
	recentInfraSecs      = 120
	droppedAlertCount    = 10
)

// healthResponse is /health (reference §2.3 + DECISIONS D7). Field order
// follows the reference.
type healthResponse struct {
	Status          string        `json:"status"`
	Metrics         healthMetrics `json:"metrics"`
	ReplayBuffer    replayBuffer  `json:"replay_buffer"`
	KafkaStatus     string        `json:"kafka_status"`
	WebsocketStatus string        `json:"websocket_status"`
	Alert           string        `json:"alert,omitempty"`
	Store           healthStore   `json:"store"`
}

type healthMetrics struct {
	KafkaMessagesReceived             int64  `json:"kafka_messages_received"`
	KafkaErrors                       int64  `json:"kafka_errors"`
	InfrastructureErrors              int64  `json:"infrastructure_errors"`
	ConnectedClients                  int64  `json:"connected_clients"`
	UptimeSeconds                     int64  `json:"uptime_seconds"`
	LastKafkaMessageAgoSeconds        *int64 `json:"last_kafka_message_ago_seconds"`
	DroppedMessages                   int64  `json:"dropped_messages"`
	DroppedMessagesLast120s           int64  `json:"dropped_messages_last_120s"`
	LastDropAgoSeconds                *int64 `json:"last_drop_ago_seconds"`
	DecodeErrors                      int64  `json:"decode_errors"`
	OldDataDecodeErrors               int64  `json:"old_data_decode_errors"`
	PayloadMissing                    int64  `json:"payload_missing"`
	LastInfrastructureErrorAgoSeconds *int64 `json:"last_infrastructure_error_ago_seconds"`
	DecodeErrorsLast120s              int64  `json:"decode_errors_last_120s"`
	MessagesLast120s                  int64  `json:"messages_last_120s"`
	SendFailed                        int64  `json:"send_failed"`
	SendTimeout                       int64  `json:"send_timeout"`
	SendFailedLast120s                int64  `json:"send_failed_last_120s"`
	SendTimeoutLast120s               int64  `json:"send_timeout_last_120s"`
}

type replayBuffer struct {
	RedisEnabled        bool  `json:"redis_enabled"`
	MemoryHits          int64 `json:"memory_hits"`
	RedisHits           int64 `json:"redis_hits"`
	RedisMisses         int64 `json:"redis_misses"`
	RedisWriteDropped   int64 `json:"redis_write_dropped"`
	RedisWriteFailures  int64 `json:"redis_write_failures"`
	MemoryBufferSize    int64 `json:"memory_buffer_size"`
	MaxMemorySize       int64 `json:"max_memory_size"`
	RedisMessageTTLSecs int64 `json:"redis_message_ttl_secs"`
	RedisMaxSequences   int64 `json:"redis_max_sequences"`
}

type healthStore struct {
	Kind             string `json:"kind"`
	Epoch            string `json:"epoch"`
	Bytes            int64  `json:"bytes"`
	Records          int64  `json:"records"`
	OldestAgeSeconds *int64 `json:"oldest_age_seconds"`
	Full             bool   `json:"full"`
	Paused           bool   `json:"paused"`
	PausedPartition  *int32 `json:"paused_partition"`
	PausedOffset     *int64 `json:"paused_offset"`
	Error            string `json:"error,omitempty"`
}

// agoSeconds returns whole seconds since t, nil when t is zero. A t in
// the future counts as 0.
func agoSeconds(now, t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	s := int64(now.Sub(t) / time.Second)
	if s < 0 {
		s = 0
	}
	return &s
}

func orDefault(p *int64, d int64) int64 {
	if p == nil {
		return d
	}
	return *p
}

// StoreHealthTimeout bounds one Deps.StoreHealth call; a check that takes
// longer counts as unreachable.
const StoreHealthTimeout = 2 * time.Second

// checkStore runs Deps.StoreHealth; "" means healthy or not configured.
func (s *server) checkStore(ctx context.Context) string {
	if s.deps.StoreHealth == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, StoreHealthTimeout)
	defer cancel()
	if err := s.deps.StoreHealth(ctx); err != nil {
		return "backend unreachable: " + err.Error()
	}
	return ""
}

// buildHealth derives /health from the facts (reference §2.3, DECISIONS D7).
func (s *server) buildHealth(ctx context.Context, now time.Time) healthResponse {
	var in IngestFacts
	if s.deps.Ingest != nil {
		in = s.deps.Ingest()
	}
	var hf HubFacts
	if s.deps.Hub != nil {
		hf = s.deps.Hub(now)
	}
	clients := 0
	if s.deps.Clients != nil {
		clients = s.deps.Clients()
	}

	m := healthMetrics{
		KafkaMessagesReceived:             in.MessagesReceived,
		KafkaErrors:                       in.KafkaErrors,
		InfrastructureErrors:              in.InfraErrors,
		ConnectedClients:                  int64(clients),
		LastKafkaMessageAgoSeconds:        agoSeconds(now, in.LastMessage),
		DroppedMessages:                   hf.Dropped,
		DroppedMessagesLast120s:           hf.DroppedLast120s,
		LastDropAgoSeconds:                agoSeconds(now, hf.LastDrop),
		DecodeErrors:                      in.DecodeErrors,
		OldDataDecodeErrors:               in.OldDataDecodeErrors,
		PayloadMissing:                    in.PayloadMissing,
		LastInfrastructureErrorAgoSeconds: agoSeconds(now, in.LastInfraError),
		DecodeErrorsLast120s:              in.DecodeErrorsLast120s,
		MessagesLast120s:                  in.MessagesLast120s,
		SendFailed:                        hf.SendFailed,
		SendTimeout:                       hf.SendTimeout,
		SendFailedLast120s:                hf.SendFailedLast120s,
		SendTimeoutLast120s:               hf.SendTimeoutLast120s,
	}
	if !s.cfg.Start.IsZero() {
		m.UptimeSeconds = int64(now.Sub(s.cfg.Start) / time.Second)
	}

	var st healthStore
	if s.deps.Store != nil {
		stats := s.deps.Store.Stats()
		st = healthStore{Kind: stats.Kind, Epoch: stats.Epoch, Records: stats.Records,
			Bytes: stats.FileBytes, Full: stats.Full || in.StoreFull}
		if st.Bytes == 0 {
			st.Bytes = stats.StoredBytes
		}
		if !stats.OldestTime.IsZero() {
			st.OldestAgeSeconds = agoSeconds(now, stats.OldestTime)
		}
	} else {
		st.Full = in.StoreFull
	}
	st.Paused = in.Paused
	st.Error = in.StoreError
	backendErr := s.checkStore(ctx)
	if st.Error == "" {
		st.Error = backendErr
	}
	if in.Paused && in.PausedPartition >= 0 {
		p, o := in.PausedPartition, in.PausedOffset
		st.PausedPartition, st.PausedOffset = &p, &o
	}

	rb := replayBuffer{
		RedisEnabled:        st.Kind == "redis",
		MemoryHits:          hf.MemoryHits,
		RedisHits:           hf.RedisHits,
		RedisMisses:         hf.RedisMisses,
		RedisWriteDropped:   hf.RedisWriteDropped,
		RedisWriteFailures:  hf.RedisWriteFailures,
		MemoryBufferSize:    hf.TailRecords,
		MaxMemorySize:       int64(s.cfg.TailMaxRecords),
		RedisMessageTTLSecs: s.cfg.RedisMessageTTLSecs,
		RedisMaxSequences:   s.cfg.RedisMaxSequences,
	}

	rate120 := 0.0
	if m.MessagesLast120s > 0 {
		rate120 = float64(m.DecodeErrorsLast120s) / float64(m.MessagesLast120s)
	}
	rateLifetime := 0.0
	if m.KafkaMessagesReceived > 0 {
		rateLifetime = float64(m.DecodeErrors) / float64(m.KafkaMessagesReceived)
	}
	recentInfra := m.LastInfrastructureErrorAgoSeconds != nil && *m.LastInfrastructureErrorAgoSeconds < recentInfraSecs
	msgAge := orDefault(m.LastKafkaMessageAgoSeconds, 999)
	storeDegraded := st.Paused || st.Full || st.Error != ""

	var status string
	switch {
	case storeDegraded: // DECISIONS D7
		status = "degraded"
	case m.MessagesLast120s >= minSampleForDegraded && rate120 > decodeRateThreshold:
		status = "degraded"
	case m.KafkaMessagesReceived == 0 || msgAge > staleMessageSecs:
		status = "waiting"
		if recentInfra {
			status = "reconnecting"
		}
	case recentInfra:
		status = "reconnecting"
	default:
		status = "healthy"
	}

	var kafka string
	switch {
	case m.KafkaMessagesReceived > 0 && msgAge < staleMessageSecs:
		kafka = "connected"
	case m.KafkaMessagesReceived == 0:
		kafka = "waiting_for_messages"
	default:
		kafka = "no_recent_messages"
	}

	ws := "no_clients"
	if clients > 0 {
		ws = strconv.Itoa(clients) + "_clients_connected"
	}

	var alerts []string
	if m.DroppedMessagesLast120s > droppedAlertCount {
		alerts = append(alerts, fmt.Sprintf("WARNING: %d messages dropped due to slow clients in last 2m (%d total since boot). Consider increasing WEBSOCKET_BUFFER_SIZE or improving client performance.",
			m.DroppedMessagesLast120s, m.DroppedMessages))
	}
	if rate120 > decodeRateThreshold {
		if m.MessagesLast120s >= minSampleForDegraded {
			alerts = append(alerts, fmt.Sprintf("CRITICAL: High decode error rate in last 2m (%.2f%%). %d errors / %d messages in window. Lifetime: %.2f%% (%d/%d total). Check logs for diagnostic details.",
				rate120*100, m.DecodeErrorsLast120s, m.MessagesLast120s, rateLifetime*100, m.DecodeErrors, m.KafkaMessagesReceived))
		} else {
			alerts = append(alerts, fmt.Sprintf("INFO: Elevated decode error rate (%.2f%%) but sample size (%d) < minimum (%d). Not triggering degraded status.",
				rate120*100, m.MessagesLast120s, minSampleForDegraded))
		}
	}
	if rb.RedisEnabled && rb.RedisWriteDropped > 0 {
		alerts = append(alerts, fmt.Sprintf("WARNING: Replay buffer dropped %d Redis writes (concurrency limit). Reconnect replays may be incomplete under load.", rb.RedisWriteDropped))
	}
	if rb.RedisEnabled && rb.RedisWriteFailures > 0 {
		alerts = append(alerts, fmt.Sprintf("WARNING: Replay buffer had %d Redis write failures. Check Redis health/latency; reconnect replays may be incomplete.", rb.RedisWriteFailures))
	}
	if m.PayloadMissing > 0 {
		alerts = append(alerts, fmt.Sprintf("CRITICAL: %d Kafka messages had missing payloads (data loss). Indicates tombstone/corruption/compaction.", m.PayloadMissing))
	}
	// Ours (DECISIONS D7): say why the store made us degraded.
	switch {
	case st.PausedPartition != nil:
		alerts = append(alerts, fmt.Sprintf("CRITICAL: Ingest paused at partition %d offset %d by KAFKA_ON_DECODE_ERROR=pause. Fix or skip the record, then restart.",
			*st.PausedPartition, *st.PausedOffset))
	case st.Full:
		alerts = append(alerts, "CRITICAL: Store full; ingest paused until retention frees space. Raise DASHSTREAM_MAX_DB_BYTES or lower DASHSTREAM_RETENTION_BYTES/AGE.")
	case st.Paused:
		alerts = append(alerts, "CRITICAL: Ingest paused: store unavailable ("+st.Error+").")
	case st.Error != "":
		alerts = append(alerts, "CRITICAL: Store unavailable ("+st.Error+"); replays and ingest will fail until it is back.")
	}

	return healthResponse{
		Status:          status,
		Metrics:         m,
		ReplayBuffer:    rb,
		KafkaStatus:     kafka,
		WebsocketStatus: ws,
		Alert:           strings.Join(alerts, " | "),
		Store:           st,
	}
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.buildHealth(r.Context(), s.now()))
}
