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
//	…      wire.Index (wire.AppendIndex)
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
	return wire.AppendIndex(b, &r.Index)
}

// decodeMeta parses a ":m" value into the record's time and index.
func decodeMeta(v string) (time.Time, wire.Index, error) {
	b := []byte(v)
	nl := bytes.IndexByte(b, '\n')
	if nl < 2 || b[0] != '1' || b[1] != ' ' {
		return time.Time{}, wire.Index{}, fmt.Errorf("%w: header", errCorruptMeta)
	}
	rest := b[nl+1:]
	if len(rest) == 0 {
		return time.Time{}, wire.Index{}, fmt.Errorf("%w: no time", errCorruptMeta)
	}
	var t time.Time
	flags := rest[0]
	rest = rest[1:]
	if flags&1 == 0 {
		ns, n := binary.Varint(rest)
		if n <= 0 {
			return time.Time{}, wire.Index{}, fmt.Errorf("%w: bad time", errCorruptMeta)
		}
		t, rest = time.Unix(0, ns), rest[n:]
	}
	ix, err := wire.DecodeIndex(rest)
	if err != nil {
		return time.Time{}, wire.Index{}, fmt.Errorf("%w: %v", errCorruptMeta, err)
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
