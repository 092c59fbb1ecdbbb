package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dashstream/dashstream/wire"
)

// dlqBytesShown is how many bytes first_bytes_hex and last_bytes_hex show.
const dlqBytesShown = 16

// dlqBase holds the fields every DLQ record carries, in the order of the
// reference's JSON (reference §5.6).
type dlqBase struct {
	TraceID               string  `json:"trace_id"`
	Timestamp             string  `json:"timestamp"`
	Error                 string  `json:"error"`
	ErrorType             string  `json:"error_type"`
	PayloadSHA256         string  `json:"payload_sha256"`
	OriginalPayloadBase64 *string `json:"original_payload_base64"`
	PayloadTruncationNote *string `json:"payload_truncation_note"`
	MessageSize           int     `json:"message_size"`
	FirstBytesHex         string  `json:"first_bytes_hex"`
	LastBytesHex          string  `json:"last_bytes_hex"`
	KafkaPartition        int32   `json:"kafka_partition"`
	KafkaOffset           int64   `json:"kafka_offset"`
	MessageCount          uint64  `json:"message_count"`
}

// dlqDecodeRecord is the DLQ record of a decode failure: the base fields
// plus the best-effort thread and tenant ids (null when not found).
type dlqDecodeRecord struct {
	dlqBase
	ThreadID *string `json:"thread_id"`
	TenantID *string `json:"tenant_id"`
}

// DLQRecord is the decoded form of a DLQ record value, for tools and tests.
// ThreadID and TenantID are absent (nil) in oversize records.
type DLQRecord struct {
	TraceID               string  `json:"trace_id"`
	Timestamp             string  `json:"timestamp"`
	Error                 string  `json:"error"`
	ErrorType             string  `json:"error_type"`
	PayloadSHA256         string  `json:"payload_sha256"`
	OriginalPayloadBase64 *string `json:"original_payload_base64"`
	PayloadTruncationNote *string `json:"payload_truncation_note"`
	MessageSize           int     `json:"message_size"`
	FirstBytesHex         string  `json:"first_bytes_hex"`
	LastBytesHex          string  `json:"last_bytes_hex"`
	KafkaPartition        int32   `json:"kafka_partition"`
	KafkaOffset           int64   `json:"kafka_offset"`
	MessageCount          uint64  `json:"message_count"`
	ThreadID              *string `json:"thread_id"`
	TenantID              *string `json:"tenant_id"`
}

// newTraceID returns a random UUIDv4 string.
func newTraceID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// hexList formats bytes like "[0a, 1b, ff]".
func hexList(b []byte) string {
	var sb strings.Builder
	sb.Grow(2 + 4*len(b))
	sb.WriteByte('[')
	for i, c := range b {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	sb.WriteByte(']')
	return sb.String()
}

// firstBytesHex is the first 16 bytes (or all) of v.
func firstBytesHex(v []byte) string { return hexList(v[:min(len(v), dlqBytesShown)]) }

// lastBytesHex is the last 16 bytes of v, or "" when v is shorter.
func lastBytesHex(v []byte) string {
	if len(v) < dlqBytesShown {
		return ""
	}
	return hexList(v[len(v)-dlqBytesShown:])
}

// failure describes one rejected record for the DLQ and the error log.
type failure struct {
	traceID   string
	err       string
	errorType string
	partition int32
	offset    int64
	count     uint64
	value     []byte
}

func (f *failure) base(now time.Time) dlqBase {
	sum := sha256.Sum256(f.value)
	return dlqBase{
		TraceID:        f.traceID,
		Timestamp:      now.UTC().Format(time.RFC3339Nano),
		Error:          f.err,
		ErrorType:      f.errorType,
		PayloadSHA256:  hex.EncodeToString(sum[:]),
		MessageSize:    len(f.value),
		FirstBytesHex:  firstBytesHex(f.value),
		LastBytesHex:   lastBytesHex(f.value),
		KafkaPartition: f.partition,
		KafkaOffset:    f.offset,
		MessageCount:   f.count,
	}
}

// decodeDLQValue builds the JSON of a decode-failure DLQ record. The
// payload is base64-encoded only when includePayload.
func decodeDLQValue(f *failure, includePayload bool, ids idFinder, now time.Time) ([]byte, error) {
	rec := dlqDecodeRecord{dlqBase: f.base(now)}
	if includePayload {
		s := base64.StdEncoding.EncodeToString(f.value)
		rec.OriginalPayloadBase64 = &s
	} else {
		note := fmt.Sprintf("Full payload omitted (DLQ_INCLUDE_FULL_PAYLOAD is not enabled); %d bytes, sha256 %s",
			len(f.value), rec.PayloadSHA256)
		rec.PayloadTruncationNote = &note
	}
	rec.ThreadID, rec.TenantID = ids.find(f.value)
	return json.Marshal(rec)
}

// oversizeDLQValue builds the JSON of an oversized-record DLQ record: no
// payload, ever, and no thread or tenant fields.
func oversizeDLQValue(f *failure, now time.Time) ([]byte, error) {
	rec := f.base(now)
	note := fmt.Sprintf("Payload omitted: %d bytes exceeds the maximum; sha256 %s", len(f.value), rec.PayloadSHA256)
	rec.PayloadTruncationNote = &note
	return json.Marshal(rec)
}

// idFinder extracts the thread and tenant ids of a rejected value, best
// effort (quirk Q10 fixed: the framing byte is stripped and zstd content is
// decompressed within the payload cap before the protobuf is walked).
type idFinder struct {
	maxPayload int
	dec        func() (*zstd.Decoder, error)
}

func newIDFinder(maxPayload int) idFinder {
	return idFinder{maxPayload: maxPayload, dec: sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(maxPayload)))
	})}
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// find returns the thread id (bounded) and tenant id of value, or nil for
// each one not found.
func (f idFinder) find(value []byte) (thread, tenant *string) {
	body := value
	switch {
	case len(body) == 0:
		return nil, nil
	case body[0] == wire.FrameRaw:
		body = body[1:]
	case body[0] == wire.FrameZstd, bytes.HasPrefix(body, zstdMagic):
		if body[0] == wire.FrameZstd {
			body = body[1:]
		}
		d, err := f.dec()
		if err != nil {
			return nil, nil
		}
		out, err := d.DecodeAll(body, nil)
		if err != nil || len(out) > f.maxPayload {
			return nil, nil
		}
		body = out
	}
	th, tn := messageIDs(body)
	if th != "" {
		b := wire.BoundThreadID(th)
		thread = &b
	}
	if tn != "" {
		tenant = &tn
	}
	return thread, tenant
}

