package bolt

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// LayoutVersion is the version of the bucket layout below, kept in
// meta/layout. Open refuses files of another version with a message saying
// why (there is no older layout to migrate from yet).
const LayoutVersion = 1

// Top-level buckets.
//
//	meta      layout, topic, gen, created, retention, threads, trashseq;
//	          n/<be32 partition> → be64 next ingest offset;
//	          c/<be32 partition> → be64 records ‖ raw ‖ stored ‖ footprint
//	dicts     be32 id → zstd dictionary (written once, never rewritten)
//	skipped   be32 partition ‖ be64 from → be64 to ‖ reason
//	p         be32 partition → bucket: be64 first offset → block (value.go)
//	t         sanitized thread id ‖ 0 ‖ D3 key of the first entry → chunk
//	          of packed D3 keys (threads.go);
//	          sanitized thread id ‖ 1 → run summary (next to the chunks an
//	          Append rewrites, so both usually share a page)
//	runtime   be64 ordered UpdatedAt ‖ thread id → empty (run list order)
//	trash     be64 n → buckets moved aside by Reset/SetSource, drained in
//	          bounded chunks
//
// Everything an Append rewrites besides records, index and summaries sits
// in the small meta bucket: one page per commit. The dictionaries have a
// bucket of their own so that page never carries them.
var (
	bMeta    = []byte("meta")
	bDicts   = []byte("dicts")
	bSkipped = []byte("skipped")
	bParts   = []byte("p")
	bThreads = []byte("t")
	bRunTime = []byte("runtime")
	bTrash   = []byte("trash")

	// dataBuckets are cleared by Reset; sourceBuckets also by SetSource.
	dataBuckets   = [][]byte{bParts, bThreads, bRunTime}
	sourceBuckets = [][]byte{bSkipped}
	allBuckets    = [][]byte{bMeta, bDicts, bSkipped, bParts, bThreads, bRunTime, bTrash}
)

// Keys of the meta bucket.
var (
	kLayout    = []byte("layout")    // be32
	kTopic     = []byte("topic")     // 16 bytes
	kGen       = []byte("gen")       // be64
	kCreated   = []byte("created")   // be64 Unix nanoseconds
	kRetention = []byte("retention") // JSON of store.Retention in force
	kThreads   = []byte("threads")   // be64 number of threads indexed
	kTrashSeq  = []byte("trashseq")  // be64 last trash bucket number
	kNextPfx   = []byte("n/")        // n/<be32 partition> → next offset
	kStatPfx   = []byte("c/")        // c/<be32 partition> → pstat
)

func metaPartKey(pfx []byte, p int32) []byte {
	return append(append(make([]byte, 0, len(pfx)+4), pfx...), be32(p)...)
}

// Per-entry overhead bbolt spends in a leaf beside key and value.
const leafElemSize = 16

// threadKeyLen is the length of a thread index key.
const threadKeyLen = 20

func be32(p int32) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(p))
}

func be64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}

func offKey(off int64) []byte { return be64(uint64(off)) }

func getBE64(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// appendThreadKey appends the D3 thread index key of k.
func appendThreadKey(dst []byte, k store.ThreadKey) []byte {
	dst = binary.BigEndian.AppendUint64(dst, k.Seq)
	dst = binary.BigEndian.AppendUint32(dst, uint32(k.Partition))
	return binary.BigEndian.AppendUint64(dst, uint64(k.Offset))
}

func parseThreadKey(b []byte) (store.ThreadKey, bool) {
	if len(b) != threadKeyLen {
		return store.ThreadKey{}, false
	}
	return store.ThreadKey{
		Seq:       binary.BigEndian.Uint64(b),
		Partition: int32(binary.BigEndian.Uint32(b[8:])),
		Offset:    int64(binary.BigEndian.Uint64(b[12:])),
	}, true
}

// runTimeKey orders run summaries by UpdatedAt (RunTimeKey), ascending in
// byte order; the run list reads it backwards.
func runTimeKey(t time.Time, threadID string) []byte {
	return runTimeKeyRaw(store.RunTimeKey(t), threadID)
}

func runTimeKeyRaw(t int64, threadID string) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(threadID)), uint64(t)^(1<<63))
	return append(k, threadID...)
}

