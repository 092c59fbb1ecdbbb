// Package hub owns the WebSocket protocol: connections, resume and replay,
// fan-out from the shared in-memory tail, slow-client policy, control
// frames, limits and client identity.
package hub
