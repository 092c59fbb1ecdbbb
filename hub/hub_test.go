package hub

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
)

const wait = 10 * time.Second

func TestLiveDeliveryPairsCursorAndBinary(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "paired", true: "batched"}[batch], func(t *testing.T) {
			ts := newTestServer(t, Config{}, nil)
			ts.appendRecords(0, 5, "") // before the client: not delivered live
			q := ""
			if batch {
				q = "?batch=1"
			}
			c := ts.dial(q)
			c.send(map[string]any{"type": "ping"})
			c.until(wait, isType("pong"))
			ts.appendRecords(0, 20, "")
			ts.appendRecords(1, 30, "")
			var got []rec
			for len(got) < 50 {
				got = append(got, records(t, c.until(wait, isType("record")))...)
			}
			checkExactlyOnce(t, got, 0, seq(5, 25))
			checkExactlyOnce(t, got, 1, seq(0, 30))
		})
	}
}

func TestResumeAfterManyMissedDeliversEveryOffsetOnce(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "paired", true: "batched"}[batch], func(t *testing.T) {
			ts := newTestServer(t, Config{TailRecords: 1000}, nil)
			ts.appendRecords(0, 12000, "")
			ts.appendRecords(1, 50, "")
			q := ""
			if batch {
				q = "?batch=1"
			}
			c := ts.dial(q)
			// Cursor 99 on partition 0 only: partition 1 was never seen.
			c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "99"}})
			evs := c.until(30*time.Second, isType("replay_complete"))
			got := records(t, evs)
			checkExactlyOnce(t, got, 0, seq(100, 12000))
			checkExactlyOnce(t, got, 1, seq(0, 50))
			done := evs[len(evs)-1].Ctl
			if done["totalReplayed"].(float64) != 11950 || done["capped"] != false || done["mode"] != "cursor" {
				t.Fatalf("replay_complete = %v", done)
			}
			if done["epoch"] != ts.st.Epoch() {
				t.Fatalf("replay_complete epoch %v, store %v", done["epoch"], ts.st.Epoch())
			}
			for _, e := range evs {
				if e.Type == "gap" || e.Type == "cursor_stale" {
					t.Fatalf("unexpected %v", e.Ctl)
				}
			}
			// Live continues after the replay with no duplicates.
			ts.appendRecords(0, 3, "")
			got = records(t, c.until(wait, func(e event) bool { return e.Rec != nil && e.Rec.O == 12002 }))
			checkExactlyOnce(t, got, 0, seq(12000, 12003))
		})
	}
}

func TestResumeFromLatestAndEarliest(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	ts.appendRecords(0, 10, "")
	ts.appendRecords(2, 4, "")
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{}, "from": "latest"})
	evs := c.until(wait, isType("replay_complete"))
	if len(records(t, evs)) != 0 {
		t.Fatal("from latest replayed records")
	}
	done := evs[len(evs)-1].Ctl
	offs := done["lastOffsetsByPartition"].(map[string]any)
	if done["mode"] != "latest" || done["totalReplayed"].(float64) != 0 || done["capped"] != false || offs["0"] != "9" || offs["2"] != "3" {
		t.Fatalf("replay_complete = %v", done)
	}
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": 8}, "from": "earliest"})
	evs = c.until(wait, isType("replay_complete"))
	got := records(t, evs)
	checkExactlyOnce(t, got, 0, seq(0, 10))
	checkExactlyOnce(t, got, 2, seq(0, 4))
	if m := evs[len(evs)-1].Ctl["mode"]; m != "earliest" {
		t.Fatalf("mode %v", m)
	}
}

func TestStaleCursorGetsCursorStaleThenEvictedGap(t *testing.T) {
	st := memory.New(memory.Config{MaxRecords: 1 << 20, Retention: store.Retention{MaxRecordsPerPartition: 500}})
	ts := newTestServer(t, Config{TailRecords: 100}, st)
	ts.appendRecords(0, 1000, "") // retains 500..999
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "0"}})
	evs := c.until(wait, isType("replay_complete"))
	if evs[0].Type != "cursor_stale" || evs[0].Ctl["requested"] != "0" || evs[0].Ctl["oldest"] != "500" {
		t.Fatalf("first frame %v", evs[0].Ctl)
	}
	g := evs[1].Ctl
	if evs[1].Type != "gap" || g["count"].(float64) != 499 || g["reason"] != "evicted" || g["from"] != "1" || g["to"] != "499" || g["partition"].(float64) != 0 {
		t.Fatalf("second frame %v", g)
	}
	checkExactlyOnce(t, records(t, evs), 0, seq(500, 1000))
	if v := counterValue(t, ts.reg, "websocket_replay_gap_messages_total", map[string]string{"mode": "partition"}); v != 499 {
		t.Fatalf("gap messages metric %v", v)
	}

	// Nothing is missing at cursor 499 (quirk Q4: no stale there).
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "499"}})
	evs = c.until(wait, isType("replay_complete"))
	for _, e := range evs {
		if e.Type == "cursor_stale" || e.Type == "gap" {
			t.Fatalf("cursor 499 with oldest 500 reported %v", e.Ctl)
		}
	}
}

