package bench

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/dashstream/dashstream/wire"
)

// SizedRecords makes valid messages of exactly the size asked for, whose
// index is what ingest would extract, with offsets counted per partition.
func TestSizedRecordsAreRealMessages(t *testing.T) {
	c, err := testCorpus()
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{120, 300, 1000} {
		recs := c.SizedRecords(size, 3000, 3)
		if len(recs) != 3000 {
			t.Fatalf("size %d: %d records", size, len(recs))
		}
		next := map[int32]int64{}
		distinct := map[string]bool{}
		for i, r := range recs {
			if len(r.Payload) != size || r.Payload[0] != wire.FrameRaw {
				t.Fatalf("size %d: record %d has %d bytes, frame %#x", size, i, len(r.Payload), r.Payload[0])
			}
			ix, err := wire.Extract(r.Payload, wire.DefaultMaxPayload)
			if err != nil || !r.Extracted || !reflect.DeepEqual(ix, r.Index) {
				t.Fatalf("size %d: record %d: extract %v, marked %v, index differs %v", size, i, err, r.Extracted, !reflect.DeepEqual(ix, r.Index))
			}
			if r.Offset != next[r.Partition] {
				t.Fatalf("size %d: record %d at %d/%d, want offset %d", size, i, r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			distinct[string(r.Payload)] = true
		}
		if len(distinct) < 1000 {
			t.Fatalf("size %d: only %d distinct payloads", size, len(distinct))
		}
		if bytes.Equal(recs[0].Payload, recs[1].Payload) {
			t.Fatalf("size %d: consecutive records are equal", size)
		}
	}
}
