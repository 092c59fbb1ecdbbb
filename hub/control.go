package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/dashstream/dashstream/wire"
)

// Limits on a resume request (reference §3.6.1).
const (
	MaxResumePartitions = 1024
	MaxResumeThreads    = 10000
	maxLoggedString     = 128
)

// Resume sources and modes.
const (
	FromLatest   = "latest"
	FromCursor   = "cursor"
	FromEarliest = "earliest"

	ModePartition = "partition"
	ModeThread    = "thread"
)

// control is one inbound control frame.
type control struct {
	Type   string
	Resume *resumeRequest
	Token  string // cursor_reset "token"
}

// resumeRequest is a validated `resume` frame.
type resumeRequest struct {
	From    string
	Mode    string
	Epoch   string
	Offsets map[int32]int64   // partition → last applied offset
	Threads map[string]uint64 // bounded thread id → last applied sequence
	Skipped []string          // why entries were skipped, for the log
}

// limitError is a resume over MaxResumePartitions or MaxResumeThreads.
type limitError struct{ Code, Message string }

func (e *limitError) Error() string { return e.Message }

var errNotObject = errors.New("control frame is not a JSON object")

// parseControl decodes an inbound text frame. A frame with no string "type"
// or an unknown one returns a control with that Type and nothing else; the
// caller ignores it. Invalid JSON returns an error (counted, connection stays).
func parseControl(data []byte) (control, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return control{}, err
	}
	if raw == nil {
		return control{}, errNotObject
	}
	var c control
	if t, ok := raw["type"]; ok {
		_ = json.Unmarshal(t, &c.Type) // non-string type ⇒ ignored frame
	}
	switch c.Type {
	case "resume":
		r, err := parseResume(raw)
		if err != nil {
			return c, err
		}
		c.Resume = &r
	case "cursor_reset":
		if t, ok := raw["token"]; ok {
			_ = json.Unmarshal(t, &c.Token)
		}
	}
	return c, nil
}

func parseResume(raw map[string]json.RawMessage) (resumeRequest, error) {
	r := resumeRequest{From: FromCursor}
	if v, ok := raw["from"]; ok {
		var from string
		_ = json.Unmarshal(v, &from)
		switch from {
		case FromLatest, FromCursor, FromEarliest:
			r.From = from
		default:
			r.Skipped = append(r.Skipped, "unknown_from:"+truncateForLog(string(v)))
		}
	}
	if v, ok := raw["epoch"]; ok {
		_ = json.Unmarshal(v, &r.Epoch)
	}
	offsetsRaw, hasOffsets := raw["lastOffsetsByPartition"]
	if hasOffsets {
		obj, isObj, err := decodeObject(offsetsRaw)
		if err != nil {
			r.Skipped = append(r.Skipped, "invalid_offsets:"+truncateForLog(err.Error()))
		}
		if isObj {
			if len(obj) > MaxResumePartitions {
				return r, &limitError{ErrCodeTooManyPartitions,
					fmt.Sprintf("resume names %d partitions; the limit is %d", len(obj), MaxResumePartitions)}
			}
			r.Offsets = make(map[int32]int64, len(obj))
			for k, v := range obj {
				p, err := strconv.ParseInt(k, 10, 32)
				if err != nil {
					r.Skipped = append(r.Skipped, "invalid_partition:"+truncateForLog(k))
					continue
				}
				if p < 0 {
					r.Skipped = append(r.Skipped, "negative_partition:"+truncateForLog(k))
					continue
				}
				off, why := parseInt64(v)
				if why != "" {
					r.Skipped = append(r.Skipped, why+":"+truncateForLog(string(v)))
					continue
				}
				r.Offsets[int32(p)] = off
			}
		}
	}
	var mode string
	if v, ok := raw["mode"]; ok {
		_ = json.Unmarshal(v, &mode)
	}
	switch {
	case mode == ModePartition:
		r.Mode = ModePartition
	case mode == ModeThread:
		r.Mode = ModeThread
	case hasOffsets:
		r.Mode = ModePartition
	default:
		r.Mode = ModeThread
	}
	// Thread cursors: the map form, else the legacy single-thread pair.
	if v, ok := raw["lastSequencesByThread"]; ok {
		obj, isObj, _ := decodeObject(v)
		if isObj {
			if len(obj) > MaxResumeThreads {
				return r, &limitError{ErrCodeTooManyThreads,
					fmt.Sprintf("resume names %d threads; the limit is %d", len(obj), MaxResumeThreads)}
			}
			r.Threads = make(map[string]uint64, len(obj))
			for k, v := range obj {
				seq, why := parseUint64(v)
				if why != "" {
					r.Skipped = append(r.Skipped, why+":"+truncateForLog(string(v)))
					continue
				}
				id := wire.BoundThreadID(k)
				if id == "" {
					r.Skipped = append(r.Skipped, "empty_thread:"+truncateForLog(k))
					continue
				}
				if old, dup := r.Threads[id]; !dup || seq < old {
					r.Threads[id] = seq
				}
			}
		}
	}
	if r.Threads == nil {
		var id string
		if v, ok := raw["threadId"]; ok {
			_ = json.Unmarshal(v, &id)
		}
		if id = wire.BoundThreadID(id); id != "" {
			seq := uint64(0)
			if v, ok := raw["lastSequence"]; ok {
				s, why := parseUint64(v)
				if why != "" {
					r.Skipped = append(r.Skipped, why+":"+truncateForLog(string(v)))
				}
				seq = s
			}
			r.Threads = map[string]uint64{id: seq}
		}
	}
	sort.Strings(r.Skipped)
	return r, nil
}

