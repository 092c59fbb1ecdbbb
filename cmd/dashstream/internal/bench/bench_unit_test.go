package bench

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/dashstream/dashstream/hub"
)

func TestParseBatch(t *testing.T) {
	b := []byte{hub.BatchFrameType}
	b = binary.AppendUvarint(b, 2)
	for i, payload := range []string{"\x00one", "\x00second"} {
		b = binary.BigEndian.AppendUint32(b, uint32(i+1))
		b = binary.BigEndian.AppendUint64(b, uint64(100+i))
		b = binary.AppendUvarint(b, uint64(len(payload)))
		b = append(b, payload...)
	}
	var got []string
	err := ParseBatch(b, func(p int32, o int64, payload []byte) {
		got = append(got, string(payload))
		if p != int32(len(got)) || o != int64(99+len(got)) {
			t.Errorf("record %d: partition %d offset %d", len(got), p, o)
		}
	})
	if err != nil || len(got) != 2 || got[1] != "\x00second" {
		t.Fatalf("ParseBatch: %v %q", err, got)
	}
	for _, bad := range [][]byte{nil, {0x00}, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if err := ParseBatch(bad, nil); err == nil {
			t.Errorf("ParseBatch(%x) accepted a bad frame", bad)
		}
	}
}

func TestParseCursor(t *testing.T) {
	p, o, err := parseCursor([]byte(`{"type":"cursor","partition":7,"offset":"123456789012"}`))
	if err != nil || p != 7 || o != 123456789012 {
		t.Fatalf("parseCursor: %d %d %v", p, o, err)
	}
	if _, _, err := parseCursor([]byte(`{"type":"cursor","partition":7}`)); err == nil {
		t.Fatal("a cursor frame without offset was accepted")
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(ds, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(ds, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("p99 of nothing = %v", p)
	}
	if m := median([]time.Duration{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
}

func TestSoakVerdict(t *testing.T) {
	mk := func(grow bool) []SoakSample {
		var ss []SoakSample
		for i := range 100 {
			s := SoakSample{T: float64(i), FileBytes: 64 << 20, RSSBytes: 80 << 20, Goroutines: 40, StoreRecords: 30000}
			if i < 30 { // warm-up: filling up
				s.FileBytes, s.StoreRecords = int64(i+1)<<21, int64(i*1000)
			}
			if grow && i >= 30 {
				s.RSSBytes += int64(i-30) << 20 // a leak of 1 MiB per second
			}
			ss = append(ss, s)
		}
		return ss
	}
	if v := soakVerdict(mk(false), 100*time.Second); !v.OK || !v.FileLevel || !v.RSSLevel || !v.RetentionActive {
		t.Fatalf("flat run judged %+v", v)
	}
	if v := soakVerdict(mk(true), 100*time.Second); v.OK || v.RSSLevel || !v.FileLevel {
		t.Fatalf("leaking run judged %+v", v)
	}
	if v := soakVerdict(mk(false)[:10], 100*time.Second); v.OK {
		t.Fatal("a run without samples after the warm-up was judged OK")
	}
}
