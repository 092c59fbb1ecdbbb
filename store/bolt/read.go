package bolt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

func normLimits(lim store.Limits) (int, int) {
	n, b := lim.MaxRecords, lim.MaxBytes
	if n <= 0 {
		n = DefaultPageRecords
	}
	if b <= 0 {
		b = DefaultPageBytes
	}
	return n, b
}

// seekBlock positions c on the block that may hold offset off: the last
// block whose first offset is <= off, else the first block.
func seekBlock(c *bbolt.Cursor, off int64) ([]byte, []byte) {
	k, v := c.Seek(offKey(off))
	if k != nil && int64(beU64(k)) == off {
		return k, v
	}
	if k == nil {
		return c.Last()
	}
	if pk, pv := c.Prev(); pk != nil {
		return pk, pv
	}
	return c.First()
}

// copied is a block value copied out of a read transaction, decoded
// after it closed.
type copied struct {
	p        int32
	key, val []byte
	recs     []blockRec // decoded lazily
}

func (s *Store) decodeCopied(b *copied, payloadOnly bool) error {
	if b.recs != nil {
		return nil
	}
	decode := s.z.decodeBlock
	if payloadOnly {
		decode = s.z.decodeBlockLazy // header-relative times stay unresolved
	}
	_, recs, err := decode(b.key, b.val)
	if err != nil {
		return fmt.Errorf("store %s: partition %d block %d: %w", s.path, b.p, beU64(b.key), err)
	}
	b.recs = recs
	return nil
}

// record turns a decoded block record into a store.Record. payloadOnly
// leaves out the index and a header-relative time (both need the payload
// extracted again).
func (s *Store) record(p int32, r *blockRec, payloadOnly bool) (store.Record, error) {
	if payloadOnly {
		rec := store.Record{Partition: p, Offset: r.off, Payload: r.payload}
		if !r.hdrTime {
			rec.Time = r.time
		}
		return rec, nil
	}
	ix, err := r.index()
	if err == nil && r.derived {
		r.ix = nil // do not keep the decoded index alive with the block
	}
	if errors.Is(err, errNotDerivable) {
		ix, err = wire.Index{}, nil
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("store %s: partition %d offset %d: %w", s.path, p, r.off, err)
	}
	return store.Record{Partition: p, Offset: r.off, Time: r.time, Payload: r.payload, Index: ix}, nil
}

