package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dashstream/dashstream/hub"
	"github.com/dashstream/dashstream/store"
)

// Config holds the settings of the HTTP surface. Zero values take the
// documented defaults.
type Config struct {
	// Build identity for /version. Empty GitSHA and BuildDate report
	// "unknown" like the reference.
	Version   string
	GitSHA    string // GIT_COMMIT_SHA
	BuildDate string // BUILD_DATE

	// Namespace is the reference §4.3 resume namespace
	// (wire.ResumeNamespace; `demo` passes brokers "embedded"). /version
	// reports it with the store's current epoch appended (DECISIONS D2).
	Namespace         string
	KafkaTopic        string
	KafkaGroupID      string
	MaxPayloadBytes   int    // WEBSOCKET_MAX_PAYLOAD_BYTES
	DecodeErrorPolicy string // "skip" (default) or "pause"

	// Start is the process start; /health reports uptime from it.
	Start time.Time
	// TailMaxRecords is WEBSOCKET_BUFFER_SIZE (/health
	// replay_buffer.max_memory_size).
	TailMaxRecords int
	// Redis settings echoed in /health replay_buffer (0 without Redis).
	RedisMessageTTLSecs int64
	RedisMaxSequences   int64

	// AuthToken (DASHSTREAM_AUTH_TOKEN) guards /api/* when set; the admin
	// token is accepted too (DECISIONS D5).
	AuthToken  string
	AdminToken string

	// ExpectedSchemasPath is where the expected-schema API persists its
	// entries (DECISIONS D1). Empty keeps them in memory only.
	ExpectedSchemasPath string

	// Gatherer is the registry /metrics exposes. Nil serves an empty
	// registry.
	Gatherer prometheus.Gatherer

	// Assets is the web UI (webui.Assets()). Nil serves no static files.
	Assets fs.FS

	// RecordsPageBytes bounds the payload bytes of one
	// /api/runs/{thread}/records page (at least one record is always
	// returned). Default DefaultRecordsPageBytes.
	RecordsPageBytes int
}

// Deps are the live sources the handlers read. Only Store is required.
type Deps struct {
	Store store.Store
	// Clients returns the number of open WebSocket connections
	// (hub.Hub.Clients).
	Clients func() int
	// Ingest returns the ingest snapshot for /health (filled from
	// ingest.Status by the caller).
	Ingest func() IngestFacts
	// Hub returns the delivery-side snapshot for /health; see
	// HubFactsFunc.
	Hub func(now time.Time) HubFacts
	// StoreHealth, when set, checks that the store's backend answers
	// (for the Redis store: (*redis.Store).Ping). /health calls it on
	// every request, bounded by StoreHealthTimeout; an error makes
	// `status` "degraded", shows in `store.error` and adds a CRITICAL
	// alert, even when ingest has nothing to append (DECISIONS D7). Nil:
	// the store is only judged by ingest's append errors.
	StoreHealth func(ctx context.Context) error
	// WebSocket, when set, is mounted at GET /ws (hub.Hub).
	WebSocket http.Handler
	Logger    *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

// server holds the handlers' shared state; one per New.
type server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	schemas *schemaStore
	static  *staticFiles
}

// New returns the HTTP handler for every route except /ws (unless
// deps.WebSocket is set). It loads the expected schemas from
// cfg.ExpectedSchemasPath; a missing file starts empty, an unreadable or
// unparsable one is logged and starts empty too.
func New(cfg Config, deps Deps) http.Handler {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.RecordsPageBytes <= 0 {
		cfg.RecordsPageBytes = DefaultRecordsPageBytes
	}
	if cfg.DecodeErrorPolicy == "" {
		cfg.DecodeErrorPolicy = "skip"
	}
	s := &server{cfg: cfg, deps: deps, log: deps.Logger.With("component", "api")}
	s.schemas = newSchemaStore(cfg.ExpectedSchemasPath, s.log, deps.Now)
	if err := s.schemas.load(); err != nil {
		s.log.Error("expected schemas not loaded; starting empty", "path", cfg.ExpectedSchemasPath, "err", err)
	}
	s.static = newStaticFiles(cfg.Assets)

	gatherer := cfg.Gatherer
	if gatherer == nil {
		gatherer = prometheus.NewRegistry()
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.HandleFunc("GET /version", s.handleVersion)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.HTTPErrorOnError,
	}))

	mux.HandleFunc("GET /api/expected-schema", s.auth(s.listSchemas))
	mux.HandleFunc("GET /api/expected-schema/{graph}", s.auth(s.getSchema))
	mux.HandleFunc("PUT /api/expected-schema/{graph}", s.auth(s.putSchema))
	mux.HandleFunc("DELETE /api/expected-schema/{graph}", s.auth(s.deleteSchema))
	mux.HandleFunc("GET /api/runs", s.auth(s.listRuns))
	mux.HandleFunc("GET /api/runs/{thread}", s.auth(s.getRun))
	mux.HandleFunc("GET /api/runs/{thread}/records", s.auth(s.runRecords))
	mux.HandleFunc("/api/", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route")
	}))

	if deps.WebSocket != nil {
		mux.Handle("GET /ws", deps.WebSocket)
	}
	mux.HandleFunc("/", s.serveStatic)
	return mux
}

func (s *server) now() time.Time { return s.deps.Now() }

// auth enforces DECISIONS D5 on /api/*.
func (s *server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !hub.Authorized(r, s.cfg.AuthToken, s.cfg.AdminToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dashstream"`)
			writeError(w, http.StatusUnauthorized, "missing or invalid token (Authorization: Bearer <token> or ?token=)")
			return
		}
		next(w, r)
	}
}

// writeJSON writes v as compact JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// writeError writes {"error": msg} plus any extra fields.
func writeError(w http.ResponseWriter, code int, msg string, extra ...string) {
	body := map[string]string{"error": msg}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	writeJSON(w, code, body)
}
