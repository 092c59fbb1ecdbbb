package hub

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
)

// Close codes (DECISIONS D4). Browsers can only see application codes
// 4000–4999 from script, so every application error uses one of these.
const (
	CloseResumeWithCursor = 4000 // slow client: reconnect and resume with your cursor
	CloseEpochChanged     = 4001 // history changed: re-read /version, drop cursors
	CloseControlTooLarge  = 4002 // inbound control frame over 1 MiB
	CloseResumeLimits     = 4003 // resume over the partition or thread limit
	CloseReplayTimeout    = 4004 // a resume did not finish within REPLAY_TIMEOUT_SECS
)

// Error codes of the `error` frame.
const (
	ErrCodeControlTooLarge   = "CONTROL_FRAME_TOO_LARGE"
	ErrCodeReplayTimeout     = "REPLAY_TIMEOUT"
	ErrCodeTooManyPartitions = "RESUME_TOO_MANY_PARTITIONS"
	ErrCodeTooManyThreads    = "RESUME_TOO_MANY_THREADS"
	ErrCodeResetRefused      = "CURSOR_RESET_FORBIDDEN"
	ErrCodeResetFailed       = "CURSOR_RESET_FAILED"
)

// BatchFrameType is the first byte of a D6 batched binary frame. It is
// never a DashStream framing byte (0x00, 0x01).
const BatchFrameType = 0x02

type offsetMap map[string]string

func offsetsJSON(m map[int32]int64) offsetMap {
	out := make(offsetMap, len(m))
	for p, o := range m {
		out[strconv.Itoa(int(p))] = strconv.FormatInt(o, 10)
	}
	return out
}

type errorFrame struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type gapFrame struct {
	Type      string `json:"type"`
	Partition int32  `json:"partition"`
	Count     int64  `json:"count"`
	Reason    string `json:"reason"`
	From      string `json:"from"`
	To        string `json:"to"`
	Severity  string `json:"severity"`
	Message   string `json:"message"`
}

type staleFrame struct {
	Type      string `json:"type"`
	Partition *int32 `json:"partition,omitempty"`
	Requested string `json:"requested,omitempty"`
	Oldest    string `json:"oldest,omitempty"`
	Reason    string `json:"reason"`
	Epoch     string `json:"epoch,omitempty"`
	Message   string `json:"message"`
}

type replayCompleteFrame struct {
	Type                   string    `json:"type"`
	Mode                   string    `json:"mode"`
	TotalReplayed          int64     `json:"totalReplayed"`
	LastOffsetsByPartition offsetMap `json:"lastOffsetsByPartition,omitzero"` // {} in partition modes, absent in thread mode
	Capped                 *bool     `json:"capped,omitempty"`
	Epoch                  string    `json:"epoch"`
}

type resetCompleteFrame struct {
	Type                     string    `json:"type"`
	LatestOffsetsByPartition offsetMap `json:"latestOffsetsByPartition"`
	BufferCleared            bool      `json:"bufferCleared"`
	Truncated                bool      `json:"truncated"`
	TotalPartitions          int       `json:"totalPartitions"`
	Epoch                    string    `json:"epoch"`
	Message                  string    `json:"message"`
}

type disconnectFrame struct {
	Type          string `json:"type"`
	Reason        string `json:"reason"`
	LagInWindow   int64  `json:"lag_in_window"`
	CumulativeLag int64  `json:"cumulative_lag"`
	Threshold     int64  `json:"threshold"`
	WindowSecs    int64  `json:"window_secs"`
	Message       string `json:"message"`
}

var pongFrame = []byte(`{"type":"pong"}`)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed frame structs are marshalled
	}
	return b
}

func gapSeverity(n int64) string {
	switch {
	case n >= 100:
		return "critical"
	case n >= 10:
		return "warning"
	default:
		return "info"
	}
}

// appendBatchRecord appends one record in the D6 layout.
func appendBatchRecord(dst []byte, e *Entry) []byte {
	dst = append(dst, e.BatchHead...)
	return append(dst, e.Payload...)
}

// batchHeader returns the D6 frame header for n records.
func batchHeader(dst []byte, n int) []byte {
	dst = append(dst, BatchFrameType)
	return binary.AppendUvarint(dst, uint64(n))
}