func TestInvalidRecordsReportGapWithReason(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	ts.appendRecords(0, 10, "")
	ts.skip(0, 3) // offsets 10..12 invalid
	ts.appendRecords(0, 5, "")
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "4"}})
	evs := c.until(wait, isType("replay_complete"))
	var gap map[string]any
	for _, e := range evs {
		if e.Type == "gap" {
			gap = e.Ctl
		}
		if e.Type == "cursor_stale" {
			t.Fatalf("unexpected cursor_stale %v", e.Ctl)
		}
	}
	if gap == nil || gap["count"].(float64) != 3 || gap["reason"] != "invalid" || gap["from"] != "10" || gap["to"] != "12" {
		t.Fatalf("gap = %v", gap)
	}
	checkExactlyOnce(t, records(t, evs), 0, append(seq(5, 10), seq(13, 18)...))
}

func TestReplayMaxTotalCapsAndHoldsBack(t *testing.T) {
	ts := newTestServer(t, Config{ReplayMaxTotal: 100, TailRecords: 10}, nil)
	ts.appendRecords(0, 250, "")
	c := ts.dial("?batch=1")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "-1"}, "from": "cursor"})
	evs := c.until(wait, isType("replay_complete"))
	done := evs[len(evs)-1].Ctl
	if done["capped"] != true || done["totalReplayed"].(float64) != 100 {
		t.Fatalf("replay_complete %v", done)
	}
	checkExactlyOnce(t, records(t, evs), 0, seq(0, 100))
	// A capped partition sends nothing more, even live, until the next resume.
	ts.appendRecords(0, 5, "")
	c.send(map[string]any{"type": "ping"})
	if got := records(t, c.until(wait, isType("pong"))); len(got) != 0 {
		t.Fatalf("capped partition delivered %d records", len(got))
	}
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "99"}})
	evs = c.until(wait, isType("replay_complete"))
	checkExactlyOnce(t, records(t, evs), 0, seq(100, 200))
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "199"}})
	evs = c.until(wait, isType("replay_complete"))
	checkExactlyOnce(t, records(t, evs), 0, seq(200, 255))
	if evs[len(evs)-1].Ctl["capped"] != false {
		t.Fatal("last resume still capped")
	}
}

func TestThreadModeReplay(t *testing.T) {
	for _, q := range []string{"", "?batch=1"} { // D6: batching works in thread mode too
		t.Run(map[string]string{"": "paired", "?batch=1": "batched"}[q], func(t *testing.T) {
			ts := newTestServer(t, Config{}, nil)
			ts.appendRecords(0, 5, "alpha") // seqs 1..5
			ts.appendRecords(1, 3, "beta")  // seqs 1..3
			ts.appendRecords(0, 2, "")
			c := ts.dial(q)
			c.send(map[string]any{"type": "resume", "mode": "thread", "lastOffsetsByPartition": map[string]any{"0": "1"},
				"lastSequencesByThread": map[string]any{"alpha": "2", "beta": 0}})
			evs := c.until(wait, isType("replay_complete"))
			got := records(t, evs)
			checkExactlyOnce(t, got, 0, seq(2, 5))
			checkExactlyOnce(t, got, 1, seq(0, 3))
			if d := evs[len(evs)-1].Ctl; d["mode"] != "thread" || d["totalReplayed"].(float64) != 6 {
				t.Fatalf("replay_complete %v", d)
			}
		})
	}
}

// A batched frame (D6) is cut by record count as well as by bytes.
func TestBatchCutByCount(t *testing.T) {
	ts := newTestServer(t, Config{BatchMaxRecords: 10}, nil)
	ts.appendRecords(0, 95, "")
	c := ts.dial("?batch=1")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "-1"}})
	var got []rec
	frames := 0
	for done := false; !done; {
		evs, err := c.next(wait)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 && evs[0].Rec != nil {
			frames++
			if len(evs) > 10 {
				t.Fatalf("a batched frame carries %d records (limit 10)", len(evs))
			}
		}
		for _, e := range evs {
			if e.Rec != nil {
				got = append(got, *e.Rec)
			}
			done = done || e.Type == "replay_complete"
		}
	}
	checkExactlyOnce(t, got, 0, seq(0, 95))
	if frames < 10 {
		t.Fatalf("95 records in %d frames", frames)
	}
}

