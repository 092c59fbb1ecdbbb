package wire_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

func sampleIndexes() []wire.Index {
	return []wire.Index{
		{},
		{Type: pb.MessageType_MESSAGE_TYPE_EVENT, TimestampUs: 1_700_000_000_123_456, SchemaVersion: 3,
			Threads: []wire.ThreadSeq{{ThreadID: "t-1", Seq: 7}}},
		{Type: pb.MessageType_MESSAGE_TYPE_EVENT_BATCH, TimestampUs: -5, SchemaVersion: 1<<32 - 1, MultiThread: true,
			Threads: []wire.ThreadSeq{{ThreadID: "a", Seq: 1}, {ThreadID: "", Seq: 0}, {ThreadID: "ü→", Seq: 1<<64 - 1}},
			Events: []wire.RunEvent{
				{ThreadID: "a", Seq: 1, TimestampUs: 12, EventType: pb.EventType_EVENT_TYPE_GRAPH_START, GraphName: "g"},
				{ThreadID: "a", Seq: 2, TimestampUs: -1, EventType: pb.EventType_EVENT_TYPE_NODE_ERROR, ErrorText: "boom", NodeID: "n1"},
				{},
			}},
	}
}

func TestIndexCodecRoundTrip(t *testing.T) {
	for i, ix := range sampleIndexes() {
		b := wire.AppendIndex([]byte("prefix"), &ix)
		if string(b[:6]) != "prefix" {
			t.Fatalf("%d: AppendIndex clobbered dst", i)
		}
		got, err := wire.DecodeIndex(b[6:])
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if !sameIndexes(got, ix) {
			t.Fatalf("%d: got %+v, want %+v", i, got, ix)
		}
		ts, err := wire.DecodeIndexThreads(b[6:])
		if err != nil || !reflect.DeepEqual(normThreads(ts), normThreads(ix.Threads)) {
			t.Fatalf("%d: threads %+v, %v; want %+v", i, ts, err, ix.Threads)
		}
		// Every strict prefix fails, and so does a trailing byte.
		for n := 0; n < len(b)-6; n++ {
			if _, err := wire.DecodeIndex(b[6 : 6+n]); !errors.Is(err, wire.ErrCorruptIndex) {
				t.Fatalf("%d: prefix of %d bytes: err %v", i, n, err)
			}
		}
		if _, err := wire.DecodeIndex(append(b[6:], 0)); !errors.Is(err, wire.ErrCorruptIndex) {
			t.Fatalf("%d: trailing byte: err %v", i, err)
		}
	}
}

// TestIndexCodecFormat pins the bytes: both store/bolt files and Redis
// values hold them.
func TestIndexCodecFormat(t *testing.T) {
	ix := wire.Index{Type: 2, TimestampUs: 1000, SchemaVersion: 1, MultiThread: true,
		Threads: []wire.ThreadSeq{{ThreadID: "ab", Seq: 300}},
		Events:  []wire.RunEvent{{ThreadID: "ab", Seq: 1, TimestampUs: -1, EventType: 3, GraphName: "g", ErrorText: "", NodeID: "n"}}}
	got := hex.EncodeToString(wire.AppendIndex(nil, &ix))
	const want = "02d00f0101" + "01" + "026162" + "ac02" + "01" + "026162" + "01" + "01" + "06" + "0167" + "00" + "016e"
	if got != want {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestIndexCodecFieldCount(t *testing.T) {
	if n := reflect.TypeOf(wire.Index{}).NumField(); n != 6 {
		t.Fatalf("wire.Index has %d fields; update AppendIndex/DecodeIndex (and the store layouts)", n)
	}
	if n := reflect.TypeOf(wire.RunEvent{}).NumField(); n != 7 {
		t.Fatalf("wire.RunEvent has %d fields; update AppendIndex/DecodeIndex (and the store layouts)", n)
	}
}

// FuzzDecodeIndex: any input decodes or fails with ErrCorruptIndex, never
// panics, allocates within its length, and whatever decodes encodes back
// to something that decodes to the same index.
func FuzzDecodeIndex(f *testing.F) {
	for _, ix := range sampleIndexes() {
		f.Add(wire.AppendIndex(nil, &ix))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := wire.DecodeIndex(b)
		ts, terr := wire.DecodeIndexThreads(b)
		if err != nil {
			if !errors.Is(err, wire.ErrCorruptIndex) {
				t.Fatalf("unclassified error %v", err)
			}
			if terr != nil && !errors.Is(terr, wire.ErrCorruptIndex) {
				t.Fatalf("unclassified threads error %v", terr)
			}
			return
		}
		if terr != nil || !reflect.DeepEqual(normThreads(ts), normThreads(ix.Threads)) {
			t.Fatalf("threads %+v (%v) differ from the full decode %+v", ts, terr, ix.Threads)
		}
		if len(ix.Threads)*2+len(ix.Events)*8 > len(b) {
			t.Fatalf("%d threads and %d events from %d bytes", len(ix.Threads), len(ix.Events), len(b))
		}
		enc := wire.AppendIndex(nil, &ix)
		if len(enc) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(enc))
		}
		again, err := wire.DecodeIndex(enc)
		if err != nil || !sameIndexes(again, ix) {
			t.Fatalf("re-encoded index does not round-trip: %v", err)
		}
		if bytes.Equal(enc, b) {
			return
		}
		// Only non-minimal varints or extra flag bits may differ.
		if !bytes.Equal(wire.AppendIndex(nil, &again), enc) {
			t.Fatal("encoding is not stable")
		}
	})
}

func normThreads(ts []wire.ThreadSeq) []wire.ThreadSeq {
	if len(ts) == 0 {
		return nil
	}
	return ts
}

func sameIndexes(a, b wire.Index) bool {
	if len(a.Events) == 0 && len(b.Events) == 0 {
		a.Events, b.Events = nil, nil
	}
	a.Threads, b.Threads = normThreads(a.Threads), normThreads(b.Threads)
	return reflect.DeepEqual(a, b)
}
