package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wI2L/jsondiff"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// Producer-side constants mirrored from the reference callback.
const (
	schemaVersion      = 1
	batchTimeoutUs     = 100_000 // telemetry_batch_timeout_ms = 100
	maxStateBytes      = 96 << 10
	stateTypeName      = "serde_json::Value"
	defaultTenant      = "default"
	endNode            = "__end__"
	isoMicro           = "2006-01-02T15:04:05.000000Z07:00"
	failureProbability = 0.08
	leanProbability    = 0.3
	leanString         = 40 // lean states cut strings to this many bytes
	leanWindow         = 4  // and keep the last this many array elements
)

// item is one record of a run before encoding: the message and the
// synthetic time it leaves the producer, used to merge concurrent runs.
type item struct {
	msg *pb.DashStreamMessage
	ts  int64
}

// runOptions are the per-run knobs drawn from the run's RNG (or forced by
// the Config).
type runOptions struct {
	shape       string
	batchSize   int // 1 = no batching
	ckptEvery   int // 0 = no checkpoints
	failAt      int // fail at this node execution (1-based); 0 = never
	trace       bool
	quality     bool
	lean        bool // state keeps previews only (small states, many full_state diffs)
	minMessages int
	tenant      string
}

// run builds the complete record list of one graph execution. All
// randomness comes from its own RNG, so a run depends only on (seed, index,
// start time).
type run struct {
	idx   int
	t     textGen
	opt   runOptions
	g     *graphDef
	model string

	thread string
	start  int64 // synthetic µs of GRAPH_START
	clock  int64 // synthetic µs now
	seq    uint64

	items []item
	pos   int

	batch      []*pb.Event
	batchStart int64

	state     any            // last state announced on the wire
	stateJSON []byte         // its canonical JSON
	cur       map[string]any // working state the nodes mutate
	diffs     int
	lastCkpt  []byte

	nodesRun int
	failed   bool
	done     bool

	traceNodes  []*pb.NodeExecutionRecord
	traceErrors []*pb.ErrorRecord
	tokens      uint64

	err error

	// live mode bookkeeping (Generator.Next)
	liveStart int64
}

func newRun(idx int, seed int64, start int64, cfg *Config) *run {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(idx)*0x9e3779b97f4a7c15+1))
	t := textGen{r: rng}
	r := &run{idx: idx, t: t, start: start, clock: start}
	r.thread = t.uuid()
	r.model = t.pick(models)
	o := runOptions{shape: cfg.Shape, minMessages: cfg.MinMessages, tenant: cfg.Tenant}
	if o.shape == ShapeMixed {
		o.shape = pickWeighted(t, []string{ShapeReact, ShapePipeline, ShapeRouter, ShapeLarge}, []int{35, 25, 25, 15})
	}
	switch {
	case cfg.BatchSize == 0 && t.chance(0.25):
		o.batchSize = t.between(4, 24)
	case cfg.BatchSize > 1:
		o.batchSize = cfg.BatchSize
	default:
		o.batchSize = 1
	}
	switch {
	case cfg.CheckpointInterval == 0 && t.chance(0.25):
		o.ckptEvery = t.between(2, 6)
	case cfg.CheckpointInterval > 0:
		o.ckptEvery = cfg.CheckpointInterval
	}
	if t.chance(failureProbability) {
		o.failAt = t.between(1, 7)
	}
	o.lean = t.chance(leanProbability)
	o.trace = t.chance(0.5)
	o.quality = t.chance(0.4)
	r.opt = o
	return r
}

func pickWeighted(t textGen, names []string, weights []int) string {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := t.r.IntN(total)
	for i, w := range weights {
		if n < w {
			return names[i]
		}
		n -= w
	}
	return names[len(names)-1]
}