func runTimeOf(k []byte) (int64, string) {
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), string(k[8:])
}

// pstat is a partition's counters as kept under meta c/<partition>.
type pstat struct {
	records, raw, stored, footprint int64
}

func (c pstat) encode() []byte {
	b := make([]byte, 0, 32)
	for _, v := range []int64{c.records, c.raw, c.stored, c.footprint} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodePStat(b []byte) (pstat, bool) {
	if len(b) != 32 {
		return pstat{}, false
	}
	g := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[8*i:])) }
	return pstat{g(0), g(1), g(2), g(3)}, true
}

// Byte retention counts footprints: what blocks take in their leaves
// (key, value and bbolt's element header) and an estimate for each packed
// thread index entry, so the budget tracks the file, not just the
// payloads. The file's live bytes (liveBytes) correct the estimate.
const threadEntrySize = 6

func blockFootprint(valueLen int) int64 { return int64(8 + valueLen + leafElemSize) }

func dictKey(id uint32) []byte { return be32(int32(id)) }

// skipKey / skipValue encode a skipped range.
func skipKey(p int32, from int64) []byte {
	k := binary.BigEndian.AppendUint32(make([]byte, 0, 12), uint32(p))
	return binary.BigEndian.AppendUint64(k, uint64(from))
}

func skipValue(to int64, reason string) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(reason)), uint64(to))
	return append(v, reason...)
}

func parseSkip(k, v []byte) (store.SkippedRange, bool) {
	if len(k) != 12 || len(v) < 8 {
		return store.SkippedRange{}, false
	}
	return store.SkippedRange{
		Partition: int32(binary.BigEndian.Uint32(k)),
		From:      int64(binary.BigEndian.Uint64(k[4:])),
		To:        int64(binary.BigEndian.Uint64(v)),
		Reason:    string(v[8:]),
	}, true
}

// Run summary encoding: a version byte, then fields.
func encodeRun(s *store.RunSummary) []byte {
	b := make([]byte, 0, 64+len(s.ThreadID)+len(s.GraphName)+len(s.LastError))
	b = append(b, 1)
	b = appendString(b, s.ThreadID)
	b = appendString(b, s.GraphName)
	b = appendString(b, s.Status)
	b = binary.AppendVarint(b, timeNanos(s.StartedAt))
	b = binary.AppendVarint(b, timeNanos(s.EndedAt))
	b = binary.AppendUvarint(b, s.FirstSeq)
	b = binary.AppendUvarint(b, s.LastSeq)
	b = binary.AppendVarint(b, s.Messages)
	b = appendString(b, s.LastError)
	b = binary.AppendVarint(b, timeNanos(s.UpdatedAt))
	return b
}

func decodeRun(b []byte) (store.RunSummary, bool) {
	if len(b) == 0 || b[0] != 1 {
		return store.RunSummary{}, false
	}
	r := metaReader{b: b[1:]}
	var s store.RunSummary
	s.ThreadID = r.string()
	s.GraphName = r.string()
	s.Status = r.string()
	s.StartedAt = nanosTime(r.varint())
	s.EndedAt = nanosTime(r.varint())
	s.FirstSeq = r.uvarint()
	s.LastSeq = r.uvarint()
	s.Messages = r.varint()
	s.LastError = r.string()
	s.UpdatedAt = nanosTime(r.varint())
	return s, r.err == nil && len(r.b) == 0
}

// runKey is where a thread's run summary lives in the t bucket.
func runKey(threadID string) []byte {
	return append([]byte(wire.SanitizeKey(wire.BoundThreadID(threadID))), 1)
}

// timeNanos maps the zero time to MinInt64 so it survives the round trip.
func timeNanos(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

func nanosTime(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
