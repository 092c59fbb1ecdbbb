package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
)

// The raw bbolt baseline uses the options store/bolt opens its file with
// (store/bolt/bolt.go and retention.go): map freelist, a 256 MiB initial
// mmap, 4 MiB allocation steps, FillPercent 1 on the append-only buckets,
// fsync on every commit.

// StoreAppendResult compares store Append with raw bbolt puts.
type StoreAppendResult struct {
	Records       int // timed records (after the warm-up)
	WarmupRecords int // appended first, untimed, on both sides
	RecordBytes   int
	BatchRecords  int
	Rounds        int
	// Steady state: after the warm-up, in which the store trains its
	// compression dictionary (once in a store's life).
	StoreRecsPerS  float64
	BaseRecsPerS   float64
	StoreMBPerS    float64
	BaselineMBPerS float64
	Ratio          float64
	// Cold: the warm-up included, from a fresh file.
	ColdStoreRecsPerS float64
	ColdBaseRecsPerS  float64
	ColdRatio         float64
}

// appendTimes are the cold (whole run) and steady (after the warm-up)
// durations of one append run.
type appendTimes struct{ cold, steady time.Duration }

// benchStoreAppend appends warm+n records of size bytes in batches of
// batch, durably, to a fresh store and to a fresh raw bbolt file,
// alternating for rounds rounds, and compares the medians. The first warm
// records are not timed in the steady figures.
func benchStoreAppend(ctx context.Context, c *Corpus, dir string, warm, n, size, batch, rounds int) (StoreAppendResult, error) {
	recs := c.SizedRecords(size, warm+n, 3)
	bs := Batches(recs, batch)
	wb := warm / batch
	var st, bt []appendTimes
	for r := range rounds {
		d, w, err := appendStore(ctx, filepath.Join(dir, fmt.Sprintf("store-%d.db", r)), bs, wb)
		if err != nil {
			return StoreAppendResult{}, err
		}
		if r > 0 && w != wb {
			return StoreAppendResult{}, fmt.Errorf("store append bench: warm-up of %d batches in round %d, %d before", w, r, wb)
		}
		wb = w
		st = append(st, d)
		d, err = appendBaseline(filepath.Join(dir, fmt.Sprintf("base-%d.db", r)), bs, wb)
		if err != nil {
			return StoreAppendResult{}, err
		}
		bt = append(bt, d)
	}
	med := func(ts []appendTimes, cold bool) time.Duration {
		ds := make([]time.Duration, len(ts))
		for i, t := range ts {
			ds[i] = t.steady
			if cold {
				ds[i] = t.cold
			}
		}
		return median(ds)
	}
	ms, mb := med(st, false), med(bt, false)
	cs, cb := med(st, true), med(bt, true)
	timed := int64((len(bs) - wb) * batch)
	bytes := timed * int64(size)
	all := int64(len(recs))
	return StoreAppendResult{
		Records: int(timed), WarmupRecords: wb * batch, RecordBytes: size, BatchRecords: batch, Rounds: rounds,
		StoreRecsPerS: rate(timed, ms), BaseRecsPerS: rate(timed, mb),
		StoreMBPerS: rate(bytes, ms) / 1e6, BaselineMBPerS: rate(bytes, mb) / 1e6,
		Ratio:             mb.Seconds() / ms.Seconds(),
		ColdStoreRecsPerS: rate(all, cs), ColdBaseRecsPerS: rate(all, cb), ColdRatio: cb.Seconds() / cs.Seconds(),
	}, nil
}

