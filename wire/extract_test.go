package wire_test

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
	"github.com/dashstream/dashstream/wire/synth"
)

// refIndex computes the Index from a fully unmarshalled message with the
// generated accessors: the specification Extract must agree with.
func refIndex(m *pb.DashStreamMessage) wire.Index {
	var ix wire.Index
	r := m.ProtoReflect()
	fd := r.WhichOneof(r.Descriptor().Oneofs().Get(0))
	if fd == nil {
		return ix
	}
	ix.Type = pb.MessageType(fd.Number())
	type hasHeader interface{ GetHeader() *pb.Header }
	h := r.Get(fd).Message().Interface().(hasHeader).GetHeader()
	ix.TimestampUs, ix.SchemaVersion = h.GetTimestampUs(), h.GetSchemaVersion()
	addThread := func(h *pb.Header) string {
		id := wire.BoundThreadID(h.GetThreadId())
		if id == "" {
			return ""
		}
		for i := range ix.Threads {
			if ix.Threads[i].ThreadID == id {
				ix.Threads[i].Seq = max(ix.Threads[i].Seq, h.GetSequence())
				return id
			}
		}
		ix.Threads = append(ix.Threads, wire.ThreadSeq{ThreadID: id, Seq: h.GetSequence()})
		return id
	}
	addEvent := func(e *pb.Event) {
		id := addThread(e.GetHeader())
		re := wire.RunEvent{ThreadID: id, Seq: e.GetHeader().GetSequence(), TimestampUs: e.GetHeader().GetTimestampUs(),
			EventType: e.GetEventType(), NodeID: e.GetNodeId()}
		if re.TimestampUs == 0 && m.GetEventBatch() != nil { // wire-protocol §3.4
			re.TimestampUs = h.GetTimestampUs()
		}
		switch e.GetEventType() {
		case pb.EventType_EVENT_TYPE_GRAPH_START:
			re.GraphName = e.GetAttributes()["graph_name"].GetStringValue()
		case pb.EventType_EVENT_TYPE_GRAPH_ERROR, pb.EventType_EVENT_TYPE_NODE_ERROR:
			re.ErrorText = e.GetAttributes()["error"].GetStringValue()
		case pb.EventType_EVENT_TYPE_GRAPH_END:
		default:
			return
		}
		ix.Events = append(ix.Events, re)
	}
	switch {
	case m.GetEvent() != nil:
		addEvent(m.GetEvent())
	case m.GetEventBatch() != nil:
		for _, e := range m.GetEventBatch().GetEvents() {
			addEvent(e)
		}
		ix.MultiThread = len(ix.Threads) > 1
	default:
		addThread(h)
	}
	return ix
}

func diffIndex(got, want wire.Index) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("\n got %+v\nwant %+v", got, want)
}

