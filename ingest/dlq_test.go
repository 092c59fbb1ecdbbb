package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
)

// readDLQ consumes n records of the DLQ topic; opts are added to the
// client's (e.g. ingest.ClientOpts for a secured cluster).
func readDLQ(t *testing.T, addrs []string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(itTopic + "-dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d DLQ records", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func hexList(b []byte) string {
	parts := make([]string, len(b))
	for k, c := range b {
		parts[k] = fmt.Sprintf("%02x", c)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func TestIngestDLQRecords(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full_payload=%v", full), func(t *testing.T) { testDLQRecords(t, full) })
	}
}

func testDLQRecords(t *testing.T, fullPayload bool) {
	c := itCluster(t, 2)
	prod := itProducer(t, c.ListenAddrs())
	st := memory.New(memory.Config{})
	cfg := itConfig(c.ListenAddrs())
	cfg.DLQIncludeFullPayload = fullPayload
	r := startIngest(t, cfg, st)
	waitFor(t, 10*time.Second, "ingest running", func() bool { return r.ing.Status().Running })

	valid := eventPayload("dlq-thread", 1)
	oversized := bytes.Repeat([]byte{0x00, 0x0a}, cfg.MaxPayloadBytes/2+100)
	cases := []struct {
		name   string
		value  []byte
		class  string // "" = not DLQ'd
		thread bool   // thread_id/tenant_id expected
	}{
		{"valid", valid, "", false},
		{"oversized", oversized, ingest.ClassPayloadTooLarge, false},
		{"truncated", valid[:len(valid)-10], ingest.ClassBufferUnderflow, true},
		{"invalid", []byte{0x00, 0x0f, 0x01, 0x02}, ingest.ClassInvalidProtobuf, false},
		{"zstd garbage", append([]byte{0x01}, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 8)...), ingest.ClassUnknownDecodeError, false},
		{"empty", []byte{}, ingest.ClassUnknownDecodeError, false},
		{"missing", nil, "", false},
	}
	recs := make([]*kgo.Record, len(cases))
	for k, tc := range cases {
		recs[k] = &kgo.Record{Partition: 0, Value: tc.value}
	}
	itProduce(t, prod, recs...)
	waitNext(t, st, map[int32]int64{0: int64(len(cases))})

	byOffset := map[int64]ingest.DLQRecord{}
	keys := map[int64]string{}
	raw := map[int64]string{}
	for _, dr := range readDLQ(t, c.ListenAddrs(), 5) {
		var rec ingest.DLQRecord
		if err := json.Unmarshal(dr.Value, &rec); err != nil {
			t.Fatalf("DLQ value is not JSON: %v: %s", err, dr.Value)
		}
		byOffset[rec.KafkaOffset] = rec
		keys[rec.KafkaOffset] = string(dr.Key)
		raw[rec.KafkaOffset] = string(dr.Value)
	}
	for k, tc := range cases {
		off := recs[k].Offset
		rec, ok := byOffset[off]
		if tc.class == "" {
			if ok {
				t.Errorf("%s: DLQ'd but should not be: %s", tc.name, raw[off])
			}
			continue
		}
		if !ok {
			t.Errorf("%s: no DLQ record", tc.name)
			continue
		}
		sum := sha256.Sum256(tc.value)
		switch {
		case !uuidV4.MatchString(rec.TraceID) || keys[off] != rec.TraceID:
			t.Errorf("%s: trace_id %q, key %q", tc.name, rec.TraceID, keys[off])
		case rec.ErrorType != tc.class:
			t.Errorf("%s: error_type %q, want %q (error %q)", tc.name, rec.ErrorType, tc.class, rec.Error)
		case rec.Error == "":
			t.Errorf("%s: empty error", tc.name)
		case rec.PayloadSHA256 != hex.EncodeToString(sum[:]):
			t.Errorf("%s: payload_sha256 %s", tc.name, rec.PayloadSHA256)
		case rec.MessageSize != len(tc.value):
			t.Errorf("%s: message_size %d, want %d", tc.name, rec.MessageSize, len(tc.value))
		case rec.FirstBytesHex != hexList(tc.value[:min(16, len(tc.value))]):
			t.Errorf("%s: first_bytes_hex %s", tc.name, rec.FirstBytesHex)
		case len(tc.value) >= 16 && rec.LastBytesHex != hexList(tc.value[len(tc.value)-16:]),
			len(tc.value) < 16 && rec.LastBytesHex != "":
			t.Errorf("%s: last_bytes_hex %q", tc.name, rec.LastBytesHex)
		case rec.KafkaPartition != 0 || rec.MessageCount == 0:
			t.Errorf("%s: partition %d, message_count %d", tc.name, rec.KafkaPartition, rec.MessageCount)
		}
		if _, err := time.Parse(time.RFC3339Nano, rec.Timestamp); err != nil {
			t.Errorf("%s: timestamp %q: %v", tc.name, rec.Timestamp, err)
		}
		wantB64 := fullPayload && tc.class != ingest.ClassPayloadTooLarge
		if wantB64 {
			if rec.OriginalPayloadBase64 == nil || *rec.OriginalPayloadBase64 != base64.StdEncoding.EncodeToString(tc.value) ||
				rec.PayloadTruncationNote != nil {
				t.Errorf("%s: want the payload in base64 and no note: %s", tc.name, raw[off])
			}
		} else if rec.OriginalPayloadBase64 != nil || rec.PayloadTruncationNote == nil ||
			!strings.Contains(*rec.PayloadTruncationNote, rec.PayloadSHA256) {
			t.Errorf("%s: want no payload and a note naming the SHA-256: %s", tc.name, raw[off])
		}
		if tc.class == ingest.ClassPayloadTooLarge {
			if strings.Contains(raw[off], "thread_id") || strings.Contains(raw[off], "tenant_id") ||
				rec.Error != fmt.Sprintf("Payload size %d exceeds maximum %d", len(tc.value), cfg.MaxPayloadBytes) {
				t.Errorf("oversize record: %s", raw[off])
			}
			continue
		}
		if !strings.Contains(raw[off], `"thread_id":`) || !strings.Contains(raw[off], `"tenant_id":`) {
			t.Errorf("%s: thread_id/tenant_id keys missing: %s", tc.name, raw[off])
		}
		if tc.thread {
			if rec.ThreadID == nil || *rec.ThreadID != "dlq-thread" || rec.TenantID == nil || *rec.TenantID != "tenant-1" {
				t.Errorf("%s: thread/tenant not extracted after the framing byte: %s", tc.name, raw[off])
			}
		} else if rec.ThreadID != nil || rec.TenantID != nil {
			t.Errorf("%s: thread/tenant should be null: %s", tc.name, raw[off])
		}
	}

	// Metrics and store accounting.
	for _, class := range []string{ingest.ClassPayloadTooLarge, ingest.ClassBufferUnderflow, ingest.ClassInvalidProtobuf} {
		if v := metricValue(t, r.reg, "websocket_decode_errors_total", map[string]string{"error_type": class}); v != 1 {
			t.Errorf("decode_errors_total{%s} = %v, want 1", class, v)
		}
	}
	if v := metricValue(t, r.reg, "websocket_decode_errors_total", map[string]string{"error_type": ingest.ClassUnknownDecodeError}); v != 2 {
		t.Errorf("decode_errors_total{unknown_decode_error} = %v, want 2", v)
	}
	if v := metricValue(t, r.reg, "websocket_kafka_messages_total", map[string]string{"status": "error"}); v != 5 {
		t.Errorf("messages_total{error} = %v, want 5", v)
	}
	if v := metricValue(t, r.reg, "websocket_kafka_payload_missing_total", nil); v != 1 {
		t.Errorf("payload_missing = %v, want 1", v)
	}
	waitFor(t, 10*time.Second, "DLQ send counters", func() bool {
		return metricValue(t, r.reg, "websocket_dlq_sends_total", map[string]string{"error_type": ingest.ClassUnknownDecodeError}) == 2 &&
			metricValue(t, r.reg, "websocket_dlq_sends_total", map[string]string{"error_type": ingest.ClassPayloadTooLarge}) == 1
	})
	if got := offsetsOf(readPartition(t, st, 0)); len(got) != 1 || got[0] != recs[0].Offset {
		t.Errorf("stored offsets %v, want only the valid record", got)
	}
	want := []store.SkippedRange{{Partition: 0, From: recs[1].Offset, To: recs[len(recs)-1].Offset + 1, Reason: store.SkipInvalid}}
	if got := storeSkips(t, st, 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("skipped ranges %v, want %v", got, want)
	}
	s := r.ing.Status()
	if s.KafkaErrors != 5 || s.PayloadMissing != 1 || s.MessagesReceived != 7 || s.DecodeErrorsLast120s != 5 || s.MessagesLast120s != 7 {
		t.Errorf("status counters: %+v", s)
	}
	r.stop(t)
}

func TestIngestDLQFailOpen(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	st := memory.New(memory.Config{})
	cfg := itConfig(c.ListenAddrs())
	cfg.DLQTopic = "no-such-dlq-topic" // kfake does not auto-create: every send fails
	cfg.DLQSendTimeout = time.Second
	cfg.MaxConcurrentDLQSends = 2
	r := startIngest(t, cfg, st)
	waitFor(t, 10*time.Second, "ingest running", func() bool { return r.ing.Status().Running })
	var recs []*kgo.Record
	for range 10 {
		recs = append(recs, &kgo.Record{Partition: 0, Value: []byte{0x00, 0x0f}})
	}
	recs = append(recs, validRecs(0, 1, "x")...)
	itProduce(t, prod, recs...)
	waitNext(t, st, map[int32]int64{0: 11}) // ingest is not blocked by the DLQ
	waitFor(t, 15*time.Second, "DLQ failures counted", func() bool {
		bp := metricValue(t, r.reg, "websocket_dlq_send_failures_total", map[string]string{"reason": "backpressure"})
		to := metricValue(t, r.reg, "websocket_dlq_send_failures_total", map[string]string{"reason": "timeout"})
		ke := metricValue(t, r.reg, "websocket_dlq_send_failures_total", map[string]string{"reason": "kafka_error"})
		return bp >= 8 && bp+max(to, 0)+max(ke, 0) == 10
	})
	r.stop(t)
}
