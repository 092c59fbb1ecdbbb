package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The CI soak: 60 s of constant load (synthetic agent-graph telemetry at
// 1 000 records/s, 300 under the race detector; ten background clients)
// through `dashstream serve` with retention active. Every acknowledged
// record reaches the measuring client, retention deletes, and after the
// warm-up the retained record count, the store file, the server's RSS
// and its goroutines level off, within the loose bounds of D10 (the precise
// verdict, 10 % plus bbolt's growth step, is the soak script's:
// scripts/soak.sh). The long variant (DASHSTREAM_LONG=1, make test-long)
// soaks for 10 minutes. soak.csv and soak.json stay in
// $TMPDIR/dashstream-soak-ci.
func TestSoakCI(t *testing.T) {
	d := 60 * time.Second
	if longRun() {
		d = 10 * time.Minute
	}
	if s := os.Getenv("DASHSTREAM_SOAK"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("DASHSTREAM_SOAK=%q: %v", s, err)
		}
	}
	out := filepath.Join(os.TempDir(), "dashstream-soak-ci")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// Under the race detector the broker and the clients in this process
	// run several times slower: a lower rate keeps them from becoming the
	// bottleneck (and from taking the CPU of the packages testing beside).
	rate := 1000.0
	if raceEnabled {
		rate = 300
	}
	v, err := Soak(context.Background(), SoakOptions{Duration: d, OutDir: out, Rate: rate, Clients: 10,
		Dir: t.TempDir(), Exe: dashstreamExe(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(v.Summary)
	t.Logf("soak.csv and soak.json in %s", out)
	if v.Missing != 0 || v.Acked == 0 || v.Delivered < v.Acked {
		t.Fatalf("acknowledged %d records, the measuring client got %d, %d never arrived", v.Acked, v.Delivered, v.Missing)
	}
	if v.RecordsAtEnd >= v.Acked/2 {
		t.Fatalf("the store holds %d of %d records: retention did not delete", v.RecordsAtEnd, v.Acked)
	}
	loose := func(what string, first, second, slack int64) {
		t.Helper()
		if second > first+first/2+slack {
			t.Fatalf("%s kept growing after the warm-up: max %d in the first half, %d in the second", what, first, second)
		}
	}
	loose("retained records", v.RecMaxFirstHalf, v.RecMaxSecondHalf, 0)
	loose("store file", v.FileMaxFirstHalf, v.FileMaxSecondHalf, 4<<20)
	loose("server RSS", v.RSSMaxFirstHalf, v.RSSMaxSecondHalf, 16<<20)
	loose("server goroutines", v.GorMaxFirstHalf, v.GorMaxSecondHalf, 20)
}
