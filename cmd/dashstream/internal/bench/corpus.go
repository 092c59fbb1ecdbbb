package bench

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/corpus"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/synth"
)

// Corpus is the D9 benchmark corpus (`dashstream produce --seed 1 --runs
// 500`) as Kafka records and as the store receives them.
type Corpus struct{ *corpus.Set }

// LoadCorpus generates the D9 corpus with runs runs (500 for D9) and
// indexes it the way ingest does.
func LoadCorpus(runs int) (*Corpus, error) {
	raw, err := synth.Corpus(1, runs)
	if err != nil {
		return nil, fmt.Errorf("generating the corpus: %w", err)
	}
	return &Corpus{corpus.Index(raw)}, nil
}

// SizedRecords returns n valid DashStream messages of exactly size bytes,
// made from the corpus's plain messages that fit: each is padded inside
// its message with an unknown field (number padField) whose bytes come from
// the corpus's other messages, so the record compresses like telemetry, and
// its index is what wire.Extract (ingest) yields, marked Extracted as ingest
// marks it. They are spread over partitions partitions with offsets from 0.
// A corpus with no message that fits is a programming error (panic).
func (c *Corpus) SizedRecords(size, n int, partitions int32) []store.Record {
	out := make([]store.Record, 0, n)
	next := map[int32]int64{}
	var filler []byte
	for _, r := range c.Plain {
		filler = append(filler, r.Payload[1:]...)
		if len(filler) >= 1<<20 {
			break
		}
	}
	fill := 0
	for j := 0; len(out) < n; j++ {
		if j >= len(c.Plain) && len(out) == 0 {
			panic(fmt.Sprintf("bench: no corpus message fits in %d bytes", size))
		}
		base := c.Plain[j%len(c.Plain)]
		pad := max(0, size-len(base.Payload))
		if fill+pad > len(filler) {
			fill = 0
		}
		b, ok := padMessage(base.Payload, size, filler[fill:fill+pad])
		if !ok {
			continue
		}
		fill += pad
		ix, err := wire.Extract(b, wire.DefaultMaxPayload)
		if err != nil {
			panic(fmt.Sprintf("bench: padded message does not extract: %v", err))
		}
		p := base.Partition % partitions
		out = append(out, store.Record{Partition: p, Offset: next[p], Time: base.Time, Payload: b, Index: ix, Extracted: true})
		next[p]++
	}
	return out
}

// padField is a field number no DashStream message uses; readers skip it.
const padField = 2047

// padMessage makes a framed plain message of exactly size bytes out of
// msg (0x00, then one length-delimited top-level field) by appending a
// padField bytes field inside that field's message, its content taken from
// filler (which must hold at least the padding). ok is false when msg
// does not have that shape or does not fit.
func padMessage(msg []byte, size int, filler []byte) ([]byte, bool) {
	if len(msg) < 2 || msg[0] != wire.FrameRaw {
		return nil, false
	}
	num, typ, n := protowire.ConsumeTag(msg[1:])
	if n < 0 || typ != protowire.BytesType {
		return nil, false
	}
	inner, m := protowire.ConsumeBytes(msg[1+n:])
	if m < 0 || 1+n+m != len(msg) {
		return nil, false
	}
	for l := size - len(msg); l >= 0; l-- {
		body := protowire.AppendTag(append([]byte(nil), inner...), padField, protowire.BytesType)
		if l > len(filler) {
			continue
		}
		body = protowire.AppendBytes(body, filler[:l])
		out := protowire.AppendTag([]byte{wire.FrameRaw}, num, protowire.BytesType)
		out = protowire.AppendBytes(out, body)
		if len(out) == size {
			return out, true
		}
		if len(out) < size {
			return nil, false
		}
	}
	return nil, false
}

// Batches cuts recs into store batches of n records, each carrying its
// partitions' next offsets.
func Batches(recs []store.Record, n int) []store.Batch {
	var out []store.Batch
	for i := 0; i < len(recs); i += n {
		part := recs[i:min(i+n, len(recs))]
		b := store.Batch{Records: part, NextOffsets: map[int32]int64{}}
		for _, r := range part {
			b.NextOffsets[r.Partition] = r.Offset + 1
		}
		out = append(out, b)
	}
	return out
}
