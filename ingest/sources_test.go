package ingest_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
)

func span(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func TestIngestTopicRecreatedStartsNewSource(t *testing.T) {
	c := itCluster(t, 2)
	prod := itProducer(t, c.ListenAddrs())
	st := memory.New(memory.Config{})
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	itProduce(t, prod, validRecs(0, 10, "old")...)
	waitNext(t, st, map[int32]int64{0: 10})
	oldEpoch := st.Epoch()

	prod = recreateTopic(t, c.ListenAddrs(), 2)
	itProduce(t, prod, validRecs(0, 3, "new2")...)
	waitFor(t, 20*time.Second, "new source", func() bool {
		return metricValue(t, r.reg, "dashstream_store_resets_total", map[string]string{"reason": "topic_recreated"}) == 1
	})
	waitNext(t, st, map[int32]int64{0: 4})
	if got := offsetsOf(readPartition(t, st, 0)); !slices.Equal(got, span(0, 4)) {
		t.Fatalf("store holds %v, want the new topic's 0..3 only", got)
	}
	if st.Epoch() == oldEpoch || st.Epoch()[len(st.Epoch())-2:] != "-0" {
		t.Fatalf("epoch %s after recreation (was %s)", st.Epoch(), oldEpoch)
	}
	r.notes.mu.Lock()
	if len(r.notes.sources) != 1 || r.notes.sources[0] != st.Epoch() {
		t.Errorf("SourceChanged calls %v, want [%s]", r.notes.sources, st.Epoch())
	}
	r.notes.mu.Unlock()
	r.stop(t)
}

func TestIngestTopicRecreatedWhileStopped(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	st := memory.New(memory.Config{})
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	itProduce(t, prod, validRecs(0, 10, "old")...)
	waitNext(t, st, map[int32]int64{0: 10})
	r.stop(t)

	prod = recreateTopic(t, c.ListenAddrs(), 1)
	r2 := startIngest(t, itConfig(c.ListenAddrs()), st)
	waitNext(t, st, map[int32]int64{0: 1})
	if v := metricValue(t, r2.reg, "dashstream_store_resets_total", map[string]string{"reason": "topic_recreated"}); v != 1 {
		t.Fatalf("resets{topic_recreated} = %v", v)
	}
	if got := offsetsOf(readPartition(t, st, 0)); !slices.Equal(got, []int64{0}) {
		t.Fatalf("store holds %v", got)
	}
	r2.stop(t)
}

func TestIngestLogTruncatedStartsNewSource(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	adm := kadmClient(t, c.ListenAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx, itTopic)
	if err != nil {
		t.Fatal(err)
	}
	// A store that ingested this topic (same id) up to offset 1000, more
	// than the log holds: its history is gone.
	st := memory.New(memory.Config{})
	if _, err := st.SetSource(ctx, md.Topics[itTopic].ID); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, store.Batch{NextOffsets: map[int32]int64{0: 1000}}); err != nil {
		t.Fatal(err)
	}
	oldEpoch := st.Epoch()
	itProduce(t, prod, validRecs(0, 5, "t")...)
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	waitNext(t, st, map[int32]int64{0: 5})
	if v := metricValue(t, r.reg, "dashstream_store_resets_total", map[string]string{"reason": "log_truncated"}); v != 1 {
		t.Fatalf("resets{log_truncated} = %v", v)
	}
	// The new history has a new epoch, so old cursors are not taken for
	// current ones (D2) and the hub closes open sockets with 4001.
	if st.Epoch() == oldEpoch {
		t.Fatalf("epoch %s unchanged after the log was truncated", oldEpoch)
	}
	if got := offsetsOf(readPartition(t, st, 0)); !slices.Equal(got, span(0, 5)) {
		t.Fatalf("store holds %v", got)
	}
	r.stop(t)
}