func TestExtractMatchesUnmarshal(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			enc := mustEncode(t, s.msg)
			got, err := wire.Extract(enc, wire.DefaultMaxPayload)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			dec, err := wire.Decode(enc, wire.DefaultMaxPayload)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffIndex(got, refIndex(dec)); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// TestExtractExpectedValues spells out what the samples must yield, so a
// bug shared by refIndex and Extract cannot hide.
func TestExtractExpectedValues(t *testing.T) {
	byName := map[string]*pb.DashStreamMessage{}
	for _, s := range samples() {
		byName[s.name] = s.msg
	}
	ts := func(seq int64) int64 { return baseTs + seq*1000 }
	for name, want := range map[string]wire.Index{
		"event_graph_start": {Type: pb.MessageType_MESSAGE_TYPE_EVENT, TimestampUs: ts(1), SchemaVersion: 1,
			Threads: []wire.ThreadSeq{{ThreadID: "run-1", Seq: 1}},
			Events:  []wire.RunEvent{{ThreadID: "run-1", Seq: 1, TimestampUs: ts(1), EventType: pb.EventType_EVENT_TYPE_GRAPH_START, GraphName: "research_agent"}}},
		"event_node_error": {Type: pb.MessageType_MESSAGE_TYPE_EVENT, TimestampUs: ts(9), SchemaVersion: 1,
			Threads: []wire.ThreadSeq{{ThreadID: "run-1", Seq: 9}},
			Events: []wire.RunEvent{{ThreadID: "run-1", Seq: 9, TimestampUs: ts(9), EventType: pb.EventType_EVENT_TYPE_NODE_ERROR,
				ErrorText: "tool timed out after 30s", NodeID: "writer"}}},
		"event_batch_2_threads": {Type: pb.MessageType_MESSAGE_TYPE_EVENT_BATCH, TimestampUs: ts(0), SchemaVersion: 1, MultiThread: true,
			Threads: []wire.ThreadSeq{{ThreadID: "run-a", Seq: 5}, {ThreadID: "run-b", Seq: 8}},
			Events: []wire.RunEvent{
				{ThreadID: "run-b", Seq: 7, TimestampUs: ts(7), EventType: pb.EventType_EVENT_TYPE_GRAPH_START, GraphName: "router"},
				{ThreadID: "run-b", Seq: 8, TimestampUs: ts(8), EventType: pb.EventType_EVENT_TYPE_NODE_ERROR, ErrorText: "rate limited", NodeID: "search"},
				{ThreadID: "run-a", Seq: 5, TimestampUs: ts(5), EventType: pb.EventType_EVENT_TYPE_GRAPH_END},
			}},
		"token_chunk": {Type: pb.MessageType_MESSAGE_TYPE_TOKEN_CHUNK, TimestampUs: ts(10), SchemaVersion: 1,
			Threads: []wire.ThreadSeq{{ThreadID: "run-1", Seq: 10}}},
		"execution_trace": {Type: pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE, TimestampUs: ts(0), SchemaVersion: 1,
			Threads: []wire.ThreadSeq{{ThreadID: "run-1", Seq: 0}}},
		"no_header": {Type: pb.MessageType_MESSAGE_TYPE_METRICS},
		"empty":     {},
	} {
		got, err := wire.Extract(mustEncode(t, byName[name]), wire.DefaultMaxPayload)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := diffIndex(got, want); d != "" {
			t.Errorf("%s:%s", name, d)
		}
	}
}

// TestExtractBatchInheritsTimestamp: inner events of an EventBatch without
// a timestamp take the batch header's (wire-protocol §3.4), also when the
// header is encoded after the events or merged from a later occurrence.
func TestExtractBatchInheritsTimestamp(t *testing.T) {
	const batchTs, ownTs = baseTs + 500, baseTs + 7000
	start := event("run-a", 1, pb.EventType_EVENT_TYPE_GRAPH_START, "", map[string]*pb.AttributeValue{"graph_name": strAttr("g")})
	start.Header.TimestampUs = 0
	nodeErr := event("run-a", 2, pb.EventType_EVENT_TYPE_NODE_ERROR, "n", map[string]*pb.AttributeValue{"error": strAttr("e")})
	nodeErr.Header.TimestampUs = ownTs
	end := &pb.Event{EventType: pb.EventType_EVENT_TYPE_GRAPH_END} // no header at all
	hdr := header("run-a", 0, pb.MessageType_MESSAGE_TYPE_EVENT_BATCH)
	hdr.TimestampUs = batchTs
	wrap := func(b *pb.EventBatch) *pb.DashStreamMessage {
		return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_EventBatch{EventBatch: b}}
	}
	want := []wire.RunEvent{
		{ThreadID: "run-a", Seq: 1, TimestampUs: batchTs, EventType: pb.EventType_EVENT_TYPE_GRAPH_START, GraphName: "g"},
		{ThreadID: "run-a", Seq: 2, TimestampUs: ownTs, EventType: pb.EventType_EVENT_TYPE_NODE_ERROR, ErrorText: "e", NodeID: "n"},
		{TimestampUs: batchTs, EventType: pb.EventType_EVENT_TYPE_GRAPH_END},
	}
	events := []*pb.Event{start, nodeErr, end}
	headerFirst := mustMarshal(t, wrap(&pb.EventBatch{Header: hdr, Events: events}))
	// The same fields, header last: two occurrences of the oneof arm merge.
	headerLast := append(mustMarshal(t, wrap(&pb.EventBatch{Events: events})), mustMarshal(t, wrap(&pb.EventBatch{Header: hdr}))...)
	// A later header's timestamp replaces an earlier one's.
	early := proto.Clone(hdr).(*pb.Header)
	early.TimestampUs = baseTs
	merged := append(mustMarshal(t, wrap(&pb.EventBatch{Header: early, Events: events})), mustMarshal(t, wrap(&pb.EventBatch{Header: hdr}))...)
	for name, raw := range map[string][]byte{"header first": headerFirst, "header last": headerLast, "header merged": merged} {
		got, err := wire.ExtractProto(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got.Events, want) || got.TimestampUs != batchTs {
			t.Errorf("%s: timestamp %d, events %+v; want %d, %+v", name, got.TimestampUs, got.Events, int64(batchTs), want)
		}
		dec := new(pb.DashStreamMessage)
		if err := proto.Unmarshal(raw, dec); err != nil {
			t.Fatal(err)
		}
		if d := diffIndex(got, refIndex(dec)); d != "" {
			t.Errorf("%s: Extract and refIndex differ:%s", name, d)
		}
	}
	// A lone Event keeps its own zero timestamp: there is no batch.
	got, err := wire.ExtractProto(mustMarshal(t, &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: start}}))
	if err != nil || len(got.Events) != 1 || got.Events[0].TimestampUs != 0 {
		t.Errorf("lone event without timestamp: %+v, %v", got.Events, err)
	}
}

