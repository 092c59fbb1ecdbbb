// Package api owns DashStream's plain HTTP surface: every route except the
// WebSocket endpoint /ws (which hub.Hub serves). That is /health (the
// reference shape of spec §2.3 plus the store object of DECISIONS D7),
// /version (§2.4, with the epoch-scoped resume namespace of D2), /metrics
// (Prometheus exposition), the expected-schema API (§2.2, persisted to a
// JSON file), the run index (/api/runs, D7), a run's retained records as
// one D6 batch body, the D5 token check on /api/*, and the static web UI
// with its single-page-app fallback.
//
// The package reads its facts through Deps (the store, hub counters and an
// IngestFacts snapshot the caller fills), so it never imports ingest.
package api
