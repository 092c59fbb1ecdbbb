package memory

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

func TestAddSkip(t *testing.T) {
	inv := func(from, to int64) store.SkippedRange {
		return store.SkippedRange{From: from, To: to, Reason: store.SkipInvalid}
	}
	ev := func(from, to int64) store.SkippedRange {
		return store.SkippedRange{From: from, To: to, Reason: store.SkipEvicted}
	}
	tests := []struct {
		name string
		add  []store.SkippedRange
		want []store.SkippedRange
	}{
		{"sorted", []store.SkippedRange{inv(10, 12), inv(1, 3)}, []store.SkippedRange{inv(1, 3), inv(10, 12)}},
		{"adjacent merge", []store.SkippedRange{inv(1, 3), inv(3, 5)}, []store.SkippedRange{inv(1, 5)}},
		{"gap of one kept", []store.SkippedRange{inv(1, 3), inv(4, 5)}, []store.SkippedRange{inv(1, 3), inv(4, 5)}},
		{"overlap merge", []store.SkippedRange{inv(1, 6), inv(3, 5)}, []store.SkippedRange{inv(1, 6)}},
		{"bridge", []store.SkippedRange{inv(1, 3), inv(5, 7), inv(2, 6)}, []store.SkippedRange{inv(1, 7)}},
		{"absorb several", []store.SkippedRange{inv(4, 5), inv(6, 7), inv(8, 9), inv(3, 10)}, []store.SkippedRange{inv(3, 10)}},
		{"other reason kept apart", []store.SkippedRange{inv(1, 3), ev(3, 5)}, []store.SkippedRange{inv(1, 3), ev(3, 5)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []store.SkippedRange
			for _, sk := range tc.add {
				got = addSkip(got, sk)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func rec(p int32, off int64, size int, thread string) store.Record {
	return store.Record{Partition: p, Offset: off, Time: time.Now(), Payload: make([]byte, size),
		Index: wire.Index{Threads: []wire.ThreadSeq{{ThreadID: thread, Seq: uint64(off + 1)}}}}
}

func TestRingBounds(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		cfg        Config
		size       int
		wantOldest [2]int64 // oldest offset of partitions 0 and 1
		wantTotal  int64
	}{
		{"by count", Config{MaxRecords: 6}, 10, [2]int64{7, 7}, 6},
		{"by bytes", Config{MaxBytes: 400}, 100, [2]int64{8, 8}, 4},
		{"retention bytes below ring", Config{MaxBytes: 1 << 20, Retention: store.Retention{MaxBytes: 400}}, 100, [2]int64{8, 8}, 4},
		{"defaults keep all", Config{}, 10, [2]int64{0, 0}, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.cfg)
			defer s.Close()
			for i := range int64(10) {
				b := store.Batch{Records: []store.Record{rec(0, i, tc.size, "a"), rec(1, i, tc.size, "b")}}
				if err := s.Append(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			for p, want := range tc.wantOldest {
				if o, l, ok := s.Bounds(int32(p)); !ok || o != want || l != 9 {
					t.Errorf("Bounds(%d) = %d, %d, %v; want %d, 9", p, o, l, ok, want)
				}
			}
			st := s.Stats()
			if st.Records != tc.wantTotal || st.Kind != "memory" || st.StoredBytes != tc.wantTotal*int64(tc.size) {
				t.Errorf("Stats = %+v", st)
			}
			// A run counts every record it had, retained or not.
			if r, ok, _ := s.Run(ctx, "a"); !ok || r.Messages != 10 {
				t.Errorf("run a: %+v, %v", r, ok)
			}
		})
	}
}

func TestEvictedThreadDropsRun(t *testing.T) {
	ctx := context.Background()
	s := New(Config{MaxRecords: 2})
	for i, th := range []string{"a", "b", "c"} {
		if err := s.Append(ctx, store.Batch{Records: []store.Record{rec(0, int64(i), 1, th)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := s.Run(ctx, "a"); ok {
		t.Error("run of a thread without records kept")
	}
	if st := s.Stats(); st.Threads != 2 {
		t.Errorf("Stats.Threads = %d, want 2", st.Threads)
	}
	// Next offsets advance with records even without NextOffsets.
	if got := s.IngestOffsets()[0]; got != 3 {
		t.Errorf("IngestOffsets[0] = %d, want 3", got)
	}
	if c := s.Capabilities(); c.Durable || c.FileCap || !c.RetainByAge || !c.RetainByBytes || !c.RetainByCount {
		t.Errorf("Capabilities = %+v", c)
	}
}
