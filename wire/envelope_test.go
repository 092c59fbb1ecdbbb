package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// --- sample messages -------------------------------------------------------

const baseTs = 1767225600000000 // 2026-01-01T00:00:00Z in µs

func header(thread string, seq uint64, typ pb.MessageType) *pb.Header {
	return &pb.Header{
		MessageId:     bytes.Repeat([]byte{byte(seq), 0xA5}, 8),
		TimestampUs:   baseTs + int64(seq)*1000,
		TenantId:      "default",
		ThreadId:      thread,
		Sequence:      seq,
		Type:          typ,
		SchemaVersion: 1,
	}
}

func strAttr(s string) *pb.AttributeValue {
	return &pb.AttributeValue{Value: &pb.AttributeValue_StringValue{StringValue: s}}
}

func event(thread string, seq uint64, typ pb.EventType, node string, attrs map[string]*pb.AttributeValue) *pb.Event {
	return &pb.Event{
		Header:     header(thread, seq, pb.MessageType_MESSAGE_TYPE_EVENT),
		EventType:  typ,
		NodeId:     node,
		Attributes: attrs,
	}
}

// jsonState is a compressible JSON document of about n bytes.
func jsonState(n int) string {
	var b strings.Builder
	b.WriteString(`{"messages":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"role":"assistant","content":"step %d of the research plan: gather sources","tokens":%d}`, i, 40+i%7)
	}
	b.WriteString(`]}`)
	return b.String()
}

// sample is one hand-built message with what encoding it must get.
type sample struct {
	name string
	msg  *pb.DashStreamMessage
	zstd bool // expect a 0x01 frame
}

