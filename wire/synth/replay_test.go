package synth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
	"github.com/dashstream/dashstream/wire/synth"
)

// threadReplay is a consumer's view of one thread while replaying.
type threadReplay struct {
	next      uint64 // expected next sequence
	state     []byte // current state JSON (canonical)
	lastCkpt  []byte
	lastEvent pb.EventType // type of the last sequenced message if it was an Event
	lastSeqOK bool         // last sequenced message was an Event
	ended     bool         // NODE_ERROR seen: nothing may follow
	graphEnd  bool
	traced    bool
	messages  int
	nodes     int // graph nodes GRAPH_START announced
}

// replayer checks records the way a strict consumer would.
type replayer struct {
	partitions int
	threads    map[string]*threadReplay
	order      []string
	counts     map[string]int // outcome and feature counts
}

func newReplayer(partitions int) *replayer {
	return &replayer{partitions: partitions, threads: map[string]*threadReplay{}, counts: map[string]int{}}
}

func (rp *replayer) record(rec synth.Record) error {
	key := string(rec.Key)
	if key == "" {
		return fmt.Errorf("empty key")
	}
	if want := synth.Partition(rec.Key, rp.partitions); rec.Partition != want {
		return fmt.Errorf("thread %s: partition %d, want %d", key, rec.Partition, want)
	}
	if len(rec.Value) > 0 && rec.Value[0] == wire.FrameZstd {
		rp.counts["zstd"]++
	}
	m, err := wire.Decode(rec.Value, wire.DefaultMaxPayload)
	if err != nil {
		return fmt.Errorf("thread %s: decode: %w", key, err)
	}
	th := rp.threads[key]
	if th == nil {
		th = &threadReplay{next: 1}
		rp.threads[key] = th
		rp.order = append(rp.order, key)
	}
	if th.ended {
		return fmt.Errorf("thread %s: record after NODE_ERROR", key)
	}
	switch x := m.Message.(type) {
	case *pb.DashStreamMessage_EventBatch:
		rp.counts["batch"]++
		if err := checkHeader(x.EventBatch.Header, key, pb.MessageType_MESSAGE_TYPE_EVENT_BATCH, 0); err != nil {
			return err
		}
		if len(x.EventBatch.Events) == 0 {
			return fmt.Errorf("thread %s: empty EventBatch", key)
		}
		for _, ev := range x.EventBatch.Events {
			if err := rp.event(th, key, ev); err != nil {
				return err
			}
		}
		return nil
	case *pb.DashStreamMessage_Event:
		return rp.event(th, key, x.Event)
	case *pb.DashStreamMessage_ExecutionTrace:
		tr := x.ExecutionTrace
		if err := checkHeader(tr.Header, key, pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE, 0); err != nil {
			return err
		}
		if !th.graphEnd || !tr.Completed || tr.ThreadId != key || !bytes.Equal(tr.FinalState, th.state) {
			return fmt.Errorf("thread %s: ExecutionTrace inconsistent with the run (ended %v)", key, th.graphEnd)
		}
		th.traced = true
		rp.counts["trace"]++
		return nil
	}
	if th.graphEnd {
		return fmt.Errorf("thread %s: sequenced %T after GRAPH_END", key, m.Message)
	}
	th.lastSeqOK = false
	switch x := m.Message.(type) {
	case *pb.DashStreamMessage_StateDiff:
		if err := rp.seq(th, key, x.StateDiff.Header, pb.MessageType_MESSAGE_TYPE_STATE_DIFF); err != nil {
			return err
		}
		return rp.stateDiff(th, key, x.StateDiff)
	case *pb.DashStreamMessage_Checkpoint:
		c := x.Checkpoint
		if err := rp.seq(th, key, c.Header, pb.MessageType_MESSAGE_TYPE_CHECKPOINT); err != nil {
			return err
		}
		sum := sha256.Sum256(c.State)
		if !bytes.Equal(c.Checksum, sum[:]) || !bytes.Equal(c.State, th.state) || len(c.CheckpointId) != 16 || c.CompressionInfo != nil {
			return fmt.Errorf("thread %s seq %d: checkpoint does not match the state", key, c.Header.Sequence)
		}
		th.lastCkpt = c.CheckpointId
		rp.counts["checkpoint"]++
		return nil
	case *pb.DashStreamMessage_TokenChunk:
		rp.counts["token_chunk"]++
		return rp.seq(th, key, x.TokenChunk.Header, pb.MessageType_MESSAGE_TYPE_TOKEN_CHUNK)
	case *pb.DashStreamMessage_ToolExecution:
		rp.counts["tool_execution"]++
		return rp.seq(th, key, x.ToolExecution.Header, pb.MessageType_MESSAGE_TYPE_TOOL_EXECUTION)
	case *pb.DashStreamMessage_Metrics:
		rp.counts["metrics"]++
		return rp.seq(th, key, x.Metrics.Header, pb.MessageType_MESSAGE_TYPE_METRICS)
	case *pb.DashStreamMessage_Error:
		rp.counts["error"]++
		return rp.seq(th, key, x.Error.Header, pb.MessageType_MESSAGE_TYPE_ERROR)
	default:
		return fmt.Errorf("thread %s: unexpected message %T", key, m.Message)
	}
}

