package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
)

// FanoutResult is one fan-out comparison: records/s delivered to Clients
// clients (counted over all clients) by our hub in Mode, and by the bare
// server.
type FanoutResult struct {
	Clients       int
	Mode          string
	Records       int // per client
	PayloadBytes  int
	Rounds        int
	OursRecsPerS  float64
	BaseRecsPerS  float64
	OursSeconds   float64
	BaseSeconds   float64
	Ratio         float64
	BaselineShare bool // the baseline figure is shared with another row of the same client count
}

// fanoutOnce delivers batches to n clients of a client process connected
// to srv in mode and returns the time from the first batch to the last
// client holding every record.
func (e *env) fanoutOnce(ctx context.Context, srv fanServer, n int, mode string, batches []store.Batch, profile string) (time.Duration, error) {
	total := 0
	for _, b := range batches {
		total += len(b.Records)
	}
	args := []string{"-task", TaskFanout, "-url", srv.URL(), "-n", strconv.Itoa(n), "-mode", mode,
		"-records", strconv.Itoa(total), "-spread", strconv.Itoa(e.spread(n))}
	if e.profileDir != "" {
		args = append(args, "-cpuprofile", filepath.Join(e.profileDir, fmt.Sprintf("client-%s-%d.pprof", mode, n)))
	}
	p, err := e.spawnClient(ctx, args...)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	if _, err := p.next(3 * time.Minute); err != nil { // ready
		return 0, err
	}
	if err := waitClients(ctx, srv, n, time.Minute); err != nil {
		return 0, err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	for _, b := range batches {
		srv.Feed(b)
	}
	if _, err := p.next(10 * time.Minute); err != nil { // done
		return 0, err
	}
	return time.Since(start), nil
}

// fanoutServer starts the server under test: "bare" or our hub with a
// tail holding every record of the run (the bare server keeps them all in
// memory too), over a memory store.
func fanoutServer(kind string, total int) (fanServer, error) {
	if kind == ModeBare {
		return newBareServer()
	}
	cfg := benchHubConfig()
	cfg.TailRecords = total + 1
	cfg.TailBytes = 1 << 30
	cfg.SlowThreshold = 0
	return newHubServer(cfg, memory.New(memory.Config{MaxRecords: total + 1, MaxBytes: 1 << 30}))
}

// benchFanout measures our hub in each mode against the bare server with
// n clients, alternating for rounds rounds; each run gets fresh servers.
func (e *env) benchFanout(ctx context.Context, c *Corpus, n, records int, modes []string, rounds int) ([]FanoutResult, error) {
	recs := c.SizedRecords(300, records, Partitions)
	batches := Batches(recs, 1000)
	times := map[string][]time.Duration{}
	kinds := append([]string{ModeBare}, modes...)
	for r := range rounds {
		for _, kind := range kinds {
			srv, err := fanoutServer(kind, records)
			if err != nil {
				return nil, err
			}
			profile := ""
			if e.profileDir != "" {
				profile = filepath.Join(e.profileDir, fmt.Sprintf("fanout-%s-%d-round%d.pprof", kind, n, r))
			}
			d, err := e.fanoutOnce(ctx, srv, n, kind, batches, profile)
			srv.Close()
			if err != nil {
				return nil, fmt.Errorf("fan-out %s to %d clients: %w", kind, n, err)
			}
			times[kind] = append(times[kind], d)
			e.progress("  fan-out %-6s %5d clients × %d records: %6.2fs, %9.0f records/s", kind, n, records, d.Seconds(),
				rate(int64(n)*int64(records), d))
		}
	}
	base := median(times[ModeBare])
	var out []FanoutResult
	for _, m := range modes {
		d := median(times[m])
		out = append(out, FanoutResult{Clients: n, Mode: m, Records: records, PayloadBytes: 300, Rounds: rounds,
			OursRecsPerS: rate(int64(n)*int64(records), d), BaseRecsPerS: rate(int64(n)*int64(records), base),
			OursSeconds: d.Seconds(), BaseSeconds: base.Seconds(), Ratio: base.Seconds() / d.Seconds()})
	}
	return out, nil
}