func samples() []sample {
	big := jsonState(8 << 10)
	random := make([]byte, 4<<10)
	rand.New(rand.NewSource(7)).Read(random)
	graphStart := event("run-1", 1, pb.EventType_EVENT_TYPE_GRAPH_START, "", map[string]*pb.AttributeValue{
		"graph_name":         strAttr("research_agent"),
		"graph_entry_point":  strAttr("planner"),
		"graph_node_count":   {Value: &pb.AttributeValue_IntValue{IntValue: 4}},
		"initial_state_json": strAttr(big),
	})
	nodeErr := event("run-1", 9, pb.EventType_EVENT_TYPE_NODE_ERROR, "writer", map[string]*pb.AttributeValue{
		"error": strAttr("tool timed out after 30s"),
	})
	batch := &pb.EventBatch{
		Header: header("run-a", 0, pb.MessageType_MESSAGE_TYPE_EVENT_BATCH),
		Events: []*pb.Event{
			event("run-a", 3, pb.EventType_EVENT_TYPE_NODE_START, "planner", nil),
			event("run-b", 7, pb.EventType_EVENT_TYPE_GRAPH_START, "", map[string]*pb.AttributeValue{"graph_name": strAttr("router")}),
			event("run-a", 4, pb.EventType_EVENT_TYPE_NODE_END, "planner", map[string]*pb.AttributeValue{
				"nested": {Value: &pb.AttributeValue_ArrayValue{ArrayValue: &pb.AttributeArray{Values: []*pb.AttributeValue{strAttr("x"), {Value: &pb.AttributeValue_MapValue{MapValue: &pb.AttributeMap{Values: map[string]*pb.AttributeValue{"k": strAttr("v")}}}}}}}},
			}),
			event("run-b", 8, pb.EventType_EVENT_TYPE_NODE_ERROR, "search", map[string]*pb.AttributeValue{"error": strAttr("rate limited")}),
			event("run-a", 5, pb.EventType_EVENT_TYPE_GRAPH_END, "", nil),
		},
	}
	bigBatch := proto.Clone(batch).(*pb.EventBatch)
	bigBatch.Events = append(bigBatch.Events, event("run-a", 6, pb.EventType_EVENT_TYPE_NODE_PROGRESS, "writer",
		map[string]*pb.AttributeValue{"message": strAttr(big)}))
	stateDiff := &pb.StateDiff{
		Header:           header("run-1", 4, pb.MessageType_MESSAGE_TYPE_STATE_DIFF),
		BaseCheckpointId: []byte("0123456789abcdef"),
		Operations: []*pb.DiffOperation{
			{Op: pb.DiffOperation_OP_TYPE_ADD, Path: "/messages/-", Value: []byte(`{"role":"user"}`)},
			{Op: pb.DiffOperation_OP_TYPE_MOVE, Path: "/a", From: "/b"},
		},
		StateHash: bytes.Repeat([]byte{0xEE}, 32),
	}
	return []sample{
		{"event_graph_start", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: graphStart}}, true},
		{"event_node_error", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: nodeErr}}, false},
		{"event_batch_2_threads", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_EventBatch{EventBatch: batch}}, false},
		{"event_batch_large", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_EventBatch{EventBatch: bigBatch}}, true},
		{"state_diff", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_StateDiff{StateDiff: stateDiff}}, false},
		{"state_diff_full_state", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_StateDiff{StateDiff: &pb.StateDiff{
			Header: header("run-1", 5, pb.MessageType_MESSAGE_TYPE_STATE_DIFF), FullState: []byte(big), StateHash: make([]byte, 32),
		}}}, true},
		{"state_diff_incompressible", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_StateDiff{StateDiff: &pb.StateDiff{
			Header: header("run-1", 6, pb.MessageType_MESSAGE_TYPE_STATE_DIFF), FullState: random,
		}}}, false},
		{"token_chunk", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_TokenChunk{TokenChunk: &pb.TokenChunk{
			Header: header("run-1", 10, pb.MessageType_MESSAGE_TYPE_TOKEN_CHUNK), RequestId: "req-1", Text: "Hello, wor",
			TokenIds: []uint32{9906, 11, 1917}, Logprobs: []float32{-0.1, -2.5, -0.01}, ChunkIndex: 2,
			FinishReason: pb.TokenChunk_FINISH_REASON_STOP, IsFinal: true, Model: "gpt-x",
			Stats: &pb.TokenStats{PromptTokens: 12, CompletionTokens: 3, TotalTokens: 15},
		}}}, false},
		{"tool_execution", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_ToolExecution{ToolExecution: &pb.ToolExecution{
			Header: header("run-1", 11, pb.MessageType_MESSAGE_TYPE_TOOL_EXECUTION), CallId: "call-1", ToolName: "web_search",
			Stage: pb.ToolExecution_EXECUTION_STAGE_FAILED, Arguments: []byte(`{"q":"zstd"}`), Error: "boom",
			ErrorDetails: &pb.Error{ErrorCode: "E_TOOL", Message: "boom"}, DurationUs: 1234, RetryCount: 2,
		}}}, false},
		{"checkpoint", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Checkpoint{Checkpoint: &pb.Checkpoint{
			Header: header("run-1", 12, pb.MessageType_MESSAGE_TYPE_CHECKPOINT), CheckpointId: bytes.Repeat([]byte{1}, 16),
			State: []byte(big), StateType: "serde_json::Value", Checksum: make([]byte, 32),
			Metadata: map[string]string{"k": "v", "n": "1"},
		}}}, true},
		{"metrics", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Metrics{Metrics: &pb.Metrics{
			Header: header("run-1", 13, pb.MessageType_MESSAGE_TYPE_METRICS), Scope: "node", ScopeId: "writer",
			Metrics: map[string]*pb.MetricValue{
				"latency_ms": {Value: &pb.MetricValue_FloatValue{FloatValue: 12.5}, Unit: "ms", Type: pb.MetricValue_METRIC_TYPE_GAUGE},
				"calls":      {Value: &pb.MetricValue_IntValue{IntValue: 3}},
			},
			Tags: map[string]string{"env": "test"},
		}}}, false},
		{"error", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Error{Error: &pb.Error{
			Header: header("run-1", 14, pb.MessageType_MESSAGE_TYPE_ERROR), ErrorCode: "E1", Message: "failed",
			StackTrace: "at main()", Context: map[string]string{"node": "writer"}, Severity: pb.Error_SEVERITY_ERROR,
			ExceptionType: "ValueError", Suggestions: []string{"retry", "check key"},
		}}}, false},
		{"execution_trace", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_ExecutionTrace{ExecutionTrace: &pb.ExecutionTrace{
			Header: header("run-1", 0, pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE), ThreadId: "run-1", ExecutionId: "exec-1",
			NodesExecuted:   []*pb.NodeExecutionRecord{{Node: "planner", DurationMs: 5, Succeeded: true, Metadata: map[string]string{"a": "b"}}},
			TotalDurationMs: 99, TotalTokens: 1000, Errors: []*pb.ErrorRecord{{Node: "writer", Message: "x", Recovered: true}},
			Completed: true, StartedAt: "2026-01-01T00:00:00Z", EndedAt: "2026-01-01T00:00:01Z", FinalState: []byte(`{}`),
			Metadata: map[string][]byte{"m": []byte(`1`)},
		}}}, false},
		{"no_header", &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Metrics{Metrics: &pb.Metrics{Scope: "graph"}}}, false},
		{"empty", &pb.DashStreamMessage{}, false},
	}
}

