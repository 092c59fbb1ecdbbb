package wire

import (
	"encoding/binary"
	"errors"

	"github.com/dashstream/dashstream/wire/pb"
)

// The compact binary encoding of an Index, shared by the stores that keep
// an index beside a payload (store/bolt block meta, store/redis ":m"
// values). Its bytes are part of both on-disk formats: change it only with
// a new layout version.
//
//	uvarint  Type
//	varint   TimestampUs
//	uvarint  SchemaVersion
//	byte     flags: bit 0 MultiThread
//	uvarint  number of threads, then per thread:
//	         string ThreadID, uvarint Seq
//	uvarint  number of events, then per event:
//	         string ThreadID, uvarint Seq, varint TimestampUs,
//	         varint EventType, string GraphName, string ErrorText,
//	         string NodeID
//
// A string is a uvarint length and the bytes.

// ErrCorruptIndex is returned (wrapped) when an encoded index does not
// decode.
var ErrCorruptIndex = errors.New("corrupt encoded index")

// Minimum encoded sizes of a list element, which bound what a decoder
// allocates by the input length.
const (
	minThreadLen = 2 // empty id, seq 0
	minEventLen  = 8 // four empty strings and four one-byte varints
)

// AppendIndex appends the compact encoding of ix to dst.
func AppendIndex(dst []byte, ix *Index) []byte {
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
		dst = appendIndexString(dst, t.ThreadID)
		dst = binary.AppendUvarint(dst, t.Seq)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ix.Events)))
	for _, e := range ix.Events {
		dst = appendIndexString(dst, e.ThreadID)
		dst = binary.AppendUvarint(dst, e.Seq)
		dst = binary.AppendVarint(dst, e.TimestampUs)
		dst = binary.AppendVarint(dst, int64(e.EventType))
		dst = appendIndexString(dst, e.GraphName)
		dst = appendIndexString(dst, e.ErrorText)
		dst = appendIndexString(dst, e.NodeID)
	}
	return dst
}

func appendIndexString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeIndex decodes an index AppendIndex wrote; b must hold exactly one
// encoding. Values AppendIndex cannot produce (a type outside int32) are
// corrupt. Allocation is bounded by len(b).
func DecodeIndex(b []byte) (Index, error) {
	r := indexReader{b: b}
	ix := r.index(true)
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return Index{}, r.err
	}
	return ix, nil
}

// DecodeIndexThreads decodes only the thread list of an encoded index
// (what eviction needs), ignoring the events after it.
func DecodeIndexThreads(b []byte) ([]ThreadSeq, error) {
	r := indexReader{b: b}
	ix := r.index(false)
	if r.err != nil {
		return nil, r.err
	}
	return ix.Threads, nil
}

// indexReader reads an encoded index, bounds-checked; the first error
// sticks.
type indexReader struct {
	b   []byte
	err error
}

func (r *indexReader) fail(what string) {
	if r.err == nil {
		r.err = errors.Join(ErrCorruptIndex, errors.New(what))
	}
}

func (r *indexReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *indexReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *indexReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *indexReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("bad string length")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a list length; each element takes at least min bytes, which
// bounds the allocation by the input size.
func (r *indexReader) count(min int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/min) {
		r.fail("bad count")
		return 0
	}
	return int(n)
}

// index reads an index; without events it stops after the thread list.
func (r *indexReader) index(events bool) Index {
	var ix Index
	if t := r.uvarint(); uint64(pb.MessageType(t)) == t {
		ix.Type = pb.MessageType(t)
	} else {
		r.fail("message type")
	}
	ix.TimestampUs = r.varint()
	if sv := r.uvarint(); sv <= 1<<32-1 {
		ix.SchemaVersion = uint32(sv)
	} else {
		r.fail("schema version")
	}
	ix.MultiThread = r.byte()&1 != 0
	if n := r.count(minThreadLen); n > 0 {
		ix.Threads = make([]ThreadSeq, n)
		for i := range ix.Threads {
			ix.Threads[i] = ThreadSeq{ThreadID: r.string(), Seq: r.uvarint()}
		}
	}
	if !events {
		return ix
	}
	if n := r.count(minEventLen); n > 0 {
		ix.Events = make([]RunEvent, n)
		for i := range ix.Events {
			e := &ix.Events[i]
			e.ThreadID = r.string()
			e.Seq = r.uvarint()
			e.TimestampUs = r.varint()
			if et := r.varint(); int64(pb.EventType(et)) == et {
				e.EventType = pb.EventType(et)
			} else {
				r.fail("event type")
			}
			e.GraphName = r.string()
			e.ErrorText = r.string()
			e.NodeID = r.string()
		}
	}
	return ix
}
