package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
)

// IngestResult compares kfake → store ingest with direct store Append of
// the same batches.
type IngestResult struct {
	Records        int
	Bytes          int64
	Batches        int
	Rounds         int
	IngestRecsPerS float64
	DirectRecsPerS float64
	Ratio          float64
}

// recordingStore keeps every batch ingest appended, for the direct
// baseline.
type recordingStore struct {
	store.Store
	mu      sync.Mutex
	batches []store.Batch
}

// Append appends and remembers b.
func (r *recordingStore) Append(ctx context.Context, b store.Batch) error {
	if err := r.Store.Append(ctx, b); err != nil {
		return err
	}
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	return nil
}

// benchIngest produces the corpus to an embedded broker once, then, for
// each round, ingests it into a fresh bolt store (fsync on) and appends the
// very batches ingest made straight to another fresh store.
func benchIngest(ctx context.Context, c *Corpus, dir string, rounds int) (IngestResult, error) {
	b, err := StartBroker(ctx, BrokerOptions{})
	if err != nil {
		return IngestResult{}, err
	}
	defer b.Close()
	prod, err := NewProducer(b.Addr(), 5*time.Millisecond)
	if err != nil {
		return IngestResult{}, err
	}
	end, err := ProduceAll(ctx, prod, c.Raw)
	prod.Close()
	if err != nil {
		return IngestResult{}, err
	}
	res := IngestResult{Records: len(c.Raw), Bytes: c.AllBytes, Rounds: rounds}
	var ing, dir2 []time.Duration
	for r := range rounds {
		d, batches, err := ingestOnce(ctx, b.Addr(), filepath.Join(dir, fmt.Sprintf("ingest-%d.db", r)), end)
		if err != nil {
			return res, err
		}
		ing = append(ing, d)
		res.Batches = len(batches)
		d, err = directOnce(ctx, filepath.Join(dir, fmt.Sprintf("direct-%d.db", r)), batches)
		if err != nil {
			return res, err
		}
		dir2 = append(dir2, d)
	}
	mi, md := median(ing), median(dir2)
	res.IngestRecsPerS = rate(int64(len(c.Raw)), mi)
	res.DirectRecsPerS = rate(int64(len(c.Raw)), md)
	res.Ratio = md.Seconds() / mi.Seconds()
	return res, nil
}

func ingestOnce(ctx context.Context, addr, path string, end map[int32]int64) (time.Duration, []store.Batch, error) {
	defer os.Remove(path)
	real, err := bolt.Open(path, bolt.Options{Fsync: true})
	if err != nil {
		return 0, nil, fmt.Errorf("ingest bench: %w", err)
	}
	defer real.Close()
	st := &recordingStore{Store: real}
	m, err := ingest.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		return 0, nil, fmt.Errorf("ingest bench: %w", err)
	}
	cfg := ingest.Config{Brokers: []string{addr}, Topic: Topic, MaxPayloadBytes: 10 << 20, LagCheckInterval: 10 * time.Second}
	ing, err := ingest.New(cfg, st, nil, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, nil, fmt.Errorf("ingest bench: %w", err)
	}
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- ing.Run(ictx) }()
	defer func() {
		cancel()
		<-done
	}()
	for {
		next := real.IngestOffsets()
		caught := true
		for p, n := range end {
			if next[p] < n {
				caught = false
			}
		}
		if caught {
			break
		}
		select {
		case err := <-done:
			done <- err
			return 0, nil, fmt.Errorf("ingest bench: ingest stopped early: %w", err)
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Since(start) > 5*time.Minute {
			return 0, nil, errors.New("ingest bench: the corpus was not ingested within 5 minutes")
		}
	}
	elapsed := time.Since(start)
	st.mu.Lock()
	defer st.mu.Unlock()
	return elapsed, st.batches, nil
}

func directOnce(ctx context.Context, path string, batches []store.Batch) (time.Duration, error) {
	defer os.Remove(path)
	st, err := bolt.Open(path, bolt.Options{Fsync: true})
	if err != nil {
		return 0, fmt.Errorf("direct append bench: %w", err)
	}
	defer st.Close()
	start := time.Now()
	for _, b := range batches {
		if err := st.Append(ctx, b); err != nil {
			return 0, fmt.Errorf("direct append bench: %w", err)
		}
	}
	return time.Since(start), nil
}
