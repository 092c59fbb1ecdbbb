package bolt

import (
	"encoding/binary"
	"fmt"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// appendMeta appends the compact encoding of ix to dst.
func appendMeta(dst []byte, ix *wire.Index) []byte {
	dst = binary.AppendUvarint(dst, uint64(ix.Type))
	dst = binary.AppendVarint(dst, ix.TimestampUs)
	dst = binary.AppendUvarint(dst, uint64(ix.SchemaVersion))
	var f byte
	if ix.MultiThread {
		f = 1
	}
	dst = append(dst, f)
	dst = binary.AppendUvarint(dst, uint64(len(ix.Threads)))
	for _, t := range ix.Threads {
		dst = appendString(dst, t.ThreadID)
		dst = binary.AppendUvarint(dst, t.Seq)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ix.Events)))
	for _, e := range ix.Events {
		dst = appendString(dst, e.ThreadID)
		dst = binary.AppendUvarint(dst, e.Seq)
		dst = binary.AppendVarint(dst, e.TimestampUs)
		dst = binary.AppendVarint(dst, int64(e.EventType))
		dst = appendString(dst, e.GraphName)
		dst = appendString(dst, e.ErrorText)
		dst = appendString(dst, e.NodeID)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// metaReader decodes what appendMeta wrote, bounds-checked.
type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorruptValue
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *metaReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorruptValue
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *metaReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errCorruptValue
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *metaReader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errCorruptValue
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a list length; each element takes at least min bytes, which
// bounds the allocation by the input size.
func (r *metaReader) count(min int) int {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)/min) {
		r.err = errCorruptValue
		return 0
	}
	return int(n)
}

// decodeMeta parses a meta section.
func decodeMeta(b []byte) (wire.Index, error) {
	r := metaReader{b: b}
	var ix wire.Index
	ix.Type = pb.MessageType(r.uvarint())
	ix.TimestampUs = r.varint()
	if sv := r.uvarint(); sv <= 1<<32-1 {
		ix.SchemaVersion = uint32(sv)
	} else {
		r.err = errCorruptValue
	}
	ix.MultiThread = r.byte()&1 != 0
	if n := r.count(2); n > 0 {
		ix.Threads = make([]wire.ThreadSeq, n)
		for i := range ix.Threads {
			ix.Threads[i] = wire.ThreadSeq{ThreadID: r.string(), Seq: r.uvarint()}
		}
	}
	if n := r.count(8); n > 0 {
		ix.Events = make([]wire.RunEvent, n)
		for i := range ix.Events {
			e := &ix.Events[i]
			e.ThreadID = r.string()
			e.Seq = r.uvarint()
			e.TimestampUs = r.varint()
			e.EventType = pb.EventType(r.varint())
			e.GraphName = r.string()
			e.ErrorText = r.string()
			e.NodeID = r.string()
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errCorruptValue
	}
	if r.err != nil {
		return wire.Index{}, fmt.Errorf("%w: meta", errCorruptValue)
	}
	return ix, nil
}

// decodeThreads parses only the thread list of a meta section (eviction
// needs nothing else).
func decodeThreads(b []byte) ([]wire.ThreadSeq, error) {
	r := metaReader{b: b}
	r.uvarint()
	r.varint()
	r.uvarint()
	r.byte()
	n := r.count(2)
	var ts []wire.ThreadSeq
	if n > 0 {
		ts = make([]wire.ThreadSeq, n)
		for i := range ts {
			ts[i] = wire.ThreadSeq{ThreadID: r.string(), Seq: r.uvarint()}
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: meta", errCorruptValue)
	}
	return ts, nil
}
