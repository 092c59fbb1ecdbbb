package redis_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/synth"
)

// Benchmarks compare the Redis store with the bolt store in the same run,
// on the same realistic records: the synthetic corpus (wire/synth, 50
// runs; every shape, mean payload ≈ 312 B) or only its records of
// 200–400 B, over 3 partitions, appended in batches of benchBatch as
// ingest does.

const benchBatch = 500

var benchCorpus struct {
	once sync.Once
	all  []store.Record
	err  error
}

// corpusRecords returns the corpus records with their index; size > 0
// keeps those within a third of size bytes.
func corpusRecords(tb testing.TB, size int) []store.Record {
	tb.Helper()
	benchCorpus.once.Do(func() {
		recs, err := synth.Corpus(1, 50)
		if err != nil {
			benchCorpus.err = err
			return
		}
		at := time.Now().Truncate(time.Millisecond)
		for _, r := range recs {
			ix, err := wire.Extract(r.Value, wire.DefaultMaxPayload)
			if err != nil {
				benchCorpus.err = err
				return
			}
			benchCorpus.all = append(benchCorpus.all, store.Record{Time: at, Payload: r.Value, Index: ix})
		}
	})
	if benchCorpus.err != nil {
		tb.Fatal(benchCorpus.err)
	}
	if size <= 0 {
		return benchCorpus.all
	}
	var out []store.Record
	for _, r := range benchCorpus.all {
		if l := len(r.Payload); l >= size*2/3 && l <= size*4/3 {
			out = append(out, r)
		}
	}
	return out
}

// recordSource hands out corpus records with fresh offsets on 3
// partitions.
type recordSource struct {
	src  []store.Record
	i    int
	next [3]int64
}

func (rs *recordSource) batch(n int) store.Batch {
	b := store.Batch{NextOffsets: map[int32]int64{}}
	for range n {
		r := rs.src[rs.i%len(rs.src)]
		if cycle := rs.i / len(rs.src); cycle > 0 {
			r.Index = renameThreads(r.Index, fmt.Sprintf("-%d", cycle))
		}
		rs.i++
		r.Partition = int32(rs.i % 3)
		r.Offset = rs.next[r.Partition]
		rs.next[r.Partition]++
		b.Records = append(b.Records, r)
		b.NextOffsets[r.Partition] = r.Offset + 1
	}
	return b
}

// renameThreads gives the threads of a repeated corpus record new ids, so
// every pass over the corpus is new runs, not duplicates of the last.
func renameThreads(ix wire.Index, suffix string) wire.Index {
	ix.Threads = slices.Clone(ix.Threads)
	for i := range ix.Threads {
		ix.Threads[i].ThreadID += suffix
	}
	ix.Events = slices.Clone(ix.Events)
	for i := range ix.Events {
		if ix.Events[i].ThreadID != "" {
			ix.Events[i].ThreadID += suffix
		}
	}
	return ix
}

// backend opens one store under test.
type backend struct {
	name string
	open func(tb testing.TB) store.Store
}

func backends(tb testing.TB) []backend {
	return []backend{
		{"redis", func(tb testing.TB) store.Store {
			srv := startRedis(tb, false)
			return openAt(tb, srv.url(), "v1_bench", store.Retention{})
		}},
		{"redis-aof", func(tb testing.TB) store.Store { // appendfsync always
			srv := startRedis(tb, true)
			return openAt(tb, srv.url(), "v1_bench", store.Retention{})
		}},
		{"bolt", func(tb testing.TB) store.Store {
			s, err := bolt.Open(filepath.Join(tb.TempDir(), bolt.FileName), bolt.Options{Fsync: true})
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}},
		{"bolt-nofsync", func(tb testing.TB) store.Store {
			s, err := bolt.Open(filepath.Join(tb.TempDir(), bolt.FileName), bolt.Options{Fsync: false})
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}},
	}
}

