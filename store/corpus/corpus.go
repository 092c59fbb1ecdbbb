// Package corpus turns a synthetic corpus (wire/synth) into the records
// the store receives from ingest: the input of the DECISIONS D9 benchmarks
// and of the store's compression and storage tests.
package corpus

import (
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/synth"
)

// Set is a corpus as Kafka records and as the store gets them.
type Set struct {
	Raw      []synth.Record
	Valid    []synth.Record // the records ingest stores (all but invalid ones)
	Stats    synth.Stats
	Recs     []store.Record // valid records, offsets counted from 0 per partition
	Plain    []store.Record // the plain (0x00) ones, offsets counted from 0 per partition
	AllBytes int64          // every value byte of the corpus
	PlainRaw int64          // value bytes of the plain records
	Invalid  int            // records wire.Extract rejects (ingest's DLQ)
}

// Index indexes raw the way ingest does: wire.Extract's index, the
// message timestamp at millisecond precision, offsets counted per
// partition among the records kept.
func Index(raw []synth.Record) *Set {
	c := &Set{Raw: raw, Stats: synth.ComputeStats(raw)}
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
	return c
}
