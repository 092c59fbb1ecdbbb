package wire

import (
	"errors"

	"github.com/dashstream/dashstream/wire/pb"
)

// ThreadSeq is one thread a record touches, with the highest sequence the
// record carries for it (0 = unsequenced). ThreadID is already bounded
// (BoundThreadID).
type ThreadSeq struct {
	ThreadID string
	Seq      uint64
}

// RunEvent is a lifecycle fact a run summary needs, in the order the record
// carries them (EventBatch inner events in array order).
type RunEvent struct {
	ThreadID    string // bounded
	Seq         uint64
	TimestampUs int64
	EventType   pb.EventType
	GraphName   string // GRAPH_START attribute graph_name
	ErrorText   string // NODE_ERROR / GRAPH_ERROR attribute "error"
}

// Index is what the store and hub need from a record without materialising
// the whole message.
type Index struct {
	Type        pb.MessageType // which oneof arm the record carries
	TimestampUs int64          // header timestamp (EventBatch: batch header)
	Threads     []ThreadSeq    // distinct threads, max sequence each
	Events      []RunEvent     // GRAPH_START/END/ERROR and NODE_ERROR events
	MultiThread bool           // an EventBatch spanning several threads
}

// Extract indexes a framed Kafka value. STUB.
func Extract(payload []byte, maxPayload int) (Index, error) {
	return Index{}, errors.New("wire.Extract: not implemented")
}
