package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// outcome is what the pipeline decided for one record.
type outcome uint8

const (
	outOK    outcome = iota // append the record
	outSkip                 // record its offset as an `invalid` skipped range
	outPause                // stop the partition at this record
)

// maxClockSkew bounds a plausible producer-to-ingest latency.
const maxClockSkew = 60 * time.Second

// process runs the per-record pipeline (reference §5.4, with quirks Q8,
// Q9 and Q10 fixed): missing payload, size check before any copy, old/new
// classification, decode (wire.Extract), sequence validation, latency,
// DLQ and the decode-error policy.
func (i *Ingester) process(ctx context.Context, r *kgo.Record) (store.Record, outcome) {
	i.msgCount++
	now := time.Now()
	p, off := r.Partition, r.Offset
	old := i.heads.classify(ctx, p, off, r.Timestamp)

	// Every record counts as received, including missing and oversized
	// ones (M-1085).
	i.cnt.received.Add(1)
	i.msgWindow.add(now, 1)
	i.m.lastMessage.Store(now.UnixNano())

	pause := i.cfg.OnDecodeError == PolicyPause && !old // old data never pauses (Q9)
	if r.Value == nil {
		i.m.PayloadMissing.Inc()
		i.cnt.missing.Add(1)
		if i.warnLog.allow() {
			i.log.Warn("Kafka record has no payload (null value)", "partition", p, "offset", off, "old_data", old, "pause", pause)
		}
		if pause {
			return store.Record{}, outPause
		}
		return store.Record{}, outSkip
	}

	if len(r.Value) > i.cfg.MaxPayloadBytes {
		if old {
			i.oldDataFailure(p, off, ClassPayloadTooLarge, "payload too large")
			return store.Record{}, outSkip
		}
		f := &failure{
			traceID: newTraceID(), errorType: ClassPayloadTooLarge, partition: p, offset: off, count: i.msgCount, value: r.Value,
			err: fmt.Sprintf("Payload size %d exceeds maximum %d", len(r.Value), i.cfg.MaxPayloadBytes),
		}
		i.newDataFailure(now, f)
		if v, err := oversizeDLQValue(f, now); err == nil {
			i.dlq.send(f.traceID, v, f.errorType)
		}
		if pause {
			return store.Record{}, outPause
		}
		return store.Record{}, outSkip
	}

	idx, err := i.extract(r.Value, i.cfg.MaxPayloadBytes)
	if err != nil {
		class := decodeClass(err)
		if old {
			i.oldDataFailure(p, off, class, err.Error())
			return store.Record{}, outSkip
		}
		f := &failure{traceID: newTraceID(), err: err.Error(), errorType: class, partition: p, offset: off, count: i.msgCount, value: r.Value}
		i.newDataFailure(now, f)
		if v, jerr := decodeDLQValue(f, i.cfg.DLQIncludeFullPayload, i.ids, now); jerr == nil {
			i.dlq.send(f.traceID, v, f.errorType)
		}
		if pause {
			return store.Record{}, outPause
		}
		return store.Record{}, outSkip
	}

	i.m.MessagesTotal.WithLabelValues(StatusSuccess).Inc()
	i.cnt.ok.Add(1)
	if idx.MultiThread {
		i.m.MultiThreadBatches.Inc()
	}
	for _, t := range idx.Threads {
		if t.ThreadID == "" || t.Seq == 0 {
			continue
		}
		res := i.seq.Observe(t.ThreadID, t.Seq)
		switch res.Kind {
		case SeqGap:
			i.m.SequenceGaps.Inc()
			i.m.SequenceGapSize.Observe(float64(res.GapSize))
		case SeqDuplicate:
			i.m.SequenceDuplicates.Inc()
		case SeqReorder:
			i.m.SequenceReorders.Inc()
		}
	}
	// Latency is measured on new data only: old records replayed at
	// startup would all count as clock skew (a deliberate deviation from
	// the reference, which measures every record).
	if idx.TimestampUs > 0 && !old {
		lat := time.Duration(now.UnixMicro()-idx.TimestampUs) * time.Microsecond
		if lat < 0 || lat > maxClockSkew {
			i.m.ClockSkew.Inc()
		} else {
			i.m.E2ELatency.Observe(float64(lat) / float64(time.Millisecond))
		}
	}
	// Extracted: the store need not extract the index again to check it.
	return store.Record{Partition: p, Offset: off, Time: r.Timestamp, Payload: r.Value, Index: idx, Extracted: true}, outOK
}

// oldDataFailure counts a failure of old data (never DLQ'd, never
// pausing); logs the first three and every 100th.
func (i *Ingester) oldDataFailure(p int32, off int64, class, msg string) {
	i.m.OldDataDecodeErrors.Inc()
	i.m.MessagesTotal.WithLabelValues(StatusOldDataError).Inc()
	i.cnt.oldData.Add(1)
	i.oldLogged++
	if n := i.oldLogged; n <= 3 || n%100 == 0 {
		i.log.Warn("old-data record failed to decode (counted, not DLQ'd)", "partition", p, "offset", off,
			"error_type", class, "error", msg, "old_data_errors", n)
	}
}

