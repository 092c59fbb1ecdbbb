package hub

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// limiter enforces the per-IP and global connection limits and resolves a
// request's client IP, honouring X-Forwarded-For only from trusted proxies.
type limiter struct {
	perIP   int
	global  int
	trusted map[netip.Addr]bool
	origins map[string]bool

	mu    sync.Mutex
	byIP  map[string]int
	total int
}

func newLimiter(cfg Config) (*limiter, error) {
	l := &limiter{perIP: cfg.MaxConnsPerIP, global: cfg.MaxConns, byIP: map[string]int{}, trusted: map[netip.Addr]bool{}}
	for _, s := range cfg.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("WEBSOCKET_TRUSTED_PROXY_IPS: %q is not an IP address", s)
		}
		l.trusted[a.Unmap()] = true
	}
	if len(cfg.AllowedOrigins) > 0 {
		l.origins = map[string]bool{}
		for _, o := range cfg.AllowedOrigins {
			o = strings.TrimRight(strings.TrimSpace(o), "/")
			if o == "" {
				continue
			}
			if !strings.Contains(o, "://") {
				return nil, fmt.Errorf("DASHSTREAM_ALLOWED_ORIGINS: %q is not a scheme://host[:port] origin", o)
			}
			l.origins[strings.ToLower(o)] = true
		}
	}
	return l, nil
}

// clientIP returns the rate-limit key of r: the peer address, or, when the
// peer is a trusted proxy, the rightmost untrusted address of the first
// X-Forwarded-For header (reference §6.6).
func (l *limiter) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !l.trusted[peer] {
		return peer.String()
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return peer.String()
	}
	parts := strings.Split(xff[0], ",")
	for i := len(parts) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
		if err != nil {
			continue
		}
		a = a.Unmap()
		if l.trusted[a] {
			continue
		}
		return a.String()
	}
	return peer.String()
}

// originAllowed applies DECISIONS D5: no list ⇒ any; no Origin header ⇒ ok.
func (l *limiter) originAllowed(r *http.Request) bool {
	if l.origins == nil {
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	return l.origins[strings.ToLower(strings.TrimRight(o, "/"))]
}

// acquire takes a slot for ip. reason is "" on success, else "per_ip" or
// "global" (RejectPerIP, RejectGlobal). The caller must release a taken slot on every path.
func (l *limiter) acquire(ip string) (reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.global {
		return RejectGlobal
	}
	if l.byIP[ip] >= l.perIP {
		return RejectPerIP
	}
	l.byIP[ip]++
	l.total++
	return ""
}

func (l *limiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.byIP[ip]
	if !ok {
		return
	}
	if n <= 1 {
		delete(l.byIP, ip)
	} else {
		l.byIP[ip] = n - 1
	}
	l.total--
}

// tokenMatches compares a presented token with the configured one in
// constant time.
func tokenMatches(presented, want string) bool {
	return want != "" && presented != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}

// bearer returns the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Authorized reports whether r may read (/ws, /api/*) under D5.
func Authorized(r *http.Request, authToken, adminToken string) bool {
	if authToken == "" {
		return true
	}
	b := bearer(r)
	q := r.URL.Query().Get("token")
	return tokenMatches(b, authToken) || tokenMatches(q, authToken) || tokenMatches(b, adminToken)
}

// isAdmin reports whether r presented the admin token at upgrade.
func isAdmin(r *http.Request, adminToken string) bool {
	return tokenMatches(bearer(r), adminToken) || tokenMatches(r.URL.Query().Get("admin_token"), adminToken)
}
