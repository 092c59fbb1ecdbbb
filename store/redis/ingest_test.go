package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire/pb"
)

const ingestTopic = "ds-redis-ingest"

type nopNotifier struct{}

func (nopNotifier) Appended(store.Batch) {}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func eventValue(thread string, seq uint64) []byte {
	b, err := proto.Marshal(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header: &pb.Header{ThreadId: thread, TenantId: "tenant-1", Sequence: seq, TimestampUs: time.Now().UnixMicro(),
			Type: pb.MessageType_MESSAGE_TYPE_EVENT},
		EventType: pb.EventType_EVENT_TYPE_NODE_START, NodeId: "node",
	}}})
	if err != nil {
		panic(err)
	}
	return append([]byte{0x00}, b...)
}

// TestIngestSurvivesRedisOutage runs a real Ingester over the Redis store,
// kills redis-server mid-stream, checks that ingest pauses, restarts
// Redis on the same port and checks that every produced offset ends up
// stored exactly once.
func TestIngestSurvivesRedisOutage(t *testing.T) {
	srv := startRedis(t, true)
	st := openAt(t, srv.url(), "v1_ingest", store.Retention{})
	defer st.Close()

	const partitions, perPartition, chunk = 3, 300, 20
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, ingestTopic), kfake.SeedTopics(1, ingestTopic+"-dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(ingestTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	m, err := ingest.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Config{Brokers: c.ListenAddrs(), Topic: ingestTopic, MaxPayloadBytes: 64 << 10,
		LagCheckInterval: 500 * time.Millisecond, BatchMaxRecords: 50}, st, nopNotifier{}, m, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(runCtx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && err != context.Canceled {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	// Produce in the background, chunk by chunk, across the outage.
	var wg sync.WaitGroup
	wg.Add(1)
	prodErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		for k := 0; k < perPartition; k += chunk {
			var recs []*kgo.Record
			for p := range int32(partitions) {
				for j := range chunk {
					th := fmt.Sprintf("run-%d", p)
					recs = append(recs, &kgo.Record{Partition: p, Key: []byte(th), Value: eventValue(th, uint64(k+j+1))})
				}
			}
			pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := prod.ProduceSync(pctx, recs...).FirstErr()
			pcancel()
			if err != nil {
				prodErr <- err
				return
			}
			time.Sleep(15 * time.Millisecond)
		}
	}()

	waitFor(t, 30*time.Second, "some records stored", func() bool { return st.IngestOffsets()[0] >= 60 })
	srv.kill()
	stored := st.IngestOffsets()
	waitFor(t, 30*time.Second, "ingest paused by the unreachable store", func() bool {
		s := ing.Status()
		return s.StorePaused && s.Paused && strings.Contains(s.StoreError, "unreachable")
	})
	time.Sleep(300 * time.Millisecond) // retries with backoff meanwhile
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	select {
	case err := <-prodErr:
		t.Fatalf("produce: %v", err)
	default:
	}
	want := map[int32]int64{}
	for p := range int32(partitions) {
		want[p] = perPartition
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("store next offsets %v (were %v at the kill)", want, stored), func() bool {
		got := st.IngestOffsets()
		for p, n := range want {
			if got[p] != n {
				return false
			}
		}
		return true
	})
	for p := range int32(partitions) {
		after, n := int64(-1), 0
		for {
			recs, more, err := st.ReadPartition(ctx, p, after, store.Limits{MaxRecords: 128})
			if err != nil {
				t.Fatalf("ReadPartition(%d): %v", p, err)
			}
			for _, r := range recs {
				if r.Offset != after+1 {
					t.Fatalf("partition %d: offset %d after %d", p, r.Offset, after)
				}
				after = r.Offset
				n++
			}
			if !more {
				break
			}
		}
		if n != perPartition {
			t.Fatalf("partition %d: %d records stored, want %d", p, n, perPartition)
		}
		trs, _, err := st.ReadThread(ctx, fmt.Sprintf("run-%d", p), store.ThreadKey{}, store.Limits{MaxRecords: 1000})
		if err != nil || len(trs) != perPartition {
			t.Fatalf("thread run-%d: %d entries, %v", p, len(trs), err)
		}
		if r, ok, _ := st.Run(ctx, fmt.Sprintf("run-%d", p)); !ok || r.Messages != perPartition || r.LastSeq != perPartition {
			t.Fatalf("run-%d summary: %+v", p, r)
		}
	}
	waitFor(t, 10*time.Second, "ingest resumed", func() bool { s := ing.Status(); return !s.StorePaused && s.StoreError == "" })
}
