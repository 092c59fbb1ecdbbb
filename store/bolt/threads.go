package bolt

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/dashstream/dashstream/store"
)

// The thread index lives in one bucket of chunks. A chunk holds up to
// chunkMaxEntries index entries of one thread in D3 key order (sequence,
// partition, offset); its key is the sanitized thread id, a 0 byte and the
// D3 key of its first entry, so Seek finds the chunk holding any key and
// a thread's chunks are adjacent. Its value packs the entries as deltas
// (about 4 bytes each, against 36 for a bbolt key per entry, and no page
// per thread). Sanitized ids contain only [A-Za-z0-9_-], never 0.
const chunkMaxEntries = 256

func threadPrefix(name string) []byte {
	return append([]byte(name), 0)
}

func chunkKey(prefix []byte, k store.ThreadKey) []byte {
	return appendThreadKey(append(make([]byte, 0, len(prefix)+threadKeyLen), prefix...), k)
}

func compareTK(a, b store.ThreadKey) int {
	if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
		return c
	}
	return cmp.Compare(a.Offset, b.Offset)
}

// encodeChunk packs sorted entries: count, then per entry the sequence
// delta, and zigzag deltas of partition and offset.
func encodeChunk(es []store.ThreadKey) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 4+len(es)*4), uint64(len(es)))
	var prev store.ThreadKey
	for _, e := range es {
		b = binary.AppendUvarint(b, e.Seq-prev.Seq)
		b = binary.AppendVarint(b, int64(e.Partition)-int64(prev.Partition))
		b = binary.AppendVarint(b, e.Offset-prev.Offset)
		prev = e
	}
	return b
}

func decodeChunk(v []byte) ([]store.ThreadKey, error) {
	r := metaReader{b: v}
	n := r.count(3)
	es := make([]store.ThreadKey, 0, n)
	var prev store.ThreadKey
	for i := 0; i < n && r.err == nil; i++ {
		e := store.ThreadKey{
			Seq:       prev.Seq + r.uvarint(),
			Partition: int32(int64(prev.Partition) + r.varint()),
			Offset:    prev.Offset + r.varint(),
		}
		if i > 0 && compareTK(e, prev) <= 0 {
			r.err = errCorruptValue
		}
		es = append(es, e)
		prev = e
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: thread index chunk", errCorruptValue)
	}
	return es, nil
}

// chunkAt positions c on the chunk of prefix that holds (or would hold) k:
// the last chunk whose first key is <= k, else the thread's first chunk.
// It returns nil when the thread has no chunk.
func chunkAt(c *bbolt.Cursor, prefix []byte, k store.ThreadKey) ([]byte, []byte) {
	target := chunkKey(prefix, k)
	ck, cv := c.Seek(target)
	if ck != nil && bytes.Equal(ck, target) {
		return ck, cv
	}
	var pk, pv []byte
	if ck == nil {
		pk, pv = c.Last()
	} else {
		pk, pv = c.Prev()
	}
	if pk != nil && bytes.HasPrefix(pk, prefix) {
		return pk, pv
	}
	// k sorts before every chunk of the thread: its first chunk, if any.
	ck, cv = c.Seek(prefix)
	if ck != nil && bytes.HasPrefix(ck, prefix) {
		return ck, cv
	}
	return nil, nil
}

// nextChunkFirst returns the first key of the chunk after the one c is on,
// if it belongs to the same thread.
func nextChunkFirst(c *bbolt.Cursor, prefix []byte) (store.ThreadKey, bool) {
	nk, _ := c.Next()
	if nk == nil || !bytes.HasPrefix(nk, prefix) {
		return store.ThreadKey{}, false
	}
	k, ok := parseThreadKey(nk[len(prefix):])
	return k, ok
}

