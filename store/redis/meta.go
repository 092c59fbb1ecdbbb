package redis

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

var errCorruptMeta = errors.New("corrupt record meta")

// prefixLen is the length of the cursor prefix of a thread value.
const prefixLen = 12

// cursorPrefix is the reference's thread value prefix: 4-byte LE int32
// partition ‖ 8-byte LE int64 offset.
func cursorPrefix(p int32, o int64) []byte {
	b := make([]byte, prefixLen)
	binary.LittleEndian.PutUint32(b, uint32(p))
	binary.LittleEndian.PutUint64(b[4:], uint64(o))
	return b
}

// parseThreadValue splits a thread value into partition, offset and
// payload. A value shorter than the prefix is legacy: partition 0, offset
// 0, the whole value as payload (reference §4.2).
func parseThreadValue(v string) (int32, int64, []byte) {
	if len(v) < prefixLen {
		return 0, 0, []byte(v)
	}
	p := int32(binary.LittleEndian.Uint32([]byte(v[:4])))
	o := int64(binary.LittleEndian.Uint64([]byte(v[4:prefixLen])))
	return p, o, []byte(v[prefixLen:])
}

// encodeMeta is the ":m" value of a record: the text header the Lua
// scripts read, then the Kafka time and the index.
//
//	"1 <payload length> <cursor prefix hex> <tid'>:<seq> …\n"
//	byte   flags: bit 0 zero time
//	varint Unix nanoseconds (absent when zero)
//	…      wire.Index (appendIndex)
func encodeMeta(r *store.Record, tids []string) []byte {
	b := make([]byte, 0, 64+len(r.Index.Events)*24)
	b = append(b, '1', ' ')
	b = strconv.AppendInt(b, int64(len(r.Payload)), 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, cursorPrefix(r.Partition, r.Offset))
	for i, th := range r.Index.Threads {
		if th.ThreadID == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, tids[i]...)
		b = append(b, ':')
		b = strconv.AppendUint(b, th.Seq, 10)
	}
	b = append(b, '\n')
	if r.Time.IsZero() {
		b = append(b, 1)
	} else {
		b = append(b, 0)
		b = binary.AppendVarint(b, r.Time.UnixNano())
	}
	return appendIndex(b, &r.Index)
}

// decodeMeta parses a ":m" value into the record's time and index.
func decodeMeta(v string) (time.Time, wire.Index, error) {
	b := []byte(v)
	nl := bytes.IndexByte(b, '\n')
	if nl < 2 || b[0] != '1' || b[1] != ' ' {
		return time.Time{}, wire.Index{}, fmt.Errorf("%w: header", errCorruptMeta)
	}
	r := metaReader{b: b[nl+1:]}
	var t time.Time
	if r.byte()&1 == 0 {
		t = time.Unix(0, r.varint())
	}
	ix := r.index()
	if r.err != nil {
		return time.Time{}, wire.Index{}, fmt.Errorf("%w: %v", errCorruptMeta, r.err)
	}
	return t, ix, nil
}

// deriveMeta gives a record the reference wrote (no meta) its index and
// time: wire.Extract of the payload, and the header timestamp at Kafka's
// millisecond precision.
func deriveMeta(payload []byte) (time.Time, wire.Index) {
	ix, err := wire.Extract(payload, wire.DefaultMaxPayload)
	if err != nil || ix.TimestampUs == 0 {
		return time.Time{}, ix
	}
	return time.UnixMilli(ix.TimestampUs / 1000), ix
}

// appendIndex appends the compact encoding of ix.
func appendIndex(dst []byte, ix *wire.Index) []byte {
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

// metaReader decodes what appendIndex wrote, bounds-checked.
type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) fail(what string) {
	if r.err == nil {
		r.err = errors.New(what)
	}
}

func (r *metaReader) uvarint() uint64 {
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

func (r *metaReader) varint() int64 {
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

func (r *metaReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *metaReader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail("bad string length")
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
		r.fail("bad count")
		return 0
	}
	return int(n)
}

func (r *metaReader) index() wire.Index {
	var ix wire.Index
	ix.Type = pb.MessageType(r.uvarint())
	ix.TimestampUs = r.varint()
	if sv := r.uvarint(); sv <= 1<<32-1 {
		ix.SchemaVersion = uint32(sv)
	} else {
		r.fail("schema version")
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
		r.fail("trailing bytes")
	}
	return ix
}
