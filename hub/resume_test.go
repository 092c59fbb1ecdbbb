package hub

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
)

// With REPLAY_MAX_TOTAL set, a resume is bounded as a whole by
// REPLAY_TIMEOUT_SECS (§10.2 #19, D4): a client reading slowly through a
// large replay gets whole records in order, then `error REPLAY_TIMEOUT`
// and close 4004; resuming with its cursor, it gets the rest, exactly once.
func TestReplayTimeoutBoundsWholeResume(t *testing.T) {
	ts := newTestServer(t, Config{ReplayTimeout: time.Second, SendTimeout: 2 * time.Second, TailRecords: 10, SlowThreshold: 0,
		ReplayMaxTotal: 100000}, nil)
	ts.appendRecords(10, 1000, "") // 8 KiB each
	c := ts.dialSmallBuffer("")
	start := time.Now()
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"10": "-1"}})
	got, errFrame := readReplaySlowly(t, c, func(int) { time.Sleep(5 * time.Millisecond) }) // 1000 records take 5 s
	if errFrame["type"] == "replay_complete" {
		t.Fatalf("replay completed in %v despite the slow reader", time.Since(start))
	}
	if errFrame["code"] != ErrCodeReplayTimeout {
		t.Fatalf("error frame %v", errFrame)
	}
	if _, err := c.next(wait); websocket.CloseStatus(err) != CloseReplayTimeout {
		t.Fatalf("close = %v, want 4004", err)
	}
	if len(got) == 0 || len(got) == 1000 {
		t.Fatalf("got %d records before the timeout", len(got))
	}
	checkExactlyOnce(t, got, 10, seq(0, int64(len(got))))
	if v := counterValue(t, ts.reg, "dashstream_ws_closed_total", map[string]string{"code": "4004"}); v != 1 {
		t.Fatalf("closes with 4004: %v", v)
	}
	// A client resumes with its cursor until a resume completes.
	for i := 0; i < 50 && len(got) < 1000; i++ {
		c = ts.dial("")
		last := got[len(got)-1].O
		c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"10": strconv.FormatInt(last, 10)}})
		evs, _ := c.untilErr(wait, isType("replay_complete"))
		got = append(got, records(t, evs)...)
	}
	checkExactlyOnce(t, got, 10, seq(0, 1000))
}

// Without REPLAY_MAX_TOTAL, REPLAY_TIMEOUT_SECS bounds the time without
// progress (D4): a slow but steady reader completes a replay that takes
// twice the timeout, and a reader that stops for longer than the timeout
// (but within the send timeout) gets `error REPLAY_TIMEOUT` and close 4004
// once it reads again, having lost nothing. Progress is a socket write
// returning: one write carries at most a store page (1 MiB here), which
// the steady reader takes in about 0.2 s.
func TestReplayTimeoutUncappedBoundsTimeWithoutProgress(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pause time.Duration // after 200 records
		want  string        // replay_complete or error
	}{
		{"steady slow reader completes", 0, "replay_complete"},
		{"reader stalled past the timeout", 3 * time.Second, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{ReplayTimeout: time.Second, SendTimeout: 10 * time.Second, TailRecords: 10, SlowThreshold: 0}, nil)
			ts.appendRecords(10, 2000, "") // 8 KiB each
			c := ts.dialSmallBuffer("")
			start := time.Now()
			c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"10": "-1"}})
			got, end := readReplaySlowly(t, c, func(n int) {
				time.Sleep(time.Millisecond) // 2000 records take at least 2 timeouts
				if n == 200 {
					time.Sleep(tc.pause)
				}
			})
			if end["type"] != tc.want {
				t.Fatalf("got %v after %d records in %v, want %s", end, len(got), time.Since(start), tc.want)
			}
			if tc.want == "replay_complete" {
				if time.Since(start) < 2*time.Second {
					t.Logf("the replay took only %v: the reader was not slower than the timeout", time.Since(start))
				}
				checkExactlyOnce(t, got, 10, seq(0, 2000))
				return
			}
			if end["code"] != ErrCodeReplayTimeout {
				t.Fatalf("error frame %v", end)
			}
			if _, err := c.next(wait); websocket.CloseStatus(err) != CloseReplayTimeout {
				t.Fatalf("close = %v, want 4004", err)
			}
			if len(got) < 200 || len(got) == 2000 {
				t.Fatalf("got %d records before the timeout", len(got))
			}
			checkExactlyOnce(t, got, 10, seq(0, int64(len(got))))
		})
	}
}

