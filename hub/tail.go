package hub

import (
	"encoding/binary"
	"sort"
	"strconv"
	"sync"

	"github.com/dashstream/dashstream/store"
)

// Entry is one record ready to send: the Kafka value and its frames,
// encoded once and shared by every connection.
type Entry struct {
	Partition int32
	Offset    int64
	Payload   []byte // the Kafka value, byte for byte
	Cursor    []byte // {"type":"cursor","partition":P,"offset":"O"}
	BatchHead []byte // D6 per-record header: partition, offset, uvarint length
}

// newEntry encodes both frames of one record (tail entries are shared by
// connections of both modes).
func newEntry(p int32, off int64, payload []byte) *Entry {
	return &Entry{Partition: p, Offset: off, Payload: payload, Cursor: cursorFrame(p, off), BatchHead: batchHead(p, off, len(payload))}
}

// newConnEntry encodes only the frame a connection in batched or paired
// mode sends: entries read from the store belong to one connection, and
// a replay makes one per record.
func newConnEntry(p int32, off int64, payload []byte, batched bool) *Entry {
	e := &Entry{Partition: p, Offset: off, Payload: payload}
	if batched {
		e.BatchHead = batchHead(p, off, len(payload))
	} else {
		e.Cursor = cursorFrame(p, off)
	}
	return e
}

// cursorFrame is {"type":"cursor","partition":P,"offset":"O"}.
func cursorFrame(p int32, off int64) []byte {
	cur := make([]byte, 0, 64)
	cur = append(cur, `{"type":"cursor","partition":`...)
	cur = strconv.AppendInt(cur, int64(p), 10)
	cur = append(cur, `,"offset":"`...)
	cur = strconv.AppendInt(cur, off, 10)
	return append(cur, `"}`...)
}

// batchHead is the D6 per-record header: partition, offset, uvarint
// length.
func batchHead(p int32, off int64, n int) []byte {
	head := make([]byte, 12, 12+binary.MaxVarintLen64)
	binary.BigEndian.PutUint32(head[0:4], uint32(p))
	binary.BigEndian.PutUint64(head[4:12], uint64(off))
	return binary.AppendUvarint(head, uint64(n))
}

// size is what an entry costs in the tail's byte budget.
func (e *Entry) size() int64 { return int64(len(e.Payload) + len(e.Cursor) + len(e.BatchHead)) }

// Tail is the in-memory window of the most recent committed records, shared
// by all connections. For each partition it knows the offset from which it
// holds every stored record ("covers"), so a connection whose cursor is at
// or past that point never needs the store.
type Tail struct {
	maxRecords int
	maxBytes   int64

	mu     sync.RWMutex
	order  []*Entry // all entries in commit order; order[head:] are live
	head   int
	bytes  int64
	parts  map[int32]*partTail
	next   map[int32]int64 // next ingest offset (high-water mark) per partition
	hwSeen bool
}

type partTail struct {
	entries []*Entry // ascending offsets
	covers  int64    // every stored record with offset >= covers is in entries
}

// NewTail returns a tail holding at most maxRecords records and maxBytes
// bytes (DECISIONS D4: 1000 records, 64 MiB).
func NewTail(maxRecords int, maxBytes int64) *Tail {
	if maxRecords < 1 {
		maxRecords = 1
	}
	return &Tail{maxRecords: maxRecords, maxBytes: maxBytes,
		parts: map[int32]*partTail{}, next: map[int32]int64{}}
}

// Reset empties the tail and starts it at the store's next ingest offsets:
// from there on, every committed record passes through Append.
func (t *Tail) Reset(next map[int32]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.order, t.head, t.bytes = nil, 0, 0
	t.parts = map[int32]*partTail{}
	t.next = map[int32]int64{}
	for p, n := range next {
		t.parts[p] = &partTail{covers: n}
		t.next[p] = n
	}
}

// Append adds a committed batch. Records of a partition the tail has not
// seen before are covered from the first of them on.
func (t *Tail) Append(b store.Batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range b.Records {
		pt := t.parts[r.Partition]
		if pt == nil {
			pt = &partTail{covers: r.Offset}
			t.parts[r.Partition] = pt
		}
		e := newEntry(r.Partition, r.Offset, r.Payload)
		pt.entries = append(pt.entries, e)
		t.order = append(t.order, e)
		t.bytes += e.size()
	}
	for p, n := range b.NextOffsets {
		if n > t.next[p] {
			t.next[p] = n
		}
		if t.parts[p] == nil {
			t.parts[p] = &partTail{covers: n}
		}
	}
	t.evictLocked()
}

func (t *Tail) evictLocked() {
	for len(t.order)-t.head > t.maxRecords || (t.bytes > t.maxBytes && len(t.order)-t.head > 1) {
		e := t.order[t.head]
		t.order[t.head] = nil
		t.head++
		t.bytes -= e.size()
		pt := t.parts[e.Partition]
		// Per-partition order equals commit order, so e is the front.
		pt.entries[0] = nil
		pt.entries = pt.entries[1:]
		pt.covers = e.Offset + 1
	}
	// Compact the backing arrays once half of them is dead.
	if t.head > 1024 && t.head*2 > len(t.order) {
		t.order = append([]*Entry(nil), t.order[t.head:]...)
		t.head = 0
	}
	for _, pt := range t.parts {
		if cap(pt.entries) > 1024 && len(pt.entries)*4 < cap(pt.entries) {
			pt.entries = append([]*Entry(nil), pt.entries...)
		}
	}
}

// Next returns the next ingest offset of each partition: every record below
// it is committed (or was skipped).
func (t *Tail) Next() map[int32]int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[int32]int64, len(t.next))
	for p, n := range t.next {
		out[p] = n
	}
	return out
}

// NextOf returns the next ingest offset of p, or 0.
func (t *Tail) NextOf(p int32) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.next[p]
}

// After appends to dst the entries of p with offset > after, at most max of
// them and about maxBytes of payload (at least one). ok is false when the
// tail does not cover after+1 and the caller must read the store.
func (t *Tail) After(dst []*Entry, p int32, after int64, max int, maxBytes int) (_ []*Entry, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	pt := t.parts[p]
	if pt == nil || after+1 < pt.covers {
		return dst, false
	}
	i := sort.Search(len(pt.entries), func(i int) bool { return pt.entries[i].Offset > after })
	n := 0
	for ; i < len(pt.entries) && max > 0; i++ {
		e := pt.entries[i]
		if n > 0 && n+len(e.Payload) > maxBytes {
			break
		}
		dst = append(dst, e)
		n += len(e.Payload)
		max--
	}
	return dst, true
}

// Len reports the number of entries and their bytes.
func (t *Tail) Len() (records int, bytes int64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.order) - t.head, t.bytes
}