// compressedCopy is m as EncodeWith must put it in a 0x01 frame.
func compressedCopy(m *pb.DashStreamMessage) *pb.DashStreamMessage {
	c := proto.Clone(m).(*pb.DashStreamMessage)
	r := c.ProtoReflect()
	if fd := r.WhichOneof(r.Descriptor().Oneofs().Get(0)); fd != nil {
		inner := r.Get(fd).Message().Interface()
		type hasHeader interface{ GetHeader() *pb.Header }
		if h := inner.(hasHeader).GetHeader(); h != nil {
			h.Compression = pb.CompressionType_COMPRESSION_ZSTD
		}
		if b, ok := inner.(*pb.EventBatch); ok {
			for _, e := range b.Events {
				e.Header.Compression = pb.CompressionType_COMPRESSION_ZSTD
			}
		}
	}
	return c
}

func mustEncode(t testing.TB, m *pb.DashStreamMessage) []byte {
	t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// --- round trip ------------------------------------------------------------

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			orig := proto.Clone(s.msg)
			enc := mustEncode(t, s.msg)
			if !proto.Equal(orig, s.msg) {
				t.Fatal("Encode modified its argument")
			}
			want := s.msg
			switch {
			case s.zstd && enc[0] != wire.FrameZstd:
				t.Fatalf("frame byte %#x, want 0x01 (zstd) for a %d-byte message", enc[0], proto.Size(s.msg))
			case !s.zstd && enc[0] != wire.FrameRaw:
				t.Fatalf("frame byte %#x, want 0x00", enc[0])
			case s.zstd:
				want = compressedCopy(s.msg)
				if len(enc) >= proto.Size(want) {
					t.Fatalf("zstd frame of %d bytes is not smaller than the %d-byte message", len(enc), proto.Size(want))
				}
			}
			got, err := wire.Decode(enc, wire.DefaultMaxPayload)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("round trip mismatch:\n got %v\nwant %v", got, want)
			}
			// Raw frames carry exactly the deterministic encoding.
			if !s.zstd && !bytes.Equal(enc[1:], mustMarshal(t, s.msg)) {
				t.Fatal("0x00 frame body differs from the protobuf encoding")
			}
		})
	}
}

func TestEncodeThresholdAndOptions(t *testing.T) {
	m := &pb.DashStreamMessage{Message: &pb.DashStreamMessage_StateDiff{StateDiff: &pb.StateDiff{
		Header: header("t", 1, pb.MessageType_MESSAGE_TYPE_STATE_DIFF)}}}
	sd := m.GetStateDiff()
	// Grow full_state until the encoding is exactly 512 bytes: not compressed.
	for proto.Size(m) < wire.CompressionThreshold {
		sd.FullState = append(sd.FullState, 'a')
	}
	if n := proto.Size(m); n != wire.CompressionThreshold {
		t.Fatalf("could not build a %d-byte message (got %d)", wire.CompressionThreshold, n)
	}
	if enc := mustEncode(t, m); enc[0] != wire.FrameRaw {
		t.Fatalf("512-byte message framed %#x, want 0x00 (threshold is exclusive)", enc[0])
	}
	sd.FullState = append(sd.FullState, 'a')
	if enc := mustEncode(t, m); enc[0] != wire.FrameZstd {
		t.Fatalf("513-byte repetitive message framed %#x, want 0x01", enc[0])
	}
	enc, err := wire.EncodeWith(m, wire.EncodeOptions{DisableCompression: true})
	if err != nil || enc[0] != wire.FrameRaw {
		t.Fatalf("DisableCompression: %#x, %v", enc[0], err)
	}
	if enc, err := wire.EncodeWith(m, wire.EncodeOptions{Threshold: 4096}); err != nil || enc[0] != wire.FrameRaw {
		t.Fatalf("Threshold 4096: %#x, %v", enc[0], err)
	}
	if _, err := wire.EncodeWith(m, wire.EncodeOptions{MaxMessageSize: 100}); err == nil {
		t.Fatal("MaxMessageSize 100 accepted a 513-byte message")
	}
	if _, err := wire.Encode(nil); err == nil {
		t.Fatal("Encode(nil) succeeded")
	}
}