// generate runs the shape's script and fills r.items.
func (r *run) generate() error {
	switch r.opt.shape {
	case ShapeReact:
		r.runReact()
	case ShapePipeline:
		r.runPipeline()
	case ShapeRouter:
		r.runRouter()
	case ShapeLarge:
		r.runLarge()
	default:
		return fmt.Errorf("synth: unknown shape %q", r.opt.shape)
	}
	r.flushBatch(r.clock)
	if r.err != nil {
		return fmt.Errorf("synth: run %d (%s): %w", r.idx, r.opt.shape, r.err)
	}
	return nil
}

// needMore reports whether the run is still short of --min-messages.
func (r *run) needMore() bool { return int(r.seq) < r.opt.minMessages }

// tick advances the synthetic clock by d.
func (r *run) tick(d time.Duration) { r.clock += d.Microseconds() }

// tickMs advances the clock by a random number of milliseconds in [lo, hi].
func (r *run) tickMs(lo, hi int) { r.clock += int64(r.t.between(lo, hi)) * 1000 }

func (r *run) header(typ pb.MessageType, seq uint64) *pb.Header {
	return &pb.Header{
		MessageId:     r.t.uuidBytes(),
		TimestampUs:   r.clock,
		TenantId:      r.opt.tenant,
		ThreadId:      r.thread,
		Sequence:      seq,
		Type:          typ,
		SchemaVersion: schemaVersion,
	}
}

func (r *run) push(m *pb.DashStreamMessage, ts int64) {
	r.items = append(r.items, item{msg: m, ts: ts})
}

// event emits one Event with the next sequence, through the batcher when
// batching is on.
func (r *run) event(typ pb.EventType, node string, attrs map[string]*pb.AttributeValue, durUs int64) {
	if r.opt.batchSize > 1 && len(r.batch) > 0 && r.clock > r.batchStart+batchTimeoutUs {
		r.flushBatch(r.batchStart + batchTimeoutUs)
	}
	r.seq++
	ev := &pb.Event{
		Header:     r.header(pb.MessageType_MESSAGE_TYPE_EVENT, r.seq),
		EventType:  typ,
		NodeId:     node,
		Attributes: attrs,
		DurationUs: durUs,
	}
	if r.opt.batchSize <= 1 {
		r.push(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: ev}}, r.clock)
		return
	}
	if len(r.batch) == 0 {
		r.batchStart = r.clock
	}
	r.batch = append(r.batch, ev)
	if len(r.batch) >= r.opt.batchSize {
		r.flushBatch(r.clock)
	}
}

// flushBatch sends the pending events as one EventBatch (sequence 0).
func (r *run) flushBatch(ts int64) {
	if len(r.batch) == 0 {
		return
	}
	saved := r.clock
	r.clock = ts
	h := r.header(pb.MessageType_MESSAGE_TYPE_EVENT_BATCH, 0)
	r.clock = saved
	r.push(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_EventBatch{
		EventBatch: &pb.EventBatch{Header: h, Events: r.batch},
	}}, ts)
	r.batch = nil
}

// sequenced emits a non-Event message with the next sequence; a pending
// batch goes first so sequences stay in wire order.
func (r *run) sequenced(typ pb.MessageType, wrap func(h *pb.Header) *pb.DashStreamMessage) {
	r.flushBatch(r.clock)
	r.seq++
	r.push(wrap(r.header(typ, r.seq)), r.clock)
}

// unsequenced emits a message with sequence 0 (ExecutionTrace).
func (r *run) unsequenced(typ pb.MessageType, wrap func(h *pb.Header) *pb.DashStreamMessage) {
	r.flushBatch(r.clock)
	r.push(wrap(r.header(typ, 0)), r.clock)
}

func (r *run) fail(err error) {
	if r.err == nil && err != nil {
		r.err = err
	}
}

// --- attributes -----------------------------------------------------------

func strAttr(s string) *pb.AttributeValue {
	return &pb.AttributeValue{Value: &pb.AttributeValue_StringValue{StringValue: s}}
}

func intAttr(i int64) *pb.AttributeValue {
	return &pb.AttributeValue{Value: &pb.AttributeValue_IntValue{IntValue: i}}
}

func floatAttr(f float64) *pb.AttributeValue {
	return &pb.AttributeValue{Value: &pb.AttributeValue_FloatValue{FloatValue: f}}
}