// A thread-mode resume from another epoch replays each requested thread
// from its start, after the cursor_stale (D2).
func TestEpochMismatchThreadMode(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	ts.appendRecords(0, 5, "alpha") // seqs 1..5
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "mode": "thread", "epoch": "other-0",
		"lastSequencesByThread": map[string]any{"alpha": "4"}})
	evs := c.until(wait, isType("replay_complete"))
	if evs[0].Type != "cursor_stale" || evs[0].Ctl["reason"] != "epoch" {
		t.Fatalf("first frame %v", evs[0].Ctl)
	}
	checkExactlyOnce(t, records(t, evs), 0, seq(0, 5))
}

func TestEpochMismatchReplaysEverything(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	ts.appendRecords(0, 20, "")
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "epoch": "other-0", "lastOffsetsByPartition": map[string]any{"0": "15"}})
	evs := c.until(wait, isType("replay_complete"))
	if evs[0].Type != "cursor_stale" || evs[0].Ctl["reason"] != "epoch" {
		t.Fatalf("first frame %v", evs[0].Ctl)
	}
	checkExactlyOnce(t, records(t, evs), 0, seq(0, 20))
}

func TestCursorAheadOfStoreIsKept(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	ts.appendRecords(0, 10, "")
	c := ts.dial("")
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": map[string]any{"0": "14"}})
	evs := c.until(wait, isType("replay_complete"))
	if n := len(records(t, evs)); n != 0 {
		t.Fatalf("replayed %d records for a cursor ahead of the store", n)
	}
	ts.appendRecords(0, 10, "") // offsets 10..19; the client has up to 14
	got := records(t, c.until(wait, func(e event) bool { return e.Rec != nil && e.Rec.O == 19 }))
	checkExactlyOnce(t, got, 0, seq(15, 20))
}

func TestControlFrames(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)

	t.Run("invalid JSON is counted and the connection stays", func(t *testing.T) {
		c := ts.dial("")
		c.sendRaw([]byte("{not json"))
		c.send(map[string]any{"type": "ping"})
		c.until(wait, isType("pong"))
		if v := counterValue(t, ts.reg, "websocket_control_parse_failures_total", nil); v != 1 {
			t.Fatalf("parse failures %v", v)
		}
	})
	t.Run("text over 1 MiB gets an error then 4002", func(t *testing.T) {
		c := ts.dial("")
		c.sendRaw([]byte(`{"type":"ping","pad":"` + strings.Repeat("a", 1<<20) + `"}`))
		evs := c.until(wait, isType("error"))
		if evs[0].Ctl["code"] != ErrCodeControlTooLarge {
			t.Fatalf("error frame %v", evs[0].Ctl)
		}
		_, err := c.next(wait)
		if websocket.CloseStatus(err) != CloseControlTooLarge {
			t.Fatalf("close = %v", err)
		}
	})
	t.Run("text over the transport limit closes with 1009", func(t *testing.T) {
		c := ts.dial("")
		// The server stops reading at the frame header, so our write and
		// the close frame race with a TCP reset: accept 1009 or a reset.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = c.ws.Write(ctx, websocket.MessageText, []byte(strings.Repeat("b", 2<<20)))
		_, err := c.next(wait)
		if st := websocket.CloseStatus(err); err == nil || (st != -1 && st != websocket.StatusMessageTooBig) {
			t.Fatalf("close = %v", err)
		}
	})
	t.Run("1025 partitions", func(t *testing.T) {
		c := ts.dial("")
		offs := map[string]any{}
		for i := 0; i < 1025; i++ {
			offs[strconv.Itoa(i)] = "1"
		}
		c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": offs})
		evs := c.until(wait, isType("error"))
		if evs[0].Ctl["code"] != ErrCodeTooManyPartitions {
			t.Fatalf("error frame %v", evs[0].Ctl)
		}
		_, err := c.next(wait)
		if websocket.CloseStatus(err) != CloseResumeLimits {
			t.Fatalf("close = %v", err)
		}
	})
	if v := counterValue(t, ts.reg, "websocket_control_oversized_total", nil); v != 2 {
		t.Fatalf("oversized counter %v, want 2", v)
	}
}

