package bench

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dashstream/dashstream/store/bolt"
	"github.com/dashstream/dashstream/wire/synth"
)

// SoakOptions configure RunSoak.
type SoakOptions struct {
	Duration       time.Duration // whole run, warm-up included
	OutDir         string        // soak.csv and soak.json go here
	Rate           float64       // records per second produced
	RetentionBytes string        // DASHSTREAM_RETENTION_BYTES; "" = what about a quarter of the run stores
	RetentionAge   time.Duration // DASHSTREAM_RETENTION_AGE; 0 = the server's default (168h)
	Clients        int           // background batched clients besides the two measuring ones
	Dir            string        // scratch directory (default a temp dir, removed after)
	Exe            string        // the dashstream binary (default this one)
	Progress       io.Writer
}

// SoakSample is one row of soak.csv.
type SoakSample struct {
	T            float64 // seconds since the start
	FileBytes    int64
	RSSBytes     int64
	Goroutines   int64
	StoreRecords int64
	ProducedPerS float64
	DeliverPerS  float64 // at the batched measuring client
	P50MS        float64 // produce → batched client, this interval
	P99MS        float64
	MaxMS        float64
	FsyncP99MS   float64 // the disk's own fdatasync latency (4 KiB every 50 ms in the data directory), this interval
	Missing      int
}

// SoakVerdict says whether file size and RSS levelled off after the
// warm-up: the maximum of the second half of the post-warm-up samples is
// within 10 % (plus a little slack: bbolt grows in 4 MiB steps) of the
// maximum of the first half.
type SoakVerdict struct {
	WarmupSeconds     float64 `json:"warmup_seconds"`
	FileLevel         bool    `json:"file_size_levelled_off"`
	RSSLevel          bool    `json:"rss_levelled_off"`
	GoroutinesLevel   bool    `json:"goroutines_levelled_off"`
	RetentionActive   bool    `json:"retention_active"`
	FileMaxFirstHalf  int64   `json:"file_bytes_max_first_half"`
	FileMaxSecondHalf int64   `json:"file_bytes_max_second_half"`
	RSSMaxFirstHalf   int64   `json:"rss_bytes_max_first_half"`
	RSSMaxSecondHalf  int64   `json:"rss_bytes_max_second_half"`
	GorMaxFirstHalf   int64   `json:"goroutines_max_first_half"`
	GorMaxSecondHalf  int64   `json:"goroutines_max_second_half"`
	RecMaxFirstHalf   int64   `json:"records_max_first_half"`
	RecMaxSecondHalf  int64   `json:"records_max_second_half"`
	RecordsAtEnd      int64   `json:"records_at_end"`
	P50MS             float64 `json:"e2e_p50_ms"`
	P99MS             float64 `json:"e2e_p99_ms"`
	Delivered         int64   `json:"delivered"`
	Produced          int64   `json:"produced"`
	Acked             int64   `json:"acked"`
	Missing           int     `json:"missing"`
	OK                bool    `json:"ok"`
	Summary           string  `json:"summary"`
}

// RunSoak runs constant load through `dashstream serve` (a child process,
// fsync on) with retention active, samples the store file size, the
// server's RSS and goroutines and the produce → client latency, writes
// soak.csv and soak.json to OutDir and prints the verdict.
func RunSoak(ctx context.Context, o SoakOptions, stdout io.Writer) error {
	v, err := Soak(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, v.Summary)
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(o.OutDir, "soak.csv"), filepath.Join(o.OutDir, "soak.json"))
	return nil
}

