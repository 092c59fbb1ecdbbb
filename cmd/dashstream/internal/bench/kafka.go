package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/wire/synth"
)

// Topic is the topic every benchmark and fault test produces to.
const Topic = "dashstream-bench"

// Partitions is the partition count of Topic.
const Partitions = 3

// BrokerOptions configure StartBroker.
type BrokerOptions struct {
	Addr           string // default 127.0.0.1:0
	DataDir        string // "" keeps the log in memory
	RetentionBytes int64  // per partition; default 1 GiB
	Logger         *slog.Logger
}

// StartBroker starts the embedded kfake broker (the one `demo` runs) with
// Topic and its DLQ topic, accepting records up to 16 MiB.
func StartBroker(ctx context.Context, o BrokerOptions) (*ingest.Broker, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.RetentionBytes <= 0 {
		o.RetentionBytes = 1 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b, err := ingest.StartBroker(ctx, ingest.BrokerConfig{
		Addr: o.Addr, DataDir: o.DataDir, Topic: Topic, Partitions: Partitions,
		RetentionBytes: o.RetentionBytes, SegmentBytes: min(o.RetentionBytes/4, 8<<20),
		RetentionInterval: 2 * time.Second, MaxMessageBytes: 16 << 20, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the embedded broker: %w", err)
	}
	return b, nil
}

// NewProducer returns a Kafka client producing to Topic on the record's
// own partition, without linger (latency is measured from Produce).
func NewProducer(addr string, linger time.Duration) (*kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(16<<20),
		kgo.ProducerLinger(linger), kgo.RecordDeliveryTimeout(time.Minute), kgo.MaxBufferedRecords(100000))
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return cl, nil
}

// ProduceAll produces recs (in order, on their partitions) and waits for
// every acknowledgement. It returns the next offset of each partition.
func ProduceAll(ctx context.Context, cl *kgo.Client, recs []synth.Record) (map[int32]int64, error) {
	var mu sync.Mutex
	var firstErr error
	end := map[int32]int64{}
	for _, r := range recs {
		cl.Produce(ctx, &kgo.Record{Topic: Topic, Partition: r.Partition, Key: r.Key, Value: r.Value}, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			end[r.Partition] = max(end[r.Partition], r.Offset+1)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("producing: %w", err)
	}
	if firstErr != nil {
		return nil, fmt.Errorf("producing: %w", firstErr)
	}
	return end, nil
}