// readReplaySlowly reads a replay's records, calling pace after each with
// the count so far, until an `error` or `replay_complete` frame, which it
// returns.
func readReplaySlowly(t *testing.T, c *client, pace func(n int)) ([]rec, map[string]any) {
	t.Helper()
	var got []rec
	for {
		evs, err := c.next(wait)
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		for _, e := range evs {
			switch {
			case e.Rec != nil:
				got = append(got, *e.Rec)
				pace(len(got))
			case e.Type == "error", e.Type == "replay_complete":
				return got, e.Ctl
			}
		}
	}
}

// A flood of resumes and cursor_resets during a replay keeps at most one
// of each pending: it neither grows the connection's memory nor runs a
// replay per frame.
func TestResumeFloodDuringReplayKeepsLatest(t *testing.T) {
	c := &conn{}
	for i := 0; i < 10000; i++ {
		c.stashControl(control{Type: "resume", Resume: &resumeRequest{From: strconv.Itoa(i)}})
		c.stashControl(control{Type: "cursor_reset", Token: strconv.Itoa(i)})
	}
	if len(c.stash) != 2 || c.stash[0].Resume.From != "9999" || c.stash[1].Token != "9999" {
		t.Fatalf("stash holds %d frames: %+v", len(c.stash), c.stash)
	}

	ts := newTestServer(t, Config{PageRecords: 5, TailRecords: 10, SendTimeout: time.Minute}, nil)
	ts.appendRecords(10, 2000, "") // 16 MiB: the replay blocks until the client reads
	cl := ts.dialSmallBuffer("")
	cl.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"10": "-1"}})
	const flood = 200
	for i := 0; i < flood; i++ {
		cl.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"10": "1999"}})
	}
	// The last one replays a single record.
	cl.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"10": "1998"}})
	// The client reads slowly, so the whole flood reaches the server
	// while the first replay still runs.
	completes := 0
	var evs []event
	for done := false; !done; {
		next, err := cl.next(wait)
		if err != nil {
			t.Fatalf("after %d events: %v", len(evs), err)
		}
		for _, e := range next {
			evs = append(evs, e)
			if e.Rec != nil && completes == 0 {
				time.Sleep(time.Millisecond)
			}
			if e.Type == "replay_complete" {
				completes++
				done = e.Ctl["totalReplayed"].(float64) == 1
			}
		}
	}
	got := records(t, evs)
	checkExactlyOnce(t, got[:2000], 10, seq(0, 2000))
	if n := len(got); n != 2001 || got[2000].O != 1999 {
		t.Fatalf("got %d records", n)
	}
	resumes := counterValue(t, ts.reg, "websocket_resume_requests_total", map[string]string{"mode": "partition"})
	t.Logf("%d resumes sent, %d replays run", flood+2, completes)
	if completes > 3 || resumes != float64(completes) {
		t.Fatalf("%d replay_complete frames and %v resumes run for %d resumes sent during one replay", completes, resumes, flood+2)
	}
}

// replay_complete always carries lastOffsetsByPartition in partition
// modes, {} when nothing was replayed; thread mode has none.
func TestReplayCompleteAlwaysHasOffsets(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{}, "from": "earliest"})
	done := lastCtl(c.until(wait, isType("replay_complete")))
	if offs, ok := done["lastOffsetsByPartition"].(map[string]any); !ok || len(offs) != 0 {
		t.Fatalf("empty store, earliest: %v", done)
	}
	ts.appendRecords(0, 10, "t1")
	for _, from := range []string{"cursor", "latest"} {
		c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "9"}, "from": from})
		done = lastCtl(c.until(wait, isType("replay_complete")))
		if _, ok := done["lastOffsetsByPartition"].(map[string]any); !ok {
			t.Fatalf("from %s: %v", from, done)
		}
	}
	c.send(map[string]any{"type": "resume", "lastSequencesByThread": map[string]any{"t1": "10"}})
	done = lastCtl(c.until(wait, isType("replay_complete")))
	if _, ok := done["lastOffsetsByPartition"]; ok || done["mode"] != "thread" {
		t.Fatalf("thread mode: %v", done)
	}
}

func lastCtl(evs []event) map[string]any { return evs[len(evs)-1].Ctl }

