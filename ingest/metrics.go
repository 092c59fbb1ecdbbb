package ingest

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashstream/dashstream/wire"
)

// Label values of the reference metrics (reference §7, §8.2, §5.4).
const (
	StatusSuccess      = "success"
	StatusError        = "error"
	StatusOldDataError = "old_data_error"

	ClassPayloadTooLarge       = string(wire.ClassPayloadTooLarge)
	ClassBufferUnderflow       = string(wire.ClassBufferUnderflow)
	ClassSchemaVersionMismatch = string(wire.ClassSchemaVersionMismatch)
	ClassInvalidProtobuf       = string(wire.ClassInvalidProtobuf)
	ClassUnknownDecodeError    = string(wire.ClassUnknownDecodeError)

	KafkaErrDNS       = "dns_failure"
	KafkaErrTimeout   = "connection_timeout"
	KafkaErrBroker    = "broker_down"
	KafkaErrDecode    = "decode_error"
	KafkaErrUnknown   = "unknown"
	DLQFailTimeout    = "timeout"
	DLQFailKafka      = "kafka_error"
	DLQFailBackpress  = "backpressure"
	seededLabel       = "init"
	stageProducerToWS = "producer_to_consumer"

	// Reasons of dashstream_store_resets_total.
	ResetTopicRecreated = "topic_recreated"
	ResetLogTruncated   = "log_truncated"
	ResetCursorReset    = "cursor_reset"

	// Reasons of dashstream_ingest_paused.
	PauseStore  = "store"
	PauseDecode = "decode"
)

// Retry operations of dashstream_ws_retry_count.
const (
	RetryConsumerCreate = "kafka_consumer_create"
	RetrySubscribe      = "kafka_subscribe"
	RetryDLQCreate      = "dlq_producer_create"
)

var (
	decodeClasses = []string{ClassPayloadTooLarge, ClassBufferUnderflow, ClassSchemaVersionMismatch, ClassInvalidProtobuf, ClassUnknownDecodeError}
	kafkaErrTypes = []string{KafkaErrDNS, KafkaErrTimeout, KafkaErrBroker, KafkaErrDecode, KafkaErrUnknown}
)

// Metrics are the ingest metrics: the reference's Kafka, decode, DLQ,
// sequence, latency and lag metrics under their exact names and labels
// (reference §7, DECISIONS D8), plus dashstream_ingest_* and
// dashstream_store_resets_total. NewMetrics registers them on a
// caller-supplied registry; there is no global state.
type Metrics struct {
	MessagesTotal       *prometheus.CounterVec // websocket_kafka_messages_total{status}
	InfraErrors         prometheus.Counter     // websocket_infrastructure_errors_total
	OldDataDecodeErrors prometheus.Counter     // websocket_old_data_decode_errors_total
	DecodeErrors        *prometheus.CounterVec // websocket_decode_errors_total{error_type}
	KafkaErrorsByType   *prometheus.CounterVec // websocket_kafka_errors_by_type_total{error_type}
	PayloadMissing      prometheus.Counter     // websocket_kafka_payload_missing_total
	E2ELatency          prometheus.Observer    // websocket_e2e_latency_ms{stage="producer_to_consumer"}
	ClockSkew           prometheus.Counter     // websocket_clock_skew_events_total
	SequenceGaps        prometheus.Counter     // dashstream_sequence_gaps_total
	SequenceGapSize     prometheus.Histogram   // dashstream_sequence_gap_size
	SequenceDuplicates  prometheus.Counter     // dashstream_sequence_duplicates_total
	SequenceReorders    prometheus.Counter     // dashstream_sequence_reorders_total
	DLQSends            *prometheus.CounterVec // websocket_dlq_sends_total{error_type}
	DLQSendFailures     *prometheus.CounterVec // websocket_dlq_send_failures_total{reason}
	RetryCount          *prometheus.HistogramVec
	ConsumerLag         *prometheus.GaugeVec // websocket_kafka_consumer_lag{partition}
	LagPollFailures     prometheus.Counter   // websocket_kafka_lag_poll_failures_total
	LagPollDuration     *prometheus.HistogramVec
	LagOffsetAge        *prometheus.GaugeVec // websocket_kafka_lag_offset_age_seconds{partition}
	CatchupPhase        *prometheus.GaugeVec // websocket_kafka_catchup_phase{partition}
	MultiThreadBatches  prometheus.Counter   // websocket_multi_thread_batches_total
	Paused              *prometheus.GaugeVec // dashstream_ingest_paused{reason}
	StoreResets         *prometheus.CounterVec
	Appends             prometheus.Counter   // dashstream_ingest_appends_total
	AppendRetries       prometheus.Counter   // dashstream_ingest_append_retries_total
	AppendDuration      prometheus.Histogram // dashstream_ingest_append_duration_seconds
	AppendedRecords     prometheus.Counter   // dashstream_ingest_records_total
	AppendBatch         prometheus.Histogram // dashstream_ingest_append_batch_records
	SkippedOffsets      *prometheus.CounterVec

	lastMessage    atomic.Int64 // unix nanoseconds, 0 = never
	lastInfraError atomic.Int64
}

