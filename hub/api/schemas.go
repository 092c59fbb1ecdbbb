package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxSchemaBody bounds a PUT /api/expected-schema body.
const maxSchemaBody = 1 << 20

// SchemaEntry is one expected-schema baseline (reference §2.2).
type SchemaEntry struct {
	SchemaID    string  `json:"schema_id"`
	GraphName   string  `json:"graph_name"`
	Environment *string `json:"environment"`
	PinnedAt    int64   `json:"pinned_at"` // Unix ms, set by the server
	PinnedBy    *string `json:"pinned_by"`
	Note        *string `json:"note"`
}

// schemaStore is the expected-schema map, persisted to one JSON file.
type schemaStore struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex // guards entries and serialises file writes
	entries map[string]SchemaEntry
}

func newSchemaStore(path string, log *slog.Logger, now func() time.Time) *schemaStore {
	return &schemaStore{path: path, log: log, now: now, entries: map[string]SchemaEntry{}}
}

// load reads the file. A missing file is not an error.
func (s *schemaStore) load() error {
	if s.path == "" {
		return nil
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading expected schemas: %w", err)
	}
	var m map[string]SchemaEntry
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("parsing expected schemas %s: %w", s.path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range m {
		if e.GraphName == "" {
			e.GraphName = k
		}
		s.entries[k] = e
	}
	return nil
}

func (s *schemaStore) list() []SchemaEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SchemaEntry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b SchemaEntry) int { return strings.Compare(a.GraphName, b.GraphName) })
	return out
}

func (s *schemaStore) get(graph string) (SchemaEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[graph]
	return e, ok
}

// set stores e and persists. A persist error is returned after the entry
// was stored (the reference answers 200 and logs).
func (s *schemaStore) set(e SchemaEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[e.GraphName] = e
	return s.persistLocked()
}

func (s *schemaStore) remove(graph string) (SchemaEntry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[graph]
	if !ok {
		return SchemaEntry{}, false, nil
	}
	delete(s.entries, graph)
	return e, true, s.persistLocked()
}

// persistLocked writes the map atomically: a sibling .tmp file, fsync,
// rename, then fsync of the directory.
func (s *schemaStore) persistLocked() error {
	if s.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(s.entries, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding expected schemas: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", tmp, werr)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: makes the rename durable
		_ = d.Close()
	}
	return nil
}

func (s *server) listSchemas(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.schemas.list())
}

func (s *server) getSchema(w http.ResponseWriter, r *http.Request) {
	graph := r.PathValue("graph")
	e, ok := s.schemas.get(graph)
	if !ok {
		writeError(w, http.StatusNotFound, "No expected schema set for this graph", "graph_name", graph)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// schemaRequest is the PUT body; pointers tell missing from empty.
type schemaRequest struct {
	SchemaID    *string `json:"schema_id"`
	Environment *string `json:"environment"`
	PinnedBy    *string `json:"pinned_by"`
	Note        *string `json:"note"`
}

// putSchema follows the reference's JSON extractor: a non-JSON content
// type is 415, malformed JSON 400, a missing or mistyped field 422.
func (s *server) putSchema(w http.ResponseWriter, r *http.Request) {
	graph := r.PathValue("graph")
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			writeError(w, http.StatusUnsupportedMediaType, "Expected request with `Content-Type: application/json`")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSchemaBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	var req schemaRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			writeError(w, http.StatusUnprocessableEntity, "Failed to deserialize the JSON body into the target type: "+err.Error())
			return
		}
		writeError(w, http.StatusBadRequest, "Failed to parse the request body as JSON: "+err.Error())
		return
	}
	if req.SchemaID == nil || strings.TrimSpace(*req.SchemaID) == "" {
		writeError(w, http.StatusUnprocessableEntity, "Failed to deserialize the JSON body into the target type: missing field `schema_id`")
		return
	}
	e := SchemaEntry{
		SchemaID:    *req.SchemaID,
		GraphName:   graph,
		Environment: req.Environment,
		PinnedAt:    s.now().UnixMilli(),
		PinnedBy:    req.PinnedBy,
		Note:        req.Note,
	}
	if err := s.schemas.set(e); err != nil {
		s.log.Error("persisting expected schemas", "path", s.cfg.ExpectedSchemasPath, "graph_name", graph, "err", err)
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *server) deleteSchema(w http.ResponseWriter, r *http.Request) {
	graph := r.PathValue("graph")
	e, ok, err := s.schemas.remove(graph)
	if !ok {
		writeError(w, http.StatusNotFound, "No expected schema to delete", "graph_name", graph)
		return
	}
	if err != nil {
		s.log.Error("persisting expected schemas", "path", s.cfg.ExpectedSchemasPath, "graph_name", graph, "err", err)
	}
	writeJSON(w, http.StatusOK, e)
}
