package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dashstream/dashstream/wire"
)

// Records live in blocks: a partition bucket maps the first offset of a
// block (be64) to the block value, which holds consecutive records of that
// partition (holes allowed). Compressing records together is what pays on
// small telemetry records: on the D9 corpus's plain records, per-record
// zstd stores 1.0 of the bytes (0.8 with a trained dictionary), a block of
// one 8 KiB page with the dictionary 0.40 (TestStoreReport prints the
// table).
//
// A block value is a small plain header, the compressed section and the
// raw section:
//
//	byte     flags: bits 0-1 codec (codecRaw, codecZstd, codecZstdDict),
//	         bit 2 some record has thread entries, bit 3 times are in
//	         nanoseconds (else milliseconds), bit 4 the head time is zero
//	uvarint  dictionary id (codecZstdDict only)
//	uvarint  n, the number of records
//	uvarint  last offset − first offset (the key is the first offset)
//	uvarint  decompressed length of the compressed section
//	uvarint  stored length of the compressed section
//	varint   head time: Kafka time of the first record (absent if zero)
//	...      compressed section
//	...      raw section: payloads already zstd-framed (0x01), as they came
//
// The compressed section decompresses to the directory, then each record's
// meta (the encoded wire.Index) unless derived and, unless raw, its
// payload:
//
//	per record: uvarint offset − previous offset (0 for the first),
//	            byte flags (bit 0 payload in the raw section, bit 1 zero
//	            time, bit 2 index derived, bit 3 time relative to the
//	            header timestamp, bit 4 payload self-delimited),
//	            varint time − (header timestamp, else the head time), in
//	            the block's unit, absent for a zero time,
//	            uvarint meta length, absent when derived,
//	            uvarint payload length, absent when self-delimited
//
// A Kafka record's time is usually within milliseconds of its header
// timestamp, and a plain DashStream payload is one length-delimited
// protobuf field, so both cost about nothing: the directory went from 0.026
// to about 0.01 of the plain corpus bytes.
//
// "Derived" means wire.Extract of the payload yields exactly the record's
// index, so the index is not stored but extracted again on read: it is a
// quarter of the plain corpus bytes and compresses worse than the
// payloads it repeats. The price is an Extract per record on write (to
// check), on eviction (thread ids) and on read; and a record reads back
// with the index the wire package of the reading build extracts.
const (
	codecRaw      = 0
	codecZstd     = 1
	codecZstdDict = 2
	codecMask     = 0x03

	flagThreads      = 1 << 2
	flagNanos        = 1 << 3
	flagZeroHeadTime = 1 << 4
	flagsKnown       = codecMask | flagThreads | flagNanos | flagZeroHeadTime

	recRaw      = 1 << 0
	recZeroTime = 1 << 1
	recDerived  = 1 << 2
	recHdrTime  = 1 << 3 // time relative to the index's header timestamp
	recSelfLen  = 1 << 4 // payload length read from the payload itself
	recKnown    = recRaw | recZeroTime | recDerived | recHdrTime | recSelfLen
)

// Block size: a block closes at blockMaxRecords records, blockMaxContent
// bytes of content, or when its value would pass the target (estimated
// from the partition's recent compression ratio); a value over the page
// limit is re-encoded with fewer records. So a block fills one bbolt page:
// values spanning several pages need contiguous page runs, which the
// freelist cannot keep under retention (measured: the file grew to 1.7×
// the byte budget with 3-page blocks, 1.3× with one-page blocks). A single
// larger record gets a block of its own.
const (
	blockMaxRecords = 512
	blockMaxContent = 256 << 10
	initialRatio    = 0.45
)

// blockLimits are the value sizes derived from the file's page size.
type blockLimits struct {
	maxValue int // fits one page: page header, leaf element and key aside
	target   int // what the estimate aims at
}

func limitsFor(pageSize int) blockLimits {
	max := pageSize - 16 - 16 - 8
	return blockLimits{maxValue: max, target: max - max/32}
}

// Decoder bounds: a block never decodes to more than maxContent bytes in
// its compressed section, so a corrupt header cannot make a reader
// allocate without limit.
const (
	maxContent      = 64 << 20
	maxMeta         = 1 << 20
	maxBlockRecords = 1 << 16
)

var errCorruptValue = errors.New("corrupt record block")

