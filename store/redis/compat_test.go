package redis_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// refTTL is REDIS_MESSAGE_TTL_SECS as the reference writer in these tests
// uses it.
const refTTL = time.Hour

// refWriter writes keys exactly as the reference server does (§4.2, §4.5):
// one pipeline per message, SETEX + ZADD + EXPIRE.
type refWriter struct {
	t  *testing.T
	cl *goredis.Client
	p  string // "dashstream-replay:" + namespace
}

func (w refWriter) partition(part int32, off int64, payload []byte) {
	w.t.Helper()
	key := w.p + ":partition:" + strconv.Itoa(int(part)) + ":offset:" + strconv.FormatInt(off, 10)
	zset := w.p + ":partition:" + strconv.Itoa(int(part)) + ":offsets"
	pipe := w.cl.Pipeline()
	pipe.SetEx(ctx, key, payload, refTTL)
	pipe.ZAdd(ctx, zset, goredis.Z{Score: float64(off), Member: key})
	pipe.Expire(ctx, zset, refTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		w.t.Fatal(err)
	}
}

// thread writes a thread entry under the already sanitised (or legacy)
// key segment tid; value is written as given.
func (w refWriter) thread(tid string, seq uint64, value []byte) {
	w.t.Helper()
	key := w.p + ":thread:" + tid + ":seq:" + strconv.FormatUint(seq, 10)
	zset := w.p + ":thread:" + tid + ":sequences"
	pipe := w.cl.Pipeline()
	pipe.SetEx(ctx, key, value, refTTL)
	pipe.ZAdd(ctx, zset, goredis.Z{Score: float64(seq), Member: key})
	pipe.Expire(ctx, zset, refTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		w.t.Fatal(err)
	}
}

// refValue is the reference's thread value: partition ‖ offset ‖ payload.
func refValue(part int32, off int64, payload []byte) []byte {
	v := binary.LittleEndian.AppendUint32(nil, uint32(part))
	v = binary.LittleEndian.AppendUint64(v, uint64(off))
	return append(v, payload...)
}

