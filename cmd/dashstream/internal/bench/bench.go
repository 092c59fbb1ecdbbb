package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Benchmark names, for Options.Only.
const (
	BenchStore   = "store"
	BenchIngest  = "ingest"
	BenchFanout  = "fanout"
	BenchReplay  = "replay"
	BenchIdle    = "idle"
	BenchStorage = "storage"
	BenchE2E     = "e2e"
)

// AllBenchmarks lists every benchmark in the order the suite runs them.
func AllBenchmarks() []string {
	return []string{BenchStorage, BenchStore, BenchIngest, BenchFanout, BenchReplay, BenchIdle, BenchE2E}
}

// Options configure Run.
type Options struct {
	Quick      bool      // CI size: the whole run in about 3 minutes on 2 cores
	Only       []string  // run only these benchmarks (default all)
	Exe        string    // the dashstream binary, for client and server child processes
	Dir        string    // scratch directory (default a fresh temp dir, removed after)
	ProfileDir string    // if set, CPU profiles of our side of fan-out and replay go here
	Progress   io.Writer // progress lines (stderr)
}

// env is one run's shared state.
type env struct {
	exe        string
	dir        string
	profileDir string
	out        io.Writer
	mu         sync.Mutex
}

func (e *env) progress(format string, a ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.out, format+"\n", a...)
}

// spread is how many loopback source addresses n clients use.
func (e *env) spread(n int) int { return min(max(1, n/20), 250) }

// spawnClient starts `dashstream bench __client args…`.
func (e *env) spawnClient(ctx context.Context, args ...string) (*clientProc, error) {
	cmd := exec.CommandContext(ctx, e.exe, append([]string{"bench", "__client"}, args...)...)
	cmd.Stderr = e.out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the client process %s: %w", e.exe, err)
	}
	lines := make(chan string, 16)
	go scanLines(stdout, lines)
	return &clientProc{lines: lines, stdin: stdin, wait: cmd.Wait}, nil
}

// Target is one target of the issue and where the run stands.
type Target struct {
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	Cmp    string  `json:"cmp"` // ">=" or "<="
	Met    bool    `json:"met"`
}

// Result is the JSON object `dashstream bench --json` prints. Every
// figure was measured in this run; ratios are ours over the baseline.
// Pointers are nil for benchmarks that did not run.
type Result struct {
	Quick   bool       `json:"quick"`
	Seconds float64    `json:"elapsed_seconds"`
	CPUs    int        `json:"cpus"`
	GoVer   string     `json:"go"`
	Corpus  CorpusInfo `json:"corpus"`

	StoreAppendRatio     *float64 `json:"store_append_ratio"`
	IngestRatio          *float64 `json:"ingest_ratio"`
	FanoutRatio100       *float64 `json:"fanout_ratio_100"`
	FanoutRatio1000      *float64 `json:"fanout_ratio_1000"`
	FanoutPairedRatio100 *float64 `json:"fanout_paired_ratio_100"`
	ReplayMsgsPerS       *float64 `json:"replay_msgs_per_s"`
	ReplayPairedMsgsPerS *float64 `json:"replay_paired_msgs_per_s"`
	FirstFrameMS         *float64 `json:"first_frame_ms"`
	FirstFramePairedMS   *float64 `json:"first_frame_paired_ms"`
	IdleBytesPerConn     *float64 `json:"idle_bytes_per_conn"`
	StorageRatio         *float64 `json:"storage_ratio"`
	FileBytesRatio       *float64 `json:"file_bytes_ratio"`
	E2EP50MS             *float64 `json:"e2e_p50_ms"`
	E2EP99MS             *float64 `json:"e2e_p99_ms"`

	Targets map[string]Target `json:"targets"`

	StoreAppend *StoreAppendResult `json:"store_append,omitempty"`
	Ingest      *IngestResult      `json:"ingest,omitempty"`
	Fanout      []FanoutResult     `json:"fanout,omitempty"`
	Replay      *ReplayResult      `json:"replay,omitempty"`
	Idle        *IdleResult        `json:"idle,omitempty"`
	Storage     *StorageResult     `json:"storage,omitempty"`
	E2E         *E2EResult         `json:"e2e,omitempty"`
}

