package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// E2EResult is produce → client latency through the real server.
type E2EResult struct {
	MaxRecsPerS    float64 // burst throughput measured at the batched client
	RecsPerS       float64 // the steady rate the latency was measured at (half the max)
	Seconds        float64
	Samples        int
	Missing        int
	P50MS, P99MS   float64 // batched client
	PairedP50MS    float64
	PairedP99MS    float64
	BurstRecords   int
	PayloadMeanLen int64
}

// benchE2E starts an embedded broker and `dashstream serve` (fsync on) as
// a child process, connects a batched and a paired client, measures the
// burst throughput at the batched client, then produces corpus records at
// half of it for d and reports the latency percentiles.
func (e *env) benchE2E(ctx context.Context, c *Corpus, burst int, d time.Duration) (E2EResult, error) {
	var res E2EResult
	b, err := StartBroker(ctx, BrokerOptions{})
	if err != nil {
		return res, err
	}
	defer b.Close()
	srv, err := StartServe(ctx, ServeOptions{Exe: e.exe, Brokers: b.Addr(), DataDir: filepath.Join(e.dir, "e2e-data")})
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	dl := NewDialer(1)
	bc, err := StartLatencyClient(ctx, dl, srv.URL(), ModeBatch, true)
	if err != nil {
		return res, err
	}
	defer bc.Close()
	pc, err := StartLatencyClient(ctx, dl, srv.URL(), ModePaired, true)
	if err != nil {
		return res, err
	}
	defer pc.Close()
	cl, err := NewProducer(b.Addr(), 0)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	lp := NewLatencyProducer(cl)
	recs := c.Valid
	burst = min(burst, len(recs))
	res.BurstRecords = burst
	start := time.Now()
	for _, r := range recs[:burst] {
		lp.Produce(ctx, r)
	}
	if err := bc.WaitCount(int64(burst), 5*time.Minute); err != nil {
		return res, fmt.Errorf("e2e burst: %w", err)
	}
	res.MaxRecsPerS = rate(int64(burst), time.Since(start))
	if err := pc.WaitCount(int64(burst), 5*time.Minute); err != nil {
		return res, fmt.Errorf("e2e burst (paired client): %w", err)
	}
	lp.Latencies(bc, time.Now(), 0) // forget the burst
	lp.Latencies(pc, time.Now(), 0)
	e.progress("  e2e: burst of %d records reached the client at %.0f records/s; measuring latency at %.0f records/s for %s",
		burst, res.MaxRecsPerS, res.MaxRecsPerS/2, d)

	res.RecsPerS = res.MaxRecsPerS / 2
	steadyStart := time.Now()
	n := lp.Pace(ctx, recs, burst, res.RecsPerS, d)
	res.Seconds = time.Since(steadyStart).Seconds()
	if err := cl.Flush(ctx); err != nil {
		return res, fmt.Errorf("e2e: %w", err)
	}
	if err := lp.Err(); err != nil {
		return res, fmt.Errorf("e2e produce: %w", err)
	}
	want := int64(burst + n)
	if err := bc.WaitCount(want, time.Minute); err != nil {
		return res, fmt.Errorf("e2e steady: %w", err)
	}
	if err := pc.WaitCount(want, time.Minute); err != nil {
		return res, fmt.Errorf("e2e steady (paired client): %w", err)
	}
	// Latencies of the paired client first: Latencies forgets what it
	// matched, so snapshot the producer's map for the second client.
	warm := steadyStart.Add(time.Second)
	lp.mu.Lock()
	saved := make(map[PO]time.Time, len(lp.sent))
	for k, v := range lp.sent {
		saved[k] = v
	}
	lp.mu.Unlock()
	platency, _ := lp.Latencies(pc, warm, time.Hour)
	lp.mu.Lock()
	lp.sent = saved
	lp.mu.Unlock()
	blatency, missing := lp.Latencies(bc, warm, 0)
	res.Samples, res.Missing = len(blatency), missing
	res.P50MS, res.P99MS = ms(percentile(blatency, 50)), ms(percentile(blatency, 99))
	res.PairedP50MS, res.PairedP99MS = ms(percentile(platency, 50)), ms(percentile(platency, 99))
	return res, nil
}
