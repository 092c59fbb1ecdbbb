package ingest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

func eventBytes(t *testing.T, thread, tenant string) []byte {
	t.Helper()
	b, err := proto.Marshal(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header:    &pb.Header{ThreadId: thread, TenantId: tenant, Sequence: 3, TimestampUs: 1, Type: pb.MessageType_MESSAGE_TYPE_EVENT},
		EventType: pb.EventType_EVENT_TYPE_NODE_START, NodeId: strings.Repeat("n", 200),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDLQIDFinder(t *testing.T) {
	f := newIDFinder(1 << 20)
	raw := eventBytes(t, "thread-a", "tenant-x")
	enc, _ := zstd.NewWriter(nil)
	zipped := enc.EncodeAll(raw, nil)
	batch, _ := proto.Marshal(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_EventBatch{EventBatch: &pb.EventBatch{
		Header: &pb.Header{TenantId: "tb"},
		Events: []*pb.Event{{Header: &pb.Header{ThreadId: "inner", TenantId: "ti"}}},
	}}})
	tests := []struct {
		name           string
		value          []byte
		thread, tenant string // "" = null
	}{
		{"framed raw", append([]byte{0x00}, raw...), "thread-a", "tenant-x"},
		{"framed zstd", append([]byte{0x01}, zipped...), "thread-a", "tenant-x"},
		{"legacy zstd", zipped, "thread-a", "tenant-x"},
		{"legacy raw", raw, "thread-a", "tenant-x"},
		{"truncated keeps header", append([]byte{0x00}, raw[:len(raw)-50]...), "thread-a", "tenant-x"},
		{"batch uses inner thread", append([]byte{0x00}, batch...), "inner", "tb"},
		{"zstd garbage", []byte{0x01, 1, 2, 3, 4, 5}, "", ""},
		{"empty", nil, "", ""},
		{"frame only", []byte{0x00}, "", ""},
		{"invalid wire type", []byte{0x00, 0x0f, 0xff}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th, tn := f.find(tc.value)
			check := func(what string, got *string, want string) {
				switch {
				case want == "" && got != nil:
					t.Errorf("%s = %q, want null", what, *got)
				case want != "" && (got == nil || *got != want):
					t.Errorf("%s = %v, want %q", what, got, want)
				}
			}
			check("thread", th, tc.thread)
			check("tenant", tn, tc.tenant)
		})
	}
}

func TestDLQValueShape(t *testing.T) {
	value := append([]byte{0x00}, eventBytes(t, "th", "tn")...)
	f := &failure{traceID: newTraceID(), err: "boom", errorType: ClassInvalidProtobuf, partition: 2, offset: 7, count: 9, value: value}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	v, err := decodeDLQValue(f, false, newIDFinder(1<<20), now)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"trace_id", "timestamp", "error", "error_type", "payload_sha256", "original_payload_base64",
		"payload_truncation_note", "message_size", "first_bytes_hex", "last_bytes_hex", "kafka_partition", "kafka_offset",
		"message_count", "thread_id", "tenant_id"}
	assertKeyOrder(t, string(v), keys)
	if !strings.Contains(string(v), `"original_payload_base64":null`) || !strings.Contains(string(v), `"thread_id":"th"`) {
		t.Fatalf("unexpected record %s", v)
	}
	if !strings.Contains(string(v), `"timestamp":"2026-01-02T03:04:05.000000006Z"`) {
		t.Fatalf("timestamp: %s", v)
	}
	v, _ = decodeDLQValue(f, true, newIDFinder(1<<20), now)
	if !strings.Contains(string(v), `"payload_truncation_note":null`) || strings.Contains(string(v), `"original_payload_base64":null`) {
		t.Fatalf("with payload: %s", v)
	}
	o, _ := oversizeDLQValue(f, now)
	assertKeyOrder(t, string(o), keys[:13])
	if strings.Contains(string(o), "thread_id") || !strings.Contains(string(o), `"original_payload_base64":null`) {
		t.Fatalf("oversize: %s", o)
	}
	var rec DLQRecord
	if err := json.Unmarshal(o, &rec); err != nil || rec.MessageSize != len(value) || rec.KafkaOffset != 7 {
		t.Fatalf("unmarshal: %v %+v", err, rec)
	}
}