// messageIDs walks a (possibly truncated) DashStreamMessage: the first
// oneof arm's header (field 1), and for an EventBatch without a thread in
// its own header, the first inner event's header.
func messageIDs(b []byte) (thread, tenant string) {
	for len(b) > 0 {
		num, typ, body, rest, ok := nextField(b)
		if !ok {
			return "", ""
		}
		b = rest
		if typ != protowire.BytesType || num < 1 || num > 9 {
			continue
		}
		thread, tenant = armIDs(body, num == 8)
		return thread, tenant
	}
	return "", ""
}

func armIDs(b []byte, batch bool) (thread, tenant string) {
	for len(b) > 0 {
		num, typ, body, rest, ok := nextField(b)
		if !ok {
			return thread, tenant
		}
		b = rest
		if typ != protowire.BytesType {
			continue
		}
		switch {
		case num == 1:
			th, tn := headerIDs(body)
			if th != "" {
				thread = th
			}
			if tn != "" {
				tenant = tn
			}
			if !batch || thread != "" {
				return thread, tenant
			}
		case num == 2 && batch:
			th, tn := armIDs(body, false)
			if thread == "" {
				thread = th
			}
			if tenant == "" {
				tenant = tn
			}
			return thread, tenant
		}
	}
	return thread, tenant
}

func headerIDs(b []byte) (thread, tenant string) {
	for len(b) > 0 {
		num, typ, body, rest, ok := nextField(b)
		if !ok {
			return thread, tenant
		}
		b = rest
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case 3:
			tenant = string(body)
		case 4:
			thread = string(body)
		}
	}
	return thread, tenant
}

// nextField consumes one field. A length-delimited field running past the
// end of b is returned truncated (best effort on truncated payloads).
func nextField(b []byte) (num protowire.Number, typ protowire.Type, body, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, nil, false
	}
	b = b[n:]
	if typ == protowire.BytesType {
		l, m := protowire.ConsumeVarint(b)
		if m < 0 {
			return 0, 0, nil, nil, false
		}
		b = b[m:]
		if l > uint64(len(b)) {
			return num, typ, b, nil, true
		}
		return num, typ, b[:l], b[l:], true
	}
	m := protowire.ConsumeFieldValue(num, typ, b)
	if m < 0 {
		return 0, 0, nil, nil, false
	}
	return num, typ, nil, b[m:], true
}

// dlqSender produces DLQ records fail-open: at most cap sends in flight,
// excess dropped and counted as backpressure, never blocking ingest.
type dlqSender struct {
	cl      *kgo.Client
	topic   string
	sem     chan struct{}
	timeout time.Duration
	m       *Metrics
	log     *slog.Logger
	wg      sync.WaitGroup
}

func newDLQSender(cl *kgo.Client, topic string, maxInFlight int, timeout time.Duration, m *Metrics, log *slog.Logger) *dlqSender {
	return &dlqSender{cl: cl, topic: topic, sem: make(chan struct{}, maxInFlight), timeout: timeout, m: m, log: log}
}

// send queues one DLQ record; it never blocks.
func (d *dlqSender) send(key string, value []byte, errorType string) {
	select {
	case d.sem <- struct{}{}:
	default:
		d.m.DLQSendFailures.WithLabelValues(DLQFailBackpress).Inc()
		return
	}
	d.wg.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	d.cl.Produce(ctx, &kgo.Record{Topic: d.topic, Key: []byte(key), Value: value}, func(_ *kgo.Record, err error) {
		defer d.wg.Done()
		cancel()
		<-d.sem
		if err == nil {
			d.m.DLQSends.WithLabelValues(errorType).Inc()
			return
		}
		reason := DLQFailKafka
		msg := strings.ToLower(err.Error())
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout) ||
			strings.Contains(msg, "timeout") || strings.Contains(msg, "timed out") {
			reason = DLQFailTimeout
		}
		d.m.DLQSendFailures.WithLabelValues(reason).Inc()
		d.log.Warn("DLQ send failed", "topic", d.topic, "trace_id", key, "reason", reason, "err", err)
	})
}

// close waits up to wait for in-flight sends, then closes the producer.
func (d *dlqSender) close(wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := d.cl.Flush(ctx); err != nil {
		d.log.Warn("DLQ flush incomplete at shutdown", "err", err)
	}
	d.cl.Close()
	d.wg.Wait()
}
