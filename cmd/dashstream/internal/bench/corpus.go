package bench

import (
	"fmt"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/synth"
)

// Corpus is the D9 benchmark corpus (`dashstream produce --seed 1 --runs
// 500`) as Kafka records and as the store receives them.
type Corpus struct {
	Raw      []synth.Record
	Valid    []synth.Record // the records ingest stores (all but invalid ones)
	Stats    synth.Stats
	Recs     []store.Record // valid records, offsets counted from 0 per partition
	Plain    []store.Record // the plain (0x00) ones, offsets counted per partition
	AllBytes int64          // every value byte of the corpus
	PlainRaw int64          // value bytes of the plain records
	Invalid  int
}

// LoadCorpus generates the D9 corpus with runs runs (500 for D9) and
// indexes it the way ingest does.
func LoadCorpus(runs int) (*Corpus, error) {
	raw, err := synth.Corpus(1, runs)
	if err != nil {
		return nil, fmt.Errorf("generating the corpus: %w", err)
	}
	c := &Corpus{Raw: raw, Stats: synth.ComputeStats(raw)}
	next, nextPlain := map[int32]int64{}, map[int32]int64{}
	for _, r := range raw {
		c.AllBytes += int64(len(r.Value))
		ix, err := wire.Extract(r.Value, wire.DefaultMaxPayload)
		if err != nil {
			c.Invalid++
			continue
		}
		c.Valid = append(c.Valid, r)
		at := time.UnixMicro(ix.TimestampUs).Truncate(time.Millisecond).UTC()
		rec := store.Record{Partition: r.Partition, Offset: next[r.Partition], Time: at, Payload: r.Value, Index: ix}
		next[r.Partition]++
		c.Recs = append(c.Recs, rec)
		if len(r.Value) > 0 && r.Value[0] == wire.FrameRaw {
			c.PlainRaw += int64(len(r.Value))
			rec.Offset = nextPlain[r.Partition]
			nextPlain[r.Partition]++
			c.Plain = append(c.Plain, rec)
		}
	}
	return c, nil
}

// SizedRecords cuts or pads the corpus's plain values (concatenating
// consecutive ones) to size bytes each, keeping each source record's index,
// so the records look like real telemetry rather than zeros or noise. They
// are spread over partitions partitions with offsets from 0.
func (c *Corpus) SizedRecords(size, n int, partitions int32) []store.Record {
	out := make([]store.Record, 0, n)
	next := map[int32]int64{}
	src := c.Plain
	j := 0
	for len(out) < n {
		base := src[j%len(src)]
		b := make([]byte, 0, size)
		for len(b) < size {
			b = append(b, src[j%len(src)].Payload...)
			j++
		}
		b = b[:size]
		b[0] = wire.FrameRaw
		p := base.Partition % partitions
		out = append(out, store.Record{Partition: p, Offset: next[p], Time: base.Time, Payload: b, Index: base.Index})
		next[p]++
	}
	return out
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