// putChunks writes sorted entries as chunks, replacing the chunk under old
// (nil if none).
func putChunks(tb *bbolt.Bucket, prefix, old []byte, es []store.ThreadKey) error {
	if old != nil {
		if err := tb.Delete(old); err != nil {
			return err
		}
	}
	for len(es) > 0 {
		n := min(len(es), chunkMaxEntries)
		if len(es) > chunkMaxEntries && len(es) < 2*chunkMaxEntries {
			n = len(es) / 2 // split a full chunk evenly
		}
		if err := tb.Put(chunkKey(prefix, es[0]), encodeChunk(es[:n])); err != nil {
			return err
		}
		es = es[n:]
	}
	return nil
}

// addThreadEntries merges sorted, distinct entries into a thread's index
// and reports whether the thread was new.
func addThreadEntries(tb *bbolt.Bucket, name string, es []store.ThreadKey) (bool, error) {
	prefix := threadPrefix(name)
	isNew := false
	for len(es) > 0 {
		c := tb.Cursor()
		ck, cv := chunkAt(c, prefix, es[0])
		if ck == nil {
			isNew = true
			return true, putChunks(tb, prefix, nil, es)
		}
		old, err := decodeChunk(cv)
		if err != nil {
			return false, fmt.Errorf("thread %q: %w", name, err)
		}
		ck = slices.Clone(ck)
		// Entries up to the next chunk's first key join this chunk.
		j := len(es)
		if nf, ok := nextChunkFirst(c, prefix); ok {
			j, _ = slices.BinarySearchFunc(es, nf, compareTK)
		}
		j = max(j, 1) // chunkAt chose the last chunk starting at or before es[0]
		if err := putChunks(tb, prefix, ck, mergeEntries(old, es[:j])); err != nil {
			return false, err
		}
		es = es[j:]
	}
	return isNew, nil
}

// mergeEntries merges two sorted lists, dropping duplicates.
func mergeEntries(a, b []store.ThreadKey) []store.ThreadKey {
	out := make([]store.ThreadKey, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && compareTK(a[i], b[j]) < 0:
			out = append(out, a[i])
			i++
		case i == len(a) || compareTK(a[i], b[j]) > 0:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// removeThreadEntries deletes sorted entries from a thread's index and
// reports whether the thread has no entries left.
func removeThreadEntries(tb *bbolt.Bucket, name string, es []store.ThreadKey) (bool, error) {
	prefix := threadPrefix(name)
	for len(es) > 0 {
		c := tb.Cursor()
		ck, cv := chunkAt(c, prefix, es[0])
		if ck == nil {
			break
		}
		old, err := decodeChunk(cv)
		if err != nil {
			return false, fmt.Errorf("thread %q: %w", name, err)
		}
		ck = slices.Clone(ck)
		j := len(es)
		if nf, ok := nextChunkFirst(c, prefix); ok {
			j, _ = slices.BinarySearchFunc(es, nf, compareTK)
		}
		j = max(j, 1)
		kept := old[:0:0]
		drop := es[:j]
		for _, e := range old {
			if _, found := slices.BinarySearchFunc(drop, e, compareTK); !found {
				kept = append(kept, e)
			}
		}
		if len(kept) != len(old) {
			if err := putChunks(tb, prefix, ck, kept); err != nil {
				return false, err
			}
		}
		es = es[j:]
	}
	k, _ := tb.Cursor().Seek(prefix)
	return k == nil || !bytes.HasPrefix(k, prefix), nil
}

// threadEntriesAfter calls fn with the thread's entries after `after`, in
// order, until fn returns false.
func threadEntriesAfter(tb *bbolt.Bucket, name string, after store.ThreadKey, fn func(store.ThreadKey) bool) error {
	prefix := threadPrefix(name)
	c := tb.Cursor()
	ck, cv := chunkAt(c, prefix, after)
	for ; ck != nil && bytes.HasPrefix(ck, prefix); ck, cv = c.Next() {
		es, err := decodeChunk(cv)
		if err != nil {
			return fmt.Errorf("thread %q: %w", name, err)
		}
		for _, e := range es {
			if compareTK(e, after) <= 0 {
				continue
			}
			if !fn(e) {
				return nil
			}
		}
	}
	return nil
}