func checkHeader(h *pb.Header, key string, typ pb.MessageType, seq uint64) error {
	switch {
	case h == nil:
		return fmt.Errorf("thread %s: missing header", key)
	case h.ThreadId != key:
		return fmt.Errorf("header thread %q under key %q", h.ThreadId, key)
	case h.Type != typ:
		return fmt.Errorf("thread %s seq %d: header type %v, want %v", key, h.Sequence, h.Type, typ)
	case h.Sequence != seq:
		return fmt.Errorf("thread %s: sequence %d, want %d (%v)", key, h.Sequence, seq, typ)
	case h.SchemaVersion != 1 || h.TenantId == "" || len(h.MessageId) != 16 || h.TimestampUs <= 0:
		return fmt.Errorf("thread %s seq %d: bad header fields %v", key, h.Sequence, h)
	}
	return nil
}

func (rp *replayer) seq(th *threadReplay, key string, h *pb.Header, typ pb.MessageType) error {
	if err := checkHeader(h, key, typ, th.next); err != nil {
		return err
	}
	if th.next > 1 && th.state == nil {
		return fmt.Errorf("thread %s: run does not start with GRAPH_START", key)
	}
	th.next++
	th.messages++
	return nil
}

func (rp *replayer) event(th *threadReplay, key string, ev *pb.Event) error {
	if th.graphEnd || th.ended {
		return fmt.Errorf("thread %s: event %v after the run ended", key, ev.EventType)
	}
	if err := checkHeader(ev.Header, key, pb.MessageType_MESSAGE_TYPE_EVENT, th.next); err != nil {
		return err
	}
	if th.next == 1 {
		if ev.EventType != pb.EventType_EVENT_TYPE_GRAPH_START {
			return fmt.Errorf("thread %s: first message is %v, want GRAPH_START", key, ev.EventType)
		}
		schema := ev.Attributes["graph_schema_json"].GetStringValue()
		var sch struct {
			Name       string           `json:"name"`
			Nodes      []map[string]any `json:"nodes"`
			Edges      []map[string]any `json:"edges"`
			EntryPoint string           `json:"entry_point"`
		}
		if err := json.Unmarshal([]byte(schema), &sch); err != nil || len(sch.Nodes) == 0 || sch.EntryPoint == "" {
			return fmt.Errorf("thread %s: bad graph_schema_json (%v)", key, err)
		}
		// The UI finds the entry node from graph_entry_point.
		entry := ev.Attributes["graph_entry_point"].GetStringValue()
		if entry != sch.EntryPoint || !slices.ContainsFunc(sch.Nodes, func(n map[string]any) bool { return n["name"] == entry }) {
			return fmt.Errorf("thread %s: graph_entry_point %q, schema entry_point %q: not a node of the schema", key, entry, sch.EntryPoint)
		}
		if name := ev.Attributes["graph_name"].GetStringValue(); name != sch.Name {
			return fmt.Errorf("thread %s: graph_name %q, schema name %q", key, name, sch.Name)
		}
		th.nodes = len(sch.Nodes)
		if int64(len(sch.Nodes)) != ev.Attributes["graph_node_count"].GetIntValue() ||
			int64(len(sch.Edges)) != ev.Attributes["graph_edge_count"].GetIntValue() {
			return fmt.Errorf("thread %s: node/edge counts disagree with the schema", key)
		}
		if len(ev.Attributes["schema_id"].GetStringValue()) != 16 || ev.Attributes["graph_name"].GetStringValue() == "" {
			return fmt.Errorf("thread %s: missing schema_id or graph_name", key)
		}
		init := []byte(ev.Attributes["initial_state_json"].GetStringValue())
		if len(init) < 2 || init[0] != '{' {
			return fmt.Errorf("thread %s: initial_state_json %.40q is not a JSON object", key, init)
		}
		canon, err := wire.CanonicalizeJSON(init)
		if err != nil || !bytes.Equal(canon, init) {
			return fmt.Errorf("thread %s: initial_state_json is not canonical JSON (%v)", key, err)
		}
		th.state = init
	} else if th.state == nil {
		return fmt.Errorf("thread %s: run does not start with GRAPH_START", key)
	}
	th.next++
	th.messages++
	th.lastSeqOK = true
	th.lastEvent = ev.EventType
	switch ev.EventType {
	case pb.EventType_EVENT_TYPE_GRAPH_END:
		th.graphEnd = true
		rp.counts["graph_end"]++
	case pb.EventType_EVENT_TYPE_NODE_ERROR:
		if ev.Attributes["error"].GetStringValue() == "" {
			return fmt.Errorf("thread %s: NODE_ERROR without error attribute", key)
		}
		th.ended = true
		rp.counts["node_error"]++
	case pb.EventType_EVENT_TYPE_CONDITIONAL_BRANCH:
		rp.counts["conditional"]++
	case pb.EventType_EVENT_TYPE_PARALLEL_START:
		rp.counts["parallel"]++
	case pb.EventType_EVENT_TYPE_NODE_END:
		if ev.DurationUs <= 0 {
			return fmt.Errorf("thread %s: NODE_END without duration_us", key)
		}
	}
	return nil
}

