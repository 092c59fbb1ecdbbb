package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// kindMessages returns one hand-made message of every kind the reference
// producers send, for threads run-a (most), run-b and run-c (the batch).
func kindMessages(at time.Time) []*pb.DashStreamMessage {
	seq := uint64(0)
	hdr := func(thread string, typ pb.MessageType, sequenced bool) *pb.Header {
		h := &pb.Header{
			MessageId:     []byte(fmt.Sprintf("msg-%016d", seq)),
			TimestampUs:   at.Add(time.Duration(seq) * time.Millisecond).UnixMicro(),
			TenantId:      "tenant-1",
			ThreadId:      thread,
			Type:          typ,
			SchemaVersion: 1,
		}
		if sequenced {
			seq++
			h.Sequence = seq
		}
		return h
	}
	str := func(s string) *pb.AttributeValue {
		return &pb.AttributeValue{Value: &pb.AttributeValue_StringValue{StringValue: s}}
	}
	num := func(n int64) *pb.AttributeValue {
		return &pb.AttributeValue{Value: &pb.AttributeValue_IntValue{IntValue: n}}
	}
	event := func(thread string, typ pb.EventType, node string, attrs map[string]*pb.AttributeValue) *pb.Event {
		return &pb.Event{Header: hdr(thread, pb.MessageType_MESSAGE_TYPE_EVENT, true), EventType: typ, NodeId: node, Attributes: attrs}
	}
	wrapEvent := func(e *pb.Event) *pb.DashStreamMessage {
		return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: e}}
	}
	bigState := []byte(`{"messages":[` + strings.Repeat(`{"role":"assistant","content":"a fairly long and repetitive answer"},`, 60) + `{}]}`)

	graphStart := event("run-a", pb.EventType_EVENT_TYPE_GRAPH_START, "", map[string]*pb.AttributeValue{
		"graph_name":         str("research_pipeline"),
		"graph_entry_point":  str("planner"),
		"graph_node_count":   num(3),
		"schema_id":          str("0123456789abcdef"),
		"initial_state_json": str(`{"query":"why is the sky blue"}`),
		"graph_manifest": {Value: &pb.AttributeValue_MapValue{MapValue: &pb.AttributeMap{Values: map[string]*pb.AttributeValue{
			"nodes": {Value: &pb.AttributeValue_ArrayValue{ArrayValue: &pb.AttributeArray{Values: []*pb.AttributeValue{str("planner"), str("writer")}}}},
			"ok":    {Value: &pb.AttributeValue_BoolValue{BoolValue: true}},
			"w":     {Value: &pb.AttributeValue_FloatValue{FloatValue: 0.5}},
			"raw":   {Value: &pb.AttributeValue_BytesValue{BytesValue: []byte{0, 1, 2, 0xff}}},
		}}}},
	})
	nodeStart := event("run-a", pb.EventType_EVENT_TYPE_NODE_START, "planner", nil)
	nodeError := event("run-a", pb.EventType_EVENT_TYPE_NODE_ERROR, "planner", map[string]*pb.AttributeValue{"error": str("tool timed out")})

	batchHdr := hdr("", pb.MessageType_MESSAGE_TYPE_EVENT_BATCH, false)
	evB := event("run-b", pb.EventType_EVENT_TYPE_GRAPH_START, "", map[string]*pb.AttributeValue{"graph_name": str("router")})
	evC := event("run-c", pb.EventType_EVENT_TYPE_NODE_START, "route", nil)
	evB2 := event("run-b", pb.EventType_EVENT_TYPE_NODE_END, "route", nil)
	evB2.DurationUs = 1500

	msgs := []*pb.DashStreamMessage{
		wrapEvent(graphStart),
		wrapEvent(nodeStart),
		{Message: &pb.DashStreamMessage_StateDiff{StateDiff: &pb.StateDiff{
			Header:    hdr("run-a", pb.MessageType_MESSAGE_TYPE_STATE_DIFF, true),
			FullState: []byte(`{"query":"why is the sky blue","plan":[]}`),
			StateHash: bytes.Repeat([]byte{0xab}, 32),
		}}},
		{Message: &pb.DashStreamMessage_StateDiff{StateDiff: &pb.StateDiff{
			Header:           hdr("run-a", pb.MessageType_MESSAGE_TYPE_STATE_DIFF, true),
			BaseCheckpointId: []byte("ckpt-1"),
			Operations: []*pb.DiffOperation{
				{Op: pb.DiffOperation_OP_TYPE_ADD, Path: "/plan/0", Value: []byte(`"look up"`)},
				{Op: pb.DiffOperation_OP_TYPE_MOVE, Path: "/b", From: "/a"},
				{Op: pb.DiffOperation_OP_TYPE_REMOVE, Path: "/tmp"},
			},
			StateHash: bytes.Repeat([]byte{0xcd}, 32),
		}}},
		{Message: &pb.DashStreamMessage_TokenChunk{TokenChunk: &pb.TokenChunk{
			Header:       hdr("run-a", pb.MessageType_MESSAGE_TYPE_TOKEN_CHUNK, true),
			RequestId:    "req-1",
			Text:         "Rayleigh ",
			TokenIds:     []uint32{101, 202},
			Logprobs:     []float32{-0.1, -2.5},
			ChunkIndex:   3,
			IsFinal:      true,
			FinishReason: pb.TokenChunk_FINISH_REASON_STOP,
			Model:        "m-1",
			Stats:        &pb.TokenStats{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12},
		}}},
		{Message: &pb.DashStreamMessage_ToolExecution{ToolExecution: &pb.ToolExecution{
			Header:     hdr("run-a", pb.MessageType_MESSAGE_TYPE_TOOL_EXECUTION, true),
			CallId:     "call-1",
			ToolName:   "search",
			Stage:      pb.ToolExecution_EXECUTION_STAGE_FAILED,
			Arguments:  []byte(`{"q":"sky"}`),
			Error:      "timeout",
			DurationUs: 30_000_000,
			RetryCount: 2,
		}}},
		wrapEvent(nodeError),
		{Message: &pb.DashStreamMessage_Checkpoint{Checkpoint: &pb.Checkpoint{
			Header:       hdr("run-a", pb.MessageType_MESSAGE_TYPE_CHECKPOINT, true),
			CheckpointId: []byte("ckpt-2"),
			State:        bigState, // large enough to be zstd-framed
			StateType:    "json",
			Metadata:     map[string]string{"k": "v"},
		}}},
		{Message: &pb.DashStreamMessage_Metrics{Metrics: &pb.Metrics{
			Header:  hdr("run-a", pb.MessageType_MESSAGE_TYPE_METRICS, true),
			Scope:   "node",
			ScopeId: "planner",
			Metrics: map[string]*pb.MetricValue{
				"latency_ms": {Value: &pb.MetricValue_FloatValue{FloatValue: 12.5}, Unit: "ms", Type: pb.MetricValue_METRIC_TYPE_GAUGE},
				"calls":      {Value: &pb.MetricValue_IntValue{IntValue: 3}, Type: pb.MetricValue_METRIC_TYPE_COUNTER},
			},
			Tags: map[string]string{"env": "test"},
		}}},
		{Message: &pb.DashStreamMessage_Error{Error: &pb.Error{
			Header:      hdr("run-a", pb.MessageType_MESSAGE_TYPE_ERROR, true),
			ErrorCode:   "E_TOOL",
			Message:     "tool failed",
			StackTrace:  "at search()",
			Context:     map[string]string{"tool": "search"},
			Severity:    pb.Error_SEVERITY_ERROR,
			Suggestions: []string{"retry"},
		}}},
		{Message: &pb.DashStreamMessage_EventBatch{EventBatch: &pb.EventBatch{
			Header: batchHdr,
			Events: []*pb.Event{evB, evC, evB2},
		}}},
		wrapEvent(event("run-a", pb.EventType_EVENT_TYPE_GRAPH_END, "", nil)),
		{Message: &pb.DashStreamMessage_ExecutionTrace{ExecutionTrace: &pb.ExecutionTrace{
			Header:      hdr("run-a", pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE, false),
			ThreadId:    "run-a",
			ExecutionId: "exec-1",
			NodesExecuted: []*pb.NodeExecutionRecord{
				{Node: "planner", DurationMs: 30, Succeeded: false, StartedAt: "2026-01-01T00:00:00Z"},
			},
			Errors:    []*pb.ErrorRecord{{Node: "planner", Message: "tool timed out", Recovered: true}},
			Completed: true,
		}}},
		// A second sequence-0 trace of the same thread.
		{Message: &pb.DashStreamMessage_ExecutionTrace{ExecutionTrace: &pb.ExecutionTrace{
			Header:      hdr("run-a", pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE, false),
			ThreadId:    "run-a",
			ExecutionId: "exec-2",
			Completed:   true,
		}}},
	}
	return msgs
}