// --- graph lifecycle ------------------------------------------------------

// graphStart announces the graph and the initial state.
func (r *run) graphStart(g *graphDef, initial map[string]any) {
	r.g = g
	if r.opt.lean {
		initial = leanify(initial).(map[string]any)
	}
	js, err := wire.CanonicalJSON(initial)
	if err != nil {
		r.fail(fmt.Errorf("initial state: %w", err))
		return
	}
	r.state = initial
	r.stateJSON = js
	r.cur = deepCopy(initial).(map[string]any)
	schema, err := g.schemaJSON(r.clock)
	if err != nil {
		r.fail(err)
		return
	}
	manifest, err := g.manifestJSON()
	if err != nil {
		r.fail(err)
		return
	}
	attrs := map[string]*pb.AttributeValue{
		"graph_manifest":     strAttr(string(manifest)),
		"graph_schema_json":  strAttr(string(schema)),
		"schema_id":          strAttr(g.schemaID()),
		"graph_entry_point":  strAttr(g.entry),
		"graph_name":         strAttr(g.name),
		"graph_node_count":   intAttr(int64(len(g.nodes))),
		"graph_edge_count":   intAttr(int64(len(g.edges))),
		"initial_state_json": strAttr(string(js)),
	}
	r.event(pb.EventType_EVENT_TYPE_GRAPH_START, "", attrs, 0)
	r.tickMs(1, 15)
}

// graphEnd closes a successful run: final diff, optional checkpoint,
// GRAPH_END, then the optional unsequenced ExecutionTrace.
func (r *run) graphEnd() {
	if r.done {
		return
	}
	if r.opt.quality {
		r.qualityMetrics()
	}
	if r.t.chance(0.4) {
		r.cur["status"] = "completed"
	}
	r.tickMs(1, 10)
	r.stateDiff()
	r.event(pb.EventType_EVENT_TYPE_GRAPH_END, "", nil, r.clock-r.start)
	r.done = true
	if r.opt.trace {
		r.executionTrace()
	}
}

// edge emits the traversal out of from (the target is not transmitted).
func (r *run) edge(from string, conditional bool) {
	if r.done {
		return
	}
	typ := pb.EventType_EVENT_TYPE_EDGE_TRAVERSAL
	if conditional {
		typ = pb.EventType_EVENT_TYPE_CONDITIONAL_BRANCH
	}
	r.tickMs(0, 2)
	r.event(typ, from, nil, 0)
}

// node executes one graph node: NODE_START, the body's telemetry and state
// changes, then StateDiff, optional Checkpoint and NODE_END — or NODE_ERROR
// when the run's failure plan says so. It reports whether the run goes on.
func (r *run) node(name string, body func(n *nodeRun)) bool {
	if r.done || r.err != nil {
		return false
	}
	gn := r.g.node(name)
	begin := r.clock
	r.event(pb.EventType_EVENT_TYPE_NODE_START, name, nil, 0)
	r.tickMs(1, 20)
	n := &nodeRun{r: r, name: name, kind: gn.typ}
	body(n)
	r.nodesRun++
	rec := &pb.NodeExecutionRecord{
		Node:             name,
		StartedAt:        iso(begin),
		PromptTokens:     n.prompt,
		CompletionTokens: n.completion,
		TotalTokens:      n.prompt + n.completion,
		Metadata:         map[string]string{"node_type": gn.typ},
	}
	if r.opt.failAt > 0 && r.nodesRun >= r.opt.failAt && !r.needMore() {
		r.tickMs(5, 400)
		msg := r.failureText(gn)
		r.event(pb.EventType_EVENT_TYPE_NODE_ERROR, name, map[string]*pb.AttributeValue{"error": strAttr(msg)}, 0)
		r.flushBatch(r.clock)
		r.failed, r.done = true, true
		return false
	}
	r.tickMs(1, 8)
	r.cur["step"] = addNum(r.cur["step"], 1)
	r.cur["last_node"] = name
	if r.opt.lean {
		l, _ := r.cur["recent_nodes"].([]any)
		r.cur["recent_nodes"] = append(l, map[string]any{"node": name, "step": r.cur["step"]})
	}
	r.stateDiff()
	dur := r.clock - begin
	r.event(pb.EventType_EVENT_TYPE_NODE_END, name, nil, dur)
	rec.DurationMs = uint64(dur / 1000)
	rec.Succeeded = true
	rec.EndedAt = iso(r.clock)
	if n.output != "" {
		if b, err := wire.CanonicalJSON(n.output); err == nil {
			rec.Output = b
		}
	}
	r.traceNodes = append(r.traceNodes, rec)
	r.tokens += rec.TotalTokens
	return true
}

