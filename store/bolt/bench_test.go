package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/zstd"
	bbolt "go.etcd.io/bbolt"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// Benchmarks and the report compare the store with a raw bbolt baseline in
// the same run: the same bytes, the same batching and the same bbolt
// options (fsync on, FillPercent 1, map freelist, same mmap and growth
// settings), one bucket per partition keyed by big-endian offset, with no
// compression, no index and no run summaries: the fastest straightforward
// version.

// sizedRecords returns n real corpus records whose value is within a third
// of size bytes (300 B: mostly token chunks and state diffs, plain; 3 KB:
// mostly zstd-framed), cycling through them with fresh offsets (3
// partitions), with the index ingest would give them: realistic bytes,
// neither zeros nor noise.
func sizedRecords(c *corpusSet, size, n int) []store.Record {
	var src []store.Record
	for _, r := range c.recs {
		if l := len(r.Payload); l >= size*2/3 && l <= size*4/3 {
			src = append(src, r)
		}
	}
	out := make([]store.Record, 0, n)
	next := map[int32]int64{}
	for i := 0; len(out) < n; i++ {
		r := src[i%len(src)]
		r.Partition %= 3
		r.Offset = next[r.Partition]
		next[r.Partition]++
		out = append(out, r)
	}
	return out
}

// baselineDB is the raw bbolt baseline.
type baselineDB struct {
	db *bbolt.DB
}

func openBaseline(tb testing.TB, path string) *baselineDB {
	tb.Helper()
	db, err := OpenRaw(path) // the store's bbolt options, 8 KiB pages included
	if err != nil {
		tb.Fatal(err)
	}
	return &baselineDB{db: db}
}

func (b *baselineDB) append(recs []store.Record) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		var key [8]byte
		for i := range recs {
			r := &recs[i]
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
}

// readAll scans one partition bucket copying every value, in pages of
// 256 records (one read transaction each), as a replay would.
func (b *baselineDB) readAll(p int32) (n int, bytes int64) {
	after := -1
	for {
		got := 0
		_ = b.db.View(func(tx *bbolt.Tx) error {
			bk := tx.Bucket(binary.BigEndian.AppendUint32(nil, uint32(p)))
			c := bk.Cursor()
			for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, uint64(after+1))); k != nil && got < DefaultPageRecords; k, v = c.Next() {
				_ = slices.Clone(v)
				bytes += int64(len(v))
				after = int(binary.BigEndian.Uint64(k))
				got++
			}
			return nil
		})
		n += got
		if got < DefaultPageRecords {
			return n, bytes
		}
	}
}

// warmupRecords is the warm-up of a timed append run, as in `dashstream
// bench`: at least dictTrainSamples records, so the store has trained its
// compression dictionary (once per file, about a second) and the run
// measures the steady state.
const warmupRecords = max(5000, dictTrainSamples)

// splitWarm splits records made for a timed run into the warm-up (the
// first warmupRecords, moved to partition 99 and appended untimed) and the
// timed records. The warm-up must be records of its own: cycling the few
// hundred timed ones gives the dictionary trainer too little variety to
// build a dictionary.
func splitWarm(all []store.Record) (warm, timed []store.Record) {
	warm = slices.Clone(all[:warmupRecords])
	for i := range warm {
		warm[i].Partition, warm[i].Offset = 99, int64(i)
	}
	return warm, all[warmupRecords:]
}

// appendRun times appending recs in batches of batch records to a store
// (durable) or baseline in dir, both warmed up with the same records.
func appendRun(tb testing.TB, dir string, warm, recs []store.Record, batch int, baseline bool) time.Duration {
	d, _ := appendRunCPU(tb, dir, warm, recs, batch, baseline)
	return d
}

