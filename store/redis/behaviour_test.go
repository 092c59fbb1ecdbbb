package redis_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/redis"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

func openWithTTL(url, ns string, ttl time.Duration) (*redis.Store, error) {
	return redis.Open(ctx, url, redis.Options{Namespace: ns, TTL: ttl, Logger: testLogger()})
}

// plainRec is a record with a small payload touching threads.
func plainRec(p int32, off int64, threads ...wire.ThreadSeq) store.Record {
	payload := []byte(fmt.Sprintf("\x00payload %d/%d %s", p, off, strings.Repeat("x", 40)))
	return store.Record{Partition: p, Offset: off, Time: time.Now().Truncate(time.Millisecond), Payload: payload,
		Index: wire.Index{Type: pb.MessageType_MESSAGE_TYPE_EVENT, Threads: threads}}
}

func batchOf(recs ...store.Record) store.Batch {
	b := store.Batch{Records: recs, NextOffsets: map[int32]int64{}}
	for _, r := range recs {
		b.NextOffsets[r.Partition] = r.Offset + 1
	}
	return b
}

func mustAppend(t *testing.T, s store.Store, b store.Batch) {
	t.Helper()
	if err := s.Append(ctx, b); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// commandCalls returns INFO commandstats as command → calls.
func commandCalls(t *testing.T, cl *goredis.Client) map[string]int {
	t.Helper()
	info, err := cl.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		out[name] = n
	}
	return out
}

