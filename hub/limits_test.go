package hub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestClientIPFromTrustedProxies(t *testing.T) {
	cases := []struct {
		name    string
		trusted []string
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: spoofed XFF ignored", nil, "10.0.0.1:5000", []string{"1.2.3.4"}, "10.0.0.1"},
		{"trusted peer: rightmost entry", []string{"10.0.0.1"}, "10.0.0.1:5000", []string{"1.2.3.4, 5.6.7.8"}, "5.6.7.8"},
		{"trusted chain skipped", []string{"10.0.0.1", "5.6.7.8"}, "10.0.0.1:5000", []string{"1.2.3.4, 5.6.7.8"}, "1.2.3.4"},
		{"all trusted: peer", []string{"10.0.0.1", "1.2.3.4"}, "10.0.0.1:5000", []string{"1.2.3.4"}, "10.0.0.1"},
		{"unparsable entries skipped", []string{"10.0.0.1"}, "10.0.0.1:5000", []string{"1.2.3.4, bogus, 9.9.9.9:80"}, "1.2.3.4"},
		{"only the first header counts", []string{"10.0.0.1"}, "10.0.0.1:5000", []string{"7.7.7.7", "8.8.8.8"}, "7.7.7.7"},
		{"no header: peer", []string{"10.0.0.1"}, "10.0.0.1:5000", nil, "10.0.0.1"},
		{"IPv6 peer", nil, "[::1]:5000", []string{"1.2.3.4"}, "::1"},
		{"IPv4-mapped trusted", []string{"127.0.0.1"}, "[::ffff:127.0.0.1]:80", []string{"2001:db8::1"}, "2001:db8::1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := newLimiter(Config{TrustedProxies: tc.trusted, MaxConnsPerIP: 10, MaxConns: 10})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/ws", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := l.clientIP(r); got != tc.want {
				t.Fatalf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := newLimiter(Config{TrustedProxies: []string{"not-an-ip"}}); err == nil {
		t.Fatal("invalid trusted proxy accepted")
	}
}

func dialStatus(t *testing.T, ts *testServer, query string, hdr http.Header) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, ts.url(query), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws, http.StatusSwitchingProtocols
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per-IP limit is 429 and a closed socket frees its slot", func(t *testing.T) {
		ts := newTestServer(t, Config{MaxConnsPerIP: 3}, nil)
		var conns []*websocket.Conn
		for i := 0; i < 3; i++ {
			ws, code := dialStatus(t, ts, "", nil)
			if code != 101 {
				t.Fatalf("connection %d: %d", i, code)
			}
			conns = append(conns, ws)
		}
		if _, code := dialStatus(t, ts, "", http.Header{"X-Forwarded-For": {"9.9.9.9"}}); code != http.StatusTooManyRequests {
			t.Fatalf("4th connection (spoofed XFF, untrusted peer): %d, want 429", code)
		}
		if v := counterValue(t, ts.reg, "websocket_rejected_connections_total", nil); v != 1 {
			t.Fatalf("rejected counter %v", v)
		}
		conns[0].Close(websocket.StatusNormalClosure, "")
		deadline := time.Now().Add(5 * time.Second)
		for ts.hub.Clients() != 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if _, code := dialStatus(t, ts, "", nil); code != 101 {
			t.Fatalf("after a close: %d", code)
		}
		// The server registers a connection just after its 101 is out.
		deadline = time.Now().Add(5 * time.Second)
		for counterValue(t, ts.reg, "websocket_connected_clients", nil) != 3 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := counterValue(t, ts.reg, "websocket_connected_clients", nil); got != 3 {
			t.Fatalf("connected gauge %v, want 3", got)
		}
	})
	t.Run("global cap is 503", func(t *testing.T) {
		ts := newTestServer(t, Config{MaxConns: 2}, nil)
		dialStatus(t, ts, "", nil)
		dialStatus(t, ts, "", nil)
		if _, code := dialStatus(t, ts, "", nil); code != http.StatusServiceUnavailable {
			t.Fatalf("3rd connection: %d, want 503", code)
		}
	})
	t.Run("origins", func(t *testing.T) {
		ts := newTestServer(t, Config{AllowedOrigins: []string{"https://ui.example.com"}}, nil)
		if _, code := dialStatus(t, ts, "", http.Header{"Origin": {"https://evil.example.com"}}); code != http.StatusForbidden {
			t.Fatalf("foreign origin: %d", code)
		}
		if _, code := dialStatus(t, ts, "", http.Header{"Origin": {"https://ui.example.com"}}); code != 101 {
			t.Fatalf("allowed origin: %d", code)
		}
		if _, code := dialStatus(t, ts, "", nil); code != 101 {
			t.Fatalf("no origin header: %d", code)
		}
		if v := counterValue(t, ts.reg, "dashstream_ws_rejected_total", map[string]string{"reason": "origin"}); v != 1 {
			t.Fatalf("origin rejections %v", v)
		}
	})
	t.Run("auth token", func(t *testing.T) {
		ts := newTestServer(t, Config{AuthToken: "tok", AdminToken: "adm"}, nil)
		if _, code := dialStatus(t, ts, "", nil); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", code)
		}
		if _, code := dialStatus(t, ts, "?token=nope", nil); code != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d", code)
		}
		if _, code := dialStatus(t, ts, "?token=tok", nil); code != 101 {
			t.Fatalf("query token: %d", code)
		}
		if _, code := dialStatus(t, ts, "", http.Header{"Authorization": {"Bearer tok"}}); code != 101 {
			t.Fatalf("bearer token: %d", code)
		}
		if _, code := dialStatus(t, ts, "", http.Header{"Authorization": {"Bearer adm"}}); code != 101 {
			t.Fatalf("admin bearer: %d", code)
		}
	})
}

func TestAdminTokenAtUpgradeAllowsReset(t *testing.T) {
	ts := newTestServer(t, Config{AdminToken: "adm"}, nil)
	ts.appendRecords(0, 3, "")
	c := ts.dial("?admin_token=adm")
	c.send(map[string]any{"type": "cursor_reset"})
	evs := c.until(wait, isType("cursor_reset_complete"))
	if evs[len(evs)-1].Ctl["bufferCleared"] != true {
		t.Fatalf("%v", evs[len(evs)-1].Ctl)
	}
}
