package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
)

// referenceMetrics are the reference metric names ingest owns (reference
// §7); each must be exported from startup, even at 0.
var referenceMetrics = []string{
	"websocket_kafka_messages_total",
	"websocket_last_kafka_message_age_seconds",
	"websocket_last_infrastructure_error_age_seconds",
	"websocket_infrastructure_errors_total",
	"websocket_old_data_decode_errors_total",
	"websocket_decode_errors_total",
	"websocket_kafka_errors_by_type_total",
	"websocket_kafka_payload_missing_total",
	"websocket_e2e_latency_ms",
	"websocket_clock_skew_events_total",
	"dashstream_sequence_gaps_total",
	"dashstream_sequence_gap_size",
	"dashstream_sequence_duplicates_total",
	"dashstream_sequence_reorders_total",
	"websocket_dlq_sends_total",
	"websocket_dlq_send_failures_total",
	"dashstream_ws_retry_count",
	"websocket_kafka_lag_poll_failures_total",
	"websocket_kafka_lag_poll_duration_seconds",
	"websocket_multi_thread_batches_total",
	"dashstream_ingest_paused",
	"dashstream_store_resets_total",
}

// referenceLagMetrics are the per-partition reference gauges: they have
// series only once a partition is known (the startup check or the
// monitor's first pass), so they are checked after it.
var referenceLagMetrics = []string{
	"websocket_kafka_consumer_lag",
	"websocket_kafka_lag_offset_age_seconds",
	"websocket_kafka_catchup_phase",
}

func TestIngestMetricsRegisteredAtStartup(t *testing.T) {
	st := memory.New(memory.Config{})
	c := itCluster(t, 3)
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	names := metricNames(t, r.reg)
	for _, n := range referenceMetrics {
		if !slices.Contains(names, n) {
			t.Errorf("metric %s not exported at startup", n)
		}
	}
	for _, s := range []string{"success", "error", "old_data_error"} {
		if v := metricValue(t, r.reg, "websocket_kafka_messages_total", map[string]string{"status": s}); v != 0 {
			t.Errorf("messages_total{status=%s} = %v, want seeded 0", s, v)
		}
	}
	if v := metricValue(t, r.reg, "websocket_dlq_sends_total", map[string]string{"error_type": "init"}); v != 0 {
		t.Errorf("dlq sends init = %v", v)
	}
	if v := metricValue(t, r.reg, "websocket_last_kafka_message_age_seconds", nil); v != -1 {
		t.Errorf("last message age before any record = %v, want -1", v)
	}
	waitFor(t, 10*time.Second, "per-partition gauges after the first monitor pass", func() bool {
		names := metricNames(t, r.reg)
		for _, n := range referenceLagMetrics {
			if !slices.Contains(names, n) {
				return false
			}
		}
		return true
	})
	for p := range 3 {
		for _, n := range referenceLagMetrics {
			if v := metricValue(t, r.reg, n, map[string]string{"partition": fmt.Sprint(p)}); v < 0 {
				t.Errorf("%s{partition=%d} = %v, want a series", n, p, v)
			}
		}
	}
	// A second registration on the same registry fails instead of
	// silently sharing state.
	if _, err := ingest.NewMetrics(r.reg); err == nil {
		t.Error("NewMetrics registered twice on one registry")
	}
	r.stop(t)
}

