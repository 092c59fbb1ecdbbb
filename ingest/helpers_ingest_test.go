package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
	"github.com/dashstream/dashstream/wire/pb"
)

// itTopic is the topic the integration tests consume.
const itTopic = "ds-ingest-test"

// itLogger returns a logger for ingest under test: quiet unless
// DASHSTREAM_TEST_LOG=1.
func itLogger() *slog.Logger {
	if os.Getenv("DASHSTREAM_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// itCluster starts a single-broker kfake cluster with the test topic
// (partitions) and its DLQ topic.
func itCluster(t testing.TB, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, itTopic),
		kfake.SeedTopics(1, itTopic+"-dlq")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// itProducer is a client producing to explicit partitions.
func itProducer(t testing.TB, addrs []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(itTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(16<<20),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// itProduce produces recs synchronously; their offsets are filled in.
func itProduce(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// eventPayload is a framed (0x00) DashStream Event of thread at seq,
// stamped now.
func eventPayload(thread string, seq uint64) []byte {
	b, err := proto.Marshal(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header: &pb.Header{ThreadId: thread, TenantId: "tenant-1", Sequence: seq, TimestampUs: time.Now().UnixMicro(),
			Type: pb.MessageType_MESSAGE_TYPE_EVENT},
		EventType: pb.EventType_EVENT_TYPE_NODE_START, NodeId: "node",
	}}})
	if err != nil {
		panic(err)
	}
	return append([]byte{0x00}, b...)
}

// validRecs returns n valid records for partition p.
func validRecs(p int32, n int, thread string) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for k := range out {
		out[k] = &kgo.Record{Partition: p, Key: []byte(thread), Value: eventPayload(thread, uint64(k+1))}
	}
	return out
}

// itConfig is the ingest configuration the tests start from.
func itConfig(addrs []string) ingest.Config {
	return ingest.Config{
		Brokers:          addrs,
		Topic:            itTopic,
		MaxPayloadBytes:  64 << 10,
		LagCheckInterval: 500 * time.Millisecond,
		BatchMaxRecords:  500,
	}
}

// notes records Notifier calls.
type notes struct {
	mu      sync.Mutex
	calls   int
	hw      map[int32]int64
	sources []string
}

func (n *notes) Appended(b store.Batch) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	if n.hw == nil {
		n.hw = map[int32]int64{}
	}
	maps.Copy(n.hw, b.NextOffsets)
}

func (n *notes) SourceChanged(epoch string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sources = append(n.sources, epoch)
	n.hw = nil
}

// itRun is one running Ingester.
type itRun struct {
	ing    *ingest.Ingester
	reg    *prometheus.Registry
	m      *ingest.Metrics
	notes  *notes
	cancel context.CancelFunc
	done   chan error
}

// startIngest creates and runs an Ingester over st.
func startIngest(t testing.TB, cfg ingest.Config, st store.Store) *itRun {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := ingest.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	n := &notes{}
	ing, err := ingest.New(cfg, st, n, m, itLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &itRun{ing: ing, reg: reg, m: m, notes: n, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- ing.Run(ctx) }()
	t.Cleanup(func() { r.stopQuiet() })
	return r
}

// stop shuts the Ingester down and fails if Run did not return nil.
func (r *itRun) stop(t testing.TB) {
	t.Helper()
	if err := r.stopQuiet(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func (r *itRun) stopQuiet() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if !ok {
			return nil
		}
		close(r.done)
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("Run did not return within 60s of cancel")
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitNext waits until the store's next offsets include want.
func waitNext(t testing.TB, st store.Store, want map[int32]int64) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("store next offsets %v", want), func() bool {
		got := st.IngestOffsets()
		for p, n := range want {
			if got[p] != n {
				return false
			}
		}
		return true
	})
}

// readPartition returns every retained record of p.
func readPartition(t testing.TB, st store.Store, p int32) []store.Record {
	t.Helper()
	var out []store.Record
	after := int64(-1)
	for {
		recs, more, err := st.ReadPartition(context.Background(), p, after, store.Limits{})
		if err != nil {
			t.Fatalf("ReadPartition(%d): %v", p, err)
		}
		out = append(out, recs...)
		if len(recs) > 0 {
			after = recs[len(recs)-1].Offset
		}
		if !more || len(recs) == 0 {
			return out
		}
	}
}

// offsetsOf lists the offsets of recs.
func offsetsOf(recs []store.Record) []int64 {
	out := make([]int64, len(recs))
	for k, r := range recs {
		out[k] = r.Offset
	}
	return out
}

// openBolt opens a bolt store at dir/name with fsync on.
func openBolt(t testing.TB, dir, name string) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(dir, name), bolt.Options{Fsync: true, NoDictionary: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// metricValue returns the value of a counter or gauge series (labels must
// match exactly), or the sample count of a histogram; -1 if absent.
func metricValue(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// histogramSum is the sum of an unlabelled histogram's observations.
func histogramSum(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 && mf.GetMetric()[0].Histogram != nil {
			return mf.GetMetric()[0].Histogram.GetSampleSum()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0
}

func labelsMatch(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

// metricNames lists the metric families in reg.
func metricNames(t testing.TB, reg prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		out = append(out, mf.GetName())
	}
	sort.Strings(out)
	return out
}

// kadmClient is an admin client for test setup.
func kadmClient(t testing.TB, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}
