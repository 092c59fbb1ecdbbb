package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerTestLogger logs warnings and errors to the test output.
func brokerTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// brokerStartTest starts a broker on a free port and closes it at cleanup.
func brokerStartTest(t *testing.T, cfg BrokerConfig) *Broker {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = brokerTestLogger(t)
	}
	b, err := StartBroker(t.Context(), cfg)
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// brokerTestClient returns a franz-go client for b that produces to exact
// partitions without compression or batching across requests.
func brokerTestClient(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(b.Addr()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce sends value to topic/partition and returns its offset.
func brokerProduce(t *testing.T, cl *kgo.Client, topic string, partition int32, key, value []byte) int64 {
	t.Helper()
	r := &kgo.Record{Topic: topic, Partition: partition, Key: key, Value: value}
	if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
	return r.Offset
}

// brokerConsumeAll reads topic from the start until it has n records.
func brokerConsumeAll(t *testing.T, b *Broker, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := brokerTestClient(t, b, kgo.ConsumeTopics(topic))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(recs), n, topic, err)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		recs = append(recs, fetches.Records()...)
	}
	return recs
}

func brokerListOffsets(t *testing.T, b *Broker, start bool, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(brokerTestClient(t, b))
	var (
		lo  kadm.ListedOffsets
		err error
	)
	if start {
		lo, err = adm.ListStartOffsets(t.Context(), topic)
	} else {
		lo, err = adm.ListEndOffsets(t.Context(), topic)
	}
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	out := make(map[int32]int64)
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func brokerDirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("size of %s: %v", dir, err)
	}
	return n
}

func TestBrokerRestartKeepsLogAndTopicID(t *testing.T) {
	dir := t.TempDir()
	cfg := BrokerConfig{DataDir: dir, Topic: "events", Partitions: 3}

	b1 := brokerStartTest(t, cfg)
	id1, ok := b1.TopicID("events")
	if !ok || id1 == ([16]byte{}) {
		t.Fatalf("TopicID(events) = %x, %v; want a non-zero id", id1, ok)
	}
	dlqID, ok := b1.TopicID("events-dlq")
	if !ok || dlqID == id1 {
		t.Fatalf("TopicID(events-dlq) = %x, %v; want its own id", dlqID, ok)
	}
	if _, ok := b1.TopicID("nope"); ok {
		t.Fatal("TopicID of a missing topic reported ok")
	}

	// The id kfake reports is the one clients see in metadata (D2).
	adm := kadm.NewClient(brokerTestClient(t, b1))
	md, err := adm.Metadata(t.Context(), "events", "events-dlq")
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	for topic, want := range map[string][16]byte{"events": id1, "events-dlq": dlqID} {
		td := md.Topics[topic]
		if td.Err != nil || [16]byte(td.ID) != want || len(td.Partitions) != 3 {
			t.Fatalf("metadata %s: id %x err %v partitions %d; want id %x, 3 partitions", topic, td.ID, td.Err, len(td.Partitions), want)
		}
	}
	info := b1.Cluster().TopicInfo("events")
	if v := info.Configs["retention.bytes"]; v == nil || *v != strconv.Itoa(DefaultBrokerRetentionBytes) {
		t.Fatalf("retention.bytes = %v, want %d", v, DefaultBrokerRetentionBytes)
	}
	if v := info.Configs["segment.bytes"]; v == nil || *v != strconv.Itoa(DefaultBrokerSegmentBytes) {
		t.Fatalf("segment.bytes = %v, want %d", v, DefaultBrokerSegmentBytes)
	}
	if _, ok := info.Configs["retention.ms"]; ok {
		t.Fatal("topic has retention.ms set (D11)")
	}

	cl := brokerTestClient(t, b1)
	const perPart = 5
	for p := range int32(3) {
		for i := range perPart {
			off := brokerProduce(t, cl, "events", p, nil, fmt.Appendf(nil, "p%d-%d", p, i))
			if off != int64(i) {
				t.Fatalf("partition %d record %d at offset %d", p, i, off)
			}
		}
	}
	cl.Close()
	if err := b1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := b1.TopicID("events"); ok {
		t.Fatal("TopicID after Close reported ok")
	}
	b1.ApplyRetention() // no-op, must not block

	b2 := brokerStartTest(t, cfg)
	if id2, ok := b2.TopicID("events"); !ok || id2 != id1 {
		t.Fatalf("topic id after restart = %x (%v), want %x", id2, ok, id1)
	}
	if id2, ok := b2.TopicID("events-dlq"); !ok || id2 != dlqID {
		t.Fatalf("dlq topic id after restart = %x (%v), want %x", id2, ok, dlqID)
	}
	recs := brokerConsumeAll(t, b2, "events", 3*perPart)
	for _, r := range recs {
		if want := fmt.Sprintf("p%d-%d", r.Partition, r.Offset); string(r.Value) != want {
			t.Fatalf("after restart %d/%d = %q, want %q", r.Partition, r.Offset, r.Value, want)
		}
	}
	cl2 := brokerTestClient(t, b2)
	for p := range int32(3) {
		if off := brokerProduce(t, cl2, "events", p, nil, []byte("after")); off != perPart {
			t.Fatalf("first record after restart on partition %d at offset %d, want %d", p, off, perPart)
		}
	}
}