// appendRunCPU is appendRun also returning the process CPU time the timed
// part used (it includes other goroutines of the test binary, which are
// idle then).
func appendRunCPU(tb testing.TB, dir string, warm, recs []store.Record, batch int, baseline bool) (time.Duration, time.Duration) {
	tb.Helper()
	path := filepath.Join(dir, fmt.Sprintf("append-%v-%d.db", baseline, batch))
	defer os.Remove(path)
	if baseline {
		b := openBaseline(tb, path)
		defer b.db.Close()
		for i := 0; i < len(warm); i += 500 {
			if err := b.append(warm[i:min(i+500, len(warm))]); err != nil {
				tb.Fatal(err)
			}
		}
		cpu, start := processCPU(), time.Now()
		for i := 0; i < len(recs); i += batch {
			if err := b.append(recs[i:min(i+batch, len(recs))]); err != nil {
				tb.Fatal(err)
			}
		}
		return time.Since(start), processCPU() - cpu
	}
	s, err := Open(path, Options{Fsync: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	fill(tb, s, warm, 500)
	// Payloads that are zstd frames already (most records of a few KB)
	// are stored as they are and never sampled, so only a warm-up with
	// enough plain payload must have trained the dictionary.
	var plain int
	for i := range warm {
		if !isRawPayload(warm[i].Payload) {
			plain += min(len(warm[i].Payload), dictSampleMax)
		}
	}
	if plain >= dictTrainBytes && !s.HasDictionary() {
		tb.Fatalf("no dictionary after a warm-up of %d records (%d plain bytes)", len(warm), plain)
	}
	cpu, start := processCPU(), time.Now()
	for i := 0; i < len(recs); i += batch {
		if err := s.Append(context.Background(), batchOf(recs[i:min(i+batch, len(recs))])); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(start), processCPU() - cpu
}

func payloadBytes(recs []store.Record) int64 {
	var n int64
	for i := range recs {
		n += int64(len(recs[i].Payload))
	}
	return n
}

// BenchmarkAppend appends realistic records (corpus records of about 300 B
// and 3 KB, marked Extracted as ingest marks them) in batches of 1, 100
// and 1000, durably, and reports records/s and MB/s of the store and of
// the raw bbolt baseline, and their ratio (store/baseline). "300B-bench"
// uses the records `dashstream bench` times for store_append_ratio
// (cmdRecords): 300 B payloads that are not whole messages, so their
// index is stored, not derived.
func BenchmarkAppend(b *testing.B) {
	c := loadCorpus(b)
	type variant struct {
		name        string
		size, batch int
		recs        func(n int) []store.Record
	}
	var vs []variant
	for _, size := range []int{300, 3000} {
		for _, batch := range []int{1, 100, 1000} {
			vs = append(vs, variant{fmt.Sprintf("%dB/batch%d", size, batch), size, batch, func(n int) []store.Record {
				recs := sizedRecords(c, size, n)
				for i := range recs {
					recs[i].Extracted = true
				}
				return recs
			}})
		}
	}
	vs = append(vs, variant{"300B-bench/batch1000", 300, 1000, func(n int) []store.Record { return cmdRecords(c, 300, n, 3) }})
	for _, v := range vs {
		b.Run(v.name, func(b *testing.B) {
			n := v.batch * 20
			if v.batch == 1 {
				n = 200
			}
			warm, recs := splitWarm(v.recs(warmupRecords + n))
			dir := b.TempDir()
			var st, bt time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st += appendRun(b, dir, warm, recs, v.batch, false)
				bt += appendRun(b, dir, warm, recs, v.batch, true)
			}
			total := float64(n * b.N)
			b.ReportMetric(total/st.Seconds(), "rec/s")
			b.ReportMetric(float64(payloadBytes(recs))*float64(b.N)/st.Seconds()/1e6, "MB/s")
			b.ReportMetric(total/bt.Seconds(), "base_rec/s")
			b.ReportMetric(bt.Seconds()/st.Seconds(), "ratio")
		})
	}
}

// cmdRecords builds records as cmd/dashstream/internal/bench
// (Corpus.SizedRecords) does for store_append_ratio: plain payloads of
// exactly size bytes cut from concatenated corpus payloads, with the first
// one's index and time.
func cmdRecords(c *corpusSet, size, n int, partitions int32) []store.Record {
	out := make([]store.Record, 0, n)
	next := map[int32]int64{}
	src := c.plain
	j := 0
	for len(out) < n {
		base := src[j%len(src)]
		b := make([]byte, 0, size)
		for len(b) < size {
			b = append(b, src[j%len(src)].Payload...)
			j++
		}
		b = b[:size]
		b[0] = wire.FrameRaw
		p := base.Partition % partitions
		out = append(out, store.Record{Partition: p, Offset: next[p], Time: base.Time, Payload: b, Index: base.Index})
		next[p]++
	}
	return out
}

// BenchmarkReadPartition pages through a partition of the corpus and
// reports records/s of the store and the baseline, and their ratio:
// "payload" reads what a replay to sockets needs (Limits.PayloadOnly),
// "index" also rebuilds each record's time and index.
func BenchmarkReadPartition(b *testing.B) {
	c := loadCorpus(b)
	dir := b.TempDir()
	s, err := Open(filepath.Join(dir, FileName), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill(b, s, c.recs, 1000)
	base := openBaseline(b, filepath.Join(dir, "base.db"))
	defer base.db.Close()
	for i := 0; i < len(c.recs); i += 1000 {
		if err := base.append(c.recs[i:min(i+1000, len(c.recs))]); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"payload", "index"} {
		b.Run(mode, func(b *testing.B) {
			lim := store.Limits{PayloadOnly: mode == "payload"}
			var st, bt time.Duration
			var n int
			var bytes int64
			for i := 0; i < b.N; i++ {
				start := time.Now()
				n, bytes = readAllStore(b, s, 0, lim)
				st += time.Since(start)
				start = time.Now()
				base.readAll(0)
				bt += time.Since(start)
			}
			b.ReportMetric(float64(n*b.N)/st.Seconds(), "rec/s")
			b.ReportMetric(float64(bytes)*float64(b.N)/st.Seconds()/1e6, "MB/s")
			b.ReportMetric(float64(n*b.N)/bt.Seconds(), "base_rec/s")
			b.ReportMetric(bt.Seconds()/st.Seconds(), "ratio")
		})
	}
}

func readAllStore(tb testing.TB, s *Store, p int32, lim store.Limits) (n int, bytes int64) {
	after := int64(-1)
	for {
		recs, more, err := s.ReadPartition(context.Background(), p, after, lim)
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range recs {
			bytes += int64(len(r.Payload))
			after = r.Offset
		}
		n += len(recs)
		if !more {
			return n, bytes
		}
	}
}

// BenchmarkStorageRatio reports storage_ratio and file_bytes_ratio on the
// D9 corpus.
func BenchmarkStorageRatio(b *testing.B) {
	c := loadCorpus(b)
	var r ratios
	for i := 0; i < b.N; i++ {
		r = storeRatios(b, c)
	}
	b.ReportMetric(r.storage, "storage_ratio")
	b.ReportMetric(r.fileBytes, "file_bytes_ratio")
}

// openRecords builds a store of n records (300 B) in dir, once.
func buildOpenStore(tb testing.TB, path string, c *corpusSet, n int) {
	tb.Helper()
	s, err := Open(path, Options{Fsync: false})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	const chunk = 100_000
	recs := sizedRecords(c, 300, chunk)
	shift := map[int32]int64{}
	for done := 0; done < n; done += chunk {
		m := min(chunk, n-done)
		part := make([]store.Record, m)
		copy(part, recs[:m])
		for i := range part {
			part[i].Offset += shift[part[i].Partition]
		}
		fill(tb, s, part, 5000)
		for _, r := range part {
			shift[r.Partition] = max(shift[r.Partition], r.Offset+1)
		}
	}
}

// BenchmarkOpen opens a store of 1M records (100k unless
// DASHSTREAM_BENCH=1; building it takes a while).
func BenchmarkOpen(b *testing.B) {
	c := loadCorpus(b)
	n := 100_000
	if os.Getenv("DASHSTREAM_BENCH") == "1" {
		n = 1_000_000
	}
	path := filepath.Join(b.TempDir(), FileName)
	buildOpenStore(b, path, c, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(n), "records")
}

// TestStoreReport prints the store's figures against the baseline:
// compression choice, storage and file ratios on the D9 corpus, append
// and read throughput, open time. DASHSTREAM_BENCH=1 runs it; it takes a
// few minutes.
func TestStoreReport(t *testing.T) {
	if os.Getenv("DASHSTREAM_BENCH") != "1" {
		t.Skip("set DASHSTREAM_BENCH=1")
	}
	c := loadCorpus(t)
	var out strings.Builder
	fmt.Fprintf(&out, "D9 corpus (synth.Corpus(1, 500)): %d records, %d value bytes, %d not indexable\n%s\n", len(c.raw), c.allBytes, c.invalid, c.statsText)

	// Compression choice on the plain records.
	fmt.Fprintln(&out, "\ncompression of the plain (0x00) records, storage_ratio = stored bytes / Kafka bytes;\nµs/record: compression alone on one core, or for store rows the whole Append (fsync off, 2 encoders):")
	tw := tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scheme\tstorage_ratio\tµs/record\t")
	for _, row := range compressionChoice(t, c) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t\n", row.name, row.ratio, row.usPerRec)
	}
	tw.Flush()

	r := storeRatios(t, c)
	fmt.Fprintf(&out, "\nstore on the corpus: storage_ratio %.3f (%d stored / %d raw plain bytes; target <= 0.4), file_bytes_ratio %.3f (file %d bytes, data high-water %d, corpus %d bytes)\n",
		r.storage, r.stored, r.raw, r.fileBytes, r.storeFile, r.highWater, c.allBytes)

	// Append throughput.
	fmt.Fprintln(&out, "\nappend, durable (fsync), store vs raw bbolt baseline:")
	tw = tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "records\tbatch\tstore rec/s\tstore MB/s\tbaseline rec/s\tbaseline MB/s\tratio\tstore CPU µs/rec\tbaseline CPU µs/rec\t")
	dir := t.TempDir()
	for _, size := range []int{300, 3000} {
		for _, batch := range []int{1, 100, 1000} {
			n := batch * 40
			if batch == 1 {
				n = 300
			}
			warm, recs := splitWarm(sizedRecords(c, size, warmupRecords+n))
			for i := range recs {
				recs[i].Extracted = true // as ingest gives them
			}
			for i := range warm {
				warm[i].Extracted = true
			}
			var st, bt, sc, bc time.Duration
			for rep := 0; rep < 5; rep++ { // best of 5 each, interleaved
				s1, s1c := appendRunCPU(t, dir, warm, recs, batch, false)
				b1, b1c := appendRunCPU(t, dir, warm, recs, batch, true)
				if rep == 0 || s1 < st {
					st = s1
				}
				if rep == 0 || b1 < bt {
					bt = b1
				}
				if rep == 0 || s1c < sc {
					sc = s1c
				}
				if rep == 0 || b1c < bc {
					bc = b1c
				}
			}
			mb := float64(payloadBytes(recs)) / 1e6
			us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(n) }
			fmt.Fprintf(tw, "%d B\t%d\t%.0f\t%.1f\t%.0f\t%.1f\t%.2f\t%.1f\t%.1f\t\n", size, batch,
				float64(n)/st.Seconds(), mb/st.Seconds(), float64(n)/bt.Seconds(), mb/bt.Seconds(), bt.Seconds()/st.Seconds(), us(sc), us(bc))
		}
	}
	tw.Flush()

	// Partition page reads.
	s, err := Open(filepath.Join(dir, "read.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, c.recs, 1000)
	base := openBaseline(t, filepath.Join(dir, "readbase.db"))
	for i := 0; i < len(c.recs); i += 1000 {
		if err := base.append(c.recs[i:min(i+1000, len(c.recs))]); err != nil {
			t.Fatal(err)
		}
	}
	var st, bt time.Duration
	var n int
	var nbytes int64
	for rep := 0; rep < 3; rep++ {
		start := time.Now()
		n, nbytes = readAllStore(t, s, 0, store.Limits{PayloadOnly: true})
		if d := time.Since(start); rep == 0 || d < st {
			st = d
		}
		start = time.Now()
		base.readAll(0)
		if d := time.Since(start); rep == 0 || d < bt {
			bt = d
		}
	}
	s.Close()
	base.db.Close()
	fmt.Fprintf(&out, "\npartition page reads, payload only as the hub replays (256 records / 1 MiB pages, corpus partition 0, %d records): store %.0f rec/s (%.1f MB/s), baseline %.0f rec/s, ratio %.2f\n",
		n, float64(n)/st.Seconds(), float64(nbytes)/st.Seconds()/1e6, float64(n)/bt.Seconds(), bt.Seconds()/st.Seconds())

	// Open time.
	path := filepath.Join(dir, "open.db")
	start := time.Now()
	buildOpenStore(t, path, c, 1_000_000)
	build := time.Since(start)
	var best time.Duration
	for rep := 0; rep < 3; rep++ {
		start := time.Now()
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		s.Close()
		if rep == 0 || d < best {
			best = d
		}
	}
	fmt.Fprintf(&out, "\nopen with 1M records (300 B): %v (target < 1 s); file %d bytes, built in %v\n", best.Round(time.Millisecond), fileSize(t, path), build.Round(time.Second))

	// Reset: chunked drain against dropping the old buckets at once.
	fmt.Fprintln(&out, "\nReset of 300k records (300 B), then 50 durable appends of 100 records:")
	tw = tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "drain\treset time\tlargest tx (keys)\tfree pages after\tappends after (per commit)\t")
	for _, whole := range []bool{false, true} {
		p := filepath.Join(dir, fmt.Sprintf("reset-%v.db", whole))
		buildOpenStore(t, p, c, 300_000)
		s, err := Open(p, Options{Fsync: true, drainWhole: whole})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := s.Reset(context.Background()); err != nil {
			t.Fatal(err)
		}
		rt := time.Since(start)
		free := s.db.Stats().FreePageN + s.db.Stats().PendingPageN
		more := sizedRecords(c, 300, 5000)
		next := s.IngestOffsets()
		for i := range more {
			more[i].Offset += next[more[i].Partition]
		}
		start = time.Now()
		fill(t, s, more, 100)
		at := time.Since(start) / 50
		s.Close()
		name, largest := "chunked", fmt.Sprintf("<= %d", DefaultChunkKeys)
		if whole {
			name, largest = "one DeleteBucket", "all"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%v\t\n", name, rt.Round(time.Millisecond), largest, free, at.Round(10*time.Microsecond))
	}
	tw.Flush()
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&out, "\nload average at the end (2-core machine shared with others): %s", la)
	}
	t.Log("\n" + out.String())
}