// sameIndex compares indexes, treating nil and empty slices alike.
func sameIndex(a, b wire.Index) bool {
	return a.Type == b.Type && a.TimestampUs == b.TimestampUs && a.MultiThread == b.MultiThread &&
		slices.Equal(a.Threads, b.Threads) && slices.Equal(a.Events, b.Events)
}

func testBytesIdentical(t *testing.T, h harness) {
	at := base()
	var recs []store.Record
	next := map[int32]int64{}
	for i, m := range kindMessages(at) {
		payload, err := wire.Encode(m)
		if err != nil {
			t.Fatalf("wire.Encode(message %d): %v", i, err)
		}
		idx, err := wire.Extract(payload, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatalf("wire.Extract(message %d): %v", i, err)
		}
		p := int32(i % 3)
		recs = append(recs, store.Record{Partition: p, Offset: next[p], Time: at, Payload: payload, Index: idx})
		next[p] += 2 // leave holes
	}
	framings := map[byte]bool{}
	for _, r := range recs {
		framings[r.Payload[0]] = true
	}
	if !framings[wire.FrameRaw] || !framings[wire.FrameZstd] {
		t.Errorf("corpus should hold both framings, has %v", framings)
	}

	s, _ := h.fresh(t, store.Retention{})
	mustAppend(t, s, batch(recs[:7]...))
	mustAppend(t, s, batch(recs[7:]...))

	for p := range int32(3) {
		want := ofPartition(recs, p)
		got := readPartition(t, s, p, -1, store.Limits{MaxRecords: 2})
		sameRecords(t, fmt.Sprintf("partition %d", p), got, want)
		for i := range got {
			if !sameIndex(got[i].Index, want[i].Index) {
				t.Errorf("partition %d offset %d: index %+v, want %+v", p, got[i].Offset, got[i].Index, want[i].Index)
			}
		}
	}
	// A payload-only read returns the same records and bytes.
	for p := range int32(3) {
		want := ofPartition(recs, p)
		got := readPartition(t, s, p, -1, store.Limits{MaxRecords: 2, PayloadOnly: true})
		if len(got) != len(want) {
			t.Fatalf("partition %d payload-only: %d records, want %d", p, len(got), len(want))
		}
		for i := range got {
			if got[i].Partition != p || got[i].Offset != want[i].Offset || !bytes.Equal(got[i].Payload, want[i].Payload) {
				t.Fatalf("partition %d payload-only record %d: %d/%d differs", p, i, got[i].Partition, got[i].Offset)
			}
		}
	}
	// Records marked Extracted (as ingest marks them) read back the same.
	xs, _ := h.fresh(t, store.Retention{})
	xrecs := slices.Clone(recs)
	for i := range xrecs {
		xrecs[i].Extracted = true
	}
	mustAppend(t, xs, batch(xrecs...))
	for p := range int32(3) {
		want := ofPartition(recs, p)
		got := readPartition(t, xs, p, -1, store.Limits{})
		sameRecords(t, fmt.Sprintf("extracted partition %d", p), got, want)
		for i := range got {
			if !sameIndex(got[i].Index, want[i].Index) {
				t.Errorf("extracted partition %d offset %d: index %+v, want %+v", p, got[i].Offset, got[i].Index, want[i].Index)
			}
		}
	}
	// Every record is found under every thread it touches, bytes intact.
	byThread := map[string][]store.Record{}
	for _, r := range recs {
		for _, ts := range r.Index.Threads {
			byThread[ts.ThreadID] = append(byThread[ts.ThreadID], r)
		}
	}
	for _, id := range []string{"run-a", "run-b", "run-c"} {
		if len(byThread[id]) == 0 {
			t.Fatalf("wire.Extract found no record of thread %s", id)
		}
	}
	for id, want := range byThread {
		got := readThread(t, s, id, store.ThreadKey{}, store.Limits{MaxRecords: 3})
		if len(got) != len(want) {
			t.Fatalf("thread %s: %d records, want %d", id, len(got), len(want))
		}
		for _, w := range want {
			i := slices.IndexFunc(got, func(g store.ThreadRecord) bool {
				return g.Partition == w.Partition && g.Offset == w.Offset
			})
			if i < 0 {
				t.Fatalf("thread %s: record %d/%d missing", id, w.Partition, w.Offset)
			}
			sameRecord(t, "thread "+id, got[i].Record, w)
		}
	}
	// The run summaries come from the real index too.
	if r, ok, err := s.Run(ctx, "run-a"); err != nil || !ok || r.GraphName != "research_pipeline" ||
		r.Status != store.RunCompleted || r.Messages != int64(len(byThread["run-a"])) {
		t.Errorf("run-a summary: %+v, %v, %v", r, ok, err)
	}
	if r, ok, err := s.Run(ctx, "run-b"); err != nil || !ok || r.GraphName != "router" || r.Status != store.RunRunning || r.Messages != 1 {
		t.Errorf("run-b summary: %+v, %v, %v", r, ok, err)
	}
}
