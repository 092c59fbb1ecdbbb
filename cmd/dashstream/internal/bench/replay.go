package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/dashstream/dashstream/store/bolt"
)

// ReplayResult is a resume of every retained record from a bolt store on
// disk, measured at a real client in another process.
type ReplayResult struct {
	Records            int
	PayloadBytes       int
	Rounds             int
	MsgsPerS           float64 // batched mode
	FirstFrameMS       float64
	PairedMsgsPerS     float64
	PairedFirstFrameMS float64
	BatchCompleteMS    float64
	PairedCompleteMS   float64
}

// benchReplay writes n records of 300 B to a bolt store, reopens it and
// has a client resume from earliest, in batched and in paired mode.
func (e *env) benchReplay(ctx context.Context, c *Corpus, n, rounds int) (ReplayResult, error) {
	res := ReplayResult{Records: n, PayloadBytes: 300, Rounds: rounds}
	path := filepath.Join(e.dir, "replay.db")
	s, err := bolt.Open(path, bolt.Options{Fsync: false})
	if err != nil {
		return res, fmt.Errorf("replay bench: %w", err)
	}
	for _, b := range Batches(c.SizedRecords(300, n, Partitions), 1000) {
		if err := s.Append(ctx, b); err != nil {
			s.Close()
			return res, fmt.Errorf("replay bench: %w", err)
		}
	}
	if err := s.Close(); err != nil {
		return res, fmt.Errorf("replay bench: %w", err)
	}
	reps := map[string][]ReplayReport{}
	for r := range rounds {
		for _, mode := range []string{ModeBatch, ModePaired} {
			st, err := bolt.Open(path, bolt.Options{Fsync: true})
			if err != nil {
				return res, fmt.Errorf("replay bench: %w", err)
			}
			srv, err := newHubServer(benchHubConfig(), st)
			if err != nil {
				st.Close()
				return res, err
			}
			profile := ""
			if e.profileDir != "" {
				profile = filepath.Join(e.profileDir, fmt.Sprintf("replay-%s-round%d.pprof", mode, r))
			}
			rep, err := e.replayOnce(ctx, srv, mode, profile)
			srv.Close()
			if err != nil {
				return res, fmt.Errorf("replay bench (%s): %w", mode, err)
			}
			if rep.Records != int64(n) {
				return res, fmt.Errorf("replay bench (%s): client got %d records, want %d", mode, rep.Records, n)
			}
			e.progress("  replay %-6s %d records: first frame %.1f ms, complete %.0f ms, %.0f msg/s", mode, n,
				rep.FirstFrameMS, rep.CompleteMS, rep.MsgsPerS)
			reps[mode] = append(reps[mode], rep)
		}
	}
	pick := func(rs []ReplayReport) ReplayReport { // median by rate
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = time.Duration(r.CompleteMS * float64(time.Millisecond))
		}
		m := median(ds)
		for _, r := range rs {
			if time.Duration(r.CompleteMS*float64(time.Millisecond)) == m {
				return r
			}
		}
		return rs[0]
	}
	b, p := pick(reps[ModeBatch]), pick(reps[ModePaired])
	res.MsgsPerS, res.FirstFrameMS, res.BatchCompleteMS = b.MsgsPerS, b.FirstFrameMS, b.CompleteMS
	res.PairedMsgsPerS, res.PairedFirstFrameMS, res.PairedCompleteMS = p.MsgsPerS, p.FirstFrameMS, p.CompleteMS
	return res, nil
}

func (e *env) replayOnce(ctx context.Context, srv fanServer, mode, profile string) (ReplayReport, error) {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return ReplayReport{}, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return ReplayReport{}, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	p, err := e.spawnClient(ctx, "-task", TaskReplay, "-url", srv.URL(), "-n", "1", "-mode", mode)
	if err != nil {
		return ReplayReport{}, err
	}
	defer p.stop()
	if _, err := p.next(time.Minute); err != nil { // ready
		return ReplayReport{}, err
	}
	line, err := p.next(5 * time.Minute)
	if err != nil {
		return ReplayReport{}, err
	}
	js, ok := strings.CutPrefix(line, "result ")
	if !ok {
		return ReplayReport{}, fmt.Errorf("client process said %q", line)
	}
	var reps []ReplayReport
	if err := json.Unmarshal([]byte(js), &reps); err != nil || len(reps) != 1 {
		return ReplayReport{}, fmt.Errorf("client process result %q: %v", js, err)
	}
	return reps[0], nil
}
