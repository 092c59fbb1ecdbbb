package synth_test

import (
	"bytes"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/synth"
)

// replayAll feeds records through a replayer and returns it with the
// per-thread message counts.
func replayAll(t *testing.T, recs []synth.Record, partitions int) (*replayer, map[string]int) {
	t.Helper()
	rp := newReplayer(partitions)
	for i, rec := range recs {
		if err := rp.record(rec); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	counts, err := rp.finish()
	if err != nil {
		t.Fatal(err)
	}
	return rp, counts
}

func TestSynthReplayShapes(t *testing.T) {
	variants := []struct {
		name        string
		batch, ckpt int
	}{
		{"plain", 1, -1},
		{"batching", 6, -1},
		{"checkpoints", 1, 2},
		{"batching+checkpoints", 10, 3},
		{"by-seed", 0, 0},
	}
	for _, shape := range synth.Shapes() {
		for _, v := range variants {
			t.Run(shape+"/"+v.name, func(t *testing.T) {
				runs := 6
				if shape == synth.ShapeLarge {
					runs = 3
				}
				cfg := synth.Config{Seed: 42, Runs: runs, Concurrency: 3, Shape: shape, BatchSize: v.batch, CheckpointInterval: v.ckpt}
				recs, err := synth.Generate(cfg)
				if err != nil {
					t.Fatal(err)
				}
				rp, counts := replayAll(t, recs, synth.DefaultPartitions)
				if len(counts) != runs {
					t.Fatalf("%d threads, want %d", len(counts), runs)
				}
				if rp.counts["graph_end"]+rp.counts["node_error"] != runs {
					t.Fatalf("outcomes %v do not add up to %d runs", rp.counts, runs)
				}
				if v.batch > 1 && rp.counts["batch"] == 0 {
					t.Error("batching variant produced no EventBatch")
				}
				if v.batch == 1 && rp.counts["batch"] > 0 {
					t.Error("batching disabled but an EventBatch was produced")
				}
				if v.ckpt > 0 && rp.counts["checkpoint"] == 0 {
					t.Error("checkpoint variant produced no Checkpoint")
				}
				if v.ckpt < 0 && rp.counts["checkpoint"] > 0 {
					t.Error("checkpoints disabled but a Checkpoint was produced")
				}
				if rp.counts["operations"] == 0 {
					t.Errorf("no patch diffs: %v", rp.counts)
				}
				if shape != synth.ShapePipeline && rp.counts["conditional"] == 0 {
					t.Error("no CONDITIONAL_BRANCH")
				}
			})
		}
	}
}

func TestSynthReplayMixedOutcomes(t *testing.T) {
	recs, err := synth.Corpus(7, 80)
	if err != nil {
		t.Fatal(err)
	}
	rp, counts := replayAll(t, recs, synth.DefaultPartitions)
	if len(counts) != 80 {
		t.Fatalf("%d threads, want 80", len(counts))
	}
	for _, k := range []string{"graph_end", "node_error", "batch", "checkpoint", "trace", "parallel", "conditional",
		"token_chunk", "tool_execution", "metrics", "error", "operations", "full_state", "empty_diff"} {
		if rp.counts[k] == 0 {
			t.Errorf("corpus has no %s (counts %v)", k, rp.counts)
		}
	}
}

// TestSynthLargeShape: every run of the large shape announces a graph of
// at least 20 nodes (the UI's layout and minimap need a big graph to show).
func TestSynthLargeShape(t *testing.T) {
	const runs = 3
	recs, err := synth.Generate(synth.Config{Seed: 11, Runs: runs, Shape: synth.ShapeLarge})
	if err != nil {
		t.Fatal(err)
	}
	rp, counts := replayAll(t, recs, synth.DefaultPartitions)
	if len(counts) != runs {
		t.Fatalf("%d threads, want %d", len(counts), runs)
	}
	for _, k := range rp.order {
		if n := rp.threads[k].nodes; n < 20 {
			t.Errorf("thread %s: GRAPH_START announces %d nodes, want >= 20", k, n)
		}
	}
}

func TestSynthMinMessages(t *testing.T) {
	for _, shape := range []string{synth.ShapeReact, synth.ShapePipeline, synth.ShapeRouter, synth.ShapeLarge} {
		t.Run(shape, func(t *testing.T) {
			const minMsgs = 300
			recs, err := synth.Generate(synth.Config{Seed: 3, Runs: 2, Shape: shape, MinMessages: minMsgs})
			if err != nil {
				t.Fatal(err)
			}
			_, counts := replayAll(t, recs, synth.DefaultPartitions)
			for th, n := range counts {
				if n < minMsgs {
					t.Errorf("thread %s: %d messages, want >= %d", th, n, minMsgs)
				}
			}
		})
	}
}

func TestCorpusDeterministic(t *testing.T) {
	a, err := synth.Corpus(1, 50)
	if err != nil {
		t.Fatal(err)
	}
	b, err := synth.Corpus(1, 50)
	if err != nil {
		t.Fatal(err)
	}
	var fa, fb bytes.Buffer
	if err := synth.WriteCorpus(&fa, a); err != nil {
		t.Fatal(err)
	}
	if err := synth.WriteCorpus(&fb, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fa.Bytes(), fb.Bytes()) {
		t.Fatal("Corpus(1, 50) differs between two calls")
	}
	back, err := synth.ReadCorpus(bytes.NewReader(fa.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(a) {
		t.Fatalf("read %d records, wrote %d", len(back), len(a))
	}
	for i := range a {
		if !bytes.Equal(back[i].Key, a[i].Key) || !bytes.Equal(back[i].Value, a[i].Value) || back[i].Partition != a[i].Partition {
			t.Fatalf("record %d differs after the round trip", i)
		}
	}
	c, err := synth.Corpus(2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) > 0 && bytes.Equal(c[0].Value, a[0].Value) {
		t.Error("seeds 1 and 2 start with the same record")
	}
}

func TestCorpusRejectsCorruptFiles(t *testing.T) {
	recs, err := synth.Generate(synth.Config{Seed: 5, Runs: 2})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := synth.WriteCorpus(&buf, recs); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	huge := append([]byte(synth.CorpusMagic), 0x01, 0x04, 't', '-', '4', '2')
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x7f) // value length ~34 GB
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"bad magic", append([]byte("DSCORP2\n"), good[8:]...), "not a corpus file"},
		{"short magic", good[:5], "truncated"},
		{"cut in key", good[:8+3], "truncated"},
		{"cut in last value", good[:len(good)-1], "truncated"},
		{"oversized length", huge, "exceeds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := synth.ReadCorpus(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := synth.ReadCorpus(bytes.NewReader(good[:len(good)-1])); !errors.Is(err, synth.ErrTruncated) {
		t.Errorf("truncation error %v does not wrap ErrTruncated", err)
	}
	if got, err := synth.ReadCorpus(bytes.NewReader([]byte(synth.CorpusMagic))); err != nil || len(got) != 0 {
		t.Errorf("magic-only file: %d records, %v", len(got), err)
	}
}

func TestCorpusSizeSpread(t *testing.T) {
	recs, err := synth.Corpus(1, 50)
	if err != nil {
		t.Fatal(err)
	}
	st := synth.ComputeStats(recs)
	var small, large int
	for _, r := range recs {
		if len(r.Value) < 256 {
			small++
		}
		if len(r.Value) > 8<<10 {
			large++
		}
	}
	if small == 0 || large == 0 {
		t.Errorf("want values < 256 B and > 8 KB, got %d and %d", small, large)
	}
	if st.Plain == 0 || st.Zstd == 0 || st.OtherFraming != 0 || st.Undecodable != 0 {
		t.Errorf("framing split plain %d zstd %d other %d undecodable %d", st.Plain, st.Zstd, st.OtherFraming, st.Undecodable)
	}
	if st.Threads != 50 || st.Records != len(recs) || st.Messages < st.Records {
		t.Errorf("stats %+v", st)
	}
	out := st.String()
	for _, want := range []string{"<256", ">=64K", "plain 0x00", "zstd 0x01", "token_chunk", "state_diff"} {
		if !strings.Contains(out, want) {
			t.Errorf("Stats.String lacks %q:\n%s", want, out)
		}
	}
	t.Logf("Corpus(1, 50):\n%s", out)
}

func TestCorpusPartition(t *testing.T) {
	for _, key := range []string{"t-42", "0b7f3c9e-1d2a-4c5b-8e6f-7a8b9c0d1e2f", "x"} {
		for _, n := range []int{1, 3, 10} {
			want := int32(crc32.ChecksumIEEE([]byte(key)) % uint32(n))
			if got := synth.Partition([]byte(key), n); got != want {
				t.Errorf("Partition(%q, %d) = %d, want %d", key, n, got, want)
			}
		}
	}
	// Known CRC32-IEEE value: crc32("123456789") = 0xCBF43926.
	if got := synth.Partition([]byte("123456789"), 1000); got != int32(0xCBF43926%1000) {
		t.Errorf("Partition(123456789, 1000) = %d", got)
	}
	if synth.Partition([]byte("k"), 0) != 0 {
		t.Error("Partition with n=0 should be 0")
	}
}

func TestSynthConfigValidation(t *testing.T) {
	bad := []synth.Config{
		{Runs: -1},
		{Concurrency: -2},
		{Shape: "diamond"},
		{MinMessages: -1},
		{Partitions: -3},
		{BatchSize: -1},
		{CheckpointInterval: -2},
	}
	for _, cfg := range bad {
		if _, err := synth.NewGenerator(cfg); err == nil {
			t.Errorf("NewGenerator(%+v) accepted an invalid config", cfg)
		}
	}
	if _, err := synth.Corpus(1, 0); err == nil {
		t.Error("Corpus with 0 runs should fail")
	}
}

func TestSynthEndlessAndLiveClock(t *testing.T) {
	fixed := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	g, err := synth.NewGenerator(synth.Config{Seed: 9, Concurrency: 2, Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ {
		rec, ok := g.Next()
		if !ok {
			t.Fatalf("endless generator stopped after %d records: %v", i, g.Err())
		}
		m, err := wire.Decode(rec.Value, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatal(err)
		}
		var ts int64
		switch {
		case m.GetEvent() != nil:
			ts = m.GetEvent().Header.TimestampUs
		case m.GetTokenChunk() != nil:
			ts = m.GetTokenChunk().Header.TimestampUs
		case m.GetStateDiff() != nil:
			ts = m.GetStateDiff().Header.TimestampUs
		default:
			continue
		}
		if ts != fixed.UnixMicro() {
			t.Fatalf("record %d: timestamp %d, want the live clock %d", i, ts, fixed.UnixMicro())
		}
	}
	if g.RunsDone() == 0 || g.RunsStarted() <= g.RunsDone() {
		t.Errorf("runs started %d done %d", g.RunsStarted(), g.RunsDone())
	}
}

// BenchmarkCorpus generates the D9 corpus (Corpus(1, 500)) and logs its
// stats: go test ./wire/synth -run '^$' -bench Corpus -benchtime 1x -v
func BenchmarkCorpus(b *testing.B) {
	for b.Loop() {
		start := time.Now()
		recs, err := synth.Corpus(1, 500)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("Corpus(1, 500) generated in %v\n%s", time.Since(start).Round(time.Millisecond), synth.ComputeStats(recs))
	}
}