func TestBrokerRestartGrowsPartitionsAndUpdatesConfigs(t *testing.T) {
	dir := t.TempDir()
	b1 := brokerStartTest(t, BrokerConfig{DataDir: dir, Topic: "grow", Partitions: 2})
	id1, _ := b1.TopicID("grow")
	b1.Close()

	b2 := brokerStartTest(t, BrokerConfig{DataDir: dir, Topic: "grow", Partitions: 4, RetentionBytes: 1 << 20, SegmentBytes: 1 << 18})
	if id2, _ := b2.TopicID("grow"); id2 != id1 {
		t.Fatalf("topic id changed: %x → %x", id1, id2)
	}
	for _, topic := range []string{"grow", "grow-dlq"} {
		if n := len(b2.Cluster().PartitionInfos(topic)); n != 4 {
			t.Fatalf("%s has %d partitions, want 4", topic, n)
		}
		c := b2.Cluster().TopicInfo(topic).Configs
		if *c["retention.bytes"] != "1048576" || *c["segment.bytes"] != "262144" {
			t.Fatalf("%s configs retention.bytes=%s segment.bytes=%s", topic, *c["retention.bytes"], *c["segment.bytes"])
		}
	}
	b2.Close()

	// Fewer partitions than the topic has: kept (Kafka cannot shrink).
	b3 := brokerStartTest(t, BrokerConfig{DataDir: dir, Topic: "grow", Partitions: 1})
	if n := len(b3.Cluster().PartitionInfos("grow")); n != 4 {
		t.Fatalf("grow has %d partitions after restart with 1, want 4", n)
	}
}

func TestBrokerRetentionBoundsLog(t *testing.T) {
	const (
		retention = 64 << 10
		segment   = 16 << 10
		valueSize = 1 << 10
		rounds    = 16
		perRound  = 64 // 64 KiB per round: 1 MiB in all, 16× retention
	)
	dir := t.TempDir()
	cfg := BrokerConfig{
		DataDir: dir, Topic: "ret", Partitions: 1,
		RetentionBytes: retention, SegmentBytes: segment,
		RetentionInterval: time.Hour, // only our explicit calls
	}
	b := brokerStartTest(t, cfg)
	// Small batches: a batch bigger than retention.bytes would empty
	// the partition.
	cl := brokerTestClient(t, b, kgo.ProducerBatchMaxBytes(4<<10))
	value := bytes.Repeat([]byte{'v'}, valueSize)

	var lastStart int64
	var sizes []int64
	for round := range rounds {
		var rs []*kgo.Record
		for range perRound {
			rs = append(rs, &kgo.Record{Topic: "ret", Partition: 0, Value: value})
		}
		if err := cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
			t.Fatalf("round %d produce: %v", round, err)
		}
		b.ApplyRetention()
		start := brokerListOffsets(t, b, true, "ret")[0]
		if start < lastStart {
			t.Fatalf("round %d: log start went back from %d to %d", round, lastStart, start)
		}
		lastStart = start
		sizes = append(sizes, brokerDirSize(t, dir))
	}
	end := brokerListOffsets(t, b, false, "ret")[0]
	if end != rounds*perRound {
		t.Fatalf("end offset %d, want %d", end, rounds*perRound)
	}
	if lastStart == 0 {
		t.Fatalf("log start offset never advanced (dir sizes %v)", sizes)
	}
	// Kept records ≈ retention / value size (loose: within 2×).
	if kept := end - lastStart; kept < retention/valueSize/2 || kept > 2*(retention+segment)/valueSize {
		t.Fatalf("kept %d records (start %d, end %d), want about %d", kept, lastStart, end, retention/valueSize)
	}
	// The data dir levels off: bounded by retention + a segment (2×
	// slack for indexes, snapshots and topic metadata), and the last
	// round is no bigger than twice the size after round 4.
	limit := int64(2 * (retention + segment))
	for i, s := range sizes[3:] {
		if s > limit {
			t.Fatalf("after round %d the data dir holds %d bytes > %d (sizes %v)", i+4, s, limit, sizes)
		}
	}
	if sizes[rounds-1] > 2*sizes[3] {
		t.Fatalf("data dir keeps growing: %v", sizes)
	}
	t.Logf("log start %d end %d; data dir sizes %v", lastStart, end, sizes)

	// What is kept is readable from the log start.
	recs := brokerConsumeAll(t, b, "ret", int(end-lastStart))
	if recs[0].Offset != lastStart {
		t.Fatalf("first consumed offset %d, want log start %d", recs[0].Offset, lastStart)
	}

	// After a reload the log start is not before the first kept
	// segment and the end offset is unchanged.
	cl.Close()
	b.Close()
	b2 := brokerStartTest(t, cfg)
	start2 := brokerListOffsets(t, b2, true, "ret")[0]
	end2 := brokerListOffsets(t, b2, false, "ret")[0]
	t.Logf("after reload: log start %d (was %d), end %d", start2, lastStart, end2)
	if end2 != end || start2 == 0 || start2 > lastStart {
		t.Fatalf("after reload start %d end %d; want 0 < start <= %d, end %d", start2, end2, lastStart, end)
	}
}