// Soak is RunSoak without the printing: it returns the verdict it also
// writes to soak.json.
func Soak(ctx context.Context, o SoakOptions) (SoakVerdict, error) {
	var none SoakVerdict
	if o.Duration <= 0 {
		return none, fmt.Errorf("soak: duration %s", o.Duration)
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.RetentionBytes == "" {
		// About 150 stored bytes per synthetic record: retention starts
		// deleting after about a quarter of the run.
		b := int64(o.Rate * 150 * o.Duration.Seconds() / 4)
		o.RetentionBytes = strconv.FormatInt(max(b, 1<<20)>>10, 10) + "KiB"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return none, fmt.Errorf("soak: %w", err)
		}
		o.Exe = exe
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return none, fmt.Errorf("soak: %w", err)
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "dashstream-soak-")
		if err != nil {
			return none, fmt.Errorf("soak: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if _, err := RaiseNoFile(); err != nil {
		return none, err
	}
	progress := func(format string, a ...any) { fmt.Fprintf(o.Progress, format+"\n", a...) }

	b, err := StartBroker(ctx, BrokerOptions{DataDir: filepath.Join(dir, "kafka"), RetentionBytes: 16 << 20})
	if err != nil {
		return none, err
	}
	defer b.Close()
	dataDir := filepath.Join(dir, "data")
	env := map[string]string{
		"DASHSTREAM_RETENTION_BYTES": o.RetentionBytes,
		"DASHSTREAM_MAX_DB_BYTES":    "512MiB",
		// The soak watches file size, RSS and latency, not the slow-client
		// policy: a stall must not end the measuring connection.
		"SLOW_CLIENT_DISCONNECT_THRESHOLD": "0",
	}
	age := "168h (default)"
	if o.RetentionAge > 0 {
		env["DASHSTREAM_RETENTION_AGE"] = o.RetentionAge.String()
		age = o.RetentionAge.String()
	}
	srv, err := StartServe(ctx, ServeOptions{Exe: o.Exe, Brokers: b.Addr(), DataDir: dataDir, Env: env})
	if err != nil {
		return none, err
	}
	defer srv.Stop()
	progress("soak: %s at %.0f records/s, retention %s / %s, %d background clients, server pid %d, log %s", o.Duration, o.Rate,
		o.RetentionBytes, age, o.Clients, srv.Pid(), srv.LogPath)

	dl := NewDialer(1)
	bc, err := StartLatencyClient(ctx, dl, srv.URL(), ModeBatch, true)
	if err != nil {
		return none, err
	}
	defer bc.Close()
	for range o.Clients {
		c, err := StartLatencyClient(ctx, dl, srv.URL(), ModeBatch, false)
		if err != nil {
			return none, err
		}
		defer c.Close()
	}
	cl, err := NewProducer(b.Addr(), 0)
	if err != nil {
		return none, err
	}
	defer cl.Close()
	lp := NewLatencyProducer(cl)
	gen, err := synth.NewGenerator(synth.Config{Seed: time.Now().UnixNano(), Concurrency: 10, Now: time.Now})
	if err != nil {
		return none, fmt.Errorf("soak: %w", err)
	}

	// The disk's own fsync latency beside the server's: on a shared
	// machine, latency spikes of the server line up with the disk's.
	var fsMu sync.Mutex
	var fsLat []time.Duration
	stopProbe := make(chan struct{})
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		_ = fsyncProbe(dir, 50*time.Millisecond, stopProbe, func(d time.Duration) {
			fsMu.Lock()
			fsLat = append(fsLat, d)
			fsMu.Unlock()
		})
	}()
	defer func() {
		close(stopProbe)
		<-probeDone
	}()

	interval := min(10*time.Second, max(time.Second, o.Duration/120))
	start := time.Now()
	pctx, stopProducing := context.WithTimeout(ctx, o.Duration)
	defer stopProducing()
	produced := make(chan int64, 1)
	go func() { // pace the generator
		var n int64
		for pctx.Err() == nil {
			due := int64(time.Since(start).Seconds() * o.Rate)
			for ; n < due; n++ {
				r, ok := gen.Next()
				if !ok {
					break
				}
				lp.Produce(pctx, r)
			}
			time.Sleep(time.Millisecond)
		}
		produced <- n
	}()

	var samples []SoakSample
	var allLat []time.Duration
	lastT, lastAcked, lastDelivered := start, int64(0), int64(0)
	missing := 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return none, ctx.Err()
		case <-pctx.Done():
			done = true
		case <-tick.C:
		}
		if err := bc.Err(); err != nil {
			return none, fmt.Errorf("soak: the measuring client was disconnected: %w", err)
		}
		now := time.Now()
		ss, miss := lp.Samples(bc, time.Time{}, 30*time.Second)
		missing += miss
		lat := make([]time.Duration, len(ss))
		for i, s := range ss {
			lat[i] = s.Lat
		}
		allLat = append(allLat, lat...)
		s := SoakSample{T: now.Sub(start).Seconds(), Missing: miss}
		if fi, err := os.Stat(filepath.Join(dataDir, bolt.FileName)); err == nil {
			s.FileBytes = fi.Size()
		}
		s.RSSBytes, _ = RSS(srv.Pid())
		m := scrapeMetrics(srv.HTTP()+"/metrics", "go_goroutines", "dashstream_store_records")
		s.Goroutines, s.StoreRecords = int64(m["go_goroutines"]), int64(m["dashstream_store_records"])
		acked, delivered := lp.Acked(), bc.Count()
		dt := now.Sub(lastT).Seconds()
		s.ProducedPerS, s.DeliverPerS = float64(acked-lastAcked)/dt, float64(delivered-lastDelivered)/dt
		lastT, lastAcked, lastDelivered = now, acked, delivered
		if len(lat) > 0 {
			s.MaxMS = ms(percentile(lat, 100))
			s.P50MS, s.P99MS = ms(percentile(lat, 50)), ms(percentile(lat, 99))
		}
		fsMu.Lock()
		s.FsyncP99MS = ms(percentile(fsLat, 99))
		fsLat = fsLat[:0]
		fsMu.Unlock()
		samples = append(samples, s)
		progress("  %5.0fs file %6.1f MiB  rss %6.1f MiB  goroutines %4d  records %7d  %6.0f rec/s  e2e p50 %6.1f ms p99 %7.1f ms  disk fsync p99 %5.1f ms",
			s.T, mib(s.FileBytes), mib(s.RSSBytes), s.Goroutines, s.StoreRecords, s.DeliverPerS, s.P50MS, s.P99MS, s.FsyncP99MS)
	}
	n := <-produced
	// Every acknowledged record must reach the measuring client: wait for
	// the last ones, then count what never arrived.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_ = cl.Flush(fctx)
	cancel()
	_ = bc.WaitCount(lp.Acked(), 30*time.Second)
	ss, miss := lp.Samples(bc, time.Time{}, 0)
	for _, s := range ss {
		allLat = append(allLat, s.Lat)
	}
	missing += miss
	v := soakVerdict(samples, o.Duration)
	v.P50MS, v.P99MS = ms(percentile(allLat, 50)), ms(percentile(allLat, 99))
	v.Produced, v.Acked, v.Delivered, v.Missing = n, lp.Acked(), bc.Count(), missing
	v.OK = v.OK && missing == 0
	v.Summary = v.summary()
	if err := writeSoak(o.OutDir, samples, v); err != nil {
		return none, err
	}
	return v, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// soakVerdict judges the samples after the warm-up (the first 40 % of
