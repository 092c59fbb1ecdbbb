package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
	"github.com/dashstream/dashstream/wire/synth"
)

func TestProduceKafka(t *testing.T) {
	const topic, partitions, runs, seed = "dashstream-test", 3, 5, 11
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := strings.Join(cluster.ListenAddrs(), ",")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"--brokers", addr, "--topic", topic, "--runs", "5", "--seed", "11", "--progress", "0"}
	if err := runProduce(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("runProduce: %v\nstderr: %s", err, stderr.String())
	}
	want, err := synth.Generate(synth.Config{Seed: seed, Runs: runs})
	if err != nil {
		t.Fatal(err)
	}
	wantPerThread := map[string]int{}
	for _, r := range want {
		wantPerThread[string(r.Key)]++
	}

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[string][]*kgo.Record{}
	total := 0
	for total < len(want) {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before timeout", total, len(want))
		}
		fetches.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = append(got[string(r.Key)], r)
			total++
		})
	}
	if total != len(want) {
		t.Fatalf("consumed %d records, want %d", total, len(want))
	}
	if len(got) != runs {
		t.Fatalf("%d threads on the topic, want %d", len(got), runs)
	}
	for thread, recs := range got {
		if len(recs) != wantPerThread[thread] {
			t.Errorf("thread %s: %d records, want %d", thread, len(recs), wantPerThread[thread])
		}
		wantPart := synth.Partition([]byte(thread), partitions)
		var lastSeq uint64
		for _, r := range recs {
			if r.Partition != wantPart {
				t.Fatalf("thread %s: record on partition %d, want CRC32 partition %d", thread, r.Partition, wantPart)
			}
			m, err := wire.Decode(r.Value, wire.DefaultMaxPayload)
			if err != nil {
				t.Fatalf("thread %s: %v", thread, err)
			}
			// Per-thread order survives Kafka: sequences only go up.
			for _, ts := range sequences(m) {
				if ts <= lastSeq {
					t.Fatalf("thread %s: sequence %d after %d", thread, ts, lastSeq)
				}
				lastSeq = ts
			}
		}
	}
	if !strings.Contains(stdout.String(), "records") {
		t.Errorf("no summary on stdout: %q", stdout.String())
	}
}

// sequences returns the non-zero header sequences a message carries.
func sequences(m *pb.DashStreamMessage) []uint64 {
	var out []uint64
	add := func(h *pb.Header) {
		if h.GetSequence() > 0 {
			out = append(out, h.GetSequence())
		}
	}
	switch x := m.Message.(type) {
	case *pb.DashStreamMessage_EventBatch:
		for _, e := range x.EventBatch.Events {
			add(e.Header)
		}
	case *pb.DashStreamMessage_Event:
		add(x.Event.Header)
	case *pb.DashStreamMessage_StateDiff:
		add(x.StateDiff.Header)
	case *pb.DashStreamMessage_TokenChunk:
		add(x.TokenChunk.Header)
	case *pb.DashStreamMessage_ToolExecution:
		add(x.ToolExecution.Header)
	case *pb.DashStreamMessage_Checkpoint:
		add(x.Checkpoint.Header)
	case *pb.DashStreamMessage_Metrics:
		add(x.Metrics.Header)
	case *pb.DashStreamMessage_Error:
		add(x.Error.Header)
	}
	return out
}

func TestProduceOutFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "corpus.bin")
	var stdout, stderr bytes.Buffer
	err := runProduce(context.Background(), []string{"--seed", "3", "--runs", "12", "--out", path, "--progress", "0"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("runProduce: %v\nstderr: %s", err, stderr.String())
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	got, err := synth.ReadCorpus(fh)
	if err != nil {
		t.Fatal(err)
	}
	want, err := synth.Corpus(3, 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("file has %d records, Corpus(3, 12) %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) || got[i].Partition != want[i].Partition {
			t.Fatalf("record %d differs from Corpus(3, 12)", i)
		}
	}
}

func TestProduceOutPartitionsAndDuration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.bin")
	var stdout, stderr bytes.Buffer
	// No --runs: --duration ends it; progress goes to stderr.
	err := runProduce(context.Background(), []string{"--seed", "4", "--duration", "300ms", "--rate", "2000",
		"--partitions", "7", "--shape", "router", "--out", path, "--progress", "100ms"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("runProduce: %v", err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	recs, err := synth.ReadCorpus(fh)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || len(recs) > 2000 {
		t.Fatalf("%d records in 300ms at 2000/s", len(recs))
	}
	for _, r := range recs {
		if r.Partition != synth.Partition(r.Key, 7) {
			t.Fatalf("record partition %d, want CRC32 %% 7 = %d", r.Partition, synth.Partition(r.Key, 7))
		}
	}
	if !strings.Contains(stderr.String(), "produce: runs") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
}

func TestProduceInvalidFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--runs", "-1"}, "--runs"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--rate", "-5"}, "--rate"},
		{[]string{"--duration", "-1s"}, "--duration"},
		{[]string{"--shape", "hexagon"}, "--shape"},
		{[]string{"--min-messages", "-3"}, "--min-messages"},
		{[]string{"--partitions", "0", "--out", "x"}, "--partitions"},
		{[]string{"--partitions", "5"}, "--partitions"},
		{[]string{"--brokers", " "}, "--brokers"},
		{[]string{"--runs", "many"}, "-runs"},
		{[]string{"stray"}, "unexpected argument"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := runProduce(context.Background(), c.args, &stdout, &stderr)
		if err == nil {
			t.Errorf("%v: accepted", c.args)
			continue
		}
		if !strings.Contains(err.Error()+stderr.String(), c.want) {
			t.Errorf("%v: error %q (stderr %q) does not name %s", c.args, err, stderr.String(), c.want)
		}
	}
}
