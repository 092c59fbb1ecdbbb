package corpus

import (
	"testing"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/synth"
)

// Index keeps what ingest keeps, with offsets counted per partition among
// the kept records, and the plain subset counted separately.
func TestIndex(t *testing.T) {
	raw, err := synth.Corpus(1, 5)
	if err != nil {
		t.Fatal(err)
	}
	garbage := synth.Record{Value: []byte{wire.FrameRaw, 0xff, 0xff}, Partition: raw[0].Partition}
	raw = append([]synth.Record{garbage}, raw...)
	c := Index(raw)
	if c.Invalid != 1 || len(c.Valid) != len(raw)-1 || len(c.Recs) != len(c.Valid) {
		t.Fatalf("invalid %d, valid %d, recs %d of %d", c.Invalid, len(c.Valid), len(c.Recs), len(raw))
	}
	var all, plain int64
	for _, r := range raw {
		all += int64(len(r.Value))
	}
	for name, recs := range map[string][]store.Record{"recs": c.Recs, "plain": c.Plain} {
		next := map[int32]int64{}
		for _, r := range recs {
			if r.Offset != next[r.Partition] {
				t.Fatalf("%s: partition %d offset %d, want %d", name, r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			if ix, err := wire.Extract(r.Payload, wire.DefaultMaxPayload); err != nil || ix.TimestampUs/1000 != r.Time.UnixMilli() {
				t.Fatalf("%s: record %d/%d: %v, time %v", name, r.Partition, r.Offset, err, r.Time)
			}
		}
	}
	for _, r := range c.Plain {
		plain += int64(len(r.Payload))
		if r.Payload[0] != wire.FrameRaw {
			t.Fatalf("plain record with frame %#x", r.Payload[0])
		}
	}
	if c.AllBytes != all || c.PlainRaw != plain || len(c.Plain) == 0 {
		t.Fatalf("bytes %d/%d (want %d/%d), plain %d of %d", c.AllBytes, c.PlainRaw, all, plain, len(c.Plain), len(c.Recs))
	}
}
