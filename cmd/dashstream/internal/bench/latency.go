package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/wire/synth"
)

// PO names a record: partition and offset.
type PO struct {
	P int32
	O int64
}

// LatencyClient is an in-process WebSocket client that notes when each
// record arrived.
type LatencyClient struct {
	c *Client

	mu    sync.Mutex
	cond  *sync.Cond
	recv  map[PO]time.Time
	count int64
	err   error
	keep  bool
}

// StartLatencyClient dials url in mode, makes sure the server is serving
// the connection (ping, pong) and starts reading. keep=false stores
// nothing but the count.
func StartLatencyClient(ctx context.Context, d *Dialer, url, mode string, keep bool) (*LatencyClient, error) {
	c, err := d.Dial(ctx, url, mode)
	if err != nil {
		return nil, err
	}
	lc := &LatencyClient{c: c, recv: map[PO]time.Time{}, keep: keep}
	lc.cond = sync.NewCond(&lc.mu)
	if err := c.SendJSON(ctx, map[string]string{"type": "ping"}); err != nil {
		c.Close()
		return nil, err
	}
	pong := false
	t := time.AfterFunc(30*time.Second, c.Close)
	defer t.Stop()
	for !pong {
		if err := c.ReadFrame(ctx, Handler{Control: func(t string, _ []byte) { pong = pong || t == "pong" }}); err != nil {
			c.Close()
			return nil, fmt.Errorf("waiting for pong: %w", err)
		}
	}
	go lc.read(ctx)
	return lc, nil
}

func (lc *LatencyClient) read(ctx context.Context) {
	h := Handler{Record: func(p int32, o int64, _ []byte) {
		now := time.Now()
		lc.mu.Lock()
		if lc.keep {
			lc.recv[PO{p, o}] = now
		}
		lc.count++
		lc.mu.Unlock()
		lc.cond.Broadcast()
	}}
	for {
		if err := lc.c.ReadFrame(ctx, h); err != nil {
			lc.mu.Lock()
			lc.err = err
			lc.mu.Unlock()
			lc.cond.Broadcast()
			return
		}
	}
}

// Count is the number of records received so far.
func (lc *LatencyClient) Count() int64 {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.count
}

// Err is the error that ended the connection, if any.
func (lc *LatencyClient) Err() error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.err
}

// WaitCount waits until n records arrived.
func (lc *LatencyClient) WaitCount(n int64, timeout time.Duration) error {
	t := time.AfterFunc(timeout, lc.cond.Broadcast)
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for lc.count < n {
		if lc.err != nil {
			return fmt.Errorf("client stopped after %d of %d records: %w", lc.count, n, lc.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("client got %d of %d records within %s", lc.count, n, timeout)
		}
		lc.cond.Wait()
	}
	return nil
}

// take removes and returns the arrival time of k.
func (lc *LatencyClient) take(k PO) (time.Time, bool) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	t, ok := lc.recv[k]
	if ok {
		delete(lc.recv, k)
	}
	return t, ok
}

// Close closes the connection.
func (lc *LatencyClient) Close() { lc.c.Close() }

// LatencyProducer produces records and notes when each was handed to the
// Kafka client.
type LatencyProducer struct {
	cl *kgo.Client

	mu    sync.Mutex
	sent  map[PO]time.Time
	acked int64
	err   error
}

// NewLatencyProducer wraps a producer client (see NewProducer).
func NewLatencyProducer(cl *kgo.Client) *LatencyProducer {
	return &LatencyProducer{cl: cl, sent: map[PO]time.Time{}}
}

// Produce sends r asynchronously.
func (lp *LatencyProducer) Produce(ctx context.Context, r synth.Record) {
	at := time.Now()
	lp.cl.Produce(ctx, &kgo.Record{Topic: Topic, Partition: r.Partition, Key: r.Key, Value: r.Value}, func(r *kgo.Record, err error) {
		lp.mu.Lock()
		defer lp.mu.Unlock()
		if err != nil {
			if lp.err == nil {
				lp.err = err
			}
			return
		}
		lp.sent[PO{r.Partition, r.Offset}] = at
		lp.acked++
	})
}

// sentCopy returns a copy of the acknowledged records' produce times.
func (lp *LatencyProducer) sentCopy() map[PO]time.Time {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	out := make(map[PO]time.Time, len(lp.sent))
	for k, v := range lp.sent {
		out[k] = v
	}
	return out
}

// Acked is the number of records acknowledged by the broker.
func (lp *LatencyProducer) Acked() int64 {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.acked
}

// Err is the first produce error.
func (lp *LatencyProducer) Err() error {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.err
}

// Sample is one record's produce time and latency.
type Sample struct {
	At  time.Time
	Lat time.Duration
}

// Latencies matches acknowledged records with their arrival at lc and
// returns the latencies of records sent at or after since; matched and
// older records are forgotten. Records not yet arrived and sent within
// grace of now are kept for the next call; older ones count as missing.
func (lp *LatencyProducer) Latencies(lc *LatencyClient, since time.Time, grace time.Duration) (lat []time.Duration, missing int) {
	ss, missing := lp.Samples(lc, since, grace)
	lat = make([]time.Duration, len(ss))
	for i, s := range ss {
		lat[i] = s.Lat
	}
	return lat, missing
}

// Samples is Latencies with the produce time of each record.
func (lp *LatencyProducer) Samples(lc *LatencyClient, since time.Time, grace time.Duration) (ss []Sample, missing int) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	now := time.Now()
	for k, at := range lp.sent {
		if got, ok := lc.take(k); ok {
			if !at.Before(since) {
				ss = append(ss, Sample{at, got.Sub(at)})
			}
			delete(lp.sent, k)
			continue
		}
		if now.Sub(at) > grace {
			delete(lp.sent, k)
			missing++
		}
	}
	return ss, missing
}

// Pace produces recs[from:] cyclically at perSecond records per second
// until ctx ends or d passes, and returns how many it produced.
func (lp *LatencyProducer) Pace(ctx context.Context, recs []synth.Record, from int, perSecond float64, d time.Duration) int {
	start := time.Now()
	n := 0
	for {
		el := time.Since(start)
		if el >= d || ctx.Err() != nil {
			return n
		}
		due := int(el.Seconds() * perSecond)
		for ; n < due; n++ {
			lp.Produce(ctx, recs[(from+n)%len(recs)])
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// perSecond renders the p99 of samples grouped by the second (since
// start) they were produced in, for progress output.
func perSecond(ss []Sample, start time.Time) string {
	buckets := map[int][]time.Duration{}
	last := 0
	for _, s := range ss {
		b := int(s.At.Sub(start) / time.Second)
		buckets[b] = append(buckets[b], s.Lat)
		last = max(last, b)
	}
	out := ""
	for b := 0; b <= last; b++ {
		if len(buckets[b]) == 0 {
			continue
		}
		out += fmt.Sprintf(" %d:%.0f", b, ms(percentile(buckets[b], 99)))
	}
	return out
}