// TestZstdFrameDeclaresContentSize parses the emitted frame headers with
// klauspost's own header parser: every 0x01 frame must declare
// Frame_Content_Size (the browser rejects frames without it).
func TestZstdFrameDeclaresContentSize(t *testing.T) {
	for _, s := range samples() {
		if !s.zstd {
			continue
		}
		enc := mustEncode(t, s.msg)
		var h zstd.Header
		if err := h.Decode(enc[1:]); err != nil {
			t.Fatalf("%s: frame header: %v", s.name, err)
		}
		want := proto.Size(compressedCopy(s.msg))
		if !h.HasFCS || h.FrameContentSize != uint64(want) {
			t.Errorf("%s: HasFCS=%v FrameContentSize=%d, want declared %d", s.name, h.HasFCS, h.FrameContentSize, want)
		}
		if h.DictionaryID != 0 {
			t.Errorf("%s: dictionary id %d", s.name, h.DictionaryID)
		}
	}
}

func TestDecodeLegacyAndBareZstd(t *testing.T) {
	m := samples()[0].msg
	raw := mustMarshal(t, m)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	bareZstd := enc.EncodeAll(raw, nil)
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"legacy unframed protobuf", raw},
		{"bare zstd frame", bareZstd},
		{"bare zstd frame without content size", rawBlockFrame(raw, false)},
		{"0x01 frame without content size", append([]byte{wire.FrameZstd}, rawBlockFrame(raw, false)...)},
		{"0x01 frame with checksum and content size", append([]byte{wire.FrameZstd}, rawBlockFrame(raw, true)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wire.Decode(tc.payload, wire.DefaultMaxPayload)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !proto.Equal(got, m) {
				t.Fatal("decoded message differs")
			}
			body, err := wire.Unframe(tc.payload, wire.DefaultMaxPayload)
			if err != nil || !bytes.Equal(body, raw) {
				t.Fatalf("Unframe: %v (equal %v)", err, bytes.Equal(body, raw))
			}
		})
	}
}

// --- hand-made zstd frames ---------------------------------------------------

// frameHeader builds a zstd frame header: no single segment, a 128 KiB
// window, and a 4-byte Frame_Content_Size when fcs >= 0.
func frameHeader(fcs int64, checksum bool) []byte {
	b := []byte(wireZstdMagic)
	fhd := byte(0)
	if fcs >= 0 {
		fhd |= 2 << 6 // 4-byte FCS field
	}
	if checksum {
		fhd |= 1 << 2
	}
	b = append(b, fhd, 7<<3) // window 2^(10+7) = 128 KiB
	if fcs >= 0 {
		b = binary.LittleEndian.AppendUint32(b, uint32(fcs))
	}
	return b
}

const wireZstdMagic = "\x28\xb5\x2f\xfd"

func blockHeader(last bool, typ, size int) []byte {
	v := uint32(size)<<3 | uint32(typ)<<1
	if last {
		v |= 1
	}
	return []byte{byte(v), byte(v >> 8), byte(v >> 16)}
}

// rawBlockFrame wraps data in raw (stored) blocks; with sizeAndChecksum
// the frame declares its content size and ends with the xxhash checksum.
func rawBlockFrame(data []byte, sizeAndChecksum bool) []byte {
	fcs := int64(-1)
	if sizeAndChecksum {
		fcs = int64(len(data))
	}
	b := frameHeader(fcs, sizeAndChecksum)
	rest := data
	for first := true; first || len(rest) > 0; first = false {
		n := min(len(rest), 100<<10)
		b = append(b, blockHeader(n == len(rest), 0, n)...)
		b = append(b, rest[:n]...)
		rest = rest[n:]
	}
	if sizeAndChecksum {
		b = binary.LittleEndian.AppendUint32(b, uint32(xxhash.Sum64(data)))
	}
	return b
}

// bombBlock is a 10-byte compressed block that inflates to 128 KiB: one
// raw literal 'a', then one sequence in RLE mode (literal length code 1,
// offset code 0 = repeat offset 1 = distance 1, match length code 52 with
// 16 extra bits 0xFFFC = 131071), so 1 + 131071 = 131072 bytes of 'a'.
var bombBlock = []byte{
	0x08, 'a', // literals: raw, 1 byte
	0x01,             // 1 sequence
	0x54,             // LL, OF, ML tables all RLE mode
	0x01, 0x00, 0x34, // RLE symbols: LL code 1, OF code 0, ML code 52
	0xFC, 0xFF, 0x01, // bitstream: 16 ML extra bits, end marker
}

