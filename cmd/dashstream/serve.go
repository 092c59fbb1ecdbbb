package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dashstream/dashstream/hub"
	"github.com/dashstream/dashstream/hub/api"
	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
	"github.com/dashstream/dashstream/store/memory"
	redisstore "github.com/dashstream/dashstream/store/redis"
	"github.com/dashstream/dashstream/webui"
	"github.com/dashstream/dashstream/wire"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("serve", args, os.Getenv)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, stderr, nil)
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openStore opens the configured store. namespace is the reference §4.3
// resume namespace; the Redis store keys its data by it (D2) and feeds the
// reference's Redis series of hm.
func openStore(ctx context.Context, cfg *config, namespace string, hm *hub.Metrics, logger *slog.Logger) (store.Store, error) {
	switch cfg.Store.Kind {
	case "memory":
		return memory.New(memory.Config{Retention: cfg.Store.Retention}), nil
	case "bolt", "":
		if err := os.MkdirAll(cfg.Store.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("DASHSTREAM_DATA_DIR: %w", err)
		}
		return bolt.Open(filepath.Join(cfg.Store.DataDir, bolt.FileName), bolt.Options{
			Retention: cfg.Store.Retention, Fsync: cfg.Store.Fsync, Logger: logger})
	case "redis":
		redisstore.SetClientLogger(logger)
		return redisstore.Open(ctx, cfg.Store.RedisURL, redisstore.Options{
			Namespace: namespace, TTL: cfg.Store.RedisTTL, Retention: cfg.Store.Retention, Logger: logger,
			Observer: redisstore.Observer{
				ReadHit: hm.RedisHits.Inc, ReadMiss: hm.RedisMisses.Inc,
				WriteFailure: hm.RedisWriteFailures.Inc, Error: hm.RedisErrors.Inc,
				Latency: func(op string, d time.Duration) {
					hm.RedisLatency.WithLabelValues(op).Observe(float64(d) / float64(time.Millisecond))
				},
			},
		})
	}
	return nil, fmt.Errorf("DASHSTREAM_STORE=%q: want bolt, memory or redis", cfg.Store.Kind)
}

// redisMaxSequences is the per-partition count limit /health reports as
// replay_buffer.redis_max_sequences: the one in force with the Redis
// store, else 0.
func redisMaxSequences(cfg *config) int64 {
	if cfg.Store.Kind != "redis" {
		return 0
	}
	return cfg.Store.Retention.MaxRecordsPerPartition
}

// storeHealth returns the /health backend check of a store with a
// backend that can be unreachable (Redis: Ping), else nil. Without it an
// idle server would look healthy with its Redis down.
func storeHealth(st store.Store) func(context.Context) error {
	if p, ok := st.(interface{ Ping(context.Context) error }); ok {
		return p.Ping
	}
	return nil
}

// hubNotifier forwards ingest's notifications to the hub.
type hubNotifier struct{ h *hub.Hub }

func (n hubNotifier) Appended(b store.Batch)     { n.h.Appended(b) }
func (n hubNotifier) SourceChanged(epoch string) { n.h.EpochChanged() }

// listen binds the first free port of ports on host (D1: an explicit
// WEBSOCKET_PORT is the only one tried).
func listen(host string, ports []int) (net.Listener, error) {
	var errs []error
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no port to listen on (WEBSOCKET_HOST=%s, tried %v): %w", host, ports, errors.Join(errs...))
}

// registerStoreMetrics exports the store's size, contents and age.
func registerStoreMetrics(reg prometheus.Registerer, st store.Store) {
	g := func(name, help string, f func(store.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(st.Stats()) })
	}
	reg.MustRegister(
		g("dashstream_store_file_bytes", "Bytes of the store file on disk (0 for memory).", func(s store.Stats) float64 { return float64(s.FileBytes) }),
		g("dashstream_store_records", "Records retained in the store.", func(s store.Stats) float64 { return float64(s.Records) }),
		g("dashstream_store_raw_bytes", "Payload bytes retained, as received.", func(s store.Stats) float64 { return float64(s.RawBytes) }),
		g("dashstream_store_stored_bytes", "Payload bytes retained, as stored (compressed).", func(s store.Stats) float64 { return float64(s.StoredBytes) }),
		g("dashstream_store_threads", "Threads indexed in the store.", func(s store.Stats) float64 { return float64(s.Threads) }),
		g("dashstream_store_oldest_record_age_seconds", "Age of the oldest retained record; 0 when empty.", func(s store.Stats) float64 {
			if s.OldestTime.IsZero() {
				return 0
			}
			return time.Since(s.OldestTime).Seconds()
		}),
		g("dashstream_store_full", "1 while the store refuses appends because it is full.", func(s store.Stats) float64 {
			if s.Full {
				return 1
			}
			return 0
		}),
	)
}

// Shutdown budgets: ingest gets ingestStopBudget to drain, the hub and
// the HTTP server what is left of shutdownBudget (at least 3 s). Both stay
// well under the 10 s a SIGTERM is promised to take.
const (
	shutdownBudget   = 8 * time.Second
	ingestStopBudget = 5 * time.Second
)

