package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// Client process tasks.
const (
	TaskFanout = "fanout" // read Records records on each connection, report "done"
	TaskReplay = "replay" // resume from earliest, report timings
)

// ReplayReport is what a replaying client measured.
type ReplayReport struct {
	Records      int64   `json:"records"`
	FirstFrameMS float64 `json:"first_frame_ms"`
	CompleteMS   float64 `json:"complete_ms"`
	MsgsPerS     float64 `json:"msgs_per_s"`
}

// RunClientProcess is `dashstream bench __client`: N WebSocket clients in
// a process of their own, so that their CPU and memory are not the
// server's. It talks to the benchmark over lines: it prints "ready" once
// every client is connected, then "done" (fanout) or "result <json>"
// (replay), or "error <message>"; it exits when stdin closes.
func RunClientProcess(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench __client", flag.ContinueOnError)
	url := fs.String("url", "", "WebSocket URL (…/ws)")
	n := fs.Int("n", 1, "clients")
	mode := fs.String("mode", ModeBatch, "batch, paired or bare")
	task := fs.String("task", TaskFanout, "fanout or replay")
	records := fs.Int("records", 0, "records each client waits for (fanout)")
	spread := fs.Int("spread", 1, "loopback source addresses to spread over")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if _, err := RaiseNoFile(); err != nil {
		return err
	}
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stdout, format+"\n", a...)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// stdin closing ends the process.
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	clients, err := dialMany(ctx, NewDialer(*spread), *url, *mode, *n)
	if err != nil {
		say("error %v", err)
		return err
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	say("ready %d", len(clients))
	errs := make(chan error, len(clients))
	switch *task {
	case TaskFanout:
		var done atomic.Int64
		all := int64(len(clients))
		for _, c := range clients {
			go func() {
				errs <- fanoutReader(ctx, c, *records, func() {
					if done.Add(1) == all {
						say("done")
					}
				})
			}()
		}
	case TaskReplay:
		var wg sync.WaitGroup
		reports := make([]ReplayReport, len(clients))
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep, err := replayOnce(ctx, c)
				if err != nil {
					errs <- err
					return
				}
				reports[i] = rep
			}()
		}
		go func() {
			wg.Wait()
			if ctx.Err() != nil {
				return
			}
			b, _ := json.Marshal(reports)
			say("result %s", b)
		}()
	default:
		return fmt.Errorf("unknown task %q", *task)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		if ctx.Err() != nil || err == nil {
			return nil
		}
		say("error %v", err)
		return err
	}
}

// dialMany connects n clients, 64 at a time.
func dialMany(ctx context.Context, d *Dialer, url, mode string, n int) ([]*Client, error) {
	clients := make([]*Client, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			c, err := d.Dial(dctx, url, mode)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("client %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
		return nil, firstErr
	}
	return clients, nil
}

// fanoutReader reads records, checking that offsets advance by one per
// partition, calls done once want records arrived and keeps reading.
func fanoutReader(ctx context.Context, c *Client, want int, done func()) error {
	got := 0
	last := map[int32]int64{}
	var bad error
	h := Handler{Record: func(p int32, o int64, _ []byte) {
		if p >= 0 {
			if l, ok := last[p]; ok && o != l+1 && bad == nil {
				bad = fmt.Errorf("partition %d: offset %d after %d", p, o, l)
			}
			last[p] = o
		}
		got++
		if got == want {
			done()
		}
	}}
	for {
		if err := c.ReadFrame(ctx, h); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("after %d records: %w", got, err)
		}
		if bad != nil {
			return bad
		}
	}
}

// replayOnce sends a resume from earliest and times the first record and
// replay_complete.
func replayOnce(ctx context.Context, c *Client) (ReplayReport, error) {
	var rep ReplayReport
	var first time.Time
	complete := false
	h := Handler{
		Record: func(int32, int64, []byte) {
			if rep.Records == 0 {
				first = time.Now()
			}
			rep.Records++
		},
		Control: func(typ string, _ []byte) {
			if typ == "replay_complete" {
				complete = true
			}
		},
	}
	start := time.Now()
	if err := c.SendJSON(ctx, ResumeEarliest()); err != nil {
		return rep, err
	}
	for !complete {
		if err := c.ReadFrame(ctx, h); err != nil {
			return rep, fmt.Errorf("replay after %d records: %w", rep.Records, err)
		}
	}
	end := time.Now()
	rep.CompleteMS = ms(end.Sub(start))
	if rep.Records > 0 {
		rep.FirstFrameMS = ms(first.Sub(start))
	}
	rep.MsgsPerS = rate(rep.Records, end.Sub(start))
	return rep, nil
}

// clientProc is a running client process, seen from the benchmark.
type clientProc struct {
	lines chan string
	stdin io.WriteCloser
	wait  func() error
}

// next returns the next line of the client process, failing on "error"
// lines, on exit and after timeout.
func (p *clientProc) next(timeout time.Duration) (string, error) {
	select {
	case l, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("client process exited: %v", p.wait())
		}
		if len(l) >= 6 && l[:6] == "error " {
			return "", fmt.Errorf("client process: %s", l[6:])
		}
		return l, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("client process said nothing for %s", timeout)
	}
}

// stop closes the client's stdin and waits for it to exit.
func (p *clientProc) stop() {
	p.stdin.Close()
	for range p.lines {
	}
	_ = p.wait()
}

func scanLines(r io.Reader, out chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		out <- sc.Text()
	}
	close(out)
}