func TestIngestEvictedRangeRecorded(t *testing.T) {
	c := itCluster(t, 2)
	prod := itProducer(t, c.ListenAddrs())
	adm := kadmClient(t, c.ListenAddrs())
	st := memory.New(memory.Config{})
	cfg := itConfig(c.ListenAddrs())
	r := startIngest(t, cfg, st)
	itProduce(t, prod, validRecs(0, 10, "a")...)
	waitNext(t, st, map[int32]int64{0: 10})
	r.stop(t)

	// While ingest is down, Kafka deletes records 10..14 (retention).
	itProduce(t, prod, validRecs(0, 10, "b")...)
	deleteBefore(t, adm, 0, 15)
	r2 := startIngest(t, cfg, st)
	waitNext(t, st, map[int32]int64{0: 20})
	want := []store.SkippedRange{{Partition: 0, From: 10, To: 15, Reason: store.SkipEvicted}}
	if got := storeSkips(t, st, 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("skips %v, want %v", got, want)
	}
	if got := offsetsOf(readPartition(t, st, 0)); !slices.Equal(got, append(span(0, 10), span(15, 20)...)) {
		t.Fatalf("store holds %v", got)
	}

	// While running: partition 1 is paused at a bad record (pause policy
	// is per run, so use a second ingester with it); Kafka then deletes
	// past the bad record. The monitor sees log start > next, records the
	// eviction and the partition resumes.
	r2.stop(t)
	cfg.OnDecodeError = ingest.PolicyPause
	r3 := startIngest(t, cfg, st)
	waitFor(t, 10*time.Second, "running", func() bool { return r3.ing.Status().Running })
	itProduce(t, prod, validRecs(1, 2, "c")...)
	itProduce(t, prod, &kgo.Record{Partition: 1, Value: []byte{0x00, 0x0f}})
	itProduce(t, prod, validRecs(1, 3, "d")...)
	waitFor(t, 10*time.Second, "partition 1 paused at 2", func() bool {
		return fmt.Sprint(r3.ing.Status().DecodePaused) == "map[1:2]"
	})
	deleteBefore(t, adm, 1, 4)
	waitNext(t, st, map[int32]int64{1: 6})
	want = []store.SkippedRange{{Partition: 1, From: 2, To: 4, Reason: store.SkipEvicted}}
	if got := storeSkips(t, st, 1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("partition 1 skips %v, want %v", got, want)
	}
	if s := r3.ing.Status(); s.Paused {
		t.Fatalf("still paused: %+v", s)
	}
	r3.stop(t)
}

// deleteBefore moves partition p's log start to offset (DeleteRecords).
// recreateTopic deletes the topic and creates it again with partitions
// partitions (a new topic id), returning a fresh producer (no cached topic
// id) once a first record, eventPayload("new", 1) on partition 0, went in.
func recreateTopic(t *testing.T, addrs []string, partitions int32) *kgo.Client {
	t.Helper()
	adm := kadmClient(t, addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := adm.DeleteTopic(ctx, itTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, itTopic); err != nil {
		t.Fatal(err)
	}
	prod := itProducer(t, addrs)
	waitFor(t, 15*time.Second, "produce to the new topic", func() bool {
		return prod.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: eventPayload("new", 1)}).FirstErr() == nil
	})
	return prod
}

func deleteBefore(t *testing.T, adm *kadm.Client, p int32, offset int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: itTopic, Partition: p, At: offset})
	resp, err := adm.DeleteRecords(ctx, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestIngestBrokerRestartResumes(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	open := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir),
			kfake.SeedTopics(3, itTopic), kfake.SeedTopics(1, itTopic+"-dlq"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	addrs := c.ListenAddrs()
	st := openBolt(t, t.TempDir(), "restart.db")
	defer st.Close()
	r := startIngest(t, itConfig(addrs), st)
	prod := itProducer(t, addrs)
	for p := range int32(3) {
		itProduce(t, prod, validRecs(p, 20, "before")...)
	}
	waitNext(t, st, map[int32]int64{0: 20, 1: 20, 2: 20})
	epoch := st.Epoch()

	c.Close()
	time.Sleep(500 * time.Millisecond) // ingest sees the broker gone
	c = open()
	defer c.Close()
	prod2 := itProducer(t, addrs)
	for p := range int32(3) {
		itProduce(t, prod2, validRecs(p, 20, "after")...)
	}
	waitNext(t, st, map[int32]int64{0: 40, 1: 40, 2: 40})
	for p := range int32(3) {
		if got := offsetsOf(readPartition(t, st, p)); !slices.Equal(got, span(0, 40)) {
			t.Fatalf("partition %d holds %v, want 0..39 exactly once", p, got)
		}
	}
	if st.Epoch() != epoch {
		t.Fatalf("epoch changed across a broker restart: %s → %s", epoch, st.Epoch())
	}
	if v := metricValue(t, r.reg, "dashstream_store_resets_total", map[string]string{"reason": "topic_recreated"}); v != 0 {
		t.Fatalf("store reset on broker restart")
	}
	r.stop(t)
}