// event is an encoded Event of thread at seq, stamped at.
func event(t *testing.T, thread string, seq uint64, at time.Time) []byte {
	t.Helper()
	b, err := wire.Encode(&pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header: &pb.Header{ThreadId: thread, TenantId: "tenant", Sequence: seq, TimestampUs: at.UnixMicro(),
			Type: pb.MessageType_MESSAGE_TYPE_EVENT},
		EventType: pb.EventType_EVENT_TYPE_NODE_START, NodeId: "n",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventBatch is an encoded EventBatch with events of threads a (seqs
// 5..7) and b (seqs 2..3).
func eventBatch(t *testing.T, a, b string, at time.Time) []byte {
	t.Helper()
	ev := func(thread string, seq uint64) *pb.Event {
		return &pb.Event{Header: &pb.Header{ThreadId: thread, Sequence: seq, TimestampUs: at.UnixMicro(),
			Type: pb.MessageType_MESSAGE_TYPE_EVENT}, EventType: pb.EventType_EVENT_TYPE_NODE_END, NodeId: "n"}
	}
	m := &pb.DashStreamMessage{Message: &pb.DashStreamMessage_EventBatch{EventBatch: &pb.EventBatch{
		Header: &pb.Header{TimestampUs: at.UnixMicro(), Type: pb.MessageType_MESSAGE_TYPE_EVENT_BATCH},
		Events: []*pb.Event{ev(a, 5), ev(b, 2), ev(a, 7), ev(b, 3), ev(a, 6)},
	}}}
	out, err := wire.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type want struct {
	key     store.ThreadKey
	payload []byte
}

func checkThread(t *testing.T, s store.Store, id string, after store.ThreadKey, lim store.Limits, exp []want) {
	t.Helper()
	var got []store.ThreadRecord
	for range 100 {
		recs, more, err := s.ReadThread(ctx, id, after, lim)
		if err != nil {
			t.Fatalf("ReadThread(%q): %v", id, err)
		}
		got = append(got, recs...)
		if len(recs) > 0 {
			after = recs[len(recs)-1].Key
		}
		if !more {
			break
		}
	}
	if len(got) != len(exp) {
		keys := make([]store.ThreadKey, len(got))
		for i, g := range got {
			keys[i] = g.Key
		}
		t.Fatalf("ReadThread(%q): %d entries %v, want %d", id, len(got), keys, len(exp))
	}
	for i, g := range got {
		if g.Key != exp[i].key || !bytes.Equal(g.Payload, exp[i].payload) ||
			g.Partition != exp[i].key.Partition || g.Offset != exp[i].key.Offset {
			t.Errorf("ReadThread(%q) entry %d: key %+v (%d bytes), want %+v (%d bytes)",
				id, i, g.Key, len(g.Payload), exp[i].key, len(exp[i].payload))
		}
	}
}

// TestReadsReferenceBuffer writes a buffer the way the reference server
// does and reads it back through the adapter.
func TestReadsReferenceBuffer(t *testing.T) {
	srv := sharedRedis(t)
	cl := srv.client(t)
	ns := wire.ResumeNamespace("", "dashstream-quality", "websocket-server-v4", "127.0.0.1:9092")
	ns += "_" + strconv.FormatInt(time.Now().UnixNano(), 36) // isolate from other runs on the shared server
	w := refWriter{t: t, cl: cl, p: "dashstream-replay:" + ns}
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)

	// Partition 0: offsets 0..4 of thread run-a (seq 1..5); partition 1:
	// offsets 10, 11 of thread:with:colons (seq 1, 2) and at 12 an
	// EventBatch of thread:with:colons (max seq 7) and run-b (max seq 3).
	colons := "thread:with:colons"
	p0 := make([][]byte, 5)
	for i := range p0 {
		p0[i] = event(t, "run-a", uint64(i+1), at)
		w.partition(0, int64(i), p0[i])
		w.thread("run-a", uint64(i+1), refValue(0, int64(i), p0[i]))
	}
	p1 := [][]byte{event(t, colons, 1, at), event(t, colons, 2, at), eventBatch(t, colons, "run-b", at)}
	for i, pl := range p1 {
		w.partition(1, int64(10+i), pl)
	}
	sanitized := wire.SanitizeKey(colons)
	if sanitized != "b64_dGhyZWFkOndpdGg6Y29sb25z" {
		t.Fatalf("SanitizeKey = %q", sanitized)
	}
	w.thread(sanitized, 1, refValue(1, 10, p1[0]))
	w.thread(sanitized, 2, refValue(1, 11, p1[1]))
	w.thread(sanitized, 7, refValue(1, 12, p1[2]))
	w.thread("run-b", 3, refValue(1, 12, p1[2]))
	// A legacy h_ key of an older reference ("a:b"), and a legacy value
	// shorter than the 12-byte prefix.
	legacyPayload := event(t, "a:b", 4, at)
	if lk := wire.LegacyKey("a:b"); lk != "h_e4d562f6c05edea5" {
		t.Fatalf("LegacyKey = %q", lk)
	}
	w.thread("h_e4d562f6c05edea5", 4, refValue(0, 3, legacyPayload))
	w.thread("old", 5, []byte("tiny"))

	s := openAt(t, srv.url(), ns, store.Retention{})
	defer s.Close()

	if got := s.Partitions(); !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("Partitions = %v, want [0 1]", got)
	}
	if got := s.IngestOffsets(); !maps.Equal(got, map[int32]int64{0: 5, 1: 13}) {
		t.Errorf("IngestOffsets = %v, want the adopted latest+1 map[0:5 1:13]", got)
	}
	for _, tc := range []struct {
		p              int32
		oldest, latest int64
	}{{0, 0, 4}, {1, 10, 12}} {
		if o, l, ok := s.Bounds(tc.p); !ok || o != tc.oldest || l != tc.latest {
			t.Errorf("Bounds(%d) = %d, %d, %v; want %d, %d", tc.p, o, l, ok, tc.oldest, tc.latest)
		}
	}
	// Partition pages, with the index derived from the payload and the
	// time from the header.
	recs, more, err := s.ReadPartition(ctx, 0, 1, store.Limits{MaxRecords: 2})
	if err != nil || len(recs) != 2 || !more || recs[0].Offset != 2 || recs[1].Offset != 3 {
		t.Fatalf("ReadPartition(0, after 1, 2): %d records, more=%v, %v", len(recs), more, err)
	}
	if !bytes.Equal(recs[0].Payload, p0[2]) || recs[0].Index.Type != pb.MessageType_MESSAGE_TYPE_EVENT ||
		len(recs[0].Index.Threads) != 1 || recs[0].Index.Threads[0] != (wire.ThreadSeq{ThreadID: "run-a", Seq: 3}) ||
		!recs[0].Time.Equal(at) {
		t.Errorf("record 0/2: %d bytes, index %+v, time %v (want %v)", len(recs[0].Payload), recs[0].Index, recs[0].Time, at)
	}
	recs, more, err = s.ReadPartition(ctx, 1, -1, store.Limits{})
	if err != nil || len(recs) != 3 || more {
		t.Fatalf("ReadPartition(1): %d records, more=%v, %v", len(recs), more, err)
	}
	if !bytes.Equal(recs[2].Payload, p1[2]) || recs[2].Index.Type != pb.MessageType_MESSAGE_TYPE_EVENT_BATCH || !recs[2].Index.MultiThread {
		t.Errorf("EventBatch record: index %+v", recs[2].Index)
	}

	// Thread reads, the EventBatch under both of its threads by max seq.
	checkThread(t, s, "run-a", store.ThreadKey{}, store.Limits{MaxRecords: 2}, []want{
		{store.ThreadKey{Seq: 1, Partition: 0, Offset: 0}, p0[0]},
		{store.ThreadKey{Seq: 2, Partition: 0, Offset: 1}, p0[1]},
		{store.ThreadKey{Seq: 3, Partition: 0, Offset: 2}, p0[2]},
		{store.ThreadKey{Seq: 4, Partition: 0, Offset: 3}, p0[3]},
		{store.ThreadKey{Seq: 5, Partition: 0, Offset: 4}, p0[4]},
	})
	checkThread(t, s, "run-a", store.AfterSeq(3), store.Limits{}, []want{
		{store.ThreadKey{Seq: 4, Partition: 0, Offset: 3}, p0[3]},
		{store.ThreadKey{Seq: 5, Partition: 0, Offset: 4}, p0[4]},
	})
	checkThread(t, s, colons, store.ThreadKey{}, store.Limits{}, []want{
		{store.ThreadKey{Seq: 1, Partition: 1, Offset: 10}, p1[0]},
		{store.ThreadKey{Seq: 2, Partition: 1, Offset: 11}, p1[1]},
		{store.ThreadKey{Seq: 7, Partition: 1, Offset: 12}, p1[2]},
	})
	checkThread(t, s, "run-b", store.ThreadKey{}, store.Limits{}, []want{
		{store.ThreadKey{Seq: 3, Partition: 1, Offset: 12}, p1[2]},
	})
	// "a:b" has no b64_ entries: the legacy h_ key answers.
	checkThread(t, s, "a:b", store.ThreadKey{}, store.Limits{}, []want{
		{store.ThreadKey{Seq: 4, Partition: 0, Offset: 3}, legacyPayload},
	})
	checkThread(t, s, "old", store.ThreadKey{}, store.Limits{}, []want{
		{store.ThreadKey{Seq: 5, Partition: 0, Offset: 0}, []byte("tiny")},
	})

	// The first topic id adopts the buffer instead of clearing it.
	id := [16]byte{0x73, 0xac, 0xb1, 0x3b, 0x7c, 0x6d, 0x0c, 0x5d, 1}
	changed, err := s.SetSource(ctx, id)
	if err != nil || changed {
		t.Fatalf("SetSource on an adopted buffer = %v, %v; want unchanged", changed, err)
	}
	if got, want := s.Epoch(), wire.EpochFor(id, 0); got != want {
		t.Errorf("Epoch = %q, want %q", got, want)
	}
	if _, _, ok := s.Bounds(0); !ok {
		t.Fatal("adoption cleared the buffer")
	}
	// Appends continue after the adopted offsets only.
	next := event(t, "run-a", 6, at)
	bad := store.Batch{Records: []store.Record{{Partition: 0, Offset: 4, Time: at, Payload: next}}}
	if err := s.Append(ctx, bad); !errors.Is(err, store.ErrOffsetOrder) {
		t.Fatalf("Append at an adopted offset: %v, want ErrOffsetOrder", err)
	}
	ix, err := wire.Extract(next, wire.DefaultMaxPayload)
	if err != nil {
		t.Fatal(err)
	}
	good := store.Batch{Records: []store.Record{{Partition: 0, Offset: 5, Time: at, Payload: next, Index: ix}},
		NextOffsets: map[int32]int64{0: 6}}
	if err := s.Append(ctx, good); err != nil {
		t.Fatalf("Append after the adopted offsets: %v", err)
	}
	checkThread(t, s, "run-a", store.AfterSeq(4), store.Limits{}, []want{
		{store.ThreadKey{Seq: 5, Partition: 0, Offset: 4}, p0[4]},
		{store.ThreadKey{Seq: 6, Partition: 0, Offset: 5}, next},
	})
	// The reopened store keeps the adopted topic and sees everything.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, srv.url(), ns, store.Retention{})
	defer s.Close()
	if got, want := s.Epoch(), wire.EpochFor(id, 0); got != want {
		t.Errorf("Epoch after reopen = %q, want %q", got, want)
	}
	if changed, err := s.SetSource(ctx, id); err != nil || changed {
		t.Errorf("SetSource(same id) after reopen = %v, %v", changed, err)
	}
	if o, l, ok := s.Bounds(0); !ok || o != 0 || l != 5 {
		t.Errorf("Bounds(0) after reopen = %d, %d, %v; want 0, 5", o, l, ok)
	}
}

// TestWritesReferenceLayout appends through the adapter and reads the keys
// the way the reference server does: GET/ZRANGEBYSCORE/MGET on the §4.2
// names, sequence from the member suffix, cursor from the value prefix.
func TestWritesReferenceLayout(t *testing.T) {
	srv := sharedRedis(t)
	cl := srv.client(t)
	ns := "v1_layout_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	P := "dashstream-replay:" + ns
	s, err := openWithTTL(srv.url(), ns, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Now().Truncate(time.Millisecond)
	mk := func(p int32, off int64, payload []byte) store.Record {
		ix, err := wire.Extract(payload, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatal(err)
		}
		return store.Record{Partition: p, Offset: off, Time: at, Payload: payload, Index: ix}
	}
	colons := "thread:with:colons"
	r1 := mk(1, 0, event(t, colons, 5, at))
	r2 := mk(0, 3, event(t, colons, 5, at)) // the same sequence again, smaller (p, o)
	r3 := mk(0, 4, event(t, "run-x", 1, at))
	batchRec := mk(0, 5, eventBatch(t, colons, "run-x", at))
	trace := mk(0, 6, event(t, colons, 0, at)) // sequence 0
	for _, b := range []store.Batch{
		{Records: []store.Record{r1}},
		{Records: []store.Record{r2, r3, batchRec, trace}},
	} {
		if err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	// Partition keys: raw payload, member = key, score = offset, TTLs.
	key := P + ":partition:0:offset:5"
	if v, err := cl.Get(ctx, key).Bytes(); err != nil || !bytes.Equal(v, batchRec.Payload) {
		t.Fatalf("GET %s: %v", key, err)
	}
	zs, err := cl.ZRangeByScoreWithScores(ctx, P+":partition:0:offsets", &goredis.ZRangeBy{Min: "(2", Max: "+inf", Count: 1000}).Result()
	if err != nil || len(zs) != 4 || zs[2].Member != key || zs[2].Score != 5 {
		t.Fatalf("partition zset: %v, %v", zs, err)
	}
	for _, k := range []string{key, P + ":partition:0:offsets", P + ":thread:run-x:sequences"} {
		if ttl := cl.TTL(ctx, k).Val(); ttl <= 80*time.Second || ttl > 90*time.Second {
			t.Errorf("TTL %s = %v, want about 90s", k, ttl)
		}
	}
	if ttl := cl.TTL(ctx, P+":meta").Val(); ttl != -1 {
		t.Errorf("TTL of the meta = %v, want none", ttl)
	}

	// Thread entries as the reference reads them: ZRANGEBYSCORE (last+1)
	// on the sanitised key, MGET, sequence from the member suffix.
	refRead := func(tid string, last uint64) (seqs []uint64, cursors [][2]int64) {
		t.Helper()
		members, err := cl.ZRangeByScore(ctx, P+":thread:"+tid+":sequences", &goredis.ZRangeBy{
			Min: strconv.FormatUint(last+1, 10), Max: "+inf", Count: 1000}).Result()
		if err != nil {
			t.Fatal(err)
		}
		vals, err := cl.MGet(ctx, members...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range members {
			seq, err := strconv.ParseUint(m[bytes.LastIndexByte([]byte(m), ':')+1:], 10, 64)
			if err != nil {
				t.Fatalf("member %q: sequence suffix: %v", m, err)
			}
			v := []byte(vals[i].(string))
			seqs = append(seqs, seq)
			cursors = append(cursors, [2]int64{int64(int32(binary.LittleEndian.Uint32(v))), int64(binary.LittleEndian.Uint64(v[4:]))})
		}
		return seqs, cursors
	}
	tid := wire.SanitizeKey(colons)
	seqs, cursors := refRead(tid, 0)
	if !slices.Equal(seqs, []uint64{5, 5, 7}) {
		t.Errorf("reference read of %s: sequences %v, want [5 5 7]", colons, seqs)
	}
	wantCur := map[[2]int64]bool{{1, 0}: true, {0, 3}: true, {0, 5}: true}
	for _, c := range cursors {
		if !wantCur[c] {
			t.Errorf("reference read of %s: cursor %v unexpected", colons, c)
		}
	}
	// The first record of a sequence has the reference key itself.
	if v, err := cl.Get(ctx, P+":thread:"+tid+":seq:5").Bytes(); err != nil || !bytes.Equal(v, refValue(1, 0, r1.Payload)) {
		t.Errorf("reference key of sequence 5: %v", err)
	}
	if seqs, _ := refRead("run-x", 0); !slices.Equal(seqs, []uint64{1, 3}) {
		t.Errorf("reference read of run-x: %v, want [1 3] (the batch by its max sequence)", seqs)
	}

	// The adapter orders by (sequence, partition, offset).
	checkThread(t, s, colons, store.ThreadKey{}, store.Limits{MaxRecords: 1}, []want{
		{store.ThreadKey{Seq: 0, Partition: 0, Offset: 6}, trace.Payload},
		{store.ThreadKey{Seq: 5, Partition: 0, Offset: 3}, r2.Payload},
		{store.ThreadKey{Seq: 5, Partition: 1, Offset: 0}, r1.Payload},
		{store.ThreadKey{Seq: 7, Partition: 0, Offset: 5}, batchRec.Payload},
	})
	checkThread(t, s, colons, store.ThreadKey{Seq: 5, Partition: 0, Offset: 3}, store.Limits{}, []want{
		{store.ThreadKey{Seq: 5, Partition: 1, Offset: 0}, r1.Payload},
		{store.ThreadKey{Seq: 7, Partition: 0, Offset: 5}, batchRec.Payload},
	})
}