// the run).
func soakVerdict(samples []SoakSample, d time.Duration) SoakVerdict {
	v := SoakVerdict{WarmupSeconds: 0.4 * d.Seconds()}
	var post []SoakSample
	for _, s := range samples {
		if s.T >= v.WarmupSeconds {
			post = append(post, s)
		}
	}
	if len(post) < 4 {
		v.Summary = "too few samples after the warm-up to judge"
		return v
	}
	a, b := post[:len(post)/2], post[len(post)/2:]
	maxOf := func(ss []SoakSample, f func(SoakSample) int64) int64 {
		var m int64
		for _, s := range ss {
			m = max(m, f(s))
		}
		return m
	}
	file := func(s SoakSample) int64 { return s.FileBytes }
	rss := func(s SoakSample) int64 { return s.RSSBytes }
	gor := func(s SoakSample) int64 { return s.Goroutines }
	v.FileMaxFirstHalf, v.FileMaxSecondHalf = maxOf(a, file), maxOf(b, file)
	v.RSSMaxFirstHalf, v.RSSMaxSecondHalf = maxOf(a, rss), maxOf(b, rss)
	v.GorMaxFirstHalf, v.GorMaxSecondHalf = maxOf(a, gor), maxOf(b, gor)
	v.FileLevel = float64(v.FileMaxSecondHalf) <= 1.10*float64(v.FileMaxFirstHalf)+4<<20
	v.RSSLevel = float64(v.RSSMaxSecondHalf) <= 1.10*float64(v.RSSMaxFirstHalf)+8<<20
	v.GoroutinesLevel = v.GorMaxSecondHalf <= v.GorMaxFirstHalf+10
	// Retention is active when the store stopped growing in records; the
	// count moves with the sizes of the records retained (a byte limit),
	// so the bound is looser than for file size and RSS.
	recs := func(s SoakSample) int64 { return s.StoreRecords }
	v.RecMaxFirstHalf, v.RecMaxSecondHalf = maxOf(a, recs), maxOf(b, recs)
	v.RecordsAtEnd = post[len(post)-1].StoreRecords
	v.RetentionActive = float64(v.RecMaxSecondHalf) <= 1.25*float64(v.RecMaxFirstHalf)
	v.OK = v.FileLevel && v.RSSLevel && v.GoroutinesLevel && v.RetentionActive
	return v
}