// decodeObject decodes v as a JSON object; null and other types report
// isObj false.
func decodeObject(v json.RawMessage) (obj map[string]json.RawMessage, isObj bool, err error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '{' {
		return nil, false, nil
	}
	if err := json.Unmarshal(v, &obj); err != nil {
		return nil, false, err
	}
	return obj, true, nil
}

// parseInt64 accepts a JSON integer or a string holding one; it returns a
// reason when the value is rejected.
func parseInt64(v json.RawMessage) (int64, string) {
	s, quoted, why := numberText(v)
	if why != "" {
		return 0, why
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if quoted {
			return 0, "invalid_offset"
		}
		return 0, "invalid_offset_type"
	}
	if n < 0 {
		return 0, "negative_offset"
	}
	return n, ""
}

func parseUint64(v json.RawMessage) (uint64, string) {
	s, _, why := numberText(v)
	if why != "" {
		return 0, strings.Replace(why, "offset", "sequence", 1)
	}
	if strings.HasPrefix(s, "-") {
		return 0, "negative_sequence"
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, "invalid_sequence"
	}
	return n, ""
}

// numberText returns the digits of a JSON number or numeric string.
func numberText(v json.RawMessage) (s string, quoted bool, why string) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", false, "invalid_offset_type"
	}
	if v[0] == '"' {
		if err := json.Unmarshal(v, &s); err != nil {
			return "", true, "invalid_offset"
		}
		return strings.TrimSpace(s), true, ""
	}
	if v[0] == '-' || (v[0] >= '0' && v[0] <= '9') {
		var f json.Number
		if err := json.Unmarshal(v, &f); err != nil {
			return "", false, "invalid_offset_type"
		}
		if _, err := strconv.ParseInt(f.String(), 10, 64); err != nil {
			if x, ferr := f.Float64(); ferr == nil && x < 0 && x > math.Inf(-1) {
				return "", false, "negative_offset"
			}
			return "", false, "invalid_offset_type"
		}
		return f.String(), false, ""
	}
	return "", false, "invalid_offset_type"
}

// truncateForLog bounds a client-supplied string for a log line.
func truncateForLog(s string) string {
	if len(s) <= maxLoggedString {
		return s
	}
	cut := maxLoggedString
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%db)", s[:cut], len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