// newDataFailure counts a failure of new data and writes the structured
// error log line (rate-limited).
func (i *Ingester) newDataFailure(now time.Time, f *failure) {
	i.m.MessagesTotal.WithLabelValues(StatusError).Inc()
	i.m.DecodeErrors.WithLabelValues(f.errorType).Inc()
	i.cnt.kafkaErrors.Add(1)
	i.errWindow.add(now, 1)
	if ok, suppressed := i.errLog.allowN(); ok {
		i.log.Error("Kafka record rejected",
			"trace_id", f.traceID,
			"error", f.err,
			"error_type", f.errorType,
			"message_size", len(f.value),
			"first_bytes_hex", firstBytesHex(f.value),
			"last_bytes_hex", lastBytesHex(f.value),
			"message_count", f.count,
			"kafka_partition", f.partition,
			"kafka_offset", f.offset,
			"suppressed_since_last", suppressed,
		)
	}
}

// decodeClass is the reference label of a wire.Extract error (reference
// §8.2), classified structurally by wire.
func decodeClass(err error) string { return string(wire.ClassOf(err)) }

// classifyKafkaError maps a consumer error to the reference's labels
// (reference §5.4 step 8), by its lower-cased text.
func classifyKafkaError(err error) string {
	msg := strings.ToLower(err.Error())
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("dns", "resolve", "name"):
		return KafkaErrDNS
	case has("timeout", "timed out"):
		return KafkaErrTimeout
	case has("broker", "connection refused", "reset by peer"):
		return KafkaErrBroker
	case has("decode", "parse", "invalid"):
		return KafkaErrDecode
	}
	return KafkaErrUnknown
}

// batchBuilder accumulates one store append.
type batchBuilder struct {
	maxRecords, maxBytes int
	recs                 []store.Record
	skips                []store.SkippedRange
	lastSkip             map[int32]int // index in skips of p's last range
	next                 map[int32]int64
	bytes                int
}

func newBatchBuilder(maxRecords, maxBytes int) *batchBuilder {
	return &batchBuilder{maxRecords: maxRecords, maxBytes: maxBytes, lastSkip: map[int32]int{}, next: map[int32]int64{}}
}

// expected is the next offset p should deliver: the pending one, else the
// committed one.
func (b *batchBuilder) expected(p int32, committed map[int32]int64) (int64, bool) {
	if n, ok := b.next[p]; ok {
		return n, true
	}
	n, ok := committed[p]
	return n, ok
}

func (b *batchBuilder) add(r store.Record) {
	b.recs = append(b.recs, r)
	b.bytes += len(r.Payload)
	b.next[r.Partition] = r.Offset + 1
}

// skip records offset off of p as invalid, merging with an adjacent range.
func (b *batchBuilder) skip(p int32, off int64) {
	b.skipRange(p, off, off+1, store.SkipInvalid)
}

func (b *batchBuilder) evict(p int32, from, to int64) {
	b.skipRange(p, from, to, store.SkipEvicted)
}

func (b *batchBuilder) skipRange(p int32, from, to int64, reason string) {
	if j, ok := b.lastSkip[p]; ok {
		if s := &b.skips[j]; s.To == from && s.Reason == reason {
			s.To = to
			b.next[p] = to
			return
		}
	}
	b.lastSkip[p] = len(b.skips)
	b.skips = append(b.skips, store.SkippedRange{Partition: p, From: from, To: to, Reason: reason})
	b.next[p] = to
}

func (b *batchBuilder) full() bool {
	return len(b.recs) >= b.maxRecords || b.bytes >= b.maxBytes
}

func (b *batchBuilder) empty() bool { return len(b.next) == 0 }

// batch returns the store batch (sharing the builder's slices until reset).
func (b *batchBuilder) batch() store.Batch {
	return store.Batch{Records: b.recs, Skipped: b.skips, NextOffsets: b.next}
}

func (b *batchBuilder) reset() {
	b.recs = nil
	b.skips = nil
	b.bytes = 0
	b.lastSkip = map[int32]int{}
	b.next = map[int32]int64{}
}

// rateLimiter is a token bucket for log lines.
type rateLimiter struct {
	mu         sync.Mutex
	rate       float64 // tokens per second
	burst      float64
	tokens     float64
	last       time.Time
	suppressed int
}

func newRateLimiter(perSecond, burst float64) *rateLimiter {
	return &rateLimiter{rate: perSecond, burst: burst, tokens: burst, last: time.Now()}
}

func (l *rateLimiter) allow() bool {
	ok, _ := l.allowN()
	return ok
}

// allowN reports whether a line may be logged and how many were
// suppressed since the last allowed one.
func (l *rateLimiter) allowN() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	s := l.suppressed
	l.suppressed = 0
	return true, s
}