// step runs a node followed by its direct edge.
func (r *run) step(name string, body func(n *nodeRun)) bool {
	if !r.node(name, body) {
		return false
	}
	r.edge(name, false)
	return true
}

// parallel runs branch bodies between PARALLEL_START and PARALLEL_END. The
// branches emit no node events; their state changes show up in the next
// node's diff.
func (r *run) parallel(names []string, body func(n *nodeRun)) {
	if r.done || r.err != nil {
		return
	}
	begin := r.clock
	r.event(pb.EventType_EVENT_TYPE_PARALLEL_START, strings.Join(names, ","), nil, 0)
	for _, name := range names {
		n := &nodeRun{r: r, name: name, kind: r.g.node(name).typ}
		body(n)
		r.tokens += n.prompt + n.completion
	}
	r.tickMs(1, 5)
	r.event(pb.EventType_EVENT_TYPE_PARALLEL_END, strings.Join(names, ","), nil, r.clock-begin)
}

func (r *run) failureText(gn gnode) string {
	switch gn.typ {
	case "llm":
		return r.t.pick([]string{
			"LLM request failed: 429 Too Many Requests (rate limit exceeded for model " + r.model + "), giving up after 3 retries",
			fmt.Sprintf("LLM request failed: context length exceeded (%d tokens > 128000)", r.t.between(128001, 190000)),
			"LLM response could not be parsed: expected tool call arguments to be valid JSON: EOF while parsing an object at line 1 column 212",
		})
	case "tool":
		return r.t.pick([]string{
			"tool execution failed: upstream returned HTTP 503 Service Unavailable after 3 attempts",
			fmt.Sprintf("tool execution failed: timeout after %ds waiting for %s", r.t.between(10, 60), r.t.url()),
			"tool execution failed: permission denied for resource " + r.t.hexID(6),
		})
	default:
		return r.t.pick([]string{
			"node panicked: index out of bounds: the len is 0 but the index is 0",
			"state validation failed: missing field `" + r.t.pick(nouns) + "` in node output",
			"serialization error: invalid type: null, expected a string at line 1 column " + strconv.Itoa(r.t.between(10, 900)),
		})
	}
}

// --- state ----------------------------------------------------------------