func TestCursorReset(t *testing.T) {
	t.Run("refused without an admin token configured", func(t *testing.T) {
		ts := newTestServer(t, Config{}, nil)
		ts.appendRecords(0, 10, "")
		c := ts.dial("")
		c.send(map[string]any{"type": "cursor_reset"})
		evs := c.until(wait, isType("error"))
		if evs[0].Ctl["code"] != ErrCodeResetRefused {
			t.Fatalf("frame %v", evs[0].Ctl)
		}
		if _, latest, ok := ts.st.Bounds(0); !ok || latest != 9 {
			t.Fatal("refused reset changed the store")
		}
	})
	t.Run("refused with a wrong token, allowed with the right one", func(t *testing.T) {
		ts := newTestServer(t, Config{AdminToken: "s3cret"}, nil)
		ts.appendRecords(0, 10, "")
		before := ts.st.Epoch()
		c := ts.dial("")
		other := ts.dial("")
		c.send(map[string]any{"type": "cursor_reset", "token": "wrong"})
		if evs := c.until(wait, isType("error")); evs[0].Ctl["code"] != ErrCodeResetRefused {
			t.Fatalf("frame %v", evs[0].Ctl)
		}
		c.send(map[string]any{"type": "cursor_reset", "token": "s3cret"})
		evs := c.until(wait, isType("cursor_reset_complete"))
		done := evs[len(evs)-1].Ctl
		if done["bufferCleared"] != true || done["epoch"] == before || done["epoch"] != ts.st.Epoch() {
			t.Fatalf("cursor_reset_complete %v (epoch before %s)", done, before)
		}
		if _, _, ok := ts.st.Bounds(0); ok {
			t.Fatal("store still holds records after reset")
		}
		for _, cl := range []*client{c, other} {
			_, err := cl.next(wait)
			if websocket.CloseStatus(err) != CloseEpochChanged {
				t.Fatalf("close = %v, want 4001", err)
			}
		}
	})
	t.Run("the requester gets its reply while records keep arriving", func(t *testing.T) {
		// Commits racing the reset see the new epoch and close every
		// socket; the requester's cursor_reset_complete still comes first.
		ts := newTestServer(t, Config{AdminToken: "s3cret", MaxConnsPerIP: 100}, nil)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					ts.appendRecords(0, 1, "")
				}
			}
		}()
		defer func() { close(stop); <-done }()
		for i := 0; i < 20; i++ {
			c := ts.dial("")
			c.roundTrip()
			c.send(map[string]any{"type": "cursor_reset", "token": "s3cret"})
			var err error
			for err == nil {
				var evs []event
				evs, err = c.next(wait)
				for _, e := range evs {
					if e.Ctl != nil && e.Ctl["type"] == "cursor_reset_complete" {
						err = errReplied
					}
				}
			}
			if err != errReplied {
				t.Fatalf("reset %d: connection ended without cursor_reset_complete: %v", i, err)
			}
			for err = nil; err == nil; _, err = c.next(wait) {
			}
			if websocket.CloseStatus(err) != CloseEpochChanged {
				t.Fatalf("reset %d: close = %v, want 4001 after the reply", i, err)
			}
		}
	})
}

var errReplied = errors.New("replied")

func TestSlowClientDisconnect(t *testing.T) {
	// The client stops reading; once it is past the live tail every read
	// comes from the store and counts as lag.
	ts := newTestServer(t, Config{TailRecords: 10, SlowThreshold: 50, SendTimeout: 30 * time.Second}, nil)
	c := ts.dialSmallBuffer("")
	c.roundTrip()
	// Reach the live tail first: lag only counts after that (D4).
	ts.appendRecords(10, 1, "")
	ts.appendRecords(11, 1, "")
	evs := c.until(wait, func(e event) bool { return e.Rec != nil && e.Rec.P == 11 })
	// 8 MiB arrive while the client is not reading: the server blocks on
	// the full socket and falls out of the 10-record tail.
	for i := 0; i < 50; i++ {
		ts.appendRecords(10, 10, "")
		ts.appendRecords(11, 10, "")
	}
	evs = append(evs, c.until(30*time.Second, isType("disconnect"))...)
	d := evs[len(evs)-1].Ctl
	if d["reason"] != "backpressure" || d["lag_in_window"].(float64) < 50 || d["cumulative_lag"] == nil {
		t.Fatalf("disconnect %v", d)
	}
	_, err := c.next(wait)
	if websocket.CloseStatus(err) != CloseResumeWithCursor {
		t.Fatalf("close = %v", err)
	}
	// What it got before the disconnect was in order with no duplicates.
	got := records(t, evs)
	last := map[int32]int64{10: -1, 11: -1}
	for _, r := range got {
		if r.O != last[r.P]+1 {
			t.Fatalf("partition %d: %d after %d", r.P, r.O, last[r.P])
		}
		last[r.P] = r.O
	}
}

func TestShutdownClosesWith1001(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	c := ts.dial("")
	c.send(map[string]any{"type": "ping"})
	c.until(wait, isType("pong"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { ts.hub.Shutdown(ctx); close(done) }()
	_, err := c.next(wait)
	<-done
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close = %v", err)
	}
	if ts.hub.Clients() != 0 {
		t.Fatalf("clients = %d after shutdown", ts.hub.Clients())
	}
}