// compressedBombFrame is a frame of n bombBlocks (n × 128 KiB of output);
// fcs < 0 leaves the content size undeclared.
func compressedBombFrame(n int, fcs int64) []byte {
	b := frameHeader(fcs, false)
	for i := 0; i < n; i++ {
		b = append(b, blockHeader(i == n-1, 2, len(bombBlock))...)
		b = append(b, bombBlock...)
	}
	return b
}

// rleBombFrame is a frame of n RLE blocks of 128 KiB each.
func rleBombFrame(n int, fcs int64) []byte {
	b := frameHeader(fcs, false)
	for i := 0; i < n; i++ {
		b = append(b, blockHeader(i == n-1, 1, 128<<10)...)
		b = append(b, 'a')
	}
	return b
}

// allocDuring reports the bytes f allocated (runtime TotalAlloc delta).
func allocDuring(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHandMadeFramesInflate proves the hostile frames below are real: a
// short version of each decompresses to exactly n × 128 KiB of 'a'.
func TestHandMadeFramesInflate(t *testing.T) {
	const n = 5
	want := bytes.Repeat([]byte{'a'}, n*128<<10)
	for name, frame := range map[string][]byte{
		"compressed blocks":               compressedBombFrame(n, -1),
		"compressed blocks, declared":     compressedBombFrame(n, n*128<<10),
		"RLE blocks":                      rleBombFrame(n, -1),
		"RLE blocks, declared":            rleBombFrame(n, n*128<<10),
		"compressed blocks, 0x01 framing": append([]byte{wire.FrameZstd}, compressedBombFrame(n, -1)...),
	} {
		got, err := wire.Unframe(frame, 1<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: Unframe: %v (len %d, want %d)", name, err, len(got), len(want))
		}
	}
}

// minAllocDuring is the least of n allocDuring(f) measurements: TotalAlloc
// is process-wide, so anything else allocating during one (the runtime,
// the test framework) can only add to it.
func minAllocDuring(n int, f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range n {
		least = min(least, allocDuring(f))
	}
	return least
}

// TestHostileZstd (a): frames of at most 256 KB that inflate to 1 GiB are
// rejected within the cap: the decoder allocates at most the cap and
// hostileSlack (one 128 KiB block and the decoder's own state, ≈ 300 KB
// measured).
func TestHostileZstd(t *testing.T) {
	const limit = wire.DefaultMaxPayload
	const hostileSlack = 512 << 10
	const blocks = (1 << 30) / (128 << 10) // 8192 blocks of 128 KiB = 1 GiB
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"compressed blocks, no declared size", compressedBombFrame(blocks, -1)},
		{"compressed blocks, declared size = cap", compressedBombFrame(blocks, limit)},
		{"RLE blocks, no declared size", rleBombFrame(blocks, -1)},
		{"RLE blocks, declared size = cap", rleBombFrame(blocks, limit)},
	} {
		if len(tc.frame) > 256<<10 {
			t.Fatalf("%s: frame is %d bytes, want <= 256 KiB", tc.name, len(tc.frame))
		}
		for _, framing := range []string{"0x01", "bare"} {
			payload := tc.frame
			if framing == "0x01" {
				payload = append([]byte{wire.FrameZstd}, tc.frame...)
			}
			t.Run(tc.name+"/"+framing, func(t *testing.T) {
				var err, xerr error
				_, _ = wire.Decode(payload, limit) // warm the decoders up
				alloc := minAllocDuring(3, func() { _, err = wire.Decode(payload, limit) })
				xalloc := minAllocDuring(3, func() { _, xerr = wire.Extract(payload, limit) })
				if wire.ClassOf(err) != wire.ClassUnknownDecodeError || wire.ClassOf(xerr) != wire.ClassUnknownDecodeError {
					t.Fatalf("Decode: %v; Extract: %v; want unknown_decode_error", err, xerr)
				}
				if !errors.Is(err, wire.ErrContentTooLarge) && !errors.Is(err, wire.ErrZstdFrame) {
					t.Fatalf("Decode error %v is neither ErrContentTooLarge nor ErrZstdFrame", err)
				}
				t.Logf("%d-byte frame: Decode allocated %d bytes, Extract %d (cap %d)", len(tc.frame), alloc, xalloc, limit)
				if alloc > limit+hostileSlack || xalloc > limit+hostileSlack {
					t.Fatalf("allocated %d / %d bytes, want <= cap %d + %d", alloc, xalloc, limit, hostileSlack)
				}
			})
		}
	}
}

