package api

import (
	"net/http"

	"github.com/dashstream/dashstream/wire"
)

// SchemaVersion is the DashStream protobuf schema version this server
// speaks (the reference's CURRENT_SCHEMA_VERSION).
const SchemaVersion = 1

// Component is /version's component name, as in the reference.
const Component = "websocket-server"

// versionResponse is /version (reference §2.4) plus epoch and version.
type versionResponse struct {
	GitSHA            string `json:"git_sha"`
	BuildDate         string `json:"build_date"`
	SchemaVersion     int    `json:"schema_version"`
	Component         string `json:"component"`
	ResumeNamespace   string `json:"resume_namespace"`
	KafkaTopic        string `json:"kafka_topic"`
	KafkaGroupID      string `json:"kafka_group_id"`
	MaxPayloadBytes   int    `json:"max_payload_bytes"`
	DecodeErrorPolicy string `json:"decode_error_policy"`
	Epoch             string `json:"epoch"`
	Version           string `json:"version"`
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// handleVersion serves /version. The namespace carries the epoch in force
// now (DECISIONS D2), so it is computed per request.
func (s *server) handleVersion(w http.ResponseWriter, r *http.Request) {
	epoch := ""
	if s.deps.Store != nil {
		epoch = s.deps.Store.Epoch()
	}
	writeJSON(w, http.StatusOK, versionResponse{
		GitSHA:            orUnknown(s.cfg.GitSHA),
		BuildDate:         orUnknown(s.cfg.BuildDate),
		SchemaVersion:     SchemaVersion,
		Component:         Component,
		ResumeNamespace:   wire.NamespaceWithEpoch(s.cfg.Namespace, epoch),
		KafkaTopic:        s.cfg.KafkaTopic,
		KafkaGroupID:      s.cfg.KafkaGroupID,
		MaxPayloadBytes:   s.cfg.MaxPayloadBytes,
		DecodeErrorPolicy: s.cfg.DecodeErrorPolicy,
		Epoch:             epoch,
		Version:           orUnknown(s.cfg.Version),
	})
}
