package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/dashstream/dashstream/store/memory"
)

// IdleResult is what idle connections cost the server.
type IdleResult struct {
	Conns             int
	RSSBefore         int64
	RSSAfter          int64
	BytesPerConn      float64 // RSS growth per connection
	HeapBytesPerConn  float64 // Go heap in use per connection
	StackBytesPerConn float64 // goroutine stacks per connection
	GoroutinesPerConn float64
}

// settledMem collects garbage, returns freed memory to the OS and reads
// RSS, heap and stack in use.
func settledMem() (rss int64, ms runtime.MemStats, err error) {
	for range 2 {
		runtime.GC()
		debug.FreeOSMemory()
		time.Sleep(100 * time.Millisecond)
	}
	runtime.ReadMemStats(&ms)
	rss, err = RSS(0)
	return rss, ms, err
}

// benchIdle connects n batched clients from a client process to a fresh
// hub in this process, sends each one record (so every connection's write
// path has run), lets them idle and measures the server's RSS growth.
func (e *env) benchIdle(ctx context.Context, c *Corpus, n int) (IdleResult, error) {
	res := IdleResult{Conns: n}
	srv, err := newHubServer(benchHubConfig(), memory.New(memory.Config{}))
	if err != nil {
		return res, err
	}
	defer srv.Close()
	rss0, ms0, err := settledMem()
	if err != nil {
		return res, err
	}
	g0 := runtime.NumGoroutine()
	p, err := e.spawnClient(ctx, "-task", TaskFanout, "-url", srv.URL(), "-n", strconv.Itoa(n), "-mode", ModeBatch,
		"-records", "1", "-spread", strconv.Itoa(e.spread(n)))
	if err != nil {
		return res, err
	}
	defer p.stop()
	if _, err := p.next(5 * time.Minute); err != nil { // ready
		return res, err
	}
	if err := waitClients(ctx, srv, n, time.Minute); err != nil {
		return res, err
	}
	srv.Feed(Batches(c.SizedRecords(300, 1, 1), 1)[0])
	if _, err := p.next(2 * time.Minute); err != nil { // done
		return res, err
	}
	time.Sleep(time.Second)
	rss1, ms1, err := settledMem()
	if err != nil {
		return res, err
	}
	if srv.Clients() != n {
		return res, fmt.Errorf("idle bench: %d of %d clients still connected", srv.Clients(), n)
	}
	g1 := runtime.NumGoroutine()
	if e.profileDir != "" {
		if err := writeHeapProfile(filepath.Join(e.profileDir, "idle-heap.pprof")); err != nil {
			return res, err
		}
	}
	res.RSSBefore, res.RSSAfter = rss0, rss1
	res.BytesPerConn = float64(rss1-rss0) / float64(n)
	res.HeapBytesPerConn = (float64(ms1.HeapInuse) - float64(ms0.HeapInuse)) / float64(n)
	res.StackBytesPerConn = (float64(ms1.StackInuse) - float64(ms0.StackInuse)) / float64(n)
	res.GoroutinesPerConn = float64(g1-g0) / float64(n)
	return res, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}