// TestExtractMergeSemantics: protobuf concatenation is a merge, so
// Unmarshal(a‖b) exercises the oneof "last arm wins" and "repeated message
// fields merge" rules; Extract must follow them on every pair of samples.
func TestExtractMergeSemantics(t *testing.T) {
	ss := samples()
	for _, a := range ss {
		for _, b := range ss {
			raw := append(mustMarshal(t, a.msg), mustMarshal(t, b.msg)...)
			want := new(pb.DashStreamMessage)
			if err := proto.Unmarshal(raw, want); err != nil {
				t.Fatal(err)
			}
			got, err := wire.ExtractProto(raw)
			if err != nil {
				t.Fatalf("%s‖%s: %v", a.name, b.name, err)
			}
			if d := diffIndex(got, refIndex(want)); d != "" {
				t.Errorf("%s‖%s:%s", a.name, b.name, d)
			}
		}
	}
}

func TestExtractThreadIDs(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	for _, tc := range []struct{ raw, want string }{
		{"  spaced\t", "spaced"},
		{"   ", ""},
		{long, wire.BoundThreadID(long)},
	} {
		m := &pb.DashStreamMessage{Message: &pb.DashStreamMessage_TokenChunk{TokenChunk: &pb.TokenChunk{
			Header: &pb.Header{ThreadId: tc.raw, Sequence: 3}}}}
		got, err := wire.Extract(mustEncode(t, m), 0)
		if err != nil {
			t.Fatal(err)
		}
		var want []wire.ThreadSeq
		if tc.want != "" {
			want = []wire.ThreadSeq{{ThreadID: tc.want, Seq: 3}}
		}
		if !reflect.DeepEqual(got.Threads, want) {
			t.Errorf("thread %q: got %+v, want %+v", tc.raw, got.Threads, want)
		}
		if len(tc.want) > wire.MaxThreadIDBytes {
			t.Errorf("bounded id is %d bytes", len(tc.want))
		}
	}
}

// TestExtractAgreesWithDecodeOnGarbage: same success/failure and class.
func TestExtractAgreesWithDecodeOnGarbage(t *testing.T) {
	for _, tc := range garbageCases(t) {
		_, derr := wire.Decode(tc.payload, wire.DefaultMaxPayload)
		_, xerr := wire.Extract(tc.payload, wire.DefaultMaxPayload)
		if wire.ClassOf(derr) != wire.ClassOf(xerr) {
			t.Errorf("%s: Decode %v, Extract %v", tc.name, derr, xerr)
		}
	}
}

var corpusOnce = sync.OnceValues(func() ([]synth.Record, error) { return synth.Corpus(1, 500) })

// corpus returns the D9 benchmark corpus (synth.Corpus(1, 500)).
func corpus(tb testing.TB) []synth.Record {
	tb.Helper()
	recs, err := corpusOnce()
	if err != nil {
		tb.Fatalf("synth.Corpus: %v", err)
	}
	return recs
}

// TestExtractCorpus checks Extract against Unmarshal on every record of the
// D9 corpus.
func TestExtractCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("corpus generation in -short mode")
	}
	recs := corpus(t)
	kinds := map[pb.MessageType]int{}
	for i, r := range recs {
		got, err := wire.Extract(r.Value, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatalf("record %d: Extract: %v", i, err)
		}
		m, err := wire.Decode(r.Value, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatalf("record %d: Decode: %v", i, err)
		}
		if d := diffIndex(got, refIndex(m)); d != "" {
			t.Fatalf("record %d:%s", i, d)
		}
		kinds[got.Type]++
	}
	t.Logf("%d records, by type %v", len(recs), kinds)
}
