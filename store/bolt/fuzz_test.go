package bolt

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// fuzzCompressor has a dictionary (id 1) so dictionary blocks decode too.
func fuzzCompressor(f testing.TB) *compressor {
	var samples [][]byte
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 400; i++ {
		samples = append(samples, protoLike(rng, 100+rng.IntN(300), fmt.Sprintf("thread-%d", i%7)))
	}
	d, err := trainDict(samples, 1)
	if err != nil {
		f.Fatal(err)
	}
	z, err := newCompressor(zstd.SpeedFastest, map[uint32][]byte{1: d}, 1, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(z.close)
	return z
}

// FuzzDecodeValue feeds arbitrary block values to the block decoder and the
// meta decoder (wire.DecodeIndex, fuzzed on its own in package wire): they must fail cleanly, never panic, and allocate no more
// than the header bounds (maxContent); valid blocks round-trip.
func FuzzDecodeValue(f *testing.F) {
	z := fuzzCompressor(f)
	zplain, err := newCompressor(zstd.SpeedFastest, nil, 0, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(zplain.close)
	at := time.UnixMilli(1_767_225_600_123)
	ix := wire.Index{Type: pb.MessageType_MESSAGE_TYPE_EVENT, TimestampUs: at.UnixMicro(), SchemaVersion: 1,
		Threads: []wire.ThreadSeq{{ThreadID: "t-1", Seq: 3}},
		Events:  []wire.RunEvent{{ThreadID: "t-1", Seq: 3, EventType: pb.EventType_EVENT_TYPE_GRAPH_START, GraphName: "g", NodeID: "n"}}}
	meta := wire.AppendIndex(nil, &ix)
	recs := []blockRec{
		{off: 10, time: at, meta: meta, payload: append([]byte{wire.FrameRaw}, bytes.Repeat([]byte("token chunk "), 20)...)},
		{off: 12, time: at.Add(time.Nanosecond), meta: meta, payload: []byte{wire.FrameZstd, 1, 2, 3}},
		{off: 13, meta: wire.AppendIndex(nil, &wire.Index{}), payload: nil},
	}
	var sc encScratch
	for _, zz := range []*compressor{z, zplain} {
		v, _, _ := zz.encodeBlock(nil, recs, true, &sc)
		f.Add(v)
		v, _, _ = zz.encodeBlock(nil, recs[2:], false, &sc)
		f.Add(v)
	}
	raw, _ := buildContent(nil, recs[:1], true)
	f.Add(append(putBlockHeader(nil, codecRaw|flagThreads, 0, recs[:1], len(raw), len(raw)), raw...))
	f.Add([]byte{})
	f.Add([]byte{0x02, 0x01, 0x01, 0x00, 0xff, 0xff, 0xff, 0x1f, 0x04})
	key := offKey(10)
	f.Fuzz(func(t *testing.T, v []byte) {
		h, recs, err := z.decodeBlock(key, v)
		if err != nil {
			return
		}
		if h.clen > maxContent || len(recs) != h.n {
			t.Fatalf("decoded %d records (header %d), content %d", len(recs), h.n, h.clen)
		}
		for i := range recs {
			if rc := recs[i]; !rc.derived {
				_, _ = rc.threads()
				_, _ = rc.index()
			}
			if i > 0 && recs[i].off <= recs[i-1].off {
				t.Fatalf("offsets not increasing: %d after %d", recs[i].off, recs[i-1].off)
			}
		}
		// What decodes re-encodes to a block that decodes to the same records.
		var sc encScratch
		v2, _, _ := z.encodeBlock(nil, recs, h.threads, &sc)
		_, recs2, err := z.decodeBlock(key, v2)
		if err != nil || len(recs2) != len(recs) {
			t.Fatalf("re-encoded block: %v", err)
		}
		for i := range recs {
			a, b := recs[i], recs2[i]
			if a.off != b.off || !a.time.Equal(b.time) || !bytes.Equal(a.payload, b.payload) || !bytes.Equal(a.meta, b.meta) {
				t.Fatalf("record %d differs after re-encoding", i)
			}
		}
	})
}

// FuzzDecodeChunk feeds arbitrary values to the thread index chunk
// decoder: it must fail cleanly, never panic, and what it accepts is a
// strictly increasing run of keys that encodes back to the same bytes.
func FuzzDecodeChunk(f *testing.F) {
	f.Add(encodeChunk([]store.ThreadKey{{Seq: 1, Partition: 0, Offset: 5}, {Seq: 1, Partition: 2, Offset: 1}, {Seq: 9, Partition: 0, Offset: 7}}))
	f.Add(encodeChunk([]store.ThreadKey{{Seq: math.MaxUint64, Partition: math.MaxInt32, Offset: math.MaxInt64}}))
	f.Add(encodeChunk(nil))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01})
	f.Add([]byte{0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00}) // a repeated key
	f.Fuzz(func(t *testing.T, v []byte) {
		es, err := decodeChunk(v)
		if err != nil {
			return
		}
		for i := 1; i < len(es); i++ {
			if compareTK(es[i], es[i-1]) <= 0 {
				t.Fatalf("keys not increasing: %+v after %+v", es[i], es[i-1])
			}
		}
		es2, err := decodeChunk(encodeChunk(es))
		if err != nil || !slices.Equal(es, es2) {
			t.Fatalf("re-encoded chunk: %v, %v → %v", err, es, es2)
		}
	})
}

// FuzzDecodeRun feeds arbitrary values to the run summary decoder: it
// must fail cleanly, never panic, and what it accepts round-trips.
func FuzzDecodeRun(f *testing.F) {
	at := time.Unix(1_767_225_600, 123).UTC()
	f.Add(encodeRun(&store.RunSummary{ThreadID: "t-1", GraphName: "g", Status: store.RunRunning, StartedAt: at,
		FirstSeq: 1, LastSeq: 9, Messages: 12, UpdatedAt: at.Add(time.Second)}))
	f.Add(encodeRun(&store.RunSummary{ThreadID: "t-2", Status: store.RunError, StartedAt: at, EndedAt: at.Add(time.Minute),
		LastError: "boom", Messages: -1, UpdatedAt: at}))
	f.Add(encodeRun(&store.RunSummary{}))
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, v []byte) {
		sum, ok := decodeRun(v)
		if !ok {
			return
		}
		sum2, ok := decodeRun(encodeRun(&sum))
		if !ok || sum2 != sum {
			t.Fatalf("re-encoded run: %v, %+v → %+v", ok, sum, sum2)
		}
	})
}