// With several stale partitions, every cursor_stale comes before any
// replay frame (§10.1 #11); each partition's gap comes before its records.
func TestCursorStaleBeforeAnyReplayFrame(t *testing.T) {
	st := memory.New(memory.Config{MaxRecords: 1 << 20, Retention: store.Retention{MaxRecordsPerPartition: 500}})
	ts := newTestServer(t, Config{TailRecords: 100}, st)
	for p := int32(0); p < 3; p++ {
		ts.appendRecords(p, 1000, "") // retains 500..999
	}
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "0", "1": "10", "2": "0"}})
	evs := c.until(wait, isType("replay_complete"))
	for i, want := range []struct{ p, requested float64 }{{0, 0}, {1, 10}, {2, 0}} {
		e := evs[i].Ctl
		if evs[i].Type != "cursor_stale" || e["partition"].(float64) != want.p || e["requested"] != strconv.Itoa(int(want.requested)) || e["oldest"] != "500" {
			t.Fatalf("frame %d: %v, want cursor_stale for partition %v", i, e, want.p)
		}
	}
	stale, gapBefore := 0, map[float64]bool{}
	for _, e := range evs {
		switch {
		case e.Type == "cursor_stale":
			stale++
		case e.Type == "gap":
			gapBefore[e.Ctl["partition"].(float64)] = true
		case e.Rec != nil && !gapBefore[float64(e.Rec.P)]:
			t.Fatalf("record %d/%d before its partition's gap", e.Rec.P, e.Rec.O)
		}
	}
	if stale != 3 {
		t.Fatalf("%d cursor_stale frames, want 3", stale)
	}
	got := records(t, evs)
	for p := int32(0); p < 3; p++ {
		checkExactlyOnce(t, got, p, seq(500, 1000))
	}
}

// Quirk Q5 (DECISIONS D4): a partition the client never saw whose oldest
// retained record is above 0 replays from there with no gap and no
// cursor_stale, with from:"cursor" and from:"earliest".
func TestNeverSeenPartitionWithEvictionsHasNoGap(t *testing.T) {
	st := memory.New(memory.Config{MaxRecords: 1 << 20, Retention: store.Retention{MaxRecordsPerPartition: 500}})
	ts := newTestServer(t, Config{TailRecords: 100}, st)
	ts.appendRecords(0, 10, "")
	ts.appendRecords(1, 1000, "") // retains 500..999
	c := ts.dial("")
	for _, from := range []string{"cursor", "earliest"} {
		c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "9"}, "from": from})
		evs := c.until(wait, isType("replay_complete"))
		for _, e := range evs {
			if e.Type == "gap" || e.Type == "cursor_stale" {
				t.Fatalf("from %s: unexpected %v", from, e.Ctl)
			}
		}
		checkExactlyOnce(t, records(t, evs), 1, seq(500, 1000))
	}
	if v := counterValue(t, ts.reg, "websocket_replay_gaps_total", map[string]string{"mode": "partition"}); v != 0 {
		t.Fatalf("gap events %v", v)
	}
}

// A protocol-level Ping gets a Pong with the same data (§10.1 #18).
func TestProtocolPingGetsPong(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	c := ts.dial("")
	go func() { _, _ = c.next(time.Minute) }() // the client's reader handles the pong
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// Quirk Q13: a failed upgrade releases its per-IP slot, so with a limit
// of 1 a real client still gets in afterwards.
func TestFailedUpgradeReleasesSlot(t *testing.T) {
	ts := newTestServer(t, Config{MaxConnsPerIP: 1, AllowedOrigins: []string{"https://ui.example.com"}}, nil)
	httpURL := ts.srv.URL + "/ws"
	for i := 0; i < 3; i++ {
		res, err := http.Get(httpURL) // not an upgrade: the library refuses it
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode < 400 || res.StatusCode >= 500 {
			t.Fatalf("plain GET /ws: %d", res.StatusCode)
		}
		req, _ := http.NewRequest("GET", httpURL, nil)
		for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket",
			"Sec-WebSocket-Version": "7", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="} {
			req.Header.Set(k, v)
		}
		if res, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusSwitchingProtocols || res.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("unsupported version: %d", res.StatusCode)
		}
		if _, code := dialStatus(t, ts, "", http.Header{"Origin": {"https://evil.example.com"}}); code != http.StatusForbidden {
			t.Fatalf("foreign origin: %d", code)
		}
	}
	ws, code := dialStatus(t, ts, "", nil)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("real client after failed upgrades: %d", code)
	}
	if _, code := dialStatus(t, ts, "", nil); code != http.StatusTooManyRequests {
		t.Fatalf("second client: %d, want 429 (limit 1)", code)
	}
	ws.Close(websocket.StatusNormalClosure, "")
}