// errNotDerivable: wire.Extract no longer accepts a payload whose index was
// derived from it when written (a newer wire package). Readers return the
// record with an empty index rather than fail the page.
var errNotDerivable = errors.New("index no longer derives from the payload")

// blockRec is one record of a block.
type blockRec struct {
	off     int64
	time    time.Time
	derived bool // the index is wire.Extract(payload)
	// extracted: a new record whose caller says ix is wire.Extract(payload)
	// (store.Record.Extracted).
	extracted bool
	meta      []byte // encoded wire.Index unless derived
	payload   []byte
	// ix is the record's index: a new record's, until encodeBlock resolved
	// it into derived or meta, or a decoded one's once index() ran.
	ix *wire.Index
	// hdrTime: time is stored relative to the index's header timestamp,
	// tv in the block's unit; resolved by decodeBlock.
	hdrTime bool
	tv      int64
	nanosTV bool // tv is in nanoseconds (else milliseconds)
}

// resolveTime computes a header-relative time from the record's index.
func (r *blockRec) resolveTime() error {
	if !r.hdrTime {
		return nil
	}
	ix, err := r.index()
	if errors.Is(err, errNotDerivable) {
		r.hdrTime = false // the time went with the index; keep the record
		return nil
	}
	if err != nil {
		return err
	}
	if ix.TimestampUs == 0 {
		return fmt.Errorf("%w: header-relative time without a header timestamp", errCorruptValue)
	}
	r.time = unitTime(hdrBase(&ix, r.nanosTV)+r.tv, r.nanosTV)
	r.hdrTime = false
	return nil
}

// resolveIndex decides for a new record whether its index is derived from
// the payload or stored as meta. It keeps ix for buildContent. A record
// the caller marked Extracted is derived without extracting again; a
// payload that is not one self-delimited field is not worth the check (a
// DashStream message is one), so its index is stored.
func (r *blockRec) resolveIndex() {
	if r.ix == nil || r.derived || r.meta != nil {
		return
	}
	switch {
	case r.extracted && derivable(r.payload):
		r.derived = true
		return
	case derivable(r.payload) && selfDelimited(r.payload):
		if got, err := wire.Extract(r.payload, wire.DefaultMaxPayload); err == nil && sameIndex(&got, r.ix) {
			r.derived = true
			return
		}
	}
	r.meta = wire.AppendIndex(nil, r.ix)
}

// resolveIndexCheap resolves what needs no wire.Extract (a record marked
// Extracted, or a payload that cannot derive), so the block estimate
// knows the meta bytes; the rest waits for resolveIndex on an encoder.
func (r *blockRec) resolveIndexCheap() {
	if r.ix == nil || r.derived || r.meta != nil {
		return
	}
	if !r.extracted && derivable(r.payload) && selfDelimited(r.payload) {
		return
	}
	r.resolveIndex()
}

// derivable reports whether a payload's index may be derived from it: a
// plain (0x00) payload within the size wire.Extract accepts by default, so
// extracting it again on read needs no decompression and cannot fail
// where ingest's (larger) limit let it through.
func derivable(p []byte) bool {
	return len(p) > 0 && p[0] == wire.FrameRaw && len(p) <= wire.DefaultMaxPayload
}

// index returns the record's index, extracting or decoding it once.
func (r *blockRec) index() (wire.Index, error) {
	if r.ix != nil {
		return *r.ix, nil
	}
	var ix wire.Index
	var err error
	if r.derived {
		if ix, err = wire.Extract(r.payload, wire.DefaultMaxPayload); err != nil {
			return wire.Index{}, fmt.Errorf("%w: %v", errNotDerivable, err)
		}
	} else if ix, err = wire.DecodeIndex(r.meta); err != nil {
		return wire.Index{}, fmt.Errorf("%w: meta: %v", errCorruptValue, err)
	}
	r.ix = &ix
	return ix, nil
}

// threads returns the record's thread list, decoding no more of a stored
// index than the list.
func (r *blockRec) threads() ([]wire.ThreadSeq, error) {
	if r.ix == nil && !r.derived {
		ts, err := wire.DecodeIndexThreads(r.meta)
		if err != nil {
			return nil, fmt.Errorf("%w: meta: %v", errCorruptValue, err)
		}
		return ts, nil
	}
	ix, err := r.index()
	return ix.Threads, err
}

