package ingest_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
	"github.com/dashstream/dashstream/wire/pb"
)

func TestIngestPausePolicy(t *testing.T) {
	c := itCluster(t, 4)
	prod := itProducer(t, c.ListenAddrs())
	dir := t.TempDir()
	st := openBolt(t, dir, "pause.db")
	defer st.Close()
	cfg := itConfig(c.ListenAddrs())
	cfg.OnDecodeError = ingest.PolicyPause
	r := startIngest(t, cfg, st)
	waitFor(t, 10*time.Second, "ingest running", func() bool { return r.ing.Status().Running })

	bad := &kgo.Record{Partition: 0, Value: []byte{0x00, 0x0f, 0x01}}
	oversized := &kgo.Record{Partition: 1, Value: make([]byte, cfg.MaxPayloadBytes+1)}
	missing := &kgo.Record{Partition: 2}
	var recs []*kgo.Record
	recs = append(recs, validRecs(0, 2, "p0")...)
	recs = append(recs, bad)
	recs = append(recs, validRecs(0, 2, "p0b")...)
	recs = append(recs, validRecs(1, 1, "p1")...)
	recs = append(recs, oversized)
	recs = append(recs, validRecs(1, 1, "p1b")...)
	recs = append(recs, missing)
	recs = append(recs, validRecs(2, 1, "p2")...)
	recs = append(recs, validRecs(3, 3, "p3")...)
	itProduce(t, prod, recs...)

	want := map[int32]int64{0: 2, 1: 1, 2: 0}
	waitFor(t, 20*time.Second, "three partitions paused", func() bool {
		return fmt.Sprint(r.ing.Status().DecodePaused) == fmt.Sprint(want)
	})
	waitNext(t, st, map[int32]int64{0: 2, 1: 1, 3: 3})
	// The other partition goes on.
	itProduce(t, prod, validRecs(3, 2, "p3b")...)
	waitNext(t, st, map[int32]int64{3: 5})

	s := r.ing.Status()
	if !s.Paused || s.PausedPartition < 0 || want[s.PausedPartition] != s.PausedOffset {
		t.Fatalf("status does not name the paused partition: %+v", s)
	}
	if _, ok := st.IngestOffsets()[2]; ok {
		t.Fatalf("partition 2 has a next offset although its first record paused it: %v", st.IngestOffsets())
	}
	if got := offsetsOf(readPartition(t, st, 0)); !slices.Equal(got, []int64{0, 1}) {
		t.Fatalf("partition 0 holds %v, want [0 1] (nothing from the bad record on)", got)
	}
	if v := metricValue(t, r.reg, "dashstream_ingest_paused", map[string]string{"reason": "decode"}); v != 1 {
		t.Fatalf("paused{decode} = %v", v)
	}
	r.stop(t)

	// After a restart the records are read again. They are old data now
	// (below the new session head), and old data never pauses.
	r2 := startIngest(t, cfg, st)
	waitNext(t, st, map[int32]int64{0: 5, 1: 3, 2: 2, 3: 5})
	if v := metricValue(t, r2.reg, "websocket_old_data_decode_errors_total", nil); v != 2 {
		t.Errorf("old-data errors after restart = %v, want 2 (the bad and the oversized record, read again)", v)
	}
	if v := metricValue(t, r2.reg, "websocket_kafka_payload_missing_total", nil); v != 1 {
		t.Errorf("payload missing after restart = %v, want 1 (read again)", v)
	}
	if s := r2.ing.Status(); s.Paused || len(s.DecodePaused) != 0 {
		t.Errorf("paused after restart: %+v", s)
	}
	for p, want := range map[int32][]store.SkippedRange{
		0: {{Partition: 0, From: 2, To: 3, Reason: store.SkipInvalid}},
		1: {{Partition: 1, From: 1, To: 2, Reason: store.SkipInvalid}},
		2: {{Partition: 2, From: 0, To: 1, Reason: store.SkipInvalid}},
	} {
		if got := storeSkips(t, st, p); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("partition %d skips %v, want %v", p, got, want)
		}
	}
	r2.stop(t)
}

func TestIngestSkipPolicyAccountsForInvalidOffsets(t *testing.T) {
	c := itCluster(t, 2)
	prod := itProducer(t, c.ListenAddrs())
	st := openBolt(t, t.TempDir(), "skip.db")
	defer st.Close()
	cfg := itConfig(c.ListenAddrs())
	r := startIngest(t, cfg, st)
	waitFor(t, 10*time.Second, "ingest running", func() bool { return r.ing.Status().Running })
	// Partition 1 ends with an oversized record (quirk Q8: its offset must
	// still be accounted for).
	recs := append(validRecs(0, 1, "a"), &kgo.Record{Partition: 0, Value: []byte{0x00, 0x0f}})
	recs = append(recs, validRecs(0, 1, "b")...)
	recs = append(recs, validRecs(1, 1, "c")...)
	recs = append(recs, &kgo.Record{Partition: 1, Value: make([]byte, cfg.MaxPayloadBytes+10)})
	itProduce(t, prod, recs...)
	waitNext(t, st, map[int32]int64{0: 3, 1: 2})
	if s := r.ing.Status(); s.Paused {
		t.Fatalf("skip policy paused: %+v", s)
	}
	r.stop(t)

	r2 := startIngest(t, cfg, st)
	itProduce(t, prod, validRecs(1, 1, "d")...)
	waitNext(t, st, map[int32]int64{1: 3})
	if got := r2.ing.Status().MessagesReceived; got != 1 {
		t.Fatalf("restart read %d records, want 1 (skipped offsets are not read again)", got)
	}
	if got := storeSkips(t, st, 1); len(got) != 1 || got[0].From != 1 || got[0].To != 2 {
		t.Fatalf("partition 1 skips %v", got)
	}
	r2.stop(t)
}