// ReadPartition returns retained records of p with offset > after, in
// offset order, and whether more follow. The read transaction only copies
// the blocks the page needs (sized from their headers); decompression
// happens after it closed.
func (s *Store) ReadPartition(ctx context.Context, p int32, after int64, lim store.Limits) ([]store.Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if s.closed.Load() {
		return nil, false, s.errClosed()
	}
	maxN, maxB := normLimits(lim)
	start := max(after+1, 0)
	var blocks []*copied
	moreBlocks := false
	err := s.view(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bParts).Bucket(be32(p))
		if pb == nil {
			return nil
		}
		c := pb.Cursor()
		estN, estB := 0, 0
		for k, v := seekBlock(c, start); k != nil; k, v = c.Next() {
			h, err := parseBlockHeader(v)
			if err != nil {
				return fmt.Errorf("partition %d block %d: %w", p, beU64(k), err)
			}
			last := blockLast(k, h)
			if last < start {
				continue
			}
			if estN >= maxN || (estN > 0 && estB >= maxB) {
				moreBlocks = true
				return nil
			}
			n := h.n
			if first := int64(beU64(k)); first < start {
				n = int(min(int64(n), last-start+1))
			}
			estN += n
			estB += h.contentLen(v) / h.n * n
			blocks = append(blocks, &copied{p: p, key: slices.Clone(k), val: slices.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, false, s.readErr(err)
	}
	var out []store.Record
	bytes := 0
	for _, b := range blocks {
		if err := s.decodeCopied(b, lim.PayloadOnly); err != nil {
			return nil, false, err
		}
		for i := range b.recs {
			r := &b.recs[i]
			if r.off < start {
				continue
			}
			if len(out) >= maxN || (len(out) > 0 && bytes+len(r.payload) > maxB) {
				return out, true, nil
			}
			rec, err := s.record(p, r, lim.PayloadOnly)
			if err != nil {
				return nil, false, err
			}
			out = append(out, rec)
			bytes += len(r.payload)
		}
	}
	return out, moreBlocks, nil
}

func (s *Store) readErr(err error) error {
	if s.closed.Load() {
		return s.errClosed()
	}
	return fmt.Errorf("store %s: %w", s.path, err)
}

// ReadThread returns the records of thread threadID whose index key is >
// after, in key order, and whether more follow. Entries are resolved to
// blocks inside a short read transaction (blocks copied once each);
// decoding happens after it closed.
func (s *Store) ReadThread(ctx context.Context, threadID string, after store.ThreadKey, lim store.Limits) ([]store.ThreadRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if s.closed.Load() {
		return nil, false, s.errClosed()
	}
	name := wire.SanitizeKey(wire.BoundThreadID(threadID))
	if name == "" {
		return nil, false, nil
	}
	maxN, maxB := normLimits(lim)
	type entry struct {
		key   store.ThreadKey
		block *copied
	}
	var entries []entry
	more := false
	err := s.view(func(tx *bbolt.Tx) error {
		parts := tx.Bucket(bParts)
		cursors := map[int32]*bbolt.Cursor{}
		byKey := map[string]*copied{}
		estB := 0
		var ferr error
		err := threadEntriesAfter(tx.Bucket(bThreads), name, after, func(tk store.ThreadKey) bool {
			pc, seen := cursors[tk.Partition]
			if !seen {
				if pb := parts.Bucket(be32(tk.Partition)); pb != nil {
					pc = pb.Cursor()
				}
				cursors[tk.Partition] = pc
			}
			if pc == nil {
				return true
			}
			bk, bv := seekBlock(pc, tk.Offset)
			if bk == nil || int64(beU64(bk)) > tk.Offset {
				return true // evicted
			}
			h, err := parseBlockHeader(bv)
			if err != nil {
				ferr = fmt.Errorf("partition %d block %d: %w", tk.Partition, beU64(bk), err)
				return false
			}
			if blockLast(bk, h) < tk.Offset {
				return true
			}
			est := h.contentLen(bv) / h.n
			if len(entries) >= maxN || (len(entries) > 0 && estB+est > maxB) {
				more = true
				return false
			}
			estB += est
			id := string(be32(tk.Partition)) + string(bk)
			b := byKey[id]
			if b == nil {
				b = &copied{p: tk.Partition, key: slices.Clone(bk), val: slices.Clone(bv)}
				byKey[id] = b
			}
			entries = append(entries, entry{key: tk, block: b})
			return true
		})
		if ferr != nil {
			return ferr
		}
		return err
	})
	if err != nil {
		return nil, false, s.readErr(err)
	}
	out := make([]store.ThreadRecord, 0, len(entries))
	bytes := 0
	for _, e := range entries {
		if err := s.decodeCopied(e.block, lim.PayloadOnly); err != nil {
			return nil, false, err
		}
		recs := e.block.recs
		j, found := slices.BinarySearchFunc(recs, e.key.Offset, func(r blockRec, off int64) int { return cmp.Compare(r.off, off) })
		if !found {
			continue // a hole: the entry outlived its record
		}
		r := &recs[j]
		if len(out) > 0 && bytes+len(r.payload) > maxB {
			return out, true, nil
		}
		rec, err := s.record(e.block.p, r, lim.PayloadOnly)
		if err != nil {
			return nil, false, err
		}
		out = append(out, store.ThreadRecord{Key: e.key, Record: rec})
		bytes += len(r.payload)
	}
	return out, more, nil
}

// Skipped returns the recorded skipped ranges of p overlapping [from, to).
func (s *Store) Skipped(p int32, from, to int64) ([]store.SkippedRange, error) {
	if s.closed.Load() {
		return nil, s.errClosed()
	}
	var out []store.SkippedRange
	err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bSkipped).Cursor()
		prefix := be32(p)
		for k, v := c.Seek(prefix); k != nil && string(k[:4]) == string(prefix); k, v = c.Next() {
			r, ok := parseSkip(k, v)
			if !ok {
				return fmt.Errorf("partition %d: corrupt skipped range", p)
			}
			if r.From >= to {
				break
			}
			if r.To > from {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.readErr(err)
	}
	return out, nil
}

// Runs lists run summaries newest first (store.PageRuns order) through the
// runtime index, reading only as far as the page needs.
func (s *Store) Runs(ctx context.Context, q store.RunQuery) ([]store.RunSummary, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if s.closed.Load() {
		return nil, "", s.errClosed()
	}
	q = q.Normalized()
	var after *store.RunCursor
	if q.Before != "" {
		c, err := store.DecodeRunCursor(q.Before)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}
	var sel []store.RunSummary
	err := s.view(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bThreads)
		c := tx.Bucket(bRunTime).Cursor()
		var k []byte
		if after != nil && after.UpdatedAt < math.MaxInt64 {
			// The last key with a time <= the cursor's time.
			if k, _ = c.Seek(runTimeKeyRaw(after.UpdatedAt+1, "")); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else {
			k, _ = c.Last()
		}
		// Walk backwards one UpdatedAt group at a time; within a group the
		// list is ordered by thread id ascending.
		for k != nil && len(sel) <= q.Limit {
			t, _ := runTimeOf(k)
			var group []store.RunSummary
			for ; k != nil; k, _ = c.Prev() {
				kt, id := runTimeOf(k)
				if kt != t {
					break
				}
				v := runs.Get(runKey(id))
				if v == nil {
					continue
				}
				sum, ok := decodeRun(v)
				if !ok {
					return fmt.Errorf("run %q: corrupt summary", id)
				}
				if q.Matches(sum) && (after == nil || after.Precedes(sum)) {
					group = append(group, sum)
				}
			}
			slices.SortFunc(group, store.CompareRuns)
			sel = append(sel, group...)
		}
		return nil
	})
	if err != nil {
		return nil, "", s.readErr(err)
	}
	if len(sel) <= q.Limit {
		return sel, "", nil
	}
	sel = sel[:q.Limit:q.Limit]
	return sel, store.CursorOf(sel[len(sel)-1]).Encode(), nil
}

// Run returns one run summary.
func (s *Store) Run(ctx context.Context, threadID string) (store.RunSummary, bool, error) {
	if err := ctx.Err(); err != nil {
		return store.RunSummary{}, false, err
	}
	if s.closed.Load() {
		return store.RunSummary{}, false, s.errClosed()
	}
	id := wire.BoundThreadID(threadID)
	var sum store.RunSummary
	var found bool
	err := s.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bThreads).Get(runKey(id))
		if v == nil {
			return nil
		}
		var ok bool
		if sum, ok = decodeRun(v); !ok {
			return fmt.Errorf("run %q: corrupt summary", id)
		}
		found = true
		return nil
	})
	if err != nil {
		return store.RunSummary{}, false, s.readErr(err)
	}
	return sum, found, nil
}