// appendStore times the batches into a fresh store. The warm-up lasts at
// least warm batches and until the store has trained its dictionary, so
// the steady figures never include training; it returns the batches the
// warm-up took, for the baseline to skip the same.
func appendStore(ctx context.Context, path string, bs []store.Batch, warm int) (appendTimes, int, error) {
	defer os.Remove(path)
	s, err := bolt.Open(path, bolt.Options{Fsync: true})
	if err != nil {
		return appendTimes{}, 0, fmt.Errorf("store append bench: %w", err)
	}
	defer s.Close()
	var t appendTimes
	start := time.Now()
	var steady time.Time
	for i, b := range bs {
		if i >= warm && steady.IsZero() {
			if s.HasDictionary() {
				steady = time.Now()
			} else if warm++; warm > len(bs)/2 {
				return appendTimes{}, 0, fmt.Errorf("store append bench: no compression dictionary after %d batches", i)
			}
		}
		if err := s.Append(ctx, b); err != nil {
			return appendTimes{}, 0, fmt.Errorf("store append bench: %w", err)
		}
	}
	t.cold, t.steady = time.Since(start), time.Since(steady)
	return t, warm, nil
}

// appendBaseline writes the same batches as raw bbolt puts: one bucket per
// partition keyed by big-endian offset, no compression, no index, no meta.
func appendBaseline(path string, bs []store.Batch, warm int) (appendTimes, error) {
	defer os.Remove(path)
	db, err := bolt.OpenRaw(path) // the store's bbolt options: same page size, freelist, mmap, AllocSize
	if err != nil {
		return appendTimes{}, fmt.Errorf("raw bbolt baseline: %w", err)
	}
	defer db.Close()
	var t appendTimes
	start := time.Now()
	var steady time.Time
	for i, b := range bs {
		if i == warm {
			steady = time.Now()
		}
		err := db.Update(func(tx *bbolt.Tx) error {
			var key [8]byte
			for i := range b.Records {
				r := &b.Records[i]
				bk, err := tx.CreateBucketIfNotExists(binary.BigEndian.AppendUint32(nil, uint32(r.Partition)))
				if err != nil {
					return err
				}
				bk.FillPercent = 1.0
				binary.BigEndian.PutUint64(key[:], uint64(r.Offset))
				if err := bk.Put(key[:], r.Payload); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return appendTimes{}, fmt.Errorf("raw bbolt baseline: %w", err)
		}
	}
	t.cold, t.steady = time.Since(start), time.Since(steady)
	return t, nil
}

// StorageResult is D9's storage_ratio and file_bytes_ratio.
type StorageResult struct {
	StorageRatio   float64 // stored payload bytes / Kafka value bytes, plain records
	FileBytesRatio float64 // store file bytes / all Kafka value bytes
	PlainRaw       int64
	PlainStored    int64
	AllBytes       int64
	FileBytes      int64
}

// benchStorage stores the corpus as D9 says: the plain (0x00) records
// alone for storage_ratio, every valid record for file_bytes_ratio, in
// batches of 500 as ingest would write one poll.
func benchStorage(ctx context.Context, c *Corpus, dir string) (StorageResult, error) {
	r := StorageResult{PlainRaw: c.PlainRaw, AllBytes: c.AllBytes}
	fill := func(path string, recs []store.Record) (store.Stats, error) {
		s, err := bolt.Open(path, bolt.Options{Fsync: false})
		if err != nil {
			return store.Stats{}, fmt.Errorf("storage bench: %w", err)
		}
		for _, b := range Batches(recs, 500) {
			if err := s.Append(ctx, b); err != nil {
				s.Close()
				return store.Stats{}, fmt.Errorf("storage bench: %w", err)
			}
		}
		st := s.Stats()
		if err := s.Close(); err != nil {
			return store.Stats{}, fmt.Errorf("storage bench: %w", err)
		}
		return st, nil
	}
	plain := filepath.Join(dir, "plain.db")
	defer os.Remove(plain)
	st, err := fill(plain, c.Plain)
	if err != nil {
		return r, err
	}
	r.PlainStored = st.StoredBytes
	r.StorageRatio = float64(st.StoredBytes) / float64(c.PlainRaw)
	all := filepath.Join(dir, "all.db")
	defer os.Remove(all)
	if _, err := fill(all, c.Recs); err != nil {
		return r, err
	}
	fi, err := os.Stat(all)
	if err != nil {
		return r, fmt.Errorf("storage bench: %w", err)
	}
	r.FileBytes = fi.Size()
	r.FileBytesRatio = float64(fi.Size()) / float64(c.AllBytes)
	return r, nil
}
