package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// E2EResult is produce → client latency through the real server.
type E2EResult struct {
	MaxRecsPerS  float64 // burst throughput measured at the batched client
	RecsPerS     float64 // the steady rate the latency was measured at (half the max)
	Seconds      float64
	Samples      int
	Missing      int
	P50MS, P99MS float64 // batched client
	PairedP50MS  float64
	PairedP99MS  float64
	BurstRecords int
	// The disk's own fdatasync latency (4 KiB writes every 10 ms in the
	// server's data directory) during the steady run: the floor under a
	// durable commit, measured in the same run.
	FsyncP50MS, FsyncP99MS, FsyncMaxMS float64
	// Where the time goes inside the server during the steady run, from
	// its own metrics: store Append (one bbolt transaction, fsync
	// included) per ingest batch, estimated from the histogram buckets.
	AppendP50MS, AppendP99MS, AppendMeanMS float64
	Appends                                int64
	RecordsPerAppend                       float64
}

// fsyncProbe measures the fdatasync latency of a 4 KiB write in dir
// every interval, handing each to got, until stop is closed.
func fsyncProbe(dir string, every time.Duration, stop <-chan struct{}, got func(time.Duration)) error {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4<<10)
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(every):
		}
		t := time.Now()
		if _, err := f.WriteAt(buf, 0); err != nil {
			return fmt.Errorf("fsync probe: %w", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return fmt.Errorf("fsync probe: %w", err)
		}
		got(time.Since(t))
	}
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
	// The burst outruns the 1000-record tail (ingest appends up to 2000
	// records at once), so clients read from the store; with the default
	// slow-client threshold that alone disconnects them.
	srv, err := StartServe(ctx, ServeOptions{Exe: e.exe, Brokers: b.Addr(), DataDir: filepath.Join(e.dir, "e2e-data"),
		Env: map[string]string{"SLOW_CLIENT_DISCONNECT_THRESHOLD": "0"}})
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
	stopProbe := make(chan struct{})
	probed := make(chan []time.Duration, 1)
	probeErr := make(chan error, 1)
	go func() {
		var lat []time.Duration
		err := fsyncProbe(srv.DataDir, 10*time.Millisecond, stopProbe, func(d time.Duration) { lat = append(lat, d) })
		probed <- lat
		probeErr <- err
	}()
	const appendHist = "dashstream_ingest_append_duration_seconds"
	metricsURL := srv.HTTP() + "/metrics"
	h0, herr := scrapeHistogram(metricsURL, appendHist)
	r0 := scrapeMetrics(metricsURL, "dashstream_ingest_records_total")
	steadyStart := time.Now()
	n := lp.Pace(ctx, recs, burst, res.RecsPerS, d)
	res.Seconds = time.Since(steadyStart).Seconds()
	if h1, err := scrapeHistogram(metricsURL, appendHist); err == nil && herr == nil {
		h := h1.since(h0)
		res.AppendP50MS, res.AppendP99MS = 1000*h.quantile(0.5), 1000*h.quantile(0.99)
		res.Appends = int64(h.count)
		if h.count > 0 {
			res.AppendMeanMS = 1000 * h.sum / h.count
			r1 := scrapeMetrics(metricsURL, "dashstream_ingest_records_total")
			res.RecordsPerAppend = (r1["dashstream_ingest_records_total"] - r0["dashstream_ingest_records_total"]) / h.count
		}
	}
	close(stopProbe)
	if flat := <-probed; len(flat) > 0 {
		res.FsyncP50MS, res.FsyncP99MS = ms(percentile(flat, 50)), ms(percentile(flat, 99))
		res.FsyncMaxMS = ms(percentile(flat, 100))
	}
	if err := <-probeErr; err != nil {
		return res, err
	}
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
	bs, missing := lp.Samples(bc, steadyStart, 0)
	e.progress("  e2e: p99 ms by second of the steady run:%s", perSecond(bs, steadyStart))
	var blatency []time.Duration
	for _, s := range bs {
		if !s.At.Before(warm) {
			blatency = append(blatency, s.Lat)
		}
	}
	res.Samples, res.Missing = len(blatency), missing
	res.P50MS, res.P99MS = ms(percentile(blatency, 50)), ms(percentile(blatency, 99))
	res.PairedP50MS, res.PairedP99MS = ms(percentile(platency, 50)), ms(percentile(platency, 99))
	return res, nil
}
