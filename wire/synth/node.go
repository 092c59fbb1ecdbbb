package synth

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// nodeRun is the context a node body gets: the working state and the
// intra-node telemetry emitters (NodeContext in the reference), which all
// share the thread's sequence counter.
type nodeRun struct {
	r          *run
	name       string
	kind       string
	prompt     uint64
	completion uint64
	output     string // recorded in the ExecutionTrace
}

// st is the working state the node mutates.
func (n *nodeRun) st() map[string]any { return n.r.cur }

// list returns the array under key (creating it).
func (n *nodeRun) list(key string) []any {
	l, _ := n.r.cur[key].([]any)
	return l
}

// appendTo appends v to the array under key.
func (n *nodeRun) appendTo(key string, v ...any) { n.r.cur[key] = append(n.list(key), v...) }

// work advances the clock as if the node computed for lo..hi ms.
func (n *nodeRun) work(lo, hi int) { n.r.tickMs(lo, hi) }

// thinking emits NODE_THINKING.
func (n *nodeRun) thinking(thought string, step int) {
	n.r.event(pb.EventType_EVENT_TYPE_NODE_THINKING, n.name, map[string]*pb.AttributeValue{
		"thought": strAttr(thought), "step": intAttr(int64(step)),
	}, 0)
}

// progress emits NODE_PROGRESS with percent in 0..1.
func (n *nodeRun) progress(msg string, percent float64) {
	n.r.event(pb.EventType_EVENT_TYPE_NODE_PROGRESS, n.name, map[string]*pb.AttributeValue{
		"message": strAttr(msg), "percent": floatAttr(percent),
	}, 0)
}

// substep emits NODE_SUBSTEP.
func (n *nodeRun) substep(name, status string) {
	n.r.event(pb.EventType_EVENT_TYPE_NODE_SUBSTEP, n.name, map[string]*pb.AttributeValue{
		"substep_name": strAttr(name), "status": strAttr(status),
	}, 0)
}

// metric emits a node-scoped gauge.
func (n *nodeRun) metric(name string, v float64, unit string) {
	m := &pb.Metrics{
		Scope:   "node",
		ScopeId: n.name,
		Metrics: map[string]*pb.MetricValue{name: {
			Value: &pb.MetricValue_FloatValue{FloatValue: v}, Unit: unit, Type: pb.MetricValue_METRIC_TYPE_GAUGE,
		}},
		Tags: map[string]string{"node_type": n.kind},
	}
	n.r.sequenced(pb.MessageType_MESSAGE_TYPE_METRICS, func(h *pb.Header) *pb.DashStreamMessage {
		m.Header = h
		return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Metrics{Metrics: m}}
	})
}

// llm streams text as TokenChunks of a few words each, the last one final
// with finish reason and token stats, and returns text.
func (n *nodeRun) llm(text string, finish pb.TokenChunk_FinishReason) string {
	r := n.r
	if r.done || r.err != nil {
		return text
	}
	t := r.t
	words := strings.SplitAfter(text, " ")
	per := t.between(2, 6)
	requestID := "chatcmpl-" + t.hexID(12)
	prompt := uint64(len(r.stateJSON)/4 + t.between(150, 900))
	completion := uint64(len(words)*4/3 + 1)
	withLogprobs := t.chance(0.3)
	r.tickMs(180, 1500) // time to first token
	chunks := (len(words) + per - 1) / per
	for i := 0; i < chunks; i++ {
		lo, hi := i*per, min((i+1)*per, len(words))
		tc := &pb.TokenChunk{
			RequestId:  requestID,
			Text:       strings.Join(words[lo:hi], ""),
			ChunkIndex: uint32(i),
			Model:      r.model,
		}
		for range words[lo:hi] {
			tc.TokenIds = append(tc.TokenIds, uint32(t.between(100, 100_255)))
			if withLogprobs {
				tc.Logprobs = append(tc.Logprobs, -float32(t.between(1, 4000))/1000)
			}
		}
		if i == chunks-1 {
			tc.IsFinal = true
			tc.FinishReason = finish
			tc.Stats = &pb.TokenStats{PromptTokens: uint32(prompt), CompletionTokens: uint32(completion),
				TotalTokens: uint32(prompt + completion)}
		}
		r.sequenced(pb.MessageType_MESSAGE_TYPE_TOKEN_CHUNK, func(h *pb.Header) *pb.DashStreamMessage {
			tc.Header = h
			return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_TokenChunk{TokenChunk: tc}}
		})
		r.tickMs(12, 90)
	}
	n.prompt += prompt
	n.completion += completion
	if t.chance(0.35) {
		n.metric("tokens_per_second", float64(t.between(180, 1200))/10, "tokens/s")
	}
	usage, _ := r.cur["usage"].(map[string]any)
	if usage != nil {
		usage["prompt_tokens"] = addNum(usage["prompt_tokens"], int(prompt))
		usage["completion_tokens"] = addNum(usage["completion_tokens"], int(completion))
	}
	if len(text) > 600 {
		n.output = text[:600]
	} else {
		n.output = text
	}
	return text
}

