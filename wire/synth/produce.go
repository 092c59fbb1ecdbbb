package synth

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaPartitioner returns a kgo.Partitioner that places a record like
// librdkafka's default partitioner: CRC32 (IEEE) of the key modulo the
// partition count (see Partition), so a thread stays on one partition
// whichever client wrote it.
func KafkaPartitioner() kgo.Partitioner { return crcPartitioner{} }

type crcPartitioner struct{}

// ForTopic implements kgo.Partitioner.
func (crcPartitioner) ForTopic(string) kgo.TopicPartitioner { return crcPartitioner{} }

// RequiresConsistency is true: a key must always map to the same partition.
func (crcPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

// Partition implements kgo.TopicPartitioner.
func (crcPartitioner) Partition(r *kgo.Record, n int) int { return int(Partition(r.Key, n)) }

// PumpOptions control Pump, Produce and WriteFile.
type PumpOptions struct {
	// Rate limits records per second; 0 means unlimited.
	Rate float64
	// Progress, when non-nil, receives a progress line every
	// ProgressEvery (default 2 s) and a final summary.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// PumpStats describes what a pump sent.
type PumpStats struct {
	Runs     int
	Records  int64
	Messages int64
	Bytes    int64
	Elapsed  time.Duration
}

// String renders the stats as one progress line.
func (s PumpStats) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Records) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("runs %d, records %d, messages %d, %.1f MB, %.0f rec/s",
		s.Runs, s.Records, s.Messages, float64(s.Bytes)/1e6, rate)
}

// Pump feeds the generator's records to send until the generator is done
// or ctx is cancelled (a normal stop: the error is nil), pacing them to
// opts.Rate and reporting progress. It stops at the first send error.
func Pump(ctx context.Context, gen *Generator, send func(Record) error, opts PumpOptions) (PumpStats, error) {
	start := time.Now()
	var (
		mu    sync.Mutex
		stats PumpStats
	)
	snapshot := func() PumpStats {
		mu.Lock()
		defer mu.Unlock()
		s := stats
		s.Elapsed = time.Since(start)
		return s
	}
	if opts.Progress != nil {
		every := opts.ProgressEvery
		if every <= 0 {
			every = 2 * time.Second
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					fmt.Fprintf(opts.Progress, "produce: %s\n", snapshot())
				}
			}
		}()
		defer func() {
			close(done)
			wg.Wait()
		}()
	}
	var interval time.Duration
	if opts.Rate > 0 {
		interval = time.Duration(float64(time.Second) / opts.Rate)
	}
	var timer *time.Timer
	for n := int64(0); ; n++ {
		if ctx.Err() != nil {
			break
		}
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(n) * interval)); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
					defer timer.Stop()
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
				case <-timer.C:
				}
				if ctx.Err() != nil {
					break
				}
			}
		}
		rec, ok := gen.Next()
		if !ok {
			break
		}
		if err := send(rec); err != nil {
			return snapshot(), err
		}
		mu.Lock()
		stats.Records = gen.Records()
		stats.Messages = gen.Messages()
		stats.Runs = gen.RunsDone()
		stats.Bytes += int64(len(rec.Value))
		mu.Unlock()
	}
	if err := gen.Err(); err != nil {
		return snapshot(), err
	}
	return snapshot(), nil
}

// Produce sends the generator's records to topic through client,
// asynchronously with the client's bounded buffer (kgo.MaxBufferedRecords)
// as the in-flight window, and flushes at the end. The client should use
// KafkaPartitioner and a kgo.RecordDeliveryTimeout so a dead cluster cannot
// block it forever. Cancelling ctx stops generation; records already handed
// to the client are still flushed (bounded by 30 s).
func Produce(ctx context.Context, client *kgo.Client, topic string, gen *Generator, opts PumpOptions) (PumpStats, error) {
	var (
		errMu    sync.Mutex
		firstErr error
	)
	failed := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return firstErr
	}
	send := func(rec Record) error {
		if err := failed(); err != nil {
			return err
		}
		kr := &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value}
		client.Produce(context.WithoutCancel(ctx), kr, func(_ *kgo.Record, err error) {
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("synth: produce to %s: %w", topic, err)
				}
				errMu.Unlock()
			}
		})
		return nil
	}
	stats, err := Pump(ctx, gen, send, opts)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := client.Flush(fctx); ferr != nil && err == nil {
		err = fmt.Errorf("synth: flush: %w", ferr)
	}
	if err == nil {
		err = failed()
	}
	return stats, err
}

// WriteFile writes the generator's records to w in the corpus format.
func WriteFile(ctx context.Context, w io.Writer, gen *Generator, opts PumpOptions) (PumpStats, error) {
	cw, err := NewCorpusWriter(w)
	if err != nil {
		return PumpStats{}, err
	}
	stats, err := Pump(ctx, gen, cw.Write, opts)
	if ferr := cw.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	return stats, err
}
