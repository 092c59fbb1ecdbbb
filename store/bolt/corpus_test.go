package bolt

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/corpus"
	"github.com/dashstream/dashstream/wire/synth"
)

// The D9 corpus (`dashstream produce --seed 1 --runs 500`), generated once
// per test binary: it takes seconds.
var d9Corpus = sync.OnceValues(func() (*corpusSet, error) {
	raw, err := synth.Corpus(1, 500)
	if err != nil {
		return nil, err
	}
	return newCorpusSet(raw), nil
})

// corpusSet is the corpus as Kafka records and as the store gets them.
type corpusSet struct {
	raw       []synth.Record
	recs      []store.Record // valid records, offsets counted per partition
	plain     []store.Record // the 0x00 ones, offsets counted per partition
	allBytes  int64          // every value byte of the corpus
	plainRaw  int64          // value bytes of the 0x00 records
	invalid   int
	stats     synth.Stats
	statsText string
}

func newCorpusSet(raw []synth.Record) *corpusSet {
	x := corpus.Index(raw)
	return &corpusSet{raw: raw, recs: x.Recs, plain: x.Plain, allBytes: x.AllBytes, plainRaw: x.PlainRaw,
		invalid: x.Invalid, stats: x.Stats, statsText: x.Stats.String()}
}

func loadCorpus(tb testing.TB) *corpusSet {
	tb.Helper()
	c, err := d9Corpus()
	if err != nil {
		tb.Fatalf("corpus: %v", err)
	}
	return c
}

// batchOf wraps recs with NextOffsets = last offset + 1 per partition.
func batchOf(recs []store.Record) store.Batch {
	b := store.Batch{Records: recs, NextOffsets: map[int32]int64{}}
	for _, r := range recs {
		b.NextOffsets[r.Partition] = r.Offset + 1
	}
	return b
}

// fill appends recs in batches of n.
func fill(tb testing.TB, s *Store, recs []store.Record, n int) {
	tb.Helper()
	for i := 0; i < len(recs); i += n {
		if err := s.Append(context.Background(), batchOf(recs[i:min(i+n, len(recs))])); err != nil {
			tb.Fatalf("append at %d: %v", i, err)
		}
	}
}

// storeRatios ingests the corpus and reports storage_ratio (stored block
// bytes of a store holding only the plain records / their Kafka bytes) and
// file_bytes_ratio (the file holding the whole corpus / all its Kafka
// bytes). Batches of 500, as ingest would write one poll.
type ratios struct {
	storage, fileBytes   float64
	storeFile, highWater int64
	stored, raw          int64
}

func storeRatios(tb testing.TB, c *corpusSet) ratios {
	tb.Helper()
	var r ratios
	dir := tb.TempDir()
	s, err := Open(filepath.Join(dir, "plain.db"), Options{Fsync: false})
	if err != nil {
		tb.Fatal(err)
	}
	fill(tb, s, c.plain, 500)
	st := s.Stats()
	r.storage = float64(st.StoredBytes) / float64(c.plainRaw)
	r.stored, r.raw = st.StoredBytes, st.RawBytes
	s.Close()
	path := filepath.Join(dir, "all.db")
	s, err = Open(path, Options{Fsync: false})
	if err != nil {
		tb.Fatal(err)
	}
	fill(tb, s, c.recs, 500)
	r.highWater = highWater(tb, s)
	s.Close()
	r.storeFile = fileSize(tb, path)
	r.fileBytes = float64(r.storeFile) / float64(c.allBytes)
	return r
}

// TestCorpusRoundTrip stores the whole D9 corpus and reads every record
// back by partition and by thread, byte for byte. Long: DASHSTREAM_BENCH=1
// or DASHSTREAM_LONG=1, and not under -short.
func TestCorpusRoundTrip(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("long")
	}
	c := loadCorpus(t)
	s, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill(t, s, c.recs, 700)
	ctx := context.Background()
	byPart := map[int32][]store.Record{}
	threads := map[string]int{}
	for _, r := range c.recs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
		for _, th := range r.Index.Threads {
			threads[th.ThreadID]++
		}
	}
	for p, want := range byPart {
		after, i := int64(-1), 0
		for {
			recs, more, err := s.ReadPartition(ctx, p, after, store.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				w := want[i]
				if r.Offset != w.Offset || string(r.Payload) != string(w.Payload) || !r.Time.Equal(w.Time) || r.Index.Type != w.Index.Type || len(r.Index.Threads) != len(w.Index.Threads) {
					t.Fatalf("partition %d record %d differs", p, w.Offset)
				}
				i++
				after = r.Offset
			}
			if !more {
				break
			}
		}
		if i != len(want) {
			t.Fatalf("partition %d: read %d of %d", p, i, len(want))
		}
	}
	n := 0
	for id, want := range threads {
		if n++; n > 50 {
			break
		}
		var got int
		after := store.ThreadKey{}
		for {
			trs, more, err := s.ReadThread(ctx, id, after, store.Limits{MaxRecords: 64})
			if err != nil {
				t.Fatal(err)
			}
			got += len(trs)
			if len(trs) > 0 {
				after = trs[len(trs)-1].Key
			}
			if !more {
				break
			}
		}
		if got != want {
			t.Fatalf("thread %s: %d records, want %d", id, got, want)
		}
	}
}