// TestDeclaredSizeRejectedEarly (b): a 1 KB frame declaring 1 GiB is
// refused from its header, before any decompression.
func TestDeclaredSizeRejectedEarly(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 1000)
	frame := frameHeader(1<<30, false)
	frame = append(frame, blockHeader(true, 0, len(data))...)
	frame = append(frame, data...)
	single := append([]byte(wireZstdMagic), 0xE0) // single segment, 8-byte FCS
	single = binary.LittleEndian.AppendUint64(single, 1<<30)
	single = append(single, blockHeader(true, 0, len(data))...)
	single = append(single, data...)
	for name, payload := range map[string][]byte{
		"0x01, 4-byte FCS":          append([]byte{wire.FrameZstd}, frame...),
		"bare, 4-byte FCS":          frame,
		"0x01, single segment FCS":  append([]byte{wire.FrameZstd}, single...),
		"0x01, declared 11 MiB FCS": append([]byte{wire.FrameZstd}, rawFrameDeclaring(11<<20, data)...),
	} {
		var err error
		_, _ = wire.Unframe(payload, wire.DefaultMaxPayload)
		alloc := allocDuring(func() { _, err = wire.Unframe(payload, wire.DefaultMaxPayload) })
		if !errors.Is(err, wire.ErrContentTooLarge) || wire.ClassOf(err) != wire.ClassUnknownDecodeError {
			t.Errorf("%s: %v, want ErrContentTooLarge (unknown_decode_error)", name, err)
		}
		if alloc > 16<<10 {
			t.Errorf("%s: allocated %d bytes before rejecting", name, alloc)
		}
	}
}

func rawFrameDeclaring(fcs int64, data []byte) []byte {
	f := frameHeader(fcs, false)
	f = append(f, blockHeader(true, 0, len(data))...)
	return append(f, data...)
}

// TestOversizedPayloadRejectedWithoutCopy (c): a 50 MB value against a
// 10 MB limit is refused without allocating anything like its size.
func TestOversizedPayloadRejectedWithoutCopy(t *testing.T) {
	payload := make([]byte, 50<<20)
	for _, first := range []byte{wire.FrameRaw, wire.FrameZstd, 0x28, 0x0A} {
		payload[0] = first
		if first == 0x28 {
			copy(payload, wireZstdMagic)
		}
		var errs [3]error
		alloc := allocDuring(func() {
			_, errs[0] = wire.Decode(payload, 10<<20)
			_, errs[1] = wire.Extract(payload, 10<<20)
			_, errs[2] = wire.Unframe(payload, 10<<20)
		})
		for i, err := range errs {
			if !errors.Is(err, wire.ErrPayloadTooLarge) || wire.ClassOf(err) != wire.ClassPayloadTooLarge {
				t.Errorf("first byte %#x, call %d: %v, want payload_too_large", first, i, err)
			}
		}
		if alloc > 16<<10 {
			t.Errorf("first byte %#x: allocated %d bytes rejecting a 50 MB payload", first, alloc)
		}
	}
}

func TestSizeLimitBoundaries(t *testing.T) {
	const limit = 100
	mk := func(first byte, n int) []byte {
		b := bytes.Repeat([]byte{0}, n)
		b[0] = first
		return b
	}
	for _, tc := range []struct {
		name     string
		payload  []byte
		tooLarge bool
	}{
		{"framed max+1", mk(wire.FrameRaw, limit+1), false},
		{"framed max+2", mk(wire.FrameRaw, limit+2), true},
		{"zstd framed max+2", mk(wire.FrameZstd, limit+2), true},
		{"unframed max", mk(0x0A, limit), false},
		{"unframed max+1", mk(0x0A, limit+1), true},
	} {
		_, err := wire.Unframe(tc.payload, limit)
		if got := wire.ClassOf(err) == wire.ClassPayloadTooLarge; got != tc.tooLarge {
			t.Errorf("%s: %v, want too large %v", tc.name, err, tc.tooLarge)
		}
	}
	// maxPayload <= 0 means DefaultMaxPayload.
	if _, err := wire.Unframe(mk(wire.FrameRaw, wire.DefaultMaxPayload+1), 0); err != nil {
		t.Errorf("default limit: %v", err)
	}
	if _, err := wire.Unframe(mk(wire.FrameRaw, wire.DefaultMaxPayload+2), -1); wire.ClassOf(err) != wire.ClassPayloadTooLarge {
		t.Errorf("default limit +1: %v", err)
	}
}

