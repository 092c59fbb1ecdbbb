package hub

import (
	"testing"
	"time"
)

// A client that stops reading is disconnected once one socket write has
// been blocked for the send timeout (the coalescer bounds every write),
// the timeout is counted, and a healthy client next to it keeps getting
// every record.
func TestSendTimeoutEndsStalledClient(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "paired", true: "batched"}[batch], func(t *testing.T) {
			ts := newTestServer(t, Config{SlowThreshold: 0, SendTimeout: time.Second, TailRecords: 100000, MaxConnsPerIP: 10}, nil)
			q := ""
			if batch {
				q = "?batch=1"
			}
			stalled := ts.dialSmallBuffer(q)
			stalled.send(map[string]any{"type": "ping"})
			stalled.until(wait, isType("pong"))
			healthy := ts.dial("?batch=1")
			healthy.send(map[string]any{"type": "ping"})
			healthy.until(wait, isType("pong"))

			done := make(chan []rec)
			go func() {
				var got []rec
				for len(got) < 2000 {
					evs, err := healthy.next(30 * time.Second)
					if err != nil {
						t.Error(err)
						break
					}
					for _, e := range evs {
						if e.Rec != nil {
							got = append(got, *e.Rec)
						}
					}
				}
				done <- got
			}()
			ts.appendRecords(10, 2000, "") // 8 KiB each: far beyond the stalled client's buffers
			checkExactlyOnce(t, <-done, 10, seq(0, 2000))

			deadline := time.Now().Add(20 * time.Second)
			for ts.hub.Clients() != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("the stalled client is still connected (%d clients)", ts.hub.Clients())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if v := counterValue(t, ts.reg, "websocket_send_timeout_total", nil); v < 1 {
				t.Fatalf("websocket_send_timeout_total = %v", v)
			}
		})
	}
}