// kfake's own retention timer is not restarted after a data-dir reload:
// the broker's ticker must apply retention on its own.
func TestBrokerRetentionTickerAfterReload(t *testing.T) {
	dir := t.TempDir()
	cfg := BrokerConfig{
		DataDir: dir, Topic: "tick", Partitions: 1,
		RetentionBytes: 16 << 10, SegmentBytes: 4 << 10,
		RetentionInterval: 20 * time.Millisecond,
	}
	b1 := brokerStartTest(t, cfg)
	b1.Close()

	b2 := brokerStartTest(t, cfg)
	cl := brokerTestClient(t, b2, kgo.ProducerBatchMaxBytes(2<<10))
	value := bytes.Repeat([]byte{'x'}, 512)
	var rs []*kgo.Record
	for range 256 { // 128 KiB, 8× retention
		rs = append(rs, &kgo.Record{Topic: "tick", Partition: 0, Value: value})
	}
	if err := cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if start := brokerListOffsets(t, b2, true, "tick")[0]; start > 0 {
			t.Logf("log start advanced to %d without an explicit ApplyRetention", start)
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("retention never applied after reload")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBrokerInMemory(t *testing.T) {
	b := brokerStartTest(t, BrokerConfig{Topic: "mem"})
	if got := b.Config(); got.Partitions != DefaultBrokerPartitions || got.DLQTopic != "mem-dlq" ||
		got.RetentionBytes != DefaultBrokerRetentionBytes || got.SegmentBytes != DefaultBrokerSegmentBytes {
		t.Fatalf("defaults not applied: %+v", got)
	}
	cl := brokerTestClient(t, b)
	if off := brokerProduce(t, cl, "mem-dlq", 2, []byte("k"), []byte("v")); off != 0 {
		t.Fatalf("offset %d, want 0", off)
	}
	recs := brokerConsumeAll(t, b, "mem-dlq", 1)
	if string(recs[0].Key) != "k" || string(recs[0].Value) != "v" || recs[0].Partition != 2 {
		t.Fatalf("got %+v", recs[0])
	}
}

func TestBrokerPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()

	_, err = StartBroker(t.Context(), BrokerConfig{Addr: taken, Logger: brokerTestLogger(t)})
	if err == nil {
		t.Fatal("StartBroker on a taken port succeeded")
	}
	if !errors.Is(err, ErrBrokerAddrInUse) || !strings.Contains(err.Error(), taken) {
		t.Fatalf("error %q: want ErrBrokerAddrInUse naming %s", err, taken)
	}
	t.Logf("error: %v", err)

	b, err := StartBrokerFallback(t.Context(), BrokerConfig{Addr: taken, Topic: "fb", Logger: brokerTestLogger(t)})
	if err != nil {
		t.Fatalf("StartBrokerFallback: %v", err)
	}
	t.Cleanup(func() { b.Close() }) // after the client's cleanup
	host, port, _ := net.SplitHostPort(b.Addr())
	if b.Addr() == taken || host != "127.0.0.1" || port == "0" {
		t.Fatalf("fallback address %s (taken %s)", b.Addr(), taken)
	}
	if off := brokerProduce(t, brokerTestClient(t, b), "fb", 0, nil, []byte("x")); off != 0 {
		t.Fatalf("offset %d", off)
	}
}

func TestBrokerFallbackKeepsOtherErrors(t *testing.T) {
	_, err := StartBrokerFallback(t.Context(), BrokerConfig{Addr: "0.0.0.0:0", Logger: brokerTestLogger(t)})
	if err == nil || errors.Is(err, ErrBrokerAddrInUse) {
		t.Fatalf("err = %v, want the loopback error", err)
	}
}

func TestBrokerRejectsNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", "example.com:0", ":0", "127.0.0.1", "127.0.0.1:99999"} {
		if b, err := StartBroker(t.Context(), BrokerConfig{Addr: addr, Logger: brokerTestLogger(t)}); err == nil {
			b.Close()
			t.Errorf("StartBroker(%q) succeeded", addr)
		}
	}
	for _, addr := range []string{"localhost:0", "[::1]:0"} {
		b, err := StartBroker(t.Context(), BrokerConfig{Addr: addr, Logger: brokerTestLogger(t)})
		if err != nil {
			if addr == "[::1]:0" && strings.Contains(err.Error(), "cannot assign") {
				continue // no IPv6 loopback here
			}
			t.Errorf("StartBroker(%q): %v", addr, err)
			continue
		}
		b.Close()
	}
}