// sameIndex compares indexes, nil and empty lists alike.
func sameIndex(a, b *wire.Index) bool {
	return a.Type == b.Type && a.TimestampUs == b.TimestampUs && a.SchemaVersion == b.SchemaVersion &&
		a.MultiThread == b.MultiThread && slices.Equal(a.Threads, b.Threads) && slices.Equal(a.Events, b.Events)
}

func isRawPayload(p []byte) bool { return len(p) > 0 && p[0] == wire.FrameZstd }

// selfDelimited reports whether a plain payload is exactly the framing
// byte and one length-delimited protobuf field (a DashStreamMessage holds
// only its oneof), so its length can be read from the content instead of
// the directory.
func selfDelimited(p []byte) bool {
	n, ok := delimitedLen(p)
	return ok && n == len(p)
}

// delimitedLen reads the length of a self-delimited payload at the start
// of b.
func delimitedLen(b []byte) (int, bool) {
	if len(b) < 3 || b[0] != wire.FrameRaw {
		return 0, false
	}
	tag, n := binary.Uvarint(b[1:])
	if n <= 0 || tag&7 != 2 || tag>>3 == 0 {
		return 0, false
	}
	l, m := binary.Uvarint(b[1+n:])
	if m <= 0 || l > maxContent {
		return 0, false
	}
	return 1 + n + m + int(l), true
}

// blockHeader is the plain header of a block value.
type blockHeader struct {
	codec     byte
	threads   bool
	nanos     bool
	dictID    uint32
	n         int
	lastDelta int64
	clen      int // decompressed length of the compressed section
	zlen      int // stored length of the compressed section
	headTime  time.Time
	zOff      int // where the compressed section starts
}

// rawLen is the length of the raw section.
func (h *blockHeader) rawLen(v []byte) int { return len(v) - h.zOff - h.zlen }

// contentLen estimates the block's record bytes (directory, metas and
// payloads) for page limits.
func (h *blockHeader) contentLen(v []byte) int { return h.clen + h.rawLen(v) }

// parseBlockHeader decodes the plain header of v. It never allocates.
func parseBlockHeader(v []byte) (blockHeader, error) {
	var h blockHeader
	if len(v) == 0 {
		return h, fmt.Errorf("%w: empty", errCorruptValue)
	}
	flags := v[0]
	if flags&^flagsKnown != 0 {
		return h, fmt.Errorf("%w: unknown flags %#x", errCorruptValue, flags)
	}
	h.codec = flags & codecMask
	if h.codec > codecZstdDict {
		return h, fmt.Errorf("%w: unknown codec %d", errCorruptValue, h.codec)
	}
	h.threads = flags&flagThreads != 0
	h.nanos = flags&flagNanos != 0
	off := 1
	uv := func(what string, limit uint64) (uint64, error) {
		x, n := binary.Uvarint(v[off:])
		if n <= 0 || x > limit {
			return 0, fmt.Errorf("%w: %s", errCorruptValue, what)
		}
		off += n
		return x, nil
	}
	if h.codec == codecZstdDict {
		id, err := uv("dictionary id", 1<<32-1)
		if err != nil {
			return h, err
		}
		h.dictID = uint32(id)
	}
	n, err := uv("record count", maxBlockRecords)
	if err != nil {
		return h, err
	}
	if n == 0 {
		return h, fmt.Errorf("%w: no records", errCorruptValue)
	}
	ld, err := uv("offset span", 1<<62)
	if err != nil {
		return h, err
	}
	cl, err := uv("content length", maxContent)
	if err != nil {
		return h, err
	}
	zl, err := uv("compressed length", uint64(len(v)))
	if err != nil {
		return h, err
	}
	h.n, h.lastDelta, h.clen, h.zlen = int(n), int64(ld), int(cl), int(zl)
	if flags&flagZeroHeadTime == 0 {
		tv, k := binary.Varint(v[off:])
		if k <= 0 {
			return h, fmt.Errorf("%w: head time", errCorruptValue)
		}
		off += k
		h.headTime = unitTime(tv, h.nanos)
	}
	h.zOff = off
	if h.zlen > len(v)-off {
		return h, fmt.Errorf("%w: compressed section past the end", errCorruptValue)
	}
	if h.codec == codecRaw && h.zlen != h.clen {
		return h, fmt.Errorf("%w: raw section length %d, header says %d", errCorruptValue, h.zlen, h.clen)
	}
	return h, nil
}