// fullStore returns store.ErrFull from Append until released.
type fullStore struct {
	store.Store
	mu      sync.Mutex
	full    bool
	refused int
}

func (f *fullStore) Append(ctx context.Context, b store.Batch) error {
	f.mu.Lock()
	full := f.full
	if full {
		f.refused++
	}
	f.mu.Unlock()
	if full {
		return fmt.Errorf("test store: %w", store.ErrFull)
	}
	return f.Store.Append(ctx, b)
}

func (f *fullStore) set(full bool) {
	f.mu.Lock()
	f.full = full
	f.mu.Unlock()
}

func TestIngestStoreFullPausesAndRecovers(t *testing.T) {
	c := itCluster(t, 3)
	prod := itProducer(t, c.ListenAddrs())
	real := openBolt(t, t.TempDir(), "full.db")
	defer real.Close()
	st := &fullStore{Store: real}
	r := startIngest(t, itConfig(c.ListenAddrs()), st)
	itProduce(t, prod, validRecs(0, 10, "a")...)
	waitNext(t, real, map[int32]int64{0: 10})

	st.set(true)
	for p := range int32(3) {
		itProduce(t, prod, validRecs(p, 30, "b")...)
	}
	waitFor(t, 10*time.Second, "ingest paused on a full store", func() bool {
		s := r.ing.Status()
		return s.Paused && s.StorePaused && s.StoreFull && strings.Contains(s.StoreError, "store full")
	})
	if v := metricValue(t, r.reg, "dashstream_ingest_paused", map[string]string{"reason": "store"}); v != 1 {
		t.Fatalf("paused{store} = %v", v)
	}
	// More records while paused stay in Kafka.
	itProduce(t, prod, validRecs(1, 5, "c")...)
	time.Sleep(300 * time.Millisecond)
	st.set(false)
	waitNext(t, real, map[int32]int64{0: 40, 1: 35, 2: 30})
	for p, n := range map[int32]int{0: 40, 1: 35, 2: 30} {
		got := offsetsOf(readPartition(t, real, p))
		if len(got) != n || got[0] != 0 || got[n-1] != int64(n-1) {
			t.Fatalf("partition %d: %d records %v, want 0..%d exactly once", p, len(got), got, n-1)
		}
	}
	if s := r.ing.Status(); s.Paused || s.StoreError != "" {
		t.Fatalf("still paused after recovery: %+v", s)
	}
	if v := metricValue(t, r.reg, "dashstream_ingest_paused", map[string]string{"reason": "store"}); v != 0 {
		t.Fatalf("paused{store} after recovery = %v", v)
	}
	if st.refused == 0 || metricValue(t, r.reg, "dashstream_ingest_append_retries_total", nil) < 1 {
		t.Fatal("no append was refused")
	}
	r.stop(t)
}

// bigEvent is a valid framed event carrying n random letters.
func bigEvent(n int) []byte {
	letters := make([]byte, n)
	for k := range letters {
		v, _ := rand.Int(rand.Reader, big.NewInt(62))
		letters[k] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[v.Int64()]
	}
	b, _ := proto.Marshal(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header: &pb.Header{ThreadId: "big", Sequence: 1, TimestampUs: time.Now().UnixMicro()}, NodeId: string(letters),
	}}})
	return append([]byte{0x00}, b...)
}

func TestIngestRealBoltFileCapPauses(t *testing.T) {
	c := itCluster(t, 1)
	prod := itProducer(t, c.ListenAddrs())
	st, err := bolt.Open(t.TempDir()+"/cap.db", bolt.Options{Fsync: true, NoDictionary: true,
		Retention: store.Retention{MaxBytes: 200 << 10, MaxFileBytes: 256 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := itConfig(c.ListenAddrs())
	cfg.MaxPayloadBytes = 1 << 20
	r := startIngest(t, cfg, st)
	itProduce(t, prod, &kgo.Record{Partition: 0, Value: bigEvent(600 << 10)})
	waitFor(t, 20*time.Second, "ingest paused on the bolt file cap", func() bool {
		s := r.ing.Status()
		return s.StorePaused && s.StoreFull
	})
	if _, ok := st.IngestOffsets()[0]; ok {
		t.Fatal("the record was appended past the file cap")
	}
	if err := r.stopQuiet(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("shutdown while paused: %v", err)
	}
}