// addNum adds d to a JSON integer (a missing value counts as 0).
func addNum(v any, d int) json.Number {
	s, _ := v.(json.Number)
	cur, _ := strconv.Atoi(string(s))
	return num(cur + d)
}

// tool emits a ToolExecution lifecycle (STARTED, possibly FAILED + a
// warning Error + RETRYING, then COMPLETED) with JSON arguments and result.
// latency is the nominal call time.
func (n *nodeRun) tool(name string, args map[string]any, result any, latency time.Duration) {
	r := n.r
	if r.done || r.err != nil {
		return
	}
	t := r.t
	argJSON, err := wire.CanonicalJSON(args)
	if err != nil {
		r.fail(fmt.Errorf("tool args: %w", err))
		return
	}
	resJSON, err := wire.CanonicalJSON(result)
	if err != nil {
		r.fail(fmt.Errorf("tool result: %w", err))
		return
	}
	callID := "call_" + t.hexID(12)
	toolMsg := func(stage pb.ToolExecution_ExecutionStage, mut func(te *pb.ToolExecution)) {
		te := &pb.ToolExecution{CallId: callID, ToolName: name, Stage: stage}
		mut(te)
		r.sequenced(pb.MessageType_MESSAGE_TYPE_TOOL_EXECUTION, func(h *pb.Header) *pb.DashStreamMessage {
			te.Header = h
			return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_ToolExecution{ToolExecution: te}}
		})
	}
	toolMsg(pb.ToolExecution_EXECUTION_STAGE_STARTED, func(te *pb.ToolExecution) { te.Arguments = argJSON })
	begin := r.clock
	retries := uint32(0)
	if t.chance(0.07) {
		r.clock += latency.Microseconds() / 2
		errText := t.pick([]string{
			"connection reset by peer",
			"HTTP 502 Bad Gateway from upstream",
			"deadline exceeded after 5s",
			"HTTP 429 Too Many Requests (retry-after: 1)",
		})
		toolMsg(pb.ToolExecution_EXECUTION_STAGE_FAILED, func(te *pb.ToolExecution) {
			te.Error = errText
			te.DurationUs = r.clock - begin
		})
		e := &pb.Error{
			ErrorCode: "TOOL_TRANSIENT_FAILURE",
			Message:   fmt.Sprintf("tool %s failed (%s); retrying", name, errText),
			Severity:  pb.Error_SEVERITY_WARNING,
			Context:   map[string]string{"tool_name": name, "call_id": callID, "node": n.name},
		}
		r.sequenced(pb.MessageType_MESSAGE_TYPE_ERROR, func(h *pb.Header) *pb.DashStreamMessage {
			e.Header = h
			return &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Error{Error: e}}
		})
		r.traceErrors = append(r.traceErrors, &pb.ErrorRecord{
			Node: n.name, Message: e.Message, ErrorCode: e.ErrorCode, Timestamp: iso(r.clock), Recovered: true,
		})
		r.tickMs(100, 800)
		retries = 1
		toolMsg(pb.ToolExecution_EXECUTION_STAGE_RETRYING, func(te *pb.ToolExecution) { te.RetryCount = retries })
	}
	r.clock += latency.Microseconds()
	toolMsg(pb.ToolExecution_EXECUTION_STAGE_COMPLETED, func(te *pb.ToolExecution) {
		te.Result = resJSON
		te.DurationUs = r.clock - begin
		te.RetryCount = retries
	})
}

// ms returns a random duration in [lo, hi] milliseconds.
func (n *nodeRun) ms(lo, hi int) time.Duration {
	return time.Duration(n.r.t.between(lo, hi)) * time.Millisecond
}