// appendN appends n records in batches and returns the elapsed time.
func appendN(tb testing.TB, s store.Store, rs *recordSource, n int) time.Duration {
	tb.Helper()
	t0 := time.Now()
	for done := 0; done < n; done += benchBatch {
		if err := s.Append(ctx, rs.batch(min(benchBatch, n-done))); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(t0)
}

// readAll pages through every partition (pages of 1000 records, at most
// 4 MiB) and returns the records read and the elapsed time.
func readAll(tb testing.TB, s store.Store) (int, time.Duration) {
	tb.Helper()
	t0 := time.Now()
	n := 0
	for p := range int32(3) {
		after := int64(-1)
		for {
			recs, more, err := s.ReadPartition(ctx, p, after, store.Limits{MaxRecords: 1000, MaxBytes: 4 << 20})
			if err != nil {
				tb.Fatal(err)
			}
			n += len(recs)
			if len(recs) > 0 {
				after = recs[len(recs)-1].Offset
			}
			if !more {
				break
			}
		}
	}
	return n, time.Since(t0)
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{0, 300} {
		for _, be := range backends(b) {
			b.Run(fmt.Sprintf("%s/%s", sizeName(size), be.name), func(b *testing.B) {
				s := be.open(b)
				defer s.Close()
				rs := &recordSource{src: corpusRecords(b, size)}
				b.ResetTimer()
				d := appendN(b, s, rs, b.N*benchBatch)
				b.ReportMetric(float64(b.N*benchBatch)/d.Seconds(), "records/s")
			})
		}
	}
}

func BenchmarkReadPartition(b *testing.B) {
	for _, size := range []int{0, 300} {
		for _, be := range backends(b) {
			b.Run(fmt.Sprintf("%s/%s", sizeName(size), be.name), func(b *testing.B) {
				s := be.open(b)
				defer s.Close()
				appendN(b, s, &recordSource{src: corpusRecords(b, size)}, 30_000)
				b.ResetTimer()
				total := 0
				var d time.Duration
				for range b.N {
					n, dd := readAll(b, s)
					total += n
					d += dd
				}
				b.ReportMetric(float64(total)/d.Seconds(), "records/s")
			})
		}
	}
}

func sizeName(size int) string {
	if size == 0 {
		return "corpus"
	}
	return fmt.Sprintf("%dB", size)
}

// TestBenchReport prints Append and page-read throughput of the Redis
// store against bolt (DASHSTREAM_BENCH=1 only). The backends take turns
// over three rounds and the best round of each counts, which damps the
// noise of a shared machine.
func TestBenchReport(t *testing.T) {
	if os.Getenv("DASHSTREAM_BENCH") != "1" {
		t.Skip("set DASHSTREAM_BENCH=1 for the Redis/bolt throughput report")
	}
	const n, rounds = 30_000, 3
	type row struct {
		size, backend string
		appendRate    float64
		readRate      float64
		avgBytes      int
	}
	best := map[string]*row{}
	var order []string
	for round := range rounds {
		for _, size := range []int{0, 300} {
			src := corpusRecords(t, size)
			avg := 0
			for _, r := range src {
				avg += len(r.Payload)
			}
			avg /= len(src)
			for _, be := range backends(t) {
				key := sizeName(size) + "/" + be.name
				t.Run(fmt.Sprintf("%s/round%d", key, round), func(t *testing.T) {
					s := be.open(t)
					defer s.Close()
					rs := &recordSource{src: src}
					appendN(t, s, rs, 5*benchBatch) // warm up
					d := appendN(t, s, rs, n)
					var reads int
					var rd time.Duration
					for range 3 {
						k, dd := readAll(t, s)
						reads += k
						rd += dd
					}
					r := best[key]
					if r == nil {
						r = &row{size: sizeName(size), backend: be.name, avgBytes: avg}
						best[key] = r
						order = append(order, key)
					}
					r.appendRate = max(r.appendRate, float64(n)/d.Seconds())
					r.readRate = max(r.readRate, float64(reads)/rd.Seconds())
				})
			}
		}
	}
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "records\tavg B\tbackend\tappend rec/s\tvs bolt\tvs bolt-nofsync\tread rec/s\tvs bolt\tvs bolt-nofsync\t\n")
	for _, key := range order {
		r := best[key]
		bf, bn := best[r.size+"/bolt"], best[r.size+"/bolt-nofsync"]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t\n", r.size, r.avgBytes, r.backend,
			r.appendRate, r.appendRate/bf.appendRate, r.appendRate/bn.appendRate,
			r.readRate, r.readRate/bf.readRate, r.readRate/bn.readRate)
	}
	_ = tw.Flush()
	t.Logf("Append (batches of %d, %d records) and ReadPartition (pages of 1000) throughput, best of %d rounds:\n%s",
		benchBatch, n, rounds, sb.String())
}