func (v SoakVerdict) summary() string {
	yes := map[bool]string{true: "yes", false: "NO"}
	var b strings.Builder
	fmt.Fprintf(&b, "soak verdict (after a %.0f s warm-up): ", v.WarmupSeconds)
	fmt.Fprintf(&b, "file size levelled off: %s (max %.1f → %.1f MiB); ", yes[v.FileLevel], mib(v.FileMaxFirstHalf), mib(v.FileMaxSecondHalf))
	fmt.Fprintf(&b, "RSS levelled off: %s (max %.1f → %.1f MiB); ", yes[v.RSSLevel], mib(v.RSSMaxFirstHalf), mib(v.RSSMaxSecondHalf))
	fmt.Fprintf(&b, "goroutines levelled off: %s (max %d → %d); ", yes[v.GoroutinesLevel], v.GorMaxFirstHalf, v.GorMaxSecondHalf)
	fmt.Fprintf(&b, "retention active: %s (records max %d → %d); ", yes[v.RetentionActive], v.RecMaxFirstHalf, v.RecMaxSecondHalf)
	fmt.Fprintf(&b, "e2e p50 %.1f ms, p99 %.1f ms; produced %d, acknowledged %d, delivered %d, missing %d; overall %s",
		v.P50MS, v.P99MS, v.Produced, v.Acked, v.Delivered, v.Missing, map[bool]string{true: "OK", false: "NOT OK"}[v.OK])
	return b.String()
}

func writeSoak(dir string, samples []SoakSample, v SoakVerdict) error {
	f, err := os.Create(filepath.Join(dir, "soak.csv"))
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"t_s", "file_bytes", "rss_bytes", "goroutines", "store_records", "produced_per_s", "delivered_per_s",
		"e2e_p50_ms", "e2e_p99_ms", "e2e_max_ms", "missing", "disk_fsync_p99_ms"})
	ff := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	for _, s := range samples {
		_ = w.Write([]string{ff(s.T), strconv.FormatInt(s.FileBytes, 10), strconv.FormatInt(s.RSSBytes, 10),
			strconv.FormatInt(s.Goroutines, 10), strconv.FormatInt(s.StoreRecords, 10), ff(s.ProducedPerS), ff(s.DeliverPerS),
			ff(s.P50MS), ff(s.P99MS), ff(s.MaxMS), strconv.Itoa(s.Missing), ff(s.FsyncP99MS)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("soak: writing soak.csv: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	return nil
}

// scrapeMetrics reads the named unlabelled series from a Prometheus text
// endpoint; missing ones are absent from the map.
func scrapeMetrics(url string, names ...string) map[string]float64 {
	out := map[string]float64{}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok || !want[name] {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// histogram is a scraped Prometheus histogram: cumulative bucket counts by
// upper bound, with its sum and count.
type histogram struct {
	les    []float64
	counts []float64
	sum    float64
	count  float64
}

// scrapeHistogram reads the unlabelled histogram name from a Prometheus
// text endpoint.
func scrapeHistogram(url, name string) (histogram, error) {
	var h histogram
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return h, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case key == name+"_sum":
			h.sum = v
		case key == name+"_count":
			h.count = v
		case strings.HasPrefix(key, name+`_bucket{le="`):
			le := strings.TrimSuffix(strings.TrimPrefix(key, name+`_bucket{le="`), `"}`)
			f, err := strconv.ParseFloat(le, 64)
			if err != nil {
				continue // +Inf
			}
			h.les, h.counts = append(h.les, f), append(h.counts, v)
		}
	}
	return h, sc.Err()
}

// since is h minus an earlier scrape of the same histogram.
func (h histogram) since(old histogram) histogram {
	out := histogram{les: h.les, counts: make([]float64, len(h.counts)), sum: h.sum - old.sum, count: h.count - old.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(old.counts) {
			out.counts[i] -= old.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile (0…1) by linear interpolation inside
// the bucket that holds it, as Prometheus' histogram_quantile does; past
// the last finite bound it returns that bound.
func (h histogram) quantile(q float64) float64 {
	if h.count <= 0 || len(h.les) == 0 {
		return 0
	}
	rank := q * h.count
	prevLe, prevCount := 0.0, 0.0
	for i, le := range h.les {
		if h.counts[i] >= rank {
			if h.counts[i] == prevCount {
				return le
			}
			return prevLe + (le-prevLe)*(rank-prevCount)/(h.counts[i]-prevCount)
		}
		prevLe, prevCount = le, h.counts[i]
	}
	return h.les[len(h.les)-1]
}