// stateDiff emits the StateDiff from the last announced state to r.cur,
// choosing full_state or JSON-patch ops by the §3.5 size rule, and the
// Checkpoint that may follow it.
func (r *run) stateDiff() {
	if r.err != nil {
		return
	}
	if r.opt.lean {
		r.cur = leanify(r.cur).(map[string]any)
	}
	newJSON, err := wire.CanonicalJSON(r.cur)
	if err == nil && len(newJSON) > maxStateBytes && r.trimState(len(newJSON)) {
		newJSON, err = wire.CanonicalJSON(r.cur)
	}
	if err != nil {
		r.fail(fmt.Errorf("state: %w", err))
		return
	}
	patch, err := jsondiff.CompareWithoutMarshal(r.state, any(r.cur))
	if err != nil {
		r.fail(fmt.Errorf("diff: %w", err))
		return
	}
	ops, patchLen, err := r.toOps(patch)
	if err != nil {
		r.fail(err)
		return
	}
	sum := sha256.Sum256(newJSON) // newJSON is canonical: this is the state hash
	sd := &pb.StateDiff{BaseCheckpointId: r.lastCkpt, StateHash: sum[:]}
	if len(ops) > 0 {
		if patchLen > len(newJSON)*11/10 {
			sd.FullState = newJSON
		} else {
			sd.Operations = ops
		}
	}
	r.sequenced(pb.MessageType_MESSAGE_TYPE_STATE_DIFF, func(h *pb.Header) *pb.DashStreamMessage {
		sd.Header = h
		return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_StateDiff{StateDiff: sd}}
	})
	r.state = r.cur
	r.stateJSON = newJSON
	r.cur = deepCopy(r.cur).(map[string]any)
	r.diffs++
	if r.opt.ckptEvery > 0 && r.diffs%r.opt.ckptEvery == 0 {
		id := r.t.uuidBytes()
		r.tickMs(0, 2)
		r.sequenced(pb.MessageType_MESSAGE_TYPE_CHECKPOINT, func(h *pb.Header) *pb.DashStreamMessage {
			return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Checkpoint{Checkpoint: &pb.Checkpoint{
				Header:       h,
				CheckpointId: id,
				State:        newJSON,
				StateType:    stateTypeName,
				Checksum:     sum[:],
			}}}
		})
		r.lastCkpt = id
	}
}

// toOps converts a jsondiff patch into wire operations and measures the
// patch as the reference does ([{"op":…,"path":…,"value":…},…]). Appends
// ("/-") are rewritten to explicit indices like the reference producer's.
func (r *run) toOps(p jsondiff.Patch) ([]*pb.DiffOperation, int, error) {
	if len(p) == 0 {
		return nil, 0, nil
	}
	next := map[string]int{}
	ops := make([]*pb.DiffOperation, 0, len(p))
	size := 2 + len(p) - 1 // brackets and commas
	for _, o := range p {
		path := o.Path
		if strings.HasSuffix(path, "/-") {
			parent := path[:len(path)-2]
			i, ok := next[parent]
			if !ok {
				arr, _ := lookupPointer(r.state, parent).([]any)
				i = len(arr)
			}
			next[parent] = i + 1
			path = parent + "/" + strconv.Itoa(i)
		}
		op := &pb.DiffOperation{Path: path, Encoding: pb.DiffOperation_VALUE_ENCODING_JSON}
		switch o.Type {
		case jsondiff.OperationAdd:
			op.Op = pb.DiffOperation_OP_TYPE_ADD
		case jsondiff.OperationRemove:
			op.Op = pb.DiffOperation_OP_TYPE_REMOVE
		case jsondiff.OperationReplace:
			op.Op = pb.DiffOperation_OP_TYPE_REPLACE
		default:
			return nil, 0, fmt.Errorf("diff: unexpected op %q", o.Type)
		}
		pathJSON, err := wire.CanonicalJSON(path)
		if err != nil {
			return nil, 0, fmt.Errorf("diff path: %w", err)
		}
		size += len(`{"op":"","path":}`) + len(o.Type) + len(pathJSON)
		if op.Op != pb.DiffOperation_OP_TYPE_REMOVE {
			v, err := wire.CanonicalJSON(o.Value)
			if err != nil {
				return nil, 0, fmt.Errorf("diff value at %s: %w", path, err)
			}
			op.Value = v
			size += len(`,"value":`) + len(v)
		}
		ops = append(ops, op)
	}
	return ops, size, nil
}

// trimState brings a working state of size bytes back under maxStateBytes
// by dropping the oldest conversation turns, as a context-window manager
// would. It reports whether it changed anything.
func (r *run) trimState(size int) bool {
	msgs, ok := r.cur["messages"].([]any)
	if !ok || len(msgs) < 4 {
		return false
	}
	excess := size - maxStateBytes*3/4
	cut := 1 // keep the system prompt
	for cut < len(msgs)-2 && excess > 0 {
		b, _ := json.Marshal(msgs[cut])
		excess -= len(b)
		cut++
	}
	kept := append([]any{msgs[0]}, msgs[cut:]...)
	r.cur["messages"] = kept
	n, _ := r.cur["trimmed_messages"].(json.Number)
	prev, _ := strconv.Atoi(string(n))
	r.cur["trimmed_messages"] = num(prev + cut - 1)
	return cut > 1
}