func (rp *replayer) stateDiff(th *threadReplay, key string, sd *pb.StateDiff) error {
	if !bytes.Equal(sd.BaseCheckpointId, th.lastCkpt) {
		return fmt.Errorf("thread %s seq %d: base_checkpoint_id is not the last checkpoint", key, sd.Header.Sequence)
	}
	var next []byte
	patchSize := 0
	switch {
	case len(sd.FullState) > 0:
		if len(sd.Operations) > 0 {
			return fmt.Errorf("thread %s seq %d: both full_state and operations", key, sd.Header.Sequence)
		}
		next = sd.FullState
		rp.counts["full_state"]++
	case len(sd.Operations) > 0:
		patchJSON, size, err := opsJSON(sd.Operations)
		patchSize = size
		if err != nil {
			return fmt.Errorf("thread %s seq %d: %w", key, sd.Header.Sequence, err)
		}
		patch, err := jsonpatch.DecodePatch(patchJSON)
		if err != nil {
			return fmt.Errorf("thread %s seq %d: decode patch: %w", key, sd.Header.Sequence, err)
		}
		if next, err = patch.Apply(th.state); err != nil {
			return fmt.Errorf("thread %s seq %d: apply patch: %w", key, sd.Header.Sequence, err)
		}
		rp.counts["operations"]++
	default:
		rp.counts["empty_diff"]++
	}
	canon := th.state
	if next != nil {
		var err error
		if canon, err = wire.CanonicalizeJSON(next); err != nil {
			return fmt.Errorf("thread %s seq %d: %w", key, sd.Header.Sequence, err)
		}
	}
	if len(sd.Operations) > 0 && patchSize > len(canon)*11/10 {
		return fmt.Errorf("thread %s seq %d: patch of %d bytes sent for a %d-byte state (want full_state)",
			key, sd.Header.Sequence, patchSize, len(canon))
	}
	if len(sd.FullState) > 0 && !bytes.Equal(canon, sd.FullState) {
		return fmt.Errorf("thread %s seq %d: full_state is not canonical JSON", key, sd.Header.Sequence)
	}
	// state_hash = SHA-256 of the canonical JSON (wire.StateHash, without
	// canonicalising twice).
	if sum := sha256.Sum256(canon); !bytes.Equal(sum[:], sd.StateHash) {
		return fmt.Errorf("thread %s seq %d: state_hash mismatch", key, sd.Header.Sequence)
	}
	th.state = canon
	return nil
}

// opsJSON renders wire operations as an RFC 6902 patch document and
// returns its size the way the producer measures it.
func opsJSON(ops []*pb.DiffOperation) ([]byte, int, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(',')
		}
		if op.Encoding != pb.DiffOperation_VALUE_ENCODING_JSON {
			return nil, 0, fmt.Errorf("op %d: encoding %v", i, op.Encoding)
		}
		var name string
		switch op.Op {
		case pb.DiffOperation_OP_TYPE_ADD:
			name = "add"
		case pb.DiffOperation_OP_TYPE_REMOVE:
			name = "remove"
		case pb.DiffOperation_OP_TYPE_REPLACE:
			name = "replace"
		default:
			return nil, 0, fmt.Errorf("op %d: unexpected %v", i, op.Op)
		}
		fmt.Fprintf(&b, `{"op":%q,"path":%s`, name, strconv.Quote(op.Path))
		if name != "remove" {
			if len(op.Value) == 0 {
				return nil, 0, fmt.Errorf("op %d (%s %s): empty value", i, name, op.Path)
			}
			b.WriteString(`,"value":`)
			b.Write(op.Value)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.Bytes(), b.Len(), nil
}

// finish checks every thread ended properly and returns per-thread message
// counts.
func (rp *replayer) finish() (map[string]int, error) {
	out := map[string]int{}
	for _, key := range rp.order {
		th := rp.threads[key]
		if !th.graphEnd && !th.ended {
			last := "non-event"
			if th.lastSeqOK {
				last = th.lastEvent.String()
			}
			return nil, fmt.Errorf("thread %s: run ends with %s, want GRAPH_END or NODE_ERROR", key, last)
		}
		out[key] = th.messages
	}
	return out, nil
}
