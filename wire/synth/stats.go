package synth

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// SizeBucket is one row of the value-size histogram: values with
// len < Below (Below 0 = unbounded, the last row).
type SizeBucket struct {
	Label string
	Below int
	Count int
	Bytes int64
}

// Stats summarises a set of records: sizes, framing split and what they
// carry.
type Stats struct {
	Records  int
	Bytes    int64 // sum of value lengths
	KeyBytes int64
	Threads  int
	Messages int // decoded messages, EventBatch inner events one each
	MinValue int
	MaxValue int

	Histogram []SizeBucket

	Plain, Zstd, OtherFraming  int   // records by framing byte 0x00 / 0x01 / other
	PlainBytes, ZstdBytes      int64 // value bytes by framing
	OtherBytes                 int64
	Kinds                      map[string]int // records by oneof arm (event, state_diff, ...)
	Undecodable                int
	FullStateDiffs, PatchDiffs int // StateDiffs carrying full_state / operations
	EmptyDiffs                 int
	Partitions                 map[int32]int
}

func newHistogram() []SizeBucket {
	return []SizeBucket{
		{Label: "<256", Below: 256},
		{Label: "<1K", Below: 1 << 10},
		{Label: "<4K", Below: 4 << 10},
		{Label: "<16K", Below: 16 << 10},
		{Label: "<64K", Below: 64 << 10},
		{Label: ">=64K"},
	}
}

// ComputeStats decodes every record (wire.Decode) and tallies it.
func ComputeStats(recs []Record) Stats {
	s := Stats{Histogram: newHistogram(), Kinds: map[string]int{}, Partitions: map[int32]int{}}
	threads := map[string]struct{}{}
	for i, r := range recs {
		n := len(r.Value)
		s.Records++
		s.Bytes += int64(n)
		s.KeyBytes += int64(len(r.Key))
		if i == 0 || n < s.MinValue {
			s.MinValue = n
		}
		if n > s.MaxValue {
			s.MaxValue = n
		}
		for j := range s.Histogram {
			if b := &s.Histogram[j]; b.Below == 0 || n < b.Below {
				b.Count++
				b.Bytes += int64(n)
				break
			}
		}
		switch {
		case n > 0 && r.Value[0] == wire.FrameRaw:
			s.Plain++
			s.PlainBytes += int64(n)
		case n > 0 && r.Value[0] == wire.FrameZstd:
			s.Zstd++
			s.ZstdBytes += int64(n)
		default:
			s.OtherFraming++
			s.OtherBytes += int64(n)
		}
		s.Partitions[r.Partition]++
		threads[string(r.Key)] = struct{}{}
		m, err := wire.Decode(r.Value, wire.DefaultMaxPayload)
		if err != nil {
			s.Undecodable++
			continue
		}
		s.Kinds[kindName(m)]++
		s.Messages += messageCount(m)
		if sd := m.GetStateDiff(); sd != nil {
			switch {
			case len(sd.FullState) > 0:
				s.FullStateDiffs++
			case len(sd.Operations) > 0:
				s.PatchDiffs++
			default:
				s.EmptyDiffs++
			}
		}
	}
	s.Threads = len(threads)
	return s
}

// kindName is the snake_case name of the message's oneof arm.
func kindName(m *pb.DashStreamMessage) string {
	switch m.Message.(type) {
	case *pb.DashStreamMessage_Event:
		return "event"
	case *pb.DashStreamMessage_StateDiff:
		return "state_diff"
	case *pb.DashStreamMessage_TokenChunk:
		return "token_chunk"
	case *pb.DashStreamMessage_ToolExecution:
		return "tool_execution"
	case *pb.DashStreamMessage_Checkpoint:
		return "checkpoint"
	case *pb.DashStreamMessage_Metrics:
		return "metrics"
	case *pb.DashStreamMessage_Error:
		return "error"
	case *pb.DashStreamMessage_EventBatch:
		return "event_batch"
	case *pb.DashStreamMessage_ExecutionTrace:
		return "execution_trace"
	default:
		return "unknown"
	}
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// String renders the stats as a small multi-line report.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "records %d, value bytes %d (%.2f MiB), threads %d, messages %d\n",
		s.Records, s.Bytes, mib(s.Bytes), s.Threads, s.Messages)
	if s.Records > 0 {
		fmt.Fprintf(&b, "value size min %d, mean %d, max %d\n", s.MinValue, s.Bytes/int64(s.Records), s.MaxValue)
	}
	fmt.Fprintf(&b, "size histogram:\n")
	for _, h := range s.Histogram {
		fmt.Fprintf(&b, "  %-6s %8d records (%5.1f%%) %12d bytes (%5.1f%%)\n", h.Label, h.Count,
			pct(int64(h.Count), int64(s.Records)), h.Bytes, pct(h.Bytes, s.Bytes))
	}
	fmt.Fprintf(&b, "framing: plain 0x00 %d records %d bytes (%.1f%% of bytes); zstd 0x01 %d records %d bytes (%.1f%% of bytes)",
		s.Plain, s.PlainBytes, pct(s.PlainBytes, s.Bytes), s.Zstd, s.ZstdBytes, pct(s.ZstdBytes, s.Bytes))
	if s.OtherFraming > 0 {
		fmt.Fprintf(&b, "; other %d records %d bytes", s.OtherFraming, s.OtherBytes)
	}
	b.WriteString("\n")
	kinds := make([]string, 0, len(s.Kinds))
	for k := range s.Kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	b.WriteString("kinds:")
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s %d", k, s.Kinds[k])
	}
	if s.Undecodable > 0 {
		fmt.Fprintf(&b, " undecodable %d", s.Undecodable)
	}
	fmt.Fprintf(&b, "\nstate diffs: full_state %d, operations %d, empty %d\n", s.FullStateDiffs, s.PatchDiffs, s.EmptyDiffs)
	return b.String()
}
