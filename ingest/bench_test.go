package ingest_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire/synth"
)

// benchCorpus is the D9 corpus (synth.Corpus(1, 500)), generated once per
// test binary.
var benchCorpus = sync.OnceValues(func() ([]synth.Record, error) { return synth.Corpus(1, 500) })

// benchTopic is a kfake cluster holding the corpus, produced once.
type benchTopic struct {
	c     *kfake.Cluster
	end   map[int32]int64
	recs  int
	bytes int64
	stats synth.Stats
}

func newBenchTopic(tb testing.TB) *benchTopic {
	tb.Helper()
	corpus, err := benchCorpus()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, itTopic), kfake.SeedTopics(1, itTopic+"-dlq"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(16 << 20)}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	prod := itProducer(tb, c.ListenAddrs())
	bt := &benchTopic{c: c, end: map[int32]int64{}, stats: synth.ComputeStats(corpus)}
	var mu sync.Mutex
	var firstErr error
	for _, r := range corpus {
		prod.Produce(context.Background(), &kgo.Record{Partition: r.Partition, Key: r.Key, Value: r.Value}, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			bt.end[r.Partition] = max(bt.end[r.Partition], r.Offset+1)
		})
		bt.recs++
		bt.bytes += int64(len(r.Value))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := prod.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
	return bt
}

// recordingStore keeps every batch ingest appended, for the direct
// baseline.
type recordingStore struct {
	store.Store
	mu      sync.Mutex
	batches []store.Batch
}

func (r *recordingStore) Append(ctx context.Context, b store.Batch) error {
	if err := r.Store.Append(ctx, b); err != nil {
		return err
	}
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	return nil
}

// benchIngestOnce ingests the whole topic into a fresh bolt store (fsync
// on) and returns the elapsed time and the batches appended.
func benchIngestOnce(tb testing.TB, bt *benchTopic, cfg ingest.Config) (time.Duration, []store.Batch) {
	tb.Helper()
	dir := tb.TempDir()
	real := openBolt(tb, dir, "ingest.db")
	defer real.Close()
	st := &recordingStore{Store: real}
	t0 := time.Now()
	r := startIngest(tb, cfg, st)
	for {
		next := real.IngestOffsets()
		done := true
		for p, n := range bt.end {
			if next[p] < n {
				done = false
			}
		}
		if done {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			tb.Fatal("ingest did not finish the corpus in 5 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	r.stop(tb)
	return elapsed, st.batches
}

// benchDirectOnce appends batches straight to a fresh bolt store.
func benchDirectOnce(tb testing.TB, batches []store.Batch) time.Duration {
	tb.Helper()
	st := openBolt(tb, tb.TempDir(), "direct.db")
	defer st.Close()
	ctx := context.Background()
	t0 := time.Now()
	for _, b := range batches {
		if err := st.Append(ctx, b); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(t0)
}

func benchConfig(bt *benchTopic) ingest.Config {
	cfg := itConfig(bt.c.ListenAddrs())
	cfg.MaxPayloadBytes = 10 << 20
	cfg.BatchMaxRecords = ingest.DefaultBatchMaxRecords
	cfg.BatchMaxBytes = ingest.DefaultBatchMaxBytes
	cfg.LagCheckInterval = 10 * time.Second
	return cfg
}

// BenchmarkIngestEndToEnd ingests the D9 corpus from kfake into a bolt
// store with fsync on; one iteration is the whole corpus.
func BenchmarkIngestEndToEnd(b *testing.B) {
	bt := newBenchTopic(b)
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		d, _ := benchIngestOnce(b, bt, benchConfig(bt))
		total += d
	}
	b.ReportMetric(float64(bt.recs)*float64(b.N)/total.Seconds(), "records/s")
	b.ReportMetric(float64(bt.bytes)*float64(b.N)/total.Seconds()/1e6, "MB/s")
}

// BenchmarkStoreAppendDirect appends the same records in the same batches
// as ingest made, straight to a bolt store (the baseline).
func BenchmarkStoreAppendDirect(b *testing.B) {
	bt := newBenchTopic(b)
	_, batches := benchIngestOnce(b, bt, benchConfig(bt))
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		total += benchDirectOnce(b, batches)
	}
	b.ReportMetric(float64(bt.recs)*float64(b.N)/total.Seconds(), "records/s")
	b.ReportMetric(float64(bt.bytes)*float64(b.N)/total.Seconds()/1e6, "MB/s")
}

// TestIngestBenchReport prints the ingest-vs-direct table (set
// DASHSTREAM_BENCH=1). Both sides run alternately in the same process;
// the median of the rounds is reported.
func TestIngestBenchReport(t *testing.T) {
	if os.Getenv("DASHSTREAM_BENCH") != "1" {
		t.Skip("set DASHSTREAM_BENCH=1 to run the ingest benchmark report")
	}
	bt := newBenchTopic(t)
	const rounds = 3
	var ing, dir []time.Duration
	var batches []store.Batch
	for range rounds {
		d, bs := benchIngestOnce(t, bt, benchConfig(bt))
		ing = append(ing, d)
		batches = bs
		dir = append(dir, benchDirectOnce(t, batches))
	}
	slices.Sort(ing)
	slices.Sort(dir)
	mi, md := ing[rounds/2], dir[rounds/2]
	sizes := make([]int, len(batches))
	for k, b := range batches {
		sizes[k] = len(b.Records)
	}
	slices.Sort(sizes)
	mb := float64(bt.bytes) / 1e6
	fmt.Fprintf(os.Stdout, "\nD9 corpus (synth.Corpus(1, 500)):\n%s\n", bt.stats.String())
	fmt.Fprintf(os.Stdout, "batches: %d (records per batch: min %d, median %d, max %d); bolt fsync on\n",
		len(batches), sizes[0], sizes[len(sizes)/2], sizes[len(sizes)-1])
	fmt.Fprintf(os.Stdout, "%-34s %10s %12s %9s\n", "path (median of 3)", "seconds", "records/s", "MB/s")
	fmt.Fprintf(os.Stdout, "%-34s %10.2f %12.0f %9.1f\n", "ingest kfake -> bolt (end to end)", mi.Seconds(), float64(bt.recs)/mi.Seconds(), mb/mi.Seconds())
	fmt.Fprintf(os.Stdout, "%-34s %10.2f %12.0f %9.1f\n", "store.Append direct (same batches)", md.Seconds(), float64(bt.recs)/md.Seconds(), mb/md.Seconds())
	fmt.Fprintf(os.Stdout, "ratio ingest/direct: %.2f (target >= 0.5)\n", md.Seconds()/mi.Seconds())
}
