package bolt

import (
	"encoding/binary"
)

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// metaReader reads the store's own varint encodings (block directories,
// run summaries, thread index chunks), bounds-checked. Record indexes use
// wire's codec (wire.AppendIndex, wire.DecodeIndex).
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