// CorpusInfo is the D9 corpus summary every report carries.
type CorpusInfo struct {
	Runs       int    `json:"runs"`
	Records    int    `json:"records"`
	Bytes      int64  `json:"bytes"`
	Plain      int    `json:"plain_records"`
	PlainBytes int64  `json:"plain_bytes"`
	Zstd       int    `json:"zstd_records"`
	ZstdBytes  int64  `json:"zstd_bytes"`
	Invalid    int    `json:"invalid_records"`
	Summary    string `json:"summary"`
}

func ptr(v float64) *float64 { return &v }

// sizes is the scale of one run.
type sizes struct {
	storeRecs, storeRounds   int
	ingestRounds             int
	fan100Recs, fan1000Recs  int
	fanRounds                int
	replayRecs, replayRounds int
	idleConns                int
	e2eBurst                 int
	e2eSteady                time.Duration
}

func sizesFor(quick bool) sizes {
	if quick {
		return sizes{storeRecs: 20000, storeRounds: 3, ingestRounds: 1, fan100Recs: 10000, fan1000Recs: 2000, fanRounds: 1,
			replayRecs: 100000, replayRounds: 1, idleConns: 5000, e2eBurst: 20000, e2eSteady: 10 * time.Second}
	}
	return sizes{storeRecs: 50000, storeRounds: 5, ingestRounds: 3, fan100Recs: 50000, fan1000Recs: 10000, fanRounds: 3,
		replayRecs: 100000, replayRounds: 3, idleConns: 5000, e2eBurst: 1 << 30, e2eSteady: 30 * time.Second}
}

// Run runs the suite and returns its result.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the dashstream binary: %w", err)
		}
		o.Exe = exe
	}
	only := o.Only
	if len(only) == 0 {
		only = AllBenchmarks()
	}
	for _, b := range only {
		if !slices.Contains(AllBenchmarks(), b) {
			return nil, fmt.Errorf("unknown benchmark %q (have %s)", b, strings.Join(AllBenchmarks(), ", "))
		}
	}
	if _, err := RaiseNoFile(); err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "dashstream-bench-")
		if err != nil {
			return nil, fmt.Errorf("scratch directory: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("profile directory: %w", err)
		}
	}
	e := &env{exe: o.Exe, dir: dir, profileDir: o.ProfileDir, out: o.Progress}
	sz := sizesFor(o.Quick)
	res := &Result{Quick: o.Quick, CPUs: runtime.NumCPU(), GoVer: runtime.Version(), Targets: map[string]Target{}}

	e.progress("generating the D9 corpus (synth.Corpus(1, 500))…")
	c, err := LoadCorpus(500)
	if err != nil {
		return nil, err
	}
	res.Corpus = CorpusInfo{Runs: 500, Records: c.Stats.Records, Bytes: c.Stats.Bytes, Plain: c.Stats.Plain, PlainBytes: c.Stats.PlainBytes,
		Zstd: c.Stats.Zstd, ZstdBytes: c.Stats.ZstdBytes, Invalid: c.Invalid, Summary: c.Stats.String()}
	e.progress("%s", strings.TrimSpace(c.Stats.String()))

	run := func(name string) bool { return slices.Contains(only, name) && ctx.Err() == nil }
	step := func(name string, f func() error) error {
		if !run(name) {
			return nil
		}
		t := time.Now()
		e.progress("== %s", name)
		if err := f(); err != nil {
			return fmt.Errorf("%s benchmark: %w", name, err)
		}
		e.progress("   (%s took %.1fs)", name, time.Since(t).Seconds())
		return nil
	}
	steps := []struct {
		name string
		f    func() error
	}{
		{BenchStorage, func() error {
			r, err := benchStorage(ctx, c, dir)
			if err != nil {
				return err
			}
			res.Storage, res.StorageRatio, res.FileBytesRatio = &r, ptr(r.StorageRatio), ptr(r.FileBytesRatio)
			return nil
		}},
		{BenchStore, func() error {
			r, err := benchStoreAppend(ctx, c, dir, 5000, sz.storeRecs, 300, 1000, sz.storeRounds)
			if err != nil {
				return err
			}
			res.StoreAppend, res.StoreAppendRatio = &r, ptr(r.Ratio)
			return nil
		}},
		{BenchIngest, func() error {
			r, err := benchIngest(ctx, c, dir, sz.ingestRounds)
			if err != nil {
				return err
			}
			res.Ingest, res.IngestRatio = &r, ptr(r.Ratio)
			return nil
		}},
		{BenchFanout, func() error {
			r100, err := e.benchFanout(ctx, c, 100, sz.fan100Recs, []string{ModeBatch, ModePaired}, sz.fanRounds)
			if err != nil {
				return err
			}
			r1000, err := e.benchFanout(ctx, c, 1000, sz.fan1000Recs, []string{ModeBatch}, sz.fanRounds)
			if err != nil {
				return err
			}
			res.Fanout = append(r100, r1000...)
			for _, f := range res.Fanout {
				switch {
				case f.Clients == 100 && f.Mode == ModeBatch:
					res.FanoutRatio100 = ptr(f.Ratio)
				case f.Clients == 100 && f.Mode == ModePaired:
					res.FanoutPairedRatio100 = ptr(f.Ratio)
				case f.Clients == 1000 && f.Mode == ModeBatch:
					res.FanoutRatio1000 = ptr(f.Ratio)
				}
			}
			return nil
		}},
		{BenchReplay, func() error {
			r, err := e.benchReplay(ctx, c, sz.replayRecs, sz.replayRounds)
			if err != nil {
				return err
			}
			res.Replay = &r
			res.ReplayMsgsPerS, res.ReplayPairedMsgsPerS = ptr(r.MsgsPerS), ptr(r.PairedMsgsPerS)
			res.FirstFrameMS, res.FirstFramePairedMS = ptr(r.FirstFrameMS), ptr(r.PairedFirstFrameMS)
			return nil
		}},
		{BenchIdle, func() error {
			r, err := e.benchIdle(ctx, c, sz.idleConns)
			if err != nil {
				return err
			}
			res.Idle, res.IdleBytesPerConn = &r, ptr(r.BytesPerConn)
			return nil
		}},
		{BenchE2E, func() error {
			r, err := e.benchE2E(ctx, c, sz.e2eBurst, sz.e2eSteady)
			if err != nil {
				return err
			}
			res.E2E, res.E2EP50MS, res.E2EP99MS = &r, ptr(r.P50MS), ptr(r.P99MS)
			return nil
		}},
	}
	for _, s := range steps {
		if err := step(s.name, s.f); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	res.fillTargets()
	return res, nil
}

