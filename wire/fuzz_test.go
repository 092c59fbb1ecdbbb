package wire_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// fuzzLimit is the payload/decompression cap the fuzz targets use.
const fuzzLimit = 1 << 20

// maxInflateCap bounds the capacity of any decompression buffer: the cap,
// one zstd block and the decoder's over-allocation.
const maxInflateCap = fuzzLimit + 128<<10 + 64

var validClasses = map[wire.ErrorClass]bool{
	wire.ClassPayloadTooLarge: true, wire.ClassBufferUnderflow: true,
	wire.ClassInvalidProtobuf: true, wire.ClassUnknownDecodeError: true,
}

// FuzzDecode feeds Kafka values to Decode, Extract and Unframe: no panic,
// classified errors only, decompressed output within the cap, and Extract
// agreeing with Decode on success, error class and index contents.
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		f.Add(mustEncode(f, s.msg))
	}
	for _, g := range garbageCases(f) {
		if len(g.payload) < 4096 {
			f.Add(g.payload)
		}
	}
	f.Add(compressedBombFrame(3, -1))
	f.Add(append([]byte{wire.FrameZstd}, compressedBombFrame(2, 2*128<<10)...))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, derr := wire.Decode(payload, fuzzLimit)
		ix, xerr := wire.Extract(payload, fuzzLimit)
		body, uerr := wire.Unframe(payload, fuzzLimit)
		for _, err := range []error{derr, xerr, uerr} {
			if err != nil && !validClasses[wire.ClassOf(err)] {
				t.Fatalf("unclassified error %v", err)
			}
		}
		if wire.ClassOf(derr) != wire.ClassOf(xerr) {
			t.Fatalf("Decode: %v\nExtract: %v", derr, xerr)
		}
		if uerr == nil {
			if len(body) > fuzzLimit {
				t.Fatalf("Unframe returned %d bytes, cap %d", len(body), fuzzLimit)
			}
			if len(payload) > 0 && (payload[0] == wire.FrameZstd || bytes.HasPrefix(payload, []byte(wireZstdMagic))) && cap(body) > maxInflateCap {
				t.Fatalf("decompression buffer of %d bytes, bound %d", cap(body), maxInflateCap)
			}
		} else if derr == nil {
			t.Fatalf("Unframe failed (%v) but Decode succeeded", uerr)
		}
		if derr == nil {
			if d := diffIndex(ix, refIndex(m)); d != "" {
				t.Fatalf("Extract differs from Unmarshal:%s", d)
			}
		}
	})
}

// FuzzExtract feeds protobuf bytes to ExtractProto and proto.Unmarshal:
// they must agree on success and on the index, and the class must be the
// one Decode reports for the same bytes behind a 0x00 frame.
func FuzzExtract(f *testing.F) {
	for _, s := range samples() {
		f.Add(mustMarshal(f, s.msg))
	}
	for _, g := range garbageCases(f) {
		if len(g.payload) > 1 && g.payload[0] == wire.FrameRaw && len(g.payload) < 4096 {
			f.Add(g.payload[1:])
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ix, xerr := wire.ExtractProto(raw)
		m := new(pb.DashStreamMessage)
		uerr := proto.Unmarshal(raw, m)
		if (xerr == nil) != (uerr == nil) {
			t.Fatalf("ExtractProto: %v\nproto.Unmarshal: %v", xerr, uerr)
		}
		if xerr != nil {
			if c := wire.ClassOf(xerr); c != wire.ClassBufferUnderflow && c != wire.ClassInvalidProtobuf {
				t.Fatalf("ExtractProto class %q: %v", c, xerr)
			}
			if len(raw) < fuzzLimit {
				_, derr := wire.Decode(append([]byte{wire.FrameRaw}, raw...), fuzzLimit)
				if wire.ClassOf(derr) != wire.ClassOf(xerr) {
					t.Fatalf("Decode: %v\nExtractProto: %v", derr, xerr)
				}
			}
			return
		}
		if d := diffIndex(ix, refIndex(m)); d != "" {
			t.Fatalf("ExtractProto differs from Unmarshal:%s", d)
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpora under
// testdata/fuzz from real produced messages (hand-built samples and one
// record of each kind from the D9 corpus). Run with
// WIRE_WRITE_FUZZ_SEEDS=1 go test ./wire/ -run TestWriteFuzzSeeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("WIRE_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set WIRE_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	seeds := map[string][]byte{}
	for _, s := range samples() {
		seeds["sample_"+s.name] = mustEncode(t, s.msg)
	}
	seen := map[string]bool{}
	for _, r := range corpus(t) {
		ix, err := wire.Extract(r.Value, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatal(err)
		}
		kind := fmt.Sprintf("%s_%#02x", ix.Type, r.Value[0])
		if seen[kind] || len(r.Value) > 16<<10 {
			continue
		}
		seen[kind] = true
		seeds["synth_"+kind] = r.Value
	}
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range seeds {
		write("FuzzDecode", name, v)
		body, err := wire.Unframe(v, wire.DefaultMaxPayload)
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzExtract", name, body)
	}
	t.Logf("wrote %d seeds per target", len(seeds))
}