func unitTime(v int64, nanos bool) time.Time {
	if nanos {
		return time.Unix(0, v).UTC()
	}
	return time.UnixMilli(v).UTC()
}

func timeUnit(t time.Time, nanos bool) int64 {
	if nanos {
		return t.UnixNano()
	}
	return t.UnixMilli()
}

// blockTail reports the block's last offset given its key.
func blockLast(key []byte, h blockHeader) int64 {
	return int64(beU64(key)) + h.lastDelta
}

// blockNanos reports whether a block of recs needs nanosecond times.
func blockNanos(recs []blockRec) bool {
	for i := range recs {
		r := &recs[i]
		if r.hdrTime && r.nanosTV || !r.hdrTime && !r.time.IsZero() && r.time.Nanosecond()%int(time.Millisecond) != 0 {
			return true
		}
	}
	return false
}

// prepareTimes resolves what buildContent cannot carry over unresolved:
// the first record's time (the plain header holds it) and header-relative
// times in another unit than the block's (the bases differ by the
// timestamp's sub-millisecond part).
func prepareTimes(recs []blockRec) error {
	if err := recs[0].resolveTime(); err != nil {
		return err
	}
	nanos := blockNanos(recs)
	for i := range recs {
		if r := &recs[i]; r.hdrTime && r.nanosTV != nanos {
			if err := r.resolveTime(); err != nil {
				return err
			}
		}
	}
	return nil
}

// hdrBase is the header timestamp in the block's unit.
func hdrBase(ix *wire.Index, nanos bool) int64 {
	if nanos {
		return ix.TimestampUs * 1000
	}
	us := ix.TimestampUs
	if us < 0 {
		us -= 999 // floor
	}
	return us / 1000
}

// buildContent lays out the uncompressed section of a block for recs into
// dst and returns it with the block's flags (threads, nanos). New records'
// indexes must be resolved.
func buildContent(dst []byte, recs []blockRec, threads bool) (content []byte, flags byte) {
	nanos := blockNanos(recs)
	if nanos {
		flags |= flagNanos
	}
	if threads {
		flags |= flagThreads
	}
	var head int64
	if t := recs[0].time; t.IsZero() {
		flags |= flagZeroHeadTime
	} else {
		head = timeUnit(t, nanos)
	}
	prev := recs[0].off
	for i := range recs {
		r := &recs[i]
		dst = binary.AppendUvarint(dst, uint64(r.off-prev))
		prev = r.off
		var rf byte
		raw := isRawPayload(r.payload)
		if raw {
			rf |= recRaw
		}
		if r.derived {
			rf |= recDerived
		}
		if !raw && selfDelimited(r.payload) {
			rf |= recSelfLen
		}
		var tv int64
		switch {
		case r.hdrTime: // decoded lazily, same unit (prepareTimes): the same tv
			rf |= recHdrTime
			tv = r.tv
		case r.time.IsZero():
			rf |= recZeroTime
		case r.ix != nil && r.ix.TimestampUs != 0:
			rf |= recHdrTime
			tv = timeUnit(r.time, nanos) - hdrBase(r.ix, nanos)
		default:
			tv = timeUnit(r.time, nanos) - head
		}
		dst = append(dst, rf)
		if rf&recZeroTime == 0 {
			dst = binary.AppendVarint(dst, tv)
		}
		if !r.derived {
			dst = binary.AppendUvarint(dst, uint64(len(r.meta)))
		}
		if rf&recSelfLen == 0 {
			dst = binary.AppendUvarint(dst, uint64(len(r.payload)))
		}
	}
	for i := range recs {
		r := &recs[i]
		dst = append(dst, r.meta...)
		if !isRawPayload(r.payload) {
			dst = append(dst, r.payload...)
		}
	}
	return dst, flags
}

// putBlockHeader appends a block header to dst.
func putBlockHeader(dst []byte, flags byte, dictID uint32, recs []blockRec, clen, zlen int) []byte {
	dst = append(dst, flags)
	if flags&codecMask == codecZstdDict {
		dst = binary.AppendUvarint(dst, uint64(dictID))
	}
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	dst = binary.AppendUvarint(dst, uint64(recs[len(recs)-1].off-recs[0].off))
	dst = binary.AppendUvarint(dst, uint64(clen))
	dst = binary.AppendUvarint(dst, uint64(zlen))
	if flags&flagZeroHeadTime == 0 {
		dst = binary.AppendVarint(dst, timeUnit(recs[0].time, flags&flagNanos != 0))
	}
	return dst
}