// garbageCases (d) maps hostile or broken values to the class Decode and
// Extract must both report ("" = success).
func garbageCases(t testing.TB) []struct {
	name    string
	payload []byte
	class   wire.ErrorClass
} {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	z := func(b []byte) []byte { return append([]byte{wire.FrameZstd}, enc.EncodeAll(b, nil)...) }
	valid := mustMarshal(t, samples()[1].msg)
	goodFrame := enc.EncodeAll(valid, nil)
	// An Event whose header thread_id is not UTF-8.
	badUTF8 := []byte{0x0A, 0x05, 0x0A, 0x03, 0x22, 0x01, 0xFF}
	return []struct {
		name    string
		payload []byte
		class   wire.ErrorClass
	}{
		{"empty", nil, wire.ClassUnknownDecodeError},
		{"framing byte only", []byte{0x00}, ""},
		{"valid raw", append([]byte{0x00}, valid...), ""},
		{"valid legacy", valid, ""},
		{"zstd framing byte only", []byte{0x01}, wire.ClassUnknownDecodeError},
		{"0x01 then text", []byte("\x01hello, world"), wire.ClassUnknownDecodeError},
		{"0x01 truncated frame", append([]byte{0x01}, goodFrame[:len(goodFrame)/2]...), wire.ClassUnknownDecodeError},
		{"0x01 frame with trailing bytes", append(append([]byte{0x01}, goodFrame...), 0, 0), wire.ClassUnknownDecodeError},
		{"0x01 frame with corrupt block", append([]byte{0x01}, corrupt(goodFrame)...), wire.ClassUnknownDecodeError},
		{"0x01 frame with dictionary id", []byte{0x01, 0x28, 0xB5, 0x2F, 0xFD, 0x21, 0x07, 0x05, 0x01, 0x00, 0x00, 0x00}, wire.ClassUnknownDecodeError},
		{"declared size smaller than raw blocks", append([]byte{0x01}, rawFrameDeclaring(10, valid)...), wire.ClassUnknownDecodeError},
		{"bare zstd magic only", []byte(wireZstdMagic), wire.ClassUnknownDecodeError},
		{"zstd of truncated protobuf", z(valid[:len(valid)-3]), wire.ClassBufferUnderflow},
		{"zstd of field number 0", z([]byte{0x00, 0x01}), wire.ClassInvalidProtobuf},
		{"truncated raw", append([]byte{0x00}, valid[:len(valid)-1]...), wire.ClassBufferUnderflow},
		{"truncated legacy", valid[:len(valid)/2], wire.ClassBufferUnderflow},
		{"length past end", []byte{0x00, 0x0A, 0x05, 0x01}, wire.ClassBufferUnderflow},
		{"truncated varint", []byte{0x00, 0x08}, wire.ClassBufferUnderflow},
		{"truncated tag", []byte{0x00, 0x80}, wire.ClassBufferUnderflow},
		{"nested length past end", []byte{0x00, 0x0A, 0x02, 0x0A, 0x05}, wire.ClassBufferUnderflow},
		{"packed fixed32 truncated", []byte{0x00, 0x1A, 0x04, 0x2A, 0x02, 0x01, 0x02}, wire.ClassBufferUnderflow},
		{"field number 0", []byte{0x00, 0x00}, wire.ClassInvalidProtobuf},
		{"legacy starting 0x02", []byte{0x02, 0x00}, wire.ClassInvalidProtobuf},
		{"reserved wire type", []byte{0x00, 0x0F}, wire.ClassInvalidProtobuf},
		{"stray end group", []byte{0x00, 0x0C}, wire.ClassInvalidProtobuf},
		{"field number too big", []byte{0x00, 0xF8, 0xFF, 0xFF, 0xFF, 0x1F, 0x00}, wire.ClassInvalidProtobuf},
		{"varint overflow", []byte{0x00, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, wire.ClassInvalidProtobuf},
		{"invalid UTF-8 thread id", append([]byte{0x00}, badUTF8...), wire.ClassInvalidProtobuf},
		{"wrong wire type is an unknown field", []byte{0x00, 0x08, 0x01}, ""},
		{"unknown fields", []byte{0x00, 0x50, 0x01, 0x5A, 0x01, 0xFF, 0x63, 0x08, 0x01, 0x64}, ""},
		{"unterminated unknown group", []byte{0x00, 0x63, 0x08, 0x01}, wire.ClassBufferUnderflow},
		{"text", []byte("hello world"), wire.ClassInvalidProtobuf},
		{"deep AttributeValue nesting", deepAttributes(20000), wire.ClassInvalidProtobuf},
		{"AttributeValue nesting within limit", deepAttributes(1000), ""},
	}
}

// corrupt flips bits in the middle of a frame's first block.
func corrupt(frame []byte) []byte {
	c := dataCopy(frame)
	for i := 12; i < len(c)-4 && i < 40; i++ {
		c[i] ^= 0x5A
	}
	return c
}

// deepAttributes nests AttributeValue.array_value n levels deep inside an
// Event attribute (2 message levels per step), past proto.Unmarshal's
// recursion limit for large n. It is built back to front in linear time.
func deepAttributes(n int) []byte {
	buf := make([]byte, 12*n+64)
	pos := len(buf)
	wrap := func(num int) { // prepend tag and length of everything after pos
		hdr := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(num)<<3|2), uint64(len(buf)-pos))
		pos -= len(hdr)
		copy(buf[pos:], hdr)
	}
	for i := 0; i < n; i++ {
		wrap(1) // AttributeArray.values
		wrap(6) // AttributeValue.array_value
	}
	wrap(2) // entry value
	pos -= 3
	copy(buf[pos:], "\x0a\x01k") // entry key "k"
	wrap(4)                      // Event.attributes
	wrap(1)                      // DashStreamMessage.event
	pos--
	buf[pos] = wire.FrameRaw
	return buf[pos:]
}