func TestIngestAppendsEveryPartition(t *testing.T) {
	st := memory.New(memory.Config{})
	c := itCluster(t, 3)
	prod := itProducer(t, c.ListenAddrs())
	// Old data: produced before ingest starts.
	for p := range int32(3) {
		itProduce(t, prod, validRecs(p, 50, "old-thread")...)
	}
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	waitNext(t, st, map[int32]int64{0: 50, 1: 50, 2: 50})
	// New data, including a multi-thread batch and a sequence gap.
	recs := validRecs(1, 5, "new-thread")
	recs[4].Value = eventPayload("new-thread", 9) // gap of 4 after seq 4
	itProduce(t, prod, recs...)
	waitNext(t, st, map[int32]int64{1: 55})

	for p := range int32(3) {
		got := offsetsOf(readPartition(t, st, p))
		want := make([]int64, 50)
		if p == 1 {
			want = make([]int64, 55)
		}
		for k := range want {
			want[k] = int64(k)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("partition %d offsets = %v, want 0..%d", p, got, len(want)-1)
		}
	}
	s := r.ing.Status()
	if !s.Running || s.Paused || s.NextOffsets[1] != 55 || !s.CaughtUp || s.MessagesReceived != 155 || s.MessagesSuccess != 155 {
		t.Fatalf("status = %+v", s)
	}
	if s.TopicID == "" || st.Epoch()[:16] != s.TopicID[:16] {
		t.Fatalf("store epoch %q does not carry the topic id %q", st.Epoch(), s.TopicID)
	}
	if v := metricValue(t, r.reg, "websocket_kafka_messages_total", map[string]string{"status": "success"}); v != 155 {
		t.Errorf("messages success = %v, want 155", v)
	}
	// The batch-size histogram has one sample per append, summing to the
	// records appended.
	appends := metricValue(t, r.reg, "dashstream_ingest_appends_total", nil)
	if n := metricValue(t, r.reg, "dashstream_ingest_append_batch_records", nil); appends < 1 || n != appends {
		t.Errorf("batch-size samples = %v, appends = %v", n, appends)
	}
	if sum := histogramSum(t, r.reg, "dashstream_ingest_append_batch_records"); sum != 155 {
		t.Errorf("batch-size sum = %v, want 155 records", sum)
	}
	if v := metricValue(t, r.reg, "dashstream_sequence_gaps_total", nil); v != 1 {
		t.Errorf("sequence gaps = %v, want 1", v)
	}
	if v := metricValue(t, r.reg, "websocket_e2e_latency_ms", map[string]string{"stage": "producer_to_consumer"}); v < 1 {
		t.Errorf("latency samples = %v, want > 0", v)
	}
	for p := range 3 {
		if v := metricValue(t, r.reg, "websocket_kafka_catchup_phase", map[string]string{"partition": string(rune('0' + p))}); v != 0 {
			t.Errorf("catchup_phase{partition=%d} = %v, want 0 after catching up", p, v)
		}
	}
	waitFor(t, 10*time.Second, "lag gauges", func() bool {
		return metricValue(t, r.reg, "websocket_kafka_consumer_lag", map[string]string{"partition": "1"}) == 0 &&
			metricValue(t, r.reg, "websocket_kafka_lag_poll_duration_seconds", map[string]string{"status": "success"}) > 0
	})
	if age := metricValue(t, r.reg, "websocket_last_kafka_message_age_seconds", nil); age < 0 || age > 60 {
		t.Errorf("last message age = %v", age)
	}
	r.notes.mu.Lock()
	if r.notes.calls == 0 || r.notes.hw[1] != 55 {
		t.Errorf("notifier: %d calls, hw %v", r.notes.calls, r.notes.hw)
	}
	r.notes.mu.Unlock()
	r.stop(t)

	// A restart reads nothing again.
	r2 := startIngest(t, itConfig(c.ListenAddrs()), st)
	itProduce(t, prod, validRecs(0, 1, "after-restart")...)
	waitNext(t, st, map[int32]int64{0: 51})
	if got := r2.ing.Status().MessagesReceived; got != 1 {
		t.Fatalf("after restart %d records were read, want only the new one", got)
	}
	r2.stop(t)
}