// lookupPointer resolves an RFC 6901 pointer in a JSON tree (nil if absent).
func lookupPointer(v any, ptr string) any {
	if ptr == "" {
		return v
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			v = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// leanify returns a copy of a state as a lean graph keeps it: previews of
// long strings, the last few elements of arrays, no embeddings or inline
// attachments (the content lives in tool results and token streams).
func leanify(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(c))
		for k, x := range c {
			if k == "embedding" || k == "data_base64" {
				continue
			}
			m[k] = leanify(x)
		}
		return m
	case []any:
		if len(c) > leanWindow {
			c = c[len(c)-leanWindow:]
		}
		s := make([]any, len(c))
		for i, x := range c {
			s[i] = leanify(x)
		}
		return s
	case string:
		if len(c) <= leanString {
			return c
		}
		cut := leanString - 3
		for cut > 0 && !utf8.RuneStart(c[cut]) {
			cut--
		}
		return c[:cut] + "…"
	default:
		return v
	}
}

// deepCopy copies a JSON tree made of maps, slices and scalars.
func deepCopy(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(c))
		for k, x := range c {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(c))
		for i, x := range c {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}

func iso(us int64) string { return time.UnixMicro(us).UTC().Format(isoMicro) }

// --- summaries ------------------------------------------------------------

func (r *run) qualityMetrics() {
	r.tickMs(5, 60)
	gauge := func(unit string) *pb.MetricValue {
		return &pb.MetricValue{
			Value: &pb.MetricValue_FloatValue{FloatValue: float64(r.t.between(550, 1000)) / 1000},
			Unit:  unit, Type: pb.MetricValue_METRIC_TYPE_GAUGE,
		}
	}
	m := &pb.Metrics{
		Scope:   "quality",
		ScopeId: r.thread,
		Metrics: map[string]*pb.MetricValue{
			"accuracy":      gauge("ratio"),
			"relevance":     gauge("ratio"),
			"completeness":  gauge("ratio"),
			"quality_score": gauge("ratio"),
			"passed": {Value: &pb.MetricValue_BoolValue{BoolValue: r.t.chance(0.85)}, Unit: "bool",
				Type: pb.MetricValue_METRIC_TYPE_GAUGE},
		},
		Tags: map[string]string{"thread_id": r.thread, "tenant_id": r.opt.tenant},
	}
	r.sequenced(pb.MessageType_MESSAGE_TYPE_METRICS, func(h *pb.Header) *pb.DashStreamMessage {
		m.Header = h
		return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Metrics{Metrics: m}}
	})
}

func (r *run) executionTrace() {
	r.tickMs(1, 5)
	meta := map[string][]byte{}
	for k, v := range map[string]any{
		"graph_name": r.g.name,
		"model":      r.model,
		"tenant_id":  r.opt.tenant,
		"diffs":      num(r.diffs),
	} {
		b, err := wire.CanonicalJSON(v)
		if err != nil {
			r.fail(err)
			return
		}
		meta[k] = b
	}
	tr := &pb.ExecutionTrace{
		ThreadId:        r.thread,
		ExecutionId:     r.t.uuid(),
		NodesExecuted:   r.traceNodes,
		TotalDurationMs: uint64((r.clock - r.start) / 1000),
		TotalTokens:     r.tokens,
		Errors:          r.traceErrors,
		Completed:       true,
		StartedAt:       iso(r.start),
		EndedAt:         iso(r.clock),
		FinalState:      bytes.Clone(r.stateJSON),
		Metadata:        meta,
	}
	r.unsequenced(pb.MessageType_MESSAGE_TYPE_EXECUTION_TRACE, func(h *pb.Header) *pb.DashStreamMessage {
		tr.Header = h
		return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_ExecutionTrace{ExecutionTrace: tr}}
	})
}