// TestDepthLimitAgreement: around proto.Unmarshal's recursion limit,
// Extract accepts exactly what Decode accepts.
func TestDepthLimitAgreement(t *testing.T) {
	var ok, failed int
	for n := 4990; n <= 5002; n++ {
		p := deepAttributes(n)
		_, derr := wire.Decode(p, wire.DefaultMaxPayload)
		_, xerr := wire.Extract(p, wire.DefaultMaxPayload)
		if wire.ClassOf(derr) != wire.ClassOf(xerr) {
			t.Errorf("depth %d: Decode %v, Extract %v", n, derr, xerr)
		}
		if derr == nil {
			ok++
		} else {
			failed++
		}
	}
	if ok == 0 || failed == 0 {
		t.Errorf("the range did not straddle the limit: %d ok, %d failed", ok, failed)
	}
}

func TestGarbageClassified(t *testing.T) {
	for _, tc := range garbageCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wire.Decode(tc.payload, wire.DefaultMaxPayload)
			_, xerr := wire.Extract(tc.payload, wire.DefaultMaxPayload)
			if got := wire.ClassOf(err); got != tc.class {
				t.Errorf("Decode: class %q (%v), want %q", got, err, tc.class)
			}
			if got := wire.ClassOf(xerr); got != tc.class {
				t.Errorf("Extract: class %q (%v), want %q", got, xerr, tc.class)
			}
			if err != nil {
				var de *wire.DecodeError
				if !errors.As(err, &de) || de.Unwrap() == nil || !strings.Contains(err.Error(), string(de.Class)) {
					t.Errorf("Decode error %v is not a *DecodeError naming its class", err)
				}
			}
		})
	}
}

func TestClassOf(t *testing.T) {
	if c := wire.ClassOf(nil); c != "" {
		t.Errorf("ClassOf(nil) = %q", c)
	}
	if c := wire.ClassOf(errors.New("x")); c != wire.ClassUnknownDecodeError {
		t.Errorf("ClassOf(plain error) = %q", c)
	}
	wrapped := fmt.Errorf("ingest: %w", &wire.DecodeError{Class: wire.ClassBufferUnderflow, Err: wire.ErrTruncated})
	if c := wire.ClassOf(wrapped); c != wire.ClassBufferUnderflow {
		t.Errorf("ClassOf(wrapped) = %q", c)
	}
	if !errors.Is(wrapped, wire.ErrTruncated) {
		t.Error("errors.Is through DecodeError failed")
	}
}

func dataCopy(b []byte) []byte { return append([]byte(nil), b...) }

// TestConcurrentCodec shares the pooled encoder, decoders and buffers
// between goroutines (run with -race).
func TestConcurrentCodec(t *testing.T) {
	ss := samples()
	bomb := compressedBombFrame(4, -1)
	errc := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			var err error
			defer func() { errc <- err }()
			for i := 0; i < 20 && err == nil; i++ {
				s := ss[(g+i)%len(ss)]
				var enc []byte
				if enc, err = wire.Encode(s.msg); err != nil {
					return
				}
				if _, err = wire.Decode(enc, 0); err != nil {
					return
				}
				if _, err = wire.Extract(enc, 0); err != nil {
					return
				}
				// Distinct caps exercise the capped-decoder cache.
				if _, err = wire.Unframe(bomb, 1<<20+(g%3)*1024); err != nil {
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