// appendRawSection appends the payloads kept outside compression.
func appendRawSection(dst []byte, recs []blockRec) []byte {
	for i := range recs {
		if isRawPayload(recs[i].payload) {
			dst = append(dst, recs[i].payload...)
		}
	}
	return dst
}

// parseContent splits a decompressed section into records. first is the
// block's first offset; raw is the raw section. The records' meta and
// payload alias content and raw. Times relative to the header timestamp
// are left to resolveTimes.
func parseContent(h blockHeader, first int64, content, raw []byte) ([]blockRec, error) {
	r := metaReader{b: content}
	type dirEnt struct {
		flags         byte
		metaLen, plen uint64
	}
	if h.n > len(content)/2 {
		return nil, fmt.Errorf("%w: %d records in %d bytes", errCorruptValue, h.n, len(content))
	}
	recs := make([]blockRec, h.n)
	dir := make([]dirEnt, h.n)
	var head int64
	if !h.headTime.IsZero() {
		head = timeUnit(h.headTime, h.nanos)
	}
	off := first
	for i := range recs {
		d := r.uvarint()
		if i == 0 && d != 0 || i > 0 && d == 0 || d > 1<<62 {
			return nil, fmt.Errorf("%w: offsets not increasing", errCorruptValue)
		}
		off += int64(d)
		rec := &recs[i]
		rec.off = off
		e := &dir[i]
		e.flags = r.byte()
		if e.flags&^recKnown != 0 || e.flags&recRaw != 0 && e.flags&recSelfLen != 0 || e.flags&recZeroTime != 0 && e.flags&recHdrTime != 0 {
			return nil, fmt.Errorf("%w: record flags %#x", errCorruptValue, e.flags)
		}
		if e.flags&recZeroTime == 0 {
			tv := r.varint()
			if e.flags&recHdrTime != 0 {
				rec.hdrTime, rec.tv, rec.nanosTV = true, tv, h.nanos
			} else {
				rec.time = unitTime(head+tv, h.nanos)
			}
		}
		rec.derived = e.flags&recDerived != 0
		if !rec.derived {
			e.metaLen = r.uvarint()
		}
		if e.flags&recSelfLen == 0 {
			e.plen = r.uvarint()
		}
		if r.err != nil || e.metaLen > maxMeta || e.plen > maxContent {
			return nil, fmt.Errorf("%w: directory", errCorruptValue)
		}
	}
	if off != first+h.lastDelta {
		return nil, fmt.Errorf("%w: last offset %d, header says %d", errCorruptValue, off, first+h.lastDelta)
	}
	data := r.b
	for i := range recs {
		e := &dir[i]
		rec := &recs[i]
		if e.metaLen > uint64(len(data)) {
			return nil, fmt.Errorf("%w: meta past the end", errCorruptValue)
		}
		if !rec.derived {
			rec.meta = data[:e.metaLen:e.metaLen]
		}
		data = data[e.metaLen:]
		src := &data
		if e.flags&recRaw != 0 {
			src = &raw
		}
		if e.flags&recSelfLen != 0 {
			n, ok := delimitedLen(*src)
			if !ok {
				return nil, fmt.Errorf("%w: payload not self-delimited", errCorruptValue)
			}
			e.plen = uint64(n)
		}
		if e.plen > uint64(len(*src)) {
			return nil, fmt.Errorf("%w: payload past the end", errCorruptValue)
		}
		rec.payload = (*src)[:e.plen:e.plen]
		*src = (*src)[e.plen:]
		if e.flags&recRaw != 0 != isRawPayload(rec.payload) {
			return nil, fmt.Errorf("%w: payload framing does not match its section", errCorruptValue)
		}
	}
	if len(data) != 0 || len(raw) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over", errCorruptValue, len(data)+len(raw))
	}
	return recs, nil
}

// resolveTimes computes the times stored relative to header timestamps,
// which needs each such record's index.
func resolveTimes(recs []blockRec) error {
	for i := range recs {
		if err := recs[i].resolveTime(); err != nil {
			return err
		}
	}
	return nil
}