// namespaceKeys lists the keys of a namespace (SCAN).
func namespaceKeys(t *testing.T, cl *goredis.Client, ns string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	iter := cl.Scan(ctx, 0, redis.KeyPrefix+ns+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys[strings.TrimPrefix(iter.Val(), redis.KeyPrefix+ns)] = true
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestOpenUnreachable(t *testing.T) {
	// Needs no redis-server: nothing listens on a port just freed.
	port := freePort(t)
	_, err := redis.Open(ctx, "redis://127.0.0.1:"+strconv.Itoa(port), redis.Options{Namespace: "v1_x", DialTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("Open of an unreachable Redis: %v; want an error naming REDIS_URL and the address", err)
	}
	if _, err := redis.Open(ctx, "redis://127.0.0.1:1", redis.Options{Namespace: "bad:ns"}); err == nil {
		t.Error("Open with a namespace containing ':' succeeded")
	}
}

// TestPageCommands checks M-700: one ZRANGEBYSCORE and one MGET per page.
func TestPageCommands(t *testing.T) {
	srv := startRedis(t, false)
	cl := srv.client(t)
	s := openAt(t, srv.url(), "v1_pages", store.Retention{})
	defer s.Close()
	var off int64
	for range 5 {
		var recs []store.Record
		for range 500 {
			recs = append(recs, plainRec(0, off, wire.ThreadSeq{ThreadID: "th", Seq: uint64(off + 1)}))
			off++
		}
		mustAppend(t, s, batchOf(recs...))
	}
	if err := cl.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	after, pages, total := int64(-1), 0, 0
	for {
		recs, more, err := s.ReadPartition(ctx, 0, after, store.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		total += len(recs)
		after = recs[len(recs)-1].Offset
		if !more {
			break
		}
	}
	calls := commandCalls(t, cl)
	if pages != 3 || total != 2500 || calls["zrangebyscore"] != 3 || calls["mget"] != 3 || calls["get"] != 0 {
		t.Errorf("%d records in %d pages with %v; want 2500 in 3 pages, 3 ZRANGEBYSCORE, 3 MGET, no GET", total, pages, calls)
	}
	if err := cl.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	trs, more, err := s.ReadThread(ctx, "th", store.AfterSeq(100), store.Limits{MaxRecords: 500})
	if err != nil || len(trs) != 500 || !more || trs[0].Key.Seq != 101 {
		t.Fatalf("ReadThread: %d records, more=%v, %v", len(trs), more, err)
	}
	if calls := commandCalls(t, cl); calls["zrangebyscore"] != 1 || calls["mget"] != 2 || calls["get"] != 0 {
		t.Errorf("thread page: %v; want one ZRANGEBYSCORE and two MGETs (values, then meta)", calls)
	}

	// A payload-only read (a replay to sockets) reads no meta keys.
	if err := cl.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	trs, _, err = s.ReadThread(ctx, "th", store.AfterSeq(100), store.Limits{MaxRecords: 500, PayloadOnly: true})
	if err != nil || len(trs) != 500 || trs[0].Key.Seq != 101 || !bytes.Equal(trs[0].Payload, plainRec(0, 100).Payload) {
		t.Fatalf("payload-only ReadThread: %d records, %v", len(trs), err)
	}
	if calls := commandCalls(t, cl); calls["zrangebyscore"] != 1 || calls["mget"] != 1 {
		t.Errorf("payload-only thread page: %v; want one ZRANGEBYSCORE and one MGET", calls)
	}
	if err := cl.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.ReadPartition(ctx, 0, -1, store.Limits{MaxRecords: 100, PayloadOnly: true})
	if err != nil || len(recs) != 100 || recs[99].Offset != 99 || !bytes.Equal(recs[99].Payload, plainRec(0, 99).Payload) {
		t.Fatalf("payload-only ReadPartition: %d records, %v", len(recs), err)
	}
	// Keyspace hits: the zset, then 100 payload keys and no meta key.
	if hits := keyspaceHits(t, cl); hits != 101 {
		t.Errorf("payload-only partition page: %d keyspace hits, want 101 (zset and payloads, no meta)", hits)
	}
}

// keyspaceHits is INFO stats keyspace_hits.
func keyspaceHits(t *testing.T, cl *goredis.Client) int {
	t.Helper()
	info, err := cl.Info(ctx, "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "keyspace_hits:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("no keyspace_hits in INFO stats")
	return 0
}

// TestExpiredMembers: members whose payload expired are skipped and
// removed from the index; a whole expired page does not end the read.
func TestExpiredMembers(t *testing.T) {
	srv := sharedRedis(t)
	cl := srv.client(t)
	ns := "v1_expired_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s := openAt(t, srv.url(), ns, store.Retention{})
	defer s.Close()
	var recs []store.Record
	for off := range int64(20) {
		recs = append(recs, plainRec(0, off, wire.ThreadSeq{ThreadID: "gone", Seq: uint64(off + 1)}))
	}
	mustAppend(t, s, batchOf(recs...))
	bytesBefore := s.Stats().RawBytes
	P := redis.KeyPrefix + ns
	// Expire offsets 0..9 (as TTL would) and the thread entries of 0..4.
	for off := range 10 {
		cl.Del(ctx, P+":partition:0:offset:"+strconv.Itoa(off), P+":partition:0:offset:"+strconv.Itoa(off)+":m")
	}
	for seq := 1; seq <= 5; seq++ {
		cl.Del(ctx, P+":thread:gone:seq:"+strconv.Itoa(seq))
	}
	got, more, err := s.ReadPartition(ctx, 0, -1, store.Limits{MaxRecords: 4})
	if err != nil || len(got) == 0 || !more || got[0].Offset != 10 {
		t.Fatalf("ReadPartition over an expired head: %d records from %v, more=%v, %v", len(got), got, more, err)
	}
	if n := cl.ZCard(ctx, P+":partition:0:offsets").Val(); n != 10 {
		t.Errorf("partition zset holds %d members after the read, want 10", n)
	}
	if st := s.Stats(); st.Records != 10 || st.RawBytes >= bytesBefore || st.RawBytes <= 0 {
		t.Errorf("Stats after expiry: %d records, %d bytes (before %d)", st.Records, st.RawBytes, bytesBefore)
	}
	trs, _, err := s.ReadThread(ctx, "gone", store.ThreadKey{}, store.Limits{})
	if err != nil || len(trs) != 15 || trs[0].Key.Seq != 6 {
		t.Fatalf("ReadThread over expired entries: %d, %v", len(trs), err)
	}
	if n := cl.ZCard(ctx, P+":thread:gone:sequences").Val(); n != 15 {
		t.Errorf("thread zset holds %d members after the read, want 15", n)
	}
}

// TestResetScansAndKeepsMeta: Reset and a new source delete with SCAN +
// UNLINK (never KEYS) and keep exactly the meta keys they should.
func TestResetScansAndKeepsMeta(t *testing.T) {
	srv := startRedis(t, false)
	cl := srv.client(t)
	s := openAt(t, srv.url(), "v1_reset", store.Retention{})
	defer s.Close()
	other := openAt(t, srv.url(), "v1_reset2", store.Retention{}) // "v1_reset" is its prefix
	defer other.Close()
	mustAppend(t, other, batchOf(plainRec(0, 0, wire.ThreadSeq{ThreadID: "o", Seq: 1})))
	b := batchOf(plainRec(0, 0, wire.ThreadSeq{ThreadID: "t", Seq: 1}), plainRec(1, 0))
	b.Skipped = []store.SkippedRange{{Partition: 2, From: 0, To: 5, Reason: store.SkipEvicted}}
	b.NextOffsets[2] = 5
	mustAppend(t, s, b)
	if err := cl.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	keys := namespaceKeys(t, cl, "v1_reset")
	want := map[string]bool{":meta": true, ":meta:next": true, ":meta:partitions": true, ":meta:skipped:2": true}
	if !maps.Equal(keys, want) {
		t.Errorf("keys after Reset: %v, want %v", keys, want)
	}
	calls := commandCalls(t, cl)
	if calls["keys"] != 0 || calls["scan"] == 0 || calls["unlink"] == 0 {
		t.Errorf("Reset used %v; want SCAN and UNLINK, no KEYS", calls)
	}
	if _, err := s.SetSource(ctx, [16]byte{9}); err != nil {
		t.Fatal(err)
	}
	if keys := namespaceKeys(t, cl, "v1_reset"); !maps.Equal(keys, map[string]bool{":meta": true}) {
		t.Errorf("keys after a new source: %v, want only :meta", keys)
	}
	if _, _, ok := other.Bounds(0); !ok || len(namespaceKeys(t, cl, "v1_reset2")) < 5 {
		t.Error("clearing one namespace touched another")
	}
}

// TestCountRetentionLeavesNoKeys: evicted records take their meta, thread
// entries and (when a thread is left empty) run summary with them.
func TestCountRetentionLeavesNoKeys(t *testing.T) {
	srv := sharedRedis(t)
	cl := srv.client(t)
	ns := "v1_count_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s := openAt(t, srv.url(), ns, store.Retention{MaxRecordsPerPartition: 3})
	defer s.Close()
	for off := range int64(10) {
		r := plainRec(0, off, wire.ThreadSeq{ThreadID: "a:b", Seq: uint64(off / 2)}, wire.ThreadSeq{ThreadID: "lone" + strconv.FormatInt(off, 10), Seq: 1})
		mustAppend(t, s, batchOf(r))
	}
	keys := namespaceKeys(t, cl, ns)
	for k := range keys {
		for off := range 7 {
			o := strconv.Itoa(off)
			if strings.HasSuffix(k, ":offset:"+o) || strings.Contains(k, ":offset:"+o+":") ||
				strings.Contains(k, fmt.Sprintf(".%019d:", off)) || strings.Contains(k, ":lone"+o+":") {
				t.Errorf("key %s of an evicted record left", k)
			}
		}
	}
	tid := wire.SanitizeKey("a:b")
	P := redis.KeyPrefix + ns
	if n := cl.ZCard(ctx, P+":thread:"+tid+":sequences").Val(); n != 3 {
		t.Errorf("thread a:b has %d entries, want 3", n)
	}
	if _, ok, _ := s.Run(ctx, "lone0"); ok {
		t.Error("run of a thread whose records were all evicted is still listed")
	}
	if r, ok, _ := s.Run(ctx, "lone9"); !ok || r.Messages != 1 {
		t.Errorf("run lone9: %+v, %v", r, ok)
	}
	if st := s.Stats(); st.Records != 3 || st.RawBytes != 3*int64(len(plainRec(0, 9).Payload)) {
		t.Errorf("Stats: %d records, %d bytes", st.Records, st.RawBytes)
	}
	// The reference's pattern sees only partition zsets.
	found, err := cl.Keys(ctx, P+":partition:*:offsets").Result()
	if err != nil || len(found) != 1 {
		t.Errorf("reference partition discovery finds %v, %v", found, err)
	}
}

// TestRetriedBatch: a batch whose reply was lost is applied once when ingest
// retries it.
func TestRetriedBatch(t *testing.T) {
	srv := sharedRedis(t)
	ns := "v1_retry_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s := openAt(t, srv.url(), ns, store.Retention{})
	defer s.Close()
	b := batchOf(plainRec(0, 0, wire.ThreadSeq{ThreadID: "r", Seq: 1}), plainRec(0, 1, wire.ThreadSeq{ThreadID: "r", Seq: 2}))
	mustAppend(t, s, b)
	mustAppend(t, s, b) // the retry
	if r, _, _ := s.Run(ctx, "r"); r.Messages != 2 {
		t.Errorf("run after a retried batch: %d messages, want 2", r.Messages)
	}
	if st := s.Stats(); st.Records != 2 || st.RawBytes != int64(len(b.Records[0].Payload)+len(b.Records[1].Payload)) {
		t.Errorf("Stats after a retried batch: %d records, %d bytes", st.Records, st.RawBytes)
	}
	// A different batch at the same offsets is still refused.
	b2 := batchOf(plainRec(0, 1))
	if err := s.Append(ctx, b2); !errors.Is(err, store.ErrOffsetOrder) {
		t.Errorf("Append below the next offset: %v", err)
	}
	// The batch after the retry counts from what Redis holds, not from
	// summaries recomputed for the retry (which already held the batch).
	mustAppend(t, s, batchOf(plainRec(0, 2, wire.ThreadSeq{ThreadID: "r", Seq: 3})))
	if r, _, _ := s.Run(ctx, "r"); r.Messages != 3 || r.LastSeq != 3 {
		t.Errorf("run after a retried batch and one more: %d messages up to seq %d, want 3 up to 3", r.Messages, r.LastSeq)
	}
}

// TestMetaLost: Redis restarted without persistence (or flushed) while the
// store runs: appends restore the epoch and offsets and go on.
func TestMetaLost(t *testing.T) {
	srv := startRedis(t, false)
	cl := srv.client(t)
	s := openAt(t, srv.url(), "v1_lost", store.Retention{})
	defer s.Close()
	if _, err := s.SetSource(ctx, [16]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, batchOf(plainRec(0, 0), plainRec(0, 1)))
	epoch := s.Epoch()
	if err := cl.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, batchOf(plainRec(0, 2)))
	if s.Epoch() != epoch || !maps.Equal(s.IngestOffsets(), map[int32]int64{0: 3}) {
		t.Errorf("after the loss: epoch %q (was %q), offsets %v", s.Epoch(), epoch, s.IngestOffsets())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, srv.url(), "v1_lost", store.Retention{})
	defer s.Close()
	if s.Epoch() != epoch || !maps.Equal(s.IngestOffsets(), map[int32]int64{0: 3}) {
		t.Errorf("reopened: epoch %q (was %q), offsets %v", s.Epoch(), epoch, s.IngestOffsets())
	}
}

// TestRedisDown: appends fail while Redis is down (not with an offset
// error), Healthy says so, and both recover when it is back.
func TestRedisDown(t *testing.T) {
	srv := startRedis(t, true)
	s := openAt(t, srv.url(), "v1_down", store.Retention{})
	defer s.Close()
	mustAppend(t, s, batchOf(plainRec(0, 0)))
	if err := s.Ping(ctx); err != nil || !s.Healthy() {
		t.Fatalf("Ping: %v, healthy %v", err, s.Healthy())
	}
	srv.kill()
	err := s.Append(ctx, batchOf(plainRec(0, 1)))
	if err == nil || errors.Is(err, store.ErrOffsetOrder) || errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append with Redis down: %v", err)
	}
	if !strings.Contains(err.Error(), "unreachable") || s.Healthy() || s.Ping(ctx) == nil {
		t.Errorf("with Redis down: error %q, healthy %v", err, s.Healthy())
	}
	if _, _, err := s.ReadPartition(ctx, 0, -1, store.Limits{}); err == nil {
		t.Error("ReadPartition with Redis down: no error")
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, batchOf(plainRec(0, 1)))
	if !s.Healthy() {
		t.Error("not healthy after Redis came back")
	}
	recs, _, err := s.ReadPartition(ctx, 0, -1, store.Limits{})
	if err != nil || len(recs) != 2 {
		t.Errorf("after the restart: %d records, %v; want both (append-only file)", len(recs), err)
	}
}

// TestOutOfMemory: Redis at maxmemory (noeviction) refuses the batch as a
// whole with store.ErrFull; ingest pauses on it.
func TestOutOfMemory(t *testing.T) {
	srv := startRedis(t, false)
	cl := srv.client(t)
	s := openAt(t, srv.url(), "v1_oom", store.Retention{})
	defer s.Close()
	if err := cl.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	info := cl.Info(ctx, "memory").Val()
	var usedMem int64
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			usedMem, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if err := cl.ConfigSet(ctx, "maxmemory", strconv.FormatInt(usedMem+(1<<20), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	var off int64
	var err error
	for range 100 {
		var recs []store.Record
		for range 50 {
			r := plainRec(0, off)
			r.Payload = append(r.Payload, strings.Repeat("z", 2000)...)
			recs = append(recs, r)
			off++
		}
		if err = s.Append(ctx, batchOf(recs...)); err != nil {
			off -= 50
			break
		}
	}
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("Append over maxmemory: %v, want ErrFull", err)
	}
	if _, l, ok := s.Bounds(0); !ok || l != off-1 || s.IngestOffsets()[0] != off {
		t.Errorf("after the refused batch: latest %d, next %d; want %d, %d (nothing of it written)", l, s.IngestOffsets()[0], off-1, off)
	}
	if n := cl.ZCard(ctx, redis.KeyPrefix+"v1_oom:partition:0:offsets").Val(); n != off {
		t.Errorf("partition zset has %d members, want %d", n, off)
	}
}

// TestInterruptedClearFinishedAtOpen: a Reset cut off mid-sweep (the
// process died) is finished by the next Open.
func TestInterruptedClearFinishedAtOpen(t *testing.T) {
	srv := sharedRedis(t)
	cl := srv.client(t)
	ns := "v1_pending_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s := openAt(t, srv.url(), ns, store.Retention{})
	mustAppend(t, s, batchOf(plainRec(0, 0, wire.ThreadSeq{ThreadID: "t", Seq: 1}), plainRec(1, 0)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What Reset writes before it sweeps.
	P := redis.KeyPrefix + ns
	cl.HIncrBy(ctx, P+":meta", "generation", 1)
	cl.HSet(ctx, P+":meta", "pending", "reset")
	s = openAt(t, srv.url(), ns, store.Retention{})
	defer s.Close()
	keys := namespaceKeys(t, cl, ns)
	if !maps.Equal(keys, map[string]bool{":meta": true, ":meta:next": true, ":meta:partitions": true}) {
		t.Errorf("keys after Open finished the reset: %v", keys)
	}
	if st := s.Stats(); st.Generation != 1 || st.Records != 0 || !maps.Equal(s.IngestOffsets(), map[int32]int64{0: 1, 1: 1}) {
		t.Errorf("after Open: generation %d, %d records, offsets %v", st.Generation, st.Records, s.IngestOffsets())
	}
	if cl.HExists(ctx, P+":meta", "pending").Val() {
		t.Error("pending mark left")
	}
}
