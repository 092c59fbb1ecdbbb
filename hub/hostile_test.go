package hub

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// One healthy client streams records throughout while hostile clients,
// one after another, try what the protocol refuses. Each is refused as
// documented and counted; the healthy client gets every record exactly
// once, in order, and is still open at the end.
func TestHostileClientsIsolated(t *testing.T) {
	ts := newTestServer(t, Config{MaxConnsPerIP: 2, AllowedOrigins: []string{"https://ui.example.com"},
		AdminToken: "adm", SlowThreshold: 0}, nil)
	healthy := ts.dial("")
	healthy.roundTrip()

	// Records keep arriving for the whole test.
	stop := make(chan struct{})
	appended := make(chan int64)
	go func() {
		var n int64
		defer func() { appended <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ts.appendRecords(0, 10, "")
			n += 10
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var mu sync.Mutex
	var got []rec
	var readErr error
	readDone := make(chan struct{})
	want := int64(-1) // set once appends stopped
	go func() {
		defer close(readDone)
		for {
			mu.Lock()
			n, w := int64(len(got)), want
			mu.Unlock()
			if w >= 0 && n >= w {
				return
			}
			evs, err := healthy.next(wait)
			if err != nil {
				mu.Lock()
				readErr = err
				mu.Unlock()
				return
			}
			mu.Lock()
			for _, e := range evs {
				if e.Rec != nil {
					got = append(got, *e.Rec)
				} else {
					readErr = errUnexpected(e)
				}
			}
			mu.Unlock()
		}
	}()
	waitClients := func(n int) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for ts.hub.Clients() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d clients, want %d", ts.hub.Clients(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	expectClose := func(c *client, errCode string, close websocket.StatusCode) {
		t.Helper()
		evs := c.until(wait, isType("error"))
		if e := evs[len(evs)-1].Ctl; e["code"] != errCode {
			t.Fatalf("error frame %v, want %s", e, errCode)
		}
		var err error
		for err == nil {
			_, err = c.next(wait)
		}
		if websocket.CloseStatus(err) != close {
			t.Fatalf("close = %v, want %d", err, close)
		}
	}
	metric := func(name string, labels map[string]string) float64 { return counterValue(t, ts.reg, name, labels) }

	// 1. A control frame over 1 MiB: error, close 4002.
	c := ts.dial("")
	c.sendRaw([]byte(`{"type":"ping","pad":"` + strings.Repeat("a", 1<<20) + `"}`))
	expectClose(c, ErrCodeControlTooLarge, CloseControlTooLarge)
	if v := metric("websocket_control_oversized_total", nil); v != 1 {
		t.Fatalf("oversized counter %v", v)
	}
	waitClients(1)

	// 2. A resume naming 1025 partitions: error, close 4003.
	c = ts.dial("")
	offs := map[string]any{}
	for i := 0; i < 1025; i++ {
		offs[strconv.Itoa(i)] = "1"
	}
	c.send(map[string]any{"type": "resume", "lastOffsetsByPartition": offs})
	expectClose(c, ErrCodeTooManyPartitions, CloseResumeLimits)
	if v := metric("dashstream_ws_rejected_total", map[string]string{"reason": RejectTooManyParts}); v != 1 {
		t.Fatalf("resume_partitions rejections %v", v)
	}
	waitClients(1)

	// 3. The per-IP limit is 2: a second connection fills it, and a third
	// claiming another address in X-Forwarded-For from an untrusted peer
	// is still refused with 429.
	second := ts.dial("")
	second.roundTrip()
	if _, code := dialStatus(t, ts, "", http.Header{"X-Forwarded-For": {"203.0.113.7"}}); code != http.StatusTooManyRequests {
		t.Fatalf("spoofed X-Forwarded-For: %d, want 429", code)
	}
	if v := metric("websocket_rejected_connections_total", nil); v != 1 {
		t.Fatalf("rejected connections %v", v)
	}
	if v := metric("dashstream_ws_rejected_total", map[string]string{"reason": RejectPerIP}); v != 1 {
		t.Fatalf("per_ip rejections %v", v)
	}
	second.ws.Close(websocket.StatusNormalClosure, "")
	waitClients(1)

	// 4. A foreign Origin: 403.
	if _, code := dialStatus(t, ts, "", http.Header{"Origin": {"https://evil.example.com"}}); code != http.StatusForbidden {
		t.Fatalf("foreign origin: %d, want 403", code)
	}
	if v := metric("dashstream_ws_rejected_total", map[string]string{"reason": RejectOrigin}); v != 1 {
		t.Fatalf("origin rejections %v", v)
	}

	// 5. cursor_reset without the admin token: error, nothing changes,
	// the connection stays.
	epoch := ts.st.Epoch()
	c = ts.dial("")
	c.send(map[string]any{"type": "cursor_reset", "token": "guess"})
	if evs := c.until(wait, isType("error")); evs[len(evs)-1].Ctl["code"] != ErrCodeResetRefused {
		t.Fatalf("error frame %v", evs[len(evs)-1].Ctl)
	}
	c.roundTrip()
	if ts.st.Epoch() != epoch {
		t.Fatal("a refused cursor_reset changed the epoch")
	}
	if v := metric("dashstream_ws_rejected_total", map[string]string{"reason": RejectCursorReset}); v != 1 {
		t.Fatalf("cursor_reset rejections %v", v)
	}

	close(stop)
	total := <-appended
	mu.Lock()
	want = total + 1
	mu.Unlock()
	// A last record, committed after want is set, ends the reader even if
	// it was already waiting for more.
	ts.appendRecords(0, 1, "")
	total++
	select {
	case <-readDone:
	case <-time.After(wait):
		healthy.ws.CloseNow()
		<-readDone
	}
	mu.Lock()
	defer mu.Unlock()
	if readErr != nil {
		t.Fatalf("healthy client: %v", readErr)
	}
	t.Logf("healthy client got %d records during the attacks", len(got))
	checkExactlyOnce(t, got, 0, seq(0, total))
	healthy.roundTrip() // still open
	if v := metric("websocket_send_timeout_total", nil) + metric("websocket_send_failed_total", nil); v != 0 {
		t.Fatalf("send failures %v", v)
	}
}

type unexpectedFrame struct{ e event }

func (u unexpectedFrame) Error() string { return "unexpected frame " + u.e.Type }

func errUnexpected(e event) error { return unexpectedFrame{e} }