// serve runs the server until ctx ends. ready, if set, gets the HTTP
// address once it listens.
func serve(ctx context.Context, cfg *config, stdout, stderr io.Writer, ready func(addr string)) error {
	start := time.Now()
	logger := newLogger(cfg, stderr)
	for _, m := range cfg.Ignored {
		logger.Info(m)
	}
	for _, line := range strings.Split(strings.TrimSpace(cfg.Summary()), "\n") {
		logger.Info(line)
	}
	ic := cfg.Ingest.WithDefaults()
	brokers := strings.Join(ic.Brokers, ",")
	if cfg.Mode == "demo" {
		brokers = "embedded" // the namespace must not change with the embedded broker's port (D2)
	}
	namespace := wire.ResumeNamespace(cfg.KafkaClusterID, ic.Topic, ic.GroupID, brokers)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var h *hub.Hub
	hubMetrics := hub.NewMetrics(reg, start, func() int {
		if h == nil {
			return 0
		}
		n, _ := h.Tail().Len()
		return n
	})
	st, err := openStore(ctx, cfg, namespace, hubMetrics, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	registerStoreMetrics(reg, st)
	ingMetrics, err := ingest.NewMetrics(reg)
	if err != nil {
		return err
	}
	if h, err = hub.New(cfg.Hub, st, hubMetrics, logger); err != nil {
		return err
	}
	h.OnReset = func(string) { ingMetrics.StoreResets.WithLabelValues("cursor_reset").Inc() }
	ing, err := ingest.New(cfg.Ingest, st, hubNotifier{h}, ingMetrics, logger)
	if err != nil {
		return err
	}
	handler := api.New(api.Config{
		Version: version, GitSHA: cfg.GitSHA, BuildDate: cfg.BuildDate,
		Namespace:  namespace,
		KafkaTopic: ic.Topic, KafkaGroupID: ic.GroupID, MaxPayloadBytes: ic.MaxPayloadBytes,
		DecodeErrorPolicy: string(ic.OnDecodeError), Start: start, TailMaxRecords: cfg.Hub.TailRecords,
		RedisMessageTTLSecs: int64(cfg.Store.RedisTTL / time.Second), RedisMaxSequences: redisMaxSequences(cfg),
		AuthToken: cfg.Hub.AuthToken, AdminToken: cfg.Hub.AdminToken,
		ExpectedSchemasPath: cfg.ExpectedSchemasPath, Gatherer: reg, Assets: webui.Assets(),
	}, api.Deps{
		Store: st, Clients: h.Clients, Hub: api.HubFactsFunc(h, hubMetrics), WebSocket: h, Logger: logger,
		Ingest:      func() api.IngestFacts { return ingestFacts(ing.Status()) },
		StoreHealth: storeHealth(st),
	})

	ingCtx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	ingErr := make(chan error, 1)
	go func() { ingErr <- ing.Run(ingCtx) }()
	// A fresh store learns the topic id (and so its epoch, D2) when ingest
	// reaches Kafka. Waiting a moment for that before clients connect
	// spares them an immediate 4001; an unreachable Kafka does not block
	// serving.
	waitIngestStarted(ctx, ing, 10*time.Second, logger)
	h.EpochChanged() // take the epoch ingest settled on before anyone connects

	ln, err := listen(cfg.HTTPHost, cfg.HTTPPorts)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "dashstream %s serving on http://%s (WebSocket ws://%s/ws)\n", version, addr, addr)
	if !webui.Built {
		logger.Info("web UI not built into this binary; / shows how to build it")
	}
	if ready != nil {
		ready(addr)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-ingErr:
		ingErr <- err
		if err != nil {
			runErr = fmt.Errorf("ingest: %w", err)
		}
	case err := <-srvErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	logger.Info("shutting down")
	// One budget for the whole shutdown keeps the promise that SIGTERM
	// ends the process within 10 s, with time left to close the store
	// (and, in demo, the producer and broker).
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	// Ingest first: it drains and makes its final append durable.
	stopIngest()
	select {
	case err := <-ingErr:
		if err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
			logger.Warn("ingest ended with an error", "err", err)
		}
	case <-time.After(ingestStopBudget):
		logger.Warn("ingest did not stop in time", "waited", ingestStopBudget)
	}
	h.Shutdown(sctx) // 1001 to every client
	_ = srv.Shutdown(sctx)
	return runErr
}

// waitIngestStarted waits until ingest consumes or max passes.
func waitIngestStarted(ctx context.Context, ing *ingest.Ingester, max time.Duration, logger *slog.Logger) {
	deadline := time.Now().Add(max)
	for !ing.Status().Running {
		if time.Now().After(deadline) {
			logger.Warn("Kafka not reachable yet; serving anyway, ingest keeps trying", "waited", max)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ingestFacts(s ingest.Status) api.IngestFacts {
	return api.IngestFacts{
		MessagesReceived: s.MessagesReceived, KafkaErrors: s.KafkaErrors, InfraErrors: s.InfraErrors,
		DecodeErrors: s.DecodeErrors, OldDataDecodeErrors: s.OldDataErrors, PayloadMissing: s.PayloadMissing,
		LastMessage: s.LastMessage, LastInfraError: s.LastInfraError,
		MessagesLast120s: s.MessagesLast120s, DecodeErrorsLast120s: s.DecodeErrorsLast120s,
		Paused: s.Paused, PausedPartition: s.PausedPartition, PausedOffset: s.PausedOffset,
		StoreFull: s.StoreFull, StoreError: s.StoreError,
	}
}
