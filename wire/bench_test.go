package wire_test

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
	"github.com/dashstream/dashstream/wire/synth"
)

// Benchmarks over the D9 corpus (synth.Corpus(1, 500)): one op is one pass
// over the selected records; b.SetBytes is their total value size, so MB/s
// is Kafka value bytes per second, and ns/record is reported separately.
//
//	go test ./wire/ -run XXX -bench 'Extract|UnmarshalFull' -benchtime 2s
//
// BenchmarkExtractRatio reports unmarshal-ns/extract-ns directly and prints
// the corpus statistics.

// corpusSubset returns the corpus records whose framing byte is first
// (any framing when all is true) and their total size.
func corpusSubset(tb testing.TB, first byte, all bool) ([][]byte, int64) {
	var vals [][]byte
	var n int64
	for _, r := range corpus(tb) {
		if all || (len(r.Value) > 0 && r.Value[0] == first) {
			vals = append(vals, r.Value)
			n += int64(len(r.Value))
		}
	}
	return vals, n
}

var benchSets = []struct {
	name  string
	first byte
	all   bool
}{
	{"all", 0, true},
	{"plain", wire.FrameRaw, false},
	{"zstd", wire.FrameZstd, false},
}

func extractPass(tb testing.TB, vals [][]byte) {
	for _, v := range vals {
		if _, err := wire.Extract(v, wire.DefaultMaxPayload); err != nil {
			tb.Fatal(err)
		}
	}
}

func unmarshalPass(tb testing.TB, vals [][]byte) {
	for _, v := range vals {
		body, err := wire.Unframe(v, wire.DefaultMaxPayload)
		if err != nil {
			tb.Fatal(err)
		}
		if err := proto.Unmarshal(body, new(pb.DashStreamMessage)); err != nil {
			tb.Fatal(err)
		}
	}
}

func runPasses(b *testing.B, pass func(testing.TB, [][]byte)) {
	for _, set := range benchSets {
		b.Run(set.name, func(b *testing.B) {
			vals, size := corpusSubset(b, set.first, set.all)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				pass(b, vals)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(vals)), "ns/record")
		})
	}
}

// BenchmarkExtract: wire.Extract over the corpus.
func BenchmarkExtract(b *testing.B) { runPasses(b, extractPass) }

// BenchmarkUnmarshalFull: wire.Unframe + proto.Unmarshal over the corpus.
func BenchmarkUnmarshalFull(b *testing.B) { runPasses(b, unmarshalPass) }

// BenchmarkExtractRatio times both passes in each iteration and reports
// how many times faster Extract is than the full unmarshal.
func BenchmarkExtractRatio(b *testing.B) {
	for _, set := range benchSets {
		b.Run(set.name, func(b *testing.B) {
			vals, _ := corpusSubset(b, set.first, set.all)
			var tx, tu time.Duration
			for b.Loop() {
				t0 := time.Now()
				extractPass(b, vals)
				t1 := time.Now()
				unmarshalPass(b, vals)
				tx, tu = tx+t1.Sub(t0), tu+time.Since(t1)
			}
			b.ReportMetric(float64(tu)/float64(tx), "unmarshal/extract")
		})
	}
	printStats.Do(func() { fmt.Printf("D9 corpus synth.Corpus(1, 500):\n%s\n", synth.ComputeStats(corpus(b))) })
}

// printStats prints the corpus statistics once per benchmark run (b.Log
// of a benchmark with sub-benchmarks is not shown without -v).
var printStats sync.Once

// TestPrintExtractRatio prints the corpus statistics and the
// Extract/Unmarshal figures through testing.Benchmark. Run with
// WIRE_BENCH_RATIO=1 go test ./wire/ -run TestPrintExtractRatio -v.
func TestPrintExtractRatio(t *testing.T) {
	if os.Getenv("WIRE_BENCH_RATIO") == "" {
		t.Skip("set WIRE_BENCH_RATIO=1 to print the Extract/Unmarshal ratio")
	}
	t.Log("\n" + synth.ComputeStats(corpus(t)).String())
	for _, set := range benchSets {
		vals, size := corpusSubset(t, set.first, set.all)
		bench := func(pass func(testing.TB, [][]byte)) testing.BenchmarkResult {
			return testing.Benchmark(func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					pass(b, vals)
				}
			})
		}
		x, u := bench(extractPass), bench(unmarshalPass)
		perRec := func(r testing.BenchmarkResult) float64 { return float64(r.NsPerOp()) / float64(len(vals)) }
		t.Logf("%-5s %6d records: Extract %7.0f ns/record %8.1f MB/s %4d B/record | Unmarshal %7.0f ns/record %8.1f MB/s %5d B/record | ratio %.2fx",
			set.name, len(vals),
			perRec(x), mbps(x), x.AllocedBytesPerOp()/int64(len(vals)),
			perRec(u), mbps(u), u.AllocedBytesPerOp()/int64(len(vals)),
			float64(u.NsPerOp())/float64(x.NsPerOp()))
	}
}

func mbps(r testing.BenchmarkResult) float64 {
	return float64(r.Bytes) * float64(r.N) / r.T.Seconds() / 1e6
}