// NewMetrics creates the ingest metrics and registers them on reg. It
// fails if a name is already registered there.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{}
	var cs []prometheus.Collector
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		cs = append(cs, c)
		return c
	}
	counterVec := func(name, help, label string, seed ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		for _, s := range seed {
			c.WithLabelValues(s)
		}
		cs = append(cs, c)
		return c
	}
	gaugeVec := func(name, help, label string, seed ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{label})
		for _, s := range seed {
			g.WithLabelValues(s)
		}
		cs = append(cs, g)
		return g
	}
	histVec := func(name, help, label string, buckets []float64, seed ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, []string{label})
		for _, s := range seed {
			h.WithLabelValues(s)
		}
		cs = append(cs, h)
		return h
	}

	m.MessagesTotal = counterVec("websocket_kafka_messages_total",
		"Kafka records by outcome: decoded, new-data failure (incl. oversized), old-data failure (incl. oversized).",
		"status", StatusSuccess, StatusError, StatusOldDataError)
	m.InfraErrors = counter("websocket_infrastructure_errors_total", "Kafka consumer errors (broker, network).")
	m.OldDataDecodeErrors = counter("websocket_old_data_decode_errors_total", "Decode or size failures of records older than the session head.")
	m.DecodeErrors = counterVec("websocket_decode_errors_total", "New-data decode failures by class.", "error_type", decodeClasses...)
	m.KafkaErrorsByType = counterVec("websocket_kafka_errors_by_type_total", "Kafka consumer errors by type.", "error_type", kafkaErrTypes...)
	m.PayloadMissing = counter("websocket_kafka_payload_missing_total", "Kafka records with a null value.")
	m.E2ELatency = histVec("websocket_e2e_latency_ms", "Producer header timestamp to ingest, in milliseconds.", "stage",
		[]float64{100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000}, stageProducerToWS).WithLabelValues(stageProducerToWS)
	m.ClockSkew = counter("websocket_clock_skew_events_total", "Records whose producer-to-ingest latency is negative or above 60 s.")
	m.SequenceGaps = counter("dashstream_sequence_gaps_total", "Per-thread sequence gaps.")
	m.SequenceGapSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "dashstream_sequence_gap_size", Help: "Sizes of per-thread sequence gaps.",
		Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 10000},
	})
	cs = append(cs, m.SequenceGapSize)
	m.SequenceDuplicates = counter("dashstream_sequence_duplicates_total", "Per-thread duplicate sequences (seq == expected-1).")
	m.SequenceReorders = counter("dashstream_sequence_reorders_total", "Per-thread reordered sequences (seq < expected-1).")
	m.DLQSends = counterVec("websocket_dlq_sends_total", "DLQ records delivered, by error type.", "error_type", seededLabel)
	m.DLQSendFailures = counterVec("websocket_dlq_send_failures_total", "DLQ records lost, by reason.", "reason", seededLabel)
	m.RetryCount = histVec("dashstream_ws_retry_count", "Startup retries per operation.", "operation",
		[]float64{0, 1, 2, 3, 4, 5, 10, 20}, RetryConsumerCreate, RetrySubscribe, RetryDLQCreate)
	m.ConsumerLag = gaugeVec("websocket_kafka_consumer_lag", "High watermark minus next ingest offset.", "partition")
	m.LagPollFailures = counter("websocket_kafka_lag_poll_failures_total", "Watermark fetch failures of the lag monitor.")
	m.LagPollDuration = histVec("websocket_kafka_lag_poll_duration_seconds", "Lag monitor watermark fetch duration.", "status",
		[]float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, "success", "error")
	m.LagOffsetAge = gaugeVec("websocket_kafka_lag_offset_age_seconds", "Seconds since the partition's ingest offset last advanced.", "partition")
	m.CatchupPhase = gaugeVec("websocket_kafka_catchup_phase", "1 while a partition is below its session head, 0 at the head.", "partition")
	m.MultiThreadBatches = counter("websocket_multi_thread_batches_total", "EventBatches spanning more than one thread.")
	m.Paused = gaugeVec("dashstream_ingest_paused", "1 while ingest is paused: store full or failing (store), or a partition stopped by KAFKA_ON_DECODE_ERROR=pause (decode).",
		"reason", PauseStore, PauseDecode)
	m.StoreResets = counterVec("dashstream_store_resets_total", "Store history resets by reason (new topic id, truncated log, cursor_reset).",
		"reason", ResetTopicRecreated, ResetLogTruncated, ResetCursorReset)
	m.Appends = counter("dashstream_ingest_appends_total", "Store appends committed by ingest.")
	m.AppendRetries = counter("dashstream_ingest_append_retries_total", "Store appends retried after an error (store full or failing).")
	m.AppendDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "dashstream_ingest_append_duration_seconds", Help: "Duration of one store append.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	})
	cs = append(cs, m.AppendDuration)
	m.AppendedRecords = counter("dashstream_ingest_records_total", "Records appended to the store.")
	m.AppendBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "dashstream_ingest_append_batch_records", Help: "Records in one committed store append (batch size).",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 … 16384
	})
	cs = append(cs, m.AppendBatch)
	m.SkippedOffsets = counterVec("dashstream_ingest_skipped_offsets_total", "Offsets recorded as skipped ranges, by reason.", "reason", "invalid", "evicted")

	age := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			t := v.Load()
			if t == 0 {
				return -1
			}
			return math.Max(0, time.Since(time.Unix(0, t)).Seconds())
		})
	}
	cs = append(cs,
		age("websocket_last_kafka_message_age_seconds", "Seconds since the last Kafka record; -1 before the first.", &m.lastMessage),
		age("websocket_last_infrastructure_error_age_seconds", "Seconds since the last Kafka consumer error; -1 if none.", &m.lastInfraError),
	)

	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ingest metrics: %w", err)
		}
	}
	return m, nil
}

// partLabel is the partition label value.
func partLabel(p int32) string { return fmt.Sprint(p) }