func TestIngestNewPartitionWhileRunning(t *testing.T) {
	st := memory.New(memory.Config{})
	c := itCluster(t, 2)
	prod := itProducer(t, c.ListenAddrs())
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	itProduce(t, prod, validRecs(0, 3, "a")...)
	waitNext(t, st, map[int32]int64{0: 3})

	adm := kadmClient(t, c.ListenAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.CreatePartitions(ctx, 1, itTopic); err != nil {
		t.Fatal(err)
	}
	// The producer needs the new partition in its metadata.
	prod.ForceMetadataRefresh()
	waitFor(t, 10*time.Second, "producer sees partition 2", func() bool {
		err := prod.ProduceSync(ctx, &kgo.Record{Partition: 2, Value: eventPayload("b", 1)}).FirstErr()
		return err == nil
	})
	itProduce(t, prod, validRecs(2, 4, "b")...)
	waitNext(t, st, map[int32]int64{2: 5})
	if got := len(readPartition(t, st, 2)); got != 5 {
		t.Fatalf("new partition holds %d records, want 5", got)
	}
	r.stop(t)
}

func TestIngestTwoIngestersEachHoldTheTopic(t *testing.T) {
	c := itCluster(t, 3)
	prod := itProducer(t, c.ListenAddrs())
	st1, st2 := memory.New(memory.Config{}), memory.New(memory.Config{})
	r1 := startIngest(t, itConfig(c.ListenAddrs()), st1)
	r2 := startIngest(t, itConfig(c.ListenAddrs()), st2)
	for p := range int32(3) {
		itProduce(t, prod, validRecs(p, 40, "t")...)
	}
	want := map[int32]int64{0: 40, 1: 40, 2: 40}
	waitNext(t, st1, want)
	waitNext(t, st2, want)
	for p := range int32(3) {
		a, b := offsetsOf(readPartition(t, st1, p)), offsetsOf(readPartition(t, st2, p))
		if len(a) != 40 || !slices.Equal(a, b) {
			t.Fatalf("partition %d: store 1 %v, store 2 %v", p, a, b)
		}
	}
	if st1.Epoch() != st2.Epoch() {
		t.Fatalf("epochs differ: %s vs %s", st1.Epoch(), st2.Epoch())
	}
	r1.stop(t)
	r2.stop(t)
}

// storeSkips returns the recorded skipped ranges of p.
func storeSkips(t testing.TB, st store.Store, p int32) []store.SkippedRange {
	t.Helper()
	s, err := st.Skipped(p, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIngestCommitsGroupOffsetsWhenAsked(t *testing.T) {
	c := itCluster(t, 2)
	prod := itProducer(t, c.ListenAddrs())
	st := memory.New(memory.Config{})
	cfg := itConfig(c.ListenAddrs())
	cfg.CommitGroupOffsets = true
	cfg.GroupID = "ds-lag-tools"
	cfg.GroupCommitInterval = 100 * time.Millisecond
	r := startIngest(t, cfg, st)
	itProduce(t, prod, validRecs(0, 7, "g")...)
	waitNext(t, st, map[int32]int64{0: 7})
	adm := kadmClient(t, c.ListenAddrs())
	waitFor(t, 10*time.Second, "group offsets committed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		os, err := adm.FetchOffsets(ctx, "ds-lag-tools")
		if err != nil {
			return false
		}
		o, ok := os.Lookup(itTopic, 0)
		return ok && o.At == 7
	})
	r.stop(t)

	// The group offset is never the resume point: a store without offsets
	// starts from the reset policy (earliest), not from the group's 7.
	st2 := memory.New(memory.Config{})
	r2 := startIngest(t, cfg, st2)
	waitNext(t, st2, map[int32]int64{0: 7})
	if got := len(readPartition(t, st2, 0)); got != 7 {
		t.Fatalf("second store holds %d records, want all 7", got)
	}
	r2.stop(t)
}

func TestIngestCloseWithoutRun(t *testing.T) {
	m, err := ingest.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Config{Brokers: []string{"127.0.0.1:1"}}, memory.New(memory.Config{}), nil, m, itLogger())
	if err != nil {
		t.Fatal(err)
	}
	ing.Close()
	if err := ing.Run(context.Background()); err == nil {
		t.Fatal("Run after Close succeeded")
	}
	if _, err := ingest.New(ingest.Config{OnDecodeError: "halt"}, memory.New(memory.Config{}), nil, m, nil); err == nil ||
		!strings.Contains(err.Error(), "KAFKA_ON_DECODE_ERROR") {
		t.Fatalf("New with a bad policy: %v", err)
	}
}
