package api

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dashstream/dashstream/hub"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// Record page bounds of /api/runs/{thread}/records (DECISIONS D7).
const (
	DefaultRecordsLimit     = 500
	MaxRecordsLimit         = 5000
	DefaultRecordsPageBytes = 4 << 20
)

// Response headers of /api/runs/{thread}/records.
const (
	HeaderMore = "X-DashStream-More"
	HeaderNext = "X-DashStream-Next"
)

// runJSON is one run of /api/runs (DECISIONS D7) plus our extras.
type runJSON struct {
	ThreadID  string  `json:"thread_id"`
	GraphName string  `json:"graph_name"`
	Status    string  `json:"status"`
	StartedAt *string `json:"started_at"`
	EndedAt   *string `json:"ended_at"`
	Messages  int64   `json:"messages"`
	LastError *string `json:"last_error"`
	FirstSeq  uint64  `json:"first_seq"`
	LastSeq   uint64  `json:"last_seq"`
	UpdatedAt *string `json:"updated_at"`
}

type runsPage struct {
	Runs []runJSON `json:"runs"`
	Next *string   `json:"next"`
}

// timeJSON formats t as RFC 3339 UTC; nil for the zero time.
func timeJSON(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func strOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toRunJSON(r store.RunSummary) runJSON {
	return runJSON{
		ThreadID:  r.ThreadID,
		GraphName: r.GraphName,
		Status:    r.Status,
		StartedAt: timeJSON(r.StartedAt),
		EndedAt:   timeJSON(r.EndedAt),
		Messages:  r.Messages,
		LastError: strOrNull(r.LastError),
		FirstSeq:  r.FirstSeq,
		LastSeq:   r.LastSeq,
		UpdatedAt: timeJSON(r.UpdatedAt),
	}
}

// storeOK answers 503 when no store is wired.
func (s *server) storeOK(w http.ResponseWriter) bool {
	if s.deps.Store == nil {
		writeError(w, http.StatusServiceUnavailable, "store not available")
		return false
	}
	return true
}

// positiveInt parses an optional limit in [1, ∞); over max is capped.
func positiveInt(raw string, def, max int) (int, error) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("limit must be a positive integer, got %q", raw)
	}
	return min(n, max), nil
}

func (s *server) listRuns(w http.ResponseWriter, r *http.Request) {
	if !s.storeOK(w) {
		return
	}
	q := r.URL.Query()
	limit, err := positiveInt(q.Get("limit"), store.DefaultRunLimit, store.MaxRunLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	status := q.Get("status")
	switch status {
	case "", store.RunRunning, store.RunCompleted, store.RunError:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status must be running, completed or error, got %q", status))
		return
	}
	runs, next, err := s.deps.Store.Runs(r.Context(), store.RunQuery{
		Status: status,
		Graph:  q.Get("graph"),
		Text:   q.Get("q"),
		Limit:  limit,
		Before: q.Get("before"),
	})
	if errors.Is(err, store.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "invalid before cursor")
		return
	}
	if err != nil {
		s.log.Error("listing runs", "err", err)
		writeError(w, http.StatusInternalServerError, "listing runs failed")
		return
	}
	page := runsPage{Runs: make([]runJSON, 0, len(runs)), Next: strOrNull(next)}
	for _, run := range runs {
		page.Runs = append(page.Runs, toRunJSON(run))
	}
	writeJSON(w, http.StatusOK, page)
}

// threadParam returns the bounded thread id of the {thread} segment
// (ingest indexes bounded ids; DECISIONS D4).
func threadParam(r *http.Request) string {
	return wire.BoundThreadID(r.PathValue("thread"))
}

func (s *server) getRun(w http.ResponseWriter, r *http.Request) {
	if !s.storeOK(w) {
		return
	}
	id := threadParam(r)
	run, ok, err := s.deps.Store.Run(r.Context(), id)
	if err != nil {
		s.log.Error("reading run", "thread_id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "reading run failed")
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "run not found", "thread_id", id)
		return
	}
	writeJSON(w, http.StatusOK, toRunJSON(run))
}

// Record page tokens: version byte, then the last ThreadKey (sequence
// uint64, partition int32, offset int64, big-endian), base64url without
// padding. Opaque to clients.
const (
	tokenVersion = 1
	tokenLen     = 1 + 8 + 4 + 8
)

// EncodeRecordsToken returns the page token that resumes after k.
func EncodeRecordsToken(k store.ThreadKey) string {
	b := make([]byte, 0, tokenLen)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint64(b, k.Seq)
	b = binary.BigEndian.AppendUint32(b, uint32(k.Partition))
	b = binary.BigEndian.AppendUint64(b, uint64(k.Offset))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeRecordsToken parses a token of EncodeRecordsToken; "" is the
// start of the thread.
func DecodeRecordsToken(tok string) (store.ThreadKey, error) {
	if tok == "" {
		return store.ThreadKey{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return store.ThreadKey{}, fmt.Errorf("decoding token: %w", err)
	}
	if len(b) != tokenLen || b[0] != tokenVersion {
		return store.ThreadKey{}, errors.New("decoding token: unknown format")
	}
	return store.ThreadKey{
		Seq:       binary.BigEndian.Uint64(b[1:9]),
		Partition: int32(binary.BigEndian.Uint32(b[9:13])),
		Offset:    int64(binary.BigEndian.Uint64(b[13:21])),
	}, nil
}

// runRecords serves a run's retained records in thread-index order as one
// D6 batch body (DECISIONS D7): 0x02, uvarint count, then per record
// partition (int32 BE), offset (int64 BE), uvarint length, payload.
func (s *server) runRecords(w http.ResponseWriter, r *http.Request) {
	if !s.storeOK(w) {
		return
	}
	id := threadParam(r)
	q := r.URL.Query()
	limit, err := positiveInt(q.Get("limit"), DefaultRecordsLimit, MaxRecordsLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	after, err := DecodeRecordsToken(q.Get("after"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid after token")
		return
	}
	recs, more, err := s.deps.Store.ReadThread(r.Context(), id, after,
		store.Limits{MaxRecords: limit, MaxBytes: s.cfg.RecordsPageBytes})
	if err != nil {
		s.log.Error("reading run records", "thread_id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "reading run records failed")
		return
	}
	if len(recs) == 0 && after == (store.ThreadKey{}) {
		if _, ok, err := s.deps.Store.Run(r.Context(), id); err == nil && !ok {
			writeError(w, http.StatusNotFound, "run not found", "thread_id", id)
			return
		}
	}

	size := 1 + binary.MaxVarintLen64
	for _, rec := range recs {
		size += 12 + binary.MaxVarintLen64 + len(rec.Payload)
	}
	body := make([]byte, 0, size)
	body = append(body, hub.BatchFrameType)
	body = binary.AppendUvarint(body, uint64(len(recs)))
	for _, rec := range recs {
		body = binary.BigEndian.AppendUint32(body, uint32(rec.Partition))
		body = binary.BigEndian.AppendUint64(body, uint64(rec.Offset))
		body = binary.AppendUvarint(body, uint64(len(rec.Payload)))
		body = append(body, rec.Payload...)
	}

	next := after
	if len(recs) > 0 {
		next = recs[len(recs)-1].Key
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderMore, strconv.FormatBool(more))
	h.Set(HeaderNext, EncodeRecordsToken(next))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
