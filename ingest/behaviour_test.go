package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/memory"
	"github.com/dashstream/dashstream/wire/pb"
)

// eventPayloadAt is eventPayload with the header timestamp tsUs.
func eventPayloadAt(thread string, seq uint64, tsUs int64) []byte {
	b, err := proto.Marshal(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header:    &pb.Header{ThreadId: thread, Sequence: seq, TimestampUs: tsUs, Type: pb.MessageType_MESSAGE_TYPE_EVENT},
		EventType: pb.EventType_EVENT_TYPE_NODE_START, NodeId: "node",
	}}})
	if err != nil {
		panic(err)
	}
	return append([]byte{0x00}, b...)
}

func TestIngestAutoOffsetResetLatest(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	itProduce(t, prod, validRecs(0, 5, "before")...)
	st := memory.New(memory.Config{})
	cfg := itConfig(c.ListenAddrs())
	cfg.AutoOffsetReset = ingest.ResetLatest
	r := startIngest(t, cfg, st)
	// The consumer resolves "the end" after Run reports running, so
	// produce until something is stored.
	end := int64(5)
	waitFor(t, 20*time.Second, "a record produced after startup stored", func() bool {
		itProduce(t, prod, validRecs(0, 1, "after")...)
		end++
		time.Sleep(50 * time.Millisecond)
		return len(st.IngestOffsets()) > 0
	})
	waitNext(t, st, map[int32]int64{0: end})
	got := offsetsOf(readPartition(t, st, 0))
	if len(got) == 0 || got[0] < 5 {
		t.Fatalf("store holds %v: an empty store with latest must start at the log end (5), not read the 5 older records", got)
	}
	if n := r.ing.Status().MessagesReceived; n != int64(len(got)) {
		t.Fatalf("read %d records, stored %d: the older ones were read", n, len(got))
	}
	r.stop(t)
}