type choiceRow struct {
	name     string
	ratio    float64
	usPerRec float64
}

// compressionChoice measures per-record, per-record with a trained
// dictionary and per-block compression on the corpus's plain records, as
// the store keeps them (the index derived from the payload, not stored).
func compressionChoice(tb testing.TB, c *corpusSet) []choiceRow {
	var rows []choiceRow
	contents := make([][]byte, len(c.plain))
	var samples [][]byte
	var sampled int
	for i := range c.plain {
		r := &c.plain[i]
		contents[i] = r.Payload // the index derives from it (wire.Extract)
		if sampled < dictTrainBytes {
			samples = append(samples, contents[i])
			sampled += len(contents[i])
		}
	}
	d, err := trainDict(samples, 1)
	if err != nil {
		tb.Fatal(err)
	}
	raw := float64(c.plainRaw)
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		for _, withDict := range []bool{false, true} {
			opts := []zstd.EOption{zstd.WithEncoderLevel(lvl), zstd.WithEncoderCRC(false), zstd.WithSingleSegment(true), zstd.WithEncoderConcurrency(1)}
			name := "per-record " + lvl.String()
			if withDict {
				opts = append(opts, zstd.WithEncoderDict(d))
				name += " + dictionary"
			}
			enc, err := zstd.NewWriter(nil, opts...)
			if err != nil {
				tb.Fatal(err)
			}
			var total int
			var buf []byte
			start := time.Now()
			for _, ct := range contents {
				buf = enc.EncodeAll(ct, buf[:0])
				// value header (~6 bytes) + frame without magic, or raw.
				total += 6 + min(len(buf)-4, len(ct))
			}
			el := time.Since(start)
			enc.Close()
			rows = append(rows, choiceRow{name, float64(total) / raw, float64(el.Microseconds()) / float64(len(contents))})
		}
	}
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		for _, withDict := range []bool{false, true} {
			dicts, use := map[uint32][]byte{}, uint32(0)
			if withDict {
				dicts[1], use = d, 1
			}
			z, err := newCompressor(lvl, dicts, use, false)
			if err != nil {
				tb.Fatal(err)
			}
			for _, n := range []int{16, 64, 128} {
				var total int
				var sc encScratch
				start := time.Now()
				byPart := map[int32][]blockRec{}
				flush := func(p int32) {
					if len(byPart[p]) > 0 {
						v, _, _ := z.encodeBlock(nil, byPart[p], true, &sc)
						total += len(v)
						byPart[p] = byPart[p][:0]
					}
				}
				for i := range c.plain {
					r := &c.plain[i]
					if len(byPart[r.Partition]) >= n {
						flush(r.Partition)
					}
					byPart[r.Partition] = append(byPart[r.Partition], blockRec{off: r.Offset, time: r.Time, payload: r.Payload, ix: &r.Index})
				}
				for p := range byPart {
					flush(p)
				}
				el := time.Since(start)
				name := fmt.Sprintf("block of %d %s", n, lvl)
				if withDict {
					name += " + dictionary"
				}
				rows = append(rows, choiceRow{name, float64(total) / raw, float64(el.Microseconds()) / float64(len(contents))})
			}
			z.close()
		}
	}
	// The store as built: blocks of one page, dictionary trained on the
	// first payloads, batches of 500.
	for _, ps := range []int{4096, 8192, 16384} {
		for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
			s, err := Open(filepath.Join(tb.TempDir(), FileName), Options{Level: lvl, pageSize: ps})
			if err != nil {
				tb.Fatal(err)
			}
			start := time.Now()
			fill(tb, s, c.plain, 500)
			el := time.Since(start)
			name := fmt.Sprintf("store: blocks of one %d KiB page, %s + dictionary", ps>>10, lvl)
			if ps == defaultPageSize && lvl == zstd.SpeedFastest {
				name += " (default)"
			}
			rows = append(rows, choiceRow{name, float64(s.Stats().StoredBytes) / raw, float64(el.Microseconds()) / float64(len(contents))})
			s.Close()
		}
	}
	return rows
}
