package redis_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/redis"
	"github.com/dashstream/dashstream/wire"
)

// obsCounts records what an Observer is told. The store calls it
// synchronously, and these tests use the store from one goroutine.
type obsCounts struct {
	hit, miss, writeFail, errs int
	latency                    map[string]int
}

func (c *obsCounts) observer() redis.Observer {
	c.latency = map[string]int{}
	return redis.Observer{
		ReadHit:      func() { c.hit++ },
		ReadMiss:     func() { c.miss++ },
		WriteFailure: func() { c.writeFail++ },
		Error:        func() { c.errs++ },
		Latency: func(op string, d time.Duration) {
			if d <= 0 {
				panic("non-positive latency")
			}
			c.latency[op]++
		},
	}
}

func (c *obsCounts) check(t *testing.T, step string, hit, miss, writeFail, minErrs, reads, writes int) {
	t.Helper()
	if c.hit != hit || c.miss != miss || c.writeFail != writeFail || c.errs < minErrs ||
		c.latency["read"] != reads || c.latency["write"] != writes || len(c.latency) > 2 {
		t.Errorf("%s: hits %d misses %d write failures %d errors %d latency %v; want %d %d %d ≥%d read:%d write:%d",
			step, c.hit, c.miss, c.writeFail, c.errs, c.latency, hit, miss, writeFail, minErrs, reads, writes)
	}
}

// TestObserver checks the counts behind the reference's Redis series
// (reference-server §7): a read with records is a hit, an empty or failed
// one a miss; a write failing at Redis (out of memory, unreachable) is a
// write failure and an error, one refused by the offset rules neither;
// latency is observed for reads that answered and writes that succeeded.
func TestObserver(t *testing.T) {
	srv := startRedis(t, false)
	cl := srv.client(t)
	var c obsCounts
	s, err := redis.Open(ctx, srv.url(), redis.Options{Namespace: "v1_obs", Logger: testLogger(), Observer: c.observer()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	th := func(seq uint64) wire.ThreadSeq { return wire.ThreadSeq{ThreadID: "th", Seq: seq} }

	mustAppend(t, s, batchOf(plainRec(0, 0, th(1)), plainRec(0, 1, th(2)), plainRec(0, 2, th(3))))
	c.check(t, "append", 0, 0, 0, 0, 0, 1)

	if recs, _, err := s.ReadPartition(ctx, 0, -1, store.Limits{}); err != nil || len(recs) != 3 {
		t.Fatalf("ReadPartition: %d records, %v", len(recs), err)
	}
	if recs, _, err := s.ReadPartition(ctx, 5, -1, store.Limits{}); err != nil || len(recs) != 0 {
		t.Fatalf("ReadPartition of an empty partition: %d records, %v", len(recs), err)
	}
	c.check(t, "partition reads", 1, 1, 0, 0, 2, 1)
	if recs, _, err := s.ReadThread(ctx, "th", store.ThreadKey{}, store.Limits{}); err != nil || len(recs) != 3 {
		t.Fatalf("ReadThread: %d records, %v", len(recs), err)
	}
	if recs, _, err := s.ReadThread(ctx, "unknown", store.ThreadKey{}, store.Limits{}); err != nil || len(recs) != 0 {
		t.Fatalf("ReadThread of an unknown thread: %d records, %v", len(recs), err)
	}
	_, _, _ = s.ReadThread(ctx, "", store.ThreadKey{}, store.Limits{}) // no Redis call: not counted
	c.check(t, "thread reads", 2, 2, 0, 0, 4, 1)

	if err := s.Append(ctx, batchOf(plainRec(0, 1))); !errors.Is(err, store.ErrOffsetOrder) {
		t.Fatalf("Append of a stored offset: %v, want ErrOffsetOrder", err)
	}
	c.check(t, "offset order", 2, 2, 0, 0, 4, 1)

	// Out of memory: every write is refused.
	if err := cl.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, batchOf(plainRec(0, 3))); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Append at maxmemory: %v, want ErrFull", err)
	}
	c.check(t, "out of memory", 2, 2, 1, 1, 4, 1)
	if err := cl.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, batchOf(plainRec(0, 3)))
	c.check(t, "append after", 2, 2, 1, 1, 4, 2)

	// Unreachable: a failed read is a miss with no latency.
	srv.kill()
	if _, _, err := s.ReadPartition(ctx, 0, -1, store.Limits{}); err == nil {
		t.Fatal("ReadPartition with Redis down succeeded")
	}
	c.check(t, "read while down", 2, 3, 1, 2, 4, 2)
	if err := s.Append(ctx, batchOf(plainRec(0, 4))); err == nil {
		t.Fatal("Append with Redis down succeeded")
	}
	c.check(t, "append while down", 2, 3, 2, 3, 4, 2)

	// Closed: calls that never reach Redis count nothing.
	errsBefore := c.errs
	_ = s.Close()
	_, _, _ = s.ReadPartition(ctx, 0, -1, store.Limits{})
	_ = s.Append(ctx, batchOf(plainRec(0, 4)))
	c.check(t, "closed", 2, 3, 2, errsBefore, 4, 2)
	if c.errs != errsBefore {
		t.Errorf("calls on a closed store counted %d errors", c.errs-errsBefore)
	}
}
