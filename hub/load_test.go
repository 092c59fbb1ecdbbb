package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A client that stops reading for 60 s while 10 000 records arrive stays
// connected (no slow-client threshold, 120 s send timeout) and then gets
// every record exactly once on the same socket. What the server holds for
// it is bounded by one store page, one batch and its frame (PageBytes,
// BatchMaxBytes: 1 MiB each here), whatever the backlog.
func TestStalledClientGetsEverythingOnSameSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("60 s stall")
	}
	t.Parallel()
	stall := 60 * time.Second
	ts := newTestServer(t, Config{SlowThreshold: 0, SendTimeout: 120 * time.Second, TailRecords: 1000}, nil)
	c := ts.dialSmallBuffer("")
	c.roundTrip() // registered before the first record is committed
	ts.appendRecords(10, 1, "")
	got := records(t, c.until(wait, isType("record")))

	base := heapAfterGC()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ { // 10 000 records of ~8 KiB over the stall
			ts.appendRecords(10, 100, "")
			time.Sleep(stall / 200)
		}
	}()
	time.Sleep(stall)
	<-done
	stored := ts.st.Stats().RawBytes
	_, tailBytes := ts.hub.Tail().Len()
	stalledHeap := int64(heapAfterGC())
	held := stalledHeap - int64(base) - stored - tailBytes
	for len(got) < 10001 {
		got = append(got, records(t, c.until(30*time.Second, isType("record")))...)
	}
	checkExactlyOnce(t, got, 10, seq(0, 10001))
	got = nil // the client runs in this process: its records are not the server's
	// What the stalled connection held is what the heap loses once it has
	// caught up and idles (the store and the tail are unchanged): one
	// page, one batch and its frame (1 MiB each by default), whatever the
	// backlog. The heap beyond the stored records and the tail is mostly
	// the memory store's per-record bookkeeping, which depends on the
	// store, not on the connection.
	connHeld := stalledHeap - int64(heapAfterGC())
	t.Logf("after a %s stall: store holds %d MiB, shared tail %d MiB, heap beyond both %d KiB, of which the stalled connection %d KiB",
		stall, stored>>20, tailBytes>>20, held>>10, connHeld>>10)
	if connHeld > 8<<20 {
		t.Fatalf("the stalled connection held %d MiB", connHeld>>20)
	}
	if ts.hub.Clients() != 1 {
		t.Fatal("client was disconnected")
	}
}

// A client reading one message per second neither slows the others nor
// loses anything.
func TestSlowReaderDoesNotSlowOthers(t *testing.T) {
	run := func(withSlow bool) time.Duration {
		ts := newTestServer(t, Config{SlowThreshold: 0, TailRecords: 100, MaxConnsPerIP: 100, SendTimeout: time.Minute}, nil)
		var slow *client
		if withSlow {
			slow = ts.dialSmallBuffer("")
		}
		fast := make([]*client, 5)
		for i := range fast {
			fast[i] = ts.dial("?batch=1")
		}
		for _, c := range fast {
			c.send(map[string]any{"type": "ping"})
			c.until(wait, isType("pong"))
		}
		// The slow client reads one message a second while the others
		// are timed.
		stopSlow := make(chan struct{})
		slowGot := make(chan []rec, 1)
		if withSlow {
			slow.roundTrip()
			go func() {
				var got []rec
				defer func() { slowGot <- got }()
				for {
					evs, err := slow.next(30 * time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					for _, e := range evs {
						if e.Rec != nil {
							got = append(got, *e.Rec)
						}
					}
					select {
					case <-stopSlow:
						return
					case <-time.After(time.Second):
					}
				}
			}()
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, c := range fast {
			wg.Add(1)
			go func(c *client) {
				defer wg.Done()
				var got []rec
				for len(got) < 3000 {
					evs, err := c.next(30 * time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					for _, e := range evs {
						if e.Rec != nil {
							got = append(got, *e.Rec)
						}
					}
				}
				checkExactlyOnce(t, got, 12, seq(0, 3000))
			}(c)
		}
		for i := 0; i < 30; i++ {
			ts.appendRecords(12, 100, "")
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(stopSlow)
		if withSlow {
			// Then it catches up with everything, exactly once.
			got := <-slowGot
			t.Logf("the slow client read %d records while the others were timed", len(got))
			for len(got) < 3000 {
				got = append(got, records(t, slow.until(30*time.Second, isType("record")))...)
			}
			checkExactlyOnce(t, got, 12, seq(0, 3000))
		}
		return elapsed
	}
	base := run(false)
	with := run(true)
	t.Logf("5 fast clients, 3000 × 8 KiB records: %v alone, %v next to a slow reader", base, with)
	if with > 2*base+time.Second {
		t.Fatalf("a slow reader slowed the others: %v vs %v", with, base)
	}
}

// 500 clients reconnect at once with cursors: all complete exactly, and
// server memory stays bounded.
func TestReconnectStorm(t *testing.T) {
	storm := 1000 // records per partition
	if raceEnabled {
		storm = 100
	}
	// 500 replays share two cores: a whole resume may take longer than
	// the default REPLAY_TIMEOUT_SECS on a loaded machine.
	ts := newTestServer(t, Config{MaxConnsPerIP: 1000, TailRecords: 500, SendTimeout: time.Minute, ReplayTimeout: 2 * time.Minute}, nil)
	ts.appendRecords(0, storm, "")
	ts.appendRecords(1, storm, "")
	base := heapAfterGC()
	const n = 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	var peak uint64
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := ts.tryDial(map[bool]string{true: "?batch=1", false: ""}[i%2 == 0], nil, time.Minute)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			r := rand.New(rand.NewSource(int64(i)))
			c0, c1 := int64(r.Intn(storm))-1, int64(r.Intn(storm))-1
			b, _ := json.Marshal(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": fmt.Sprint(c0), "1": c1}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			evs, err := c.untilErr(2*time.Minute, isType("replay_complete"))
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			next := map[int32]int64{0: c0 + 1, 1: c1 + 1}
			for _, e := range evs {
				if e.Rec == nil {
					continue
				}
				if e.Rec.O != next[e.Rec.P] || string(e.Rec.B) != string(payloadFor(e.Rec.P, e.Rec.O)) {
					errs <- fmt.Errorf("client %d: got %d/%d, want offset %d", i, e.Rec.P, e.Rec.O, next[e.Rec.P])
					return
				}
				next[e.Rec.P]++
			}
			if next[0] != int64(storm) || next[1] != int64(storm) {
				errs <- fmt.Errorf("client %d: stopped at %v", i, next)
				return
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapAlloc)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("500 resumes: heap peak %d MiB above the %d MiB baseline (clients included)", (peak-base)>>20, base>>20)
	if peak-base > 512<<20 {
		t.Fatalf("heap grew by %d MiB", (peak-base)>>20)
	}
}