// TestIngestLazyHeadWhenListOffsetsFails: the startup watermark listing
// fails, so the partition has no session head; the first record starts
// the one-shot lazy fetch (reference §5.3, M-1014), which sets it.
func TestIngestLazyHeadWhenListOffsetsFails(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	itProduce(t, prod, validRecs(0, 5, "old")...)
	var failed atomic.Int32
	c.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if failed.Load() >= 2 { // startup lists the log starts and ends
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		failed.Add(1)
		lreq := req.(*kmsg.ListOffsetsRequest)
		resp := lreq.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range lreq.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	st := memory.New(memory.Config{})
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	waitNext(t, st, map[int32]int64{0: 5})
	if n := failed.Load(); n < 2 {
		t.Fatalf("%d ListOffsets requests failed, want the startup ones (2)", n)
	}
	waitFor(t, 10*time.Second, "the lazy session head", func() bool {
		h, ok := r.ing.Status().SessionHeads[0]
		return ok && h == 5
	})
	waitFor(t, 10*time.Second, "catch-up phase 0", func() bool {
		return metricValue(t, r.reg, "websocket_kafka_catchup_phase", map[string]string{"partition": "0"}) == 0
	})
	r.stop(t)
}

func TestIngestClockSkewFutureTimestamp(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	st := memory.New(memory.Config{})
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	waitFor(t, 10*time.Second, "ingest running", func() bool { return r.ing.Status().Running })
	future := time.Now().Add(time.Hour).UnixMicro()
	itProduce(t, prod,
		&kgo.Record{Partition: 0, Value: eventPayloadAt("skew", 1, future)},
		&kgo.Record{Partition: 0, Value: eventPayload("skew", 2)})
	waitNext(t, st, map[int32]int64{0: 2})
	if v := metricValue(t, r.reg, "websocket_clock_skew_events_total", nil); v != 1 {
		t.Errorf("clock skew events = %v, want 1 (the record stamped an hour ahead)", v)
	}
	if v := metricValue(t, r.reg, "websocket_e2e_latency_ms", map[string]string{"stage": "producer_to_consumer"}); v != 1 {
		t.Errorf("e2e latency observations = %v, want 1 (the skewed record is not observed)", v)
	}
	if got := len(readPartition(t, st, 0)); got != 2 {
		t.Errorf("stored %d records, want 2 (skew does not reject)", got)
	}
	r.stop(t)
}

func TestIngestLagGaugesDroppedWhenPartitionsGoAway(t *testing.T) {
	c := itCluster(t, 3)
	prod := itProducer(t, c.ListenAddrs())
	for p := range int32(3) {
		itProduce(t, prod, validRecs(p, 3, "old")...)
	}
	st := memory.New(memory.Config{})
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	waitNext(t, st, map[int32]int64{0: 3, 1: 3, 2: 3})
	gauges := []string{"websocket_kafka_consumer_lag", "websocket_kafka_lag_offset_age_seconds", "websocket_kafka_catchup_phase"}
	has := func(name string, p int) bool {
		return metricValue(t, r.reg, name, map[string]string{"partition": fmt.Sprint(p)}) >= 0
	}
	waitFor(t, 10*time.Second, "gauges of every partition", func() bool {
		for _, g := range gauges {
			for p := range 3 {
				if !has(g, p) {
					return false
				}
			}
		}
		return true
	})

	prod = recreateTopic(t, c.ListenAddrs(), 1)
	waitFor(t, 20*time.Second, "new source", func() bool {
		return metricValue(t, r.reg, "dashstream_store_resets_total", map[string]string{"reason": "topic_recreated"}) == 1
	})
	waitNext(t, st, map[int32]int64{0: 1})
	waitFor(t, 10*time.Second, "gauges of partitions 1 and 2 deleted, partition 0 at zero lag", func() bool {
		for _, g := range gauges {
			if has(g, 1) || has(g, 2) {
				return false
			}
		}
		return metricValue(t, r.reg, "websocket_kafka_consumer_lag", map[string]string{"partition": "0"}) == 0 &&
			metricValue(t, r.reg, "websocket_kafka_catchup_phase", map[string]string{"partition": "0"}) == 0
	})
	r.stop(t)
}

// TestIngestOldDataFailuresNeitherDLQdNorPaused: records below the
// session head that fail are counted as old-data errors and recorded as
// invalid, even with the pause policy (quirk Q9).
func TestIngestOldDataFailuresNeitherDLQdNorPaused(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	cfg := itConfig(c.ListenAddrs())
	cfg.OnDecodeError = ingest.PolicyPause
	recs := validRecs(0, 1, "a")
	recs = append(recs, &kgo.Record{Partition: 0, Value: []byte{0x00, 0x0f, 0x01}},
		&kgo.Record{Partition: 0, Value: make([]byte, cfg.MaxPayloadBytes+1)})
	recs = append(recs, validRecs(0, 1, "b")...)
	itProduce(t, prod, recs...)

	st := memory.New(memory.Config{})
	r := startIngest(t, cfg, st)
	waitNext(t, st, map[int32]int64{0: 4})
	if s := r.ing.Status(); s.Paused || len(s.DecodePaused) != 0 || s.OldDataErrors != 2 || s.KafkaErrors != 0 {
		t.Fatalf("status %+v, want not paused, 2 old-data errors, no new-data error", s)
	}
	if v := metricValue(t, r.reg, "websocket_old_data_decode_errors_total", nil); v != 2 {
		t.Errorf("old-data errors = %v, want 2", v)
	}
	if v := metricValue(t, r.reg, "websocket_kafka_messages_total", map[string]string{"status": "error"}); v != 0 {
		t.Errorf("messages_total{error} = %v, want 0", v)
	}
	if got := storeSkips(t, st, 0); len(got) != 1 || got[0].From != 1 || got[0].To != 3 || got[0].Reason != store.SkipInvalid {
		t.Errorf("skips %v, want invalid [1, 3)", got)
	}
	r.stop(t) // waits for DLQ sends in flight
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadmClient(t, c.ListenAddrs()).ListEndOffsets(ctx, itTopic+"-dlq")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := ends.Lookup(itTopic+"-dlq", 0); !ok || o.Err != nil || o.Offset != 0 {
		t.Fatalf("DLQ topic end %+v, want 0 (old data is never DLQ'd)", o)
	}
}

// gateStore blocks every Append while closed.
type gateStore struct {
	store.Store
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{} // one tick per blocked Append
	appends int
}

func (g *gateStore) Append(ctx context.Context, b store.Batch) error {
	g.mu.Lock()
	gate := g.gate
	g.appends++
	g.mu.Unlock()
	if gate != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-gate
	}
	return g.Store.Append(ctx, b)
}

func (g *gateStore) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.appends
}

// TestIngestShutdownDrainsBuffered: records already fetched when Run's
// context ends are appended before Run returns.
func TestIngestShutdownDrainsBuffered(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	itProduce(t, prod, validRecs(0, 50, "drain")...)
	mem := memory.New(memory.Config{})
	st := &gateStore{Store: mem, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	cfg := itConfig(c.ListenAddrs())
	cfg.BatchMaxRecords = 10 // one poll: 10 of the 50 fetched records
	r := startIngest(t, cfg, st)
	select {
	case <-st.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no append")
	}
	// The first batch is held in Append; the fetch of all 50 records
	// (one small response) is buffered in the consumer meanwhile.
	time.Sleep(500 * time.Millisecond)
	r.cancel()
	time.Sleep(100 * time.Millisecond)
	st.mu.Lock()
	close(st.gate)
	st.gate = nil
	st.mu.Unlock()
	r.stop(t)
	if got := mem.IngestOffsets()[0]; got != 50 {
		t.Fatalf("next offset %d after shutdown, want 50 (the buffered records drained)", got)
	}
	if got := offsetsOf(readPartition(t, mem, 0)); !slices.Equal(got, span(0, 50)) {
		t.Fatalf("store holds %v, want 0..49", got)
	}
	if n := st.count(); n < 5 {
		t.Fatalf("%d appends, want at least 5 (batches of 10)", n)
	}
}