func assertKeyOrder(t *testing.T, js string, keys []string) {
	t.Helper()
	pos := -1
	for _, k := range keys {
		i := strings.Index(js, `"`+k+`":`)
		if i < 0 || i < pos {
			t.Fatalf("key %q missing or out of order in %s", k, js)
		}
		pos = i
	}
}

func TestHexFormats(t *testing.T) {
	ingEq(t, hexList([]byte{0x0a, 0x1b, 0xff}), "[0a, 1b, ff]")
	ingEq(t, hexList(nil), "[]")
	b := make([]byte, 20)
	for i := range b {
		b[i] = byte(i)
	}
	ingEq(t, firstBytesHex(b), "[00, 01, 02, 03, 04, 05, 06, 07, 08, 09, 0a, 0b, 0c, 0d, 0e, 0f]")
	ingEq(t, lastBytesHex(b), "[04, 05, 06, 07, 08, 09, 0a, 0b, 0c, 0d, 0e, 0f, 10, 11, 12, 13]")
	ingEq(t, lastBytesHex(b[:15]), "")
	ingEq(t, firstBytesHex(b[:3]), "[00, 01, 02]")
	id := newTraceID()
	if len(id) != 36 || id[14] != '4' {
		t.Fatalf("trace id %q is not a UUIDv4", id)
	}
}

func TestClassifiers(t *testing.T) {
	for _, tc := range []struct {
		value []byte
		want  string
	}{
		{[]byte{0x00, 0x0a, 0x05, 0x01}, ClassBufferUnderflow},
		{[]byte{0x00, 0x0f}, ClassInvalidProtobuf},
		{[]byte{0x01, 0xde, 0xad}, ClassUnknownDecodeError},
		{[]byte{}, ClassUnknownDecodeError},
		{make([]byte, 20), ClassPayloadTooLarge},
	} {
		_, err := wire.Extract(tc.value, 10)
		if err == nil {
			t.Fatalf("%x decoded", tc.value)
		}
		ingEq(t, decodeClass(err), tc.want)
	}
	for msg, want := range map[string]string{
		"lookup kafka: no such host (dns)":   KafkaErrDNS,
		"i/o timeout":                        KafkaErrTimeout,
		"dial tcp: connection refused":       KafkaErrBroker,
		"unable to parse response":           KafkaErrDecode,
		"something else entirely went wrong": KafkaErrUnknown,
	} {
		ingEq(t, classifyKafkaError(errors.New(msg)), want)
	}
}

func TestBatchBuilderMergesSkips(t *testing.T) {
	b := newBatchBuilder(3, 1<<20)
	b.skip(0, 5)
	b.skip(0, 6)
	b.add(store.Record{Partition: 0, Offset: 7, Payload: []byte("x")})
	b.skip(0, 8)
	b.evict(1, 0, 10)
	b.skip(1, 10)
	got := b.batch()
	ingEq(t, got.Skipped, []store.SkippedRange{
		{Partition: 0, From: 5, To: 7, Reason: store.SkipInvalid},
		{Partition: 0, From: 8, To: 9, Reason: store.SkipInvalid},
		{Partition: 1, From: 0, To: 10, Reason: store.SkipEvicted},
		{Partition: 1, From: 10, To: 11, Reason: store.SkipInvalid},
	})
	ingEq(t, got.NextOffsets, map[int32]int64{0: 9, 1: 11})
	if b.full() {
		t.Fatal("full after one record")
	}
	b.add(store.Record{Partition: 2, Offset: 0})
	b.add(store.Record{Partition: 2, Offset: 1})
	if !b.full() {
		t.Fatal("not full after three records")
	}
}

func TestWindow(t *testing.T) {
	var w window
	t0 := time.Unix(1000, 0)
	w.add(t0, 2)
	w.add(t0.Add(time.Second), 3)
	ingEq(t, w.sum(t0.Add(2*time.Second)), int64(5))
	ingEq(t, w.sum(t0.Add(120*time.Second)), int64(3))
	ingEq(t, w.sum(t0.Add(200*time.Second)), int64(0))
}