func (r *Result) fillTargets() {
	add := func(key string, v *float64, target float64, cmp string) {
		if v == nil {
			return
		}
		met := *v >= target
		if cmp == "<=" {
			met = *v <= target
		}
		r.Targets[key] = Target{Value: *v, Target: target, Cmp: cmp, Met: met}
	}
	add("store_append_ratio", r.StoreAppendRatio, 0.6, ">=")
	add("ingest_ratio", r.IngestRatio, 0.5, ">=")
	add("fanout_ratio_100", r.FanoutRatio100, 2, ">=")
	add("fanout_ratio_1000", r.FanoutRatio1000, 2, ">=")
	add("fanout_paired_ratio_100", r.FanoutPairedRatio100, 0.45, ">=")
	add("replay_msgs_per_s", r.ReplayMsgsPerS, 100000, ">=")
	add("idle_bytes_per_conn", r.IdleBytesPerConn, 16<<10, "<=")
	add("idle_bytes_per_conn_stretch", r.IdleBytesPerConn, 12<<10, "<=")
	add("storage_ratio", r.StorageRatio, 0.4, "<=")
	add("e2e_p99_ms", r.E2EP99MS, 20, "<=")
}

// WriteJSON writes r as one JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// WriteTable writes the human report: every ratio with its absolute
// figures and where it stands against its target.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "key\tvalue\tours\tbaseline\ttarget\tmet\n")
	row := func(key string, v *float64, format, ours, base string) {
		if v == nil {
			return
		}
		t, ok := r.Targets[key]
		target, met := "-", "-"
		if ok {
			target = t.Cmp + " " + trimFloat(t.Target)
			met = map[bool]string{true: "yes", false: "NO"}[t.Met]
		}
		fmt.Fprintf(tw, "%s\t"+format+"\t%s\t%s\t%s\t%s\n", key, *v, ours, base, target, met)
	}
	if s := r.StoreAppend; s != nil {
		row("store_append_ratio", r.StoreAppendRatio, "%.2f",
			fmt.Sprintf("store %.0f rec/s (%.1f MB/s)", s.StoreRecsPerS, s.StoreMBPerS),
			fmt.Sprintf("raw bbolt %.0f rec/s (%.1f MB/s)", s.BaseRecsPerS, s.BaselineMBPerS))
		v := s.ColdRatio
		row("store_append_ratio_cold", &v, "%.2f", fmt.Sprintf("store %.0f rec/s incl. dictionary training", s.ColdStoreRecsPerS),
			fmt.Sprintf("raw bbolt %.0f rec/s", s.ColdBaseRecsPerS))
	}
	if s := r.Ingest; s != nil {
		row("ingest_ratio", r.IngestRatio, "%.2f", fmt.Sprintf("kfake→store %.0f rec/s", s.IngestRecsPerS),
			fmt.Sprintf("direct Append %.0f rec/s", s.DirectRecsPerS))
	}
	for _, f := range r.Fanout {
		key := fmt.Sprintf("fanout_ratio_%d", f.Clients)
		v := r.FanoutRatio100
		switch {
		case f.Clients == 1000:
			v = r.FanoutRatio1000
		case f.Mode == ModePaired:
			key, v = "fanout_paired_ratio_100", r.FanoutPairedRatio100
		}
		row(key, v, "%.2f", fmt.Sprintf("hub %s %.0f rec/s", f.Mode, f.OursRecsPerS),
			fmt.Sprintf("bare coder/websocket %.0f frames/s", f.BaseRecsPerS))
	}
	if s := r.Replay; s != nil {
		row("replay_msgs_per_s", r.ReplayMsgsPerS, "%.0f", fmt.Sprintf("%d records in %.0f ms (batched)", s.Records, s.BatchCompleteMS),
			fmt.Sprintf("paired mode %.0f msg/s", s.PairedMsgsPerS))
		row("first_frame_ms", r.FirstFrameMS, "%.1f", "batched", fmt.Sprintf("paired mode %.1f ms", s.PairedFirstFrameMS))
	}
	if s := r.Idle; s != nil {
		row("idle_bytes_per_conn", r.IdleBytesPerConn, "%.0f", fmt.Sprintf("%d conns: RSS +%.1f MiB", s.Conns, float64(s.RSSAfter-s.RSSBefore)/(1<<20)),
			fmt.Sprintf("heap %.0f B, stacks %.0f B, %.1f goroutines per conn", s.HeapBytesPerConn, s.StackBytesPerConn, s.GoroutinesPerConn))
		if t, ok := r.Targets["idle_bytes_per_conn_stretch"]; ok {
			fmt.Fprintf(tw, "idle (stretch)\t%.0f\t\t\t<= %s\t%s\n", t.Value, trimFloat(t.Target), map[bool]string{true: "yes", false: "NO"}[t.Met])
		}
	}
	if s := r.Storage; s != nil {
		row("storage_ratio", r.StorageRatio, "%.4f", fmt.Sprintf("stored %d B", s.PlainStored), fmt.Sprintf("plain Kafka values %d B", s.PlainRaw))
		row("file_bytes_ratio", r.FileBytesRatio, "%.4f", fmt.Sprintf("file %d B", s.FileBytes), fmt.Sprintf("all Kafka values %d B", s.AllBytes))
	}
	if s := r.E2E; s != nil {
		row("e2e_p50_ms", r.E2EP50MS, "%.2f", fmt.Sprintf("at %.0f rec/s (max %.0f), %d samples", s.RecsPerS, s.MaxRecsPerS, s.Samples),
			fmt.Sprintf("paired client %.2f ms", s.PairedP50MS))
		row("e2e_p99_ms", r.E2EP99MS, "%.2f", fmt.Sprintf("batched client; disk fdatasync p50 %.2f p99 %.2f max %.0f ms", s.FsyncP50MS, s.FsyncP99MS, s.FsyncMaxMS),
			fmt.Sprintf("paired client %.2f ms", s.PairedP99MS))
		fmt.Fprintf(tw, "  e2e: server store Append\t\tp50 ≈ %.1f ms, p99 ≈ %.0f ms, mean %.1f ms\t%d appends, %.0f records each\t\t\n",
			s.AppendP50MS, s.AppendP99MS, s.AppendMeanMS, s.Appends, s.RecordsPerAppend)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	_, err := fmt.Fprintf(w, "(%s run, %.0f s, %d CPUs, %s)\n", map[bool]string{true: "quick", false: "full"}[r.Quick], r.Seconds, r.CPUs, r.GoVer)
	return err
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
