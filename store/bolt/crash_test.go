package bolt

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// The crash child appends deterministic records: the parent can compute
// every record, hole and skipped range from (partition, offset) alone.
const (
	crashEnvPath  = "DASHSTREAM_CRASH_CHILD"
	crashEnvSeed  = "DASHSTREAM_CRASH_SEED"
	crashParts    = 4
	crashMaxBatch = 40
)

func crashHash(p int32, off int64) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", p, off)
	return h.Sum64()
}

// crashHole: the child never stores this offset.
func crashHole(p int32, off int64) bool { return crashHash(p, off)%7 == 0 }

// crashSkipRecorded: the child records a skipped range for this hole.
func crashSkipRecorded(p int32, off int64) bool { return crashHole(p, off) && off%2 == 0 }

func crashThreads(p int32, off int64) []wire.ThreadSeq {
	h := crashHash(p, off)
	if h%13 == 0 {
		return nil
	}
	ts := []wire.ThreadSeq{{ThreadID: fmt.Sprintf("run-%d-%d", p, off/40), Seq: uint64(off + 1)}}
	if h%17 == 0 {
		ts = append(ts, wire.ThreadSeq{ThreadID: "shared:thread", Seq: uint64(p)<<32 | uint64(off)})
	}
	return ts
}

func crashRecord(p int32, off int64) store.Record {
	h := crashHash(p, off)
	r := rand.New(rand.NewPCG(h, 7))
	size := 40 + int(h%1500)
	b := make([]byte, size)
	b[0] = wire.FrameRaw
	if h%9 == 0 {
		b[0] = wire.FrameZstd // stored as is
	}
	words := []string{"node", "state", "token", "llm", "tool", "graph", "edge"}
	for i := 1; i < size; {
		if r.IntN(3) == 0 {
			b[i] = byte(r.Uint32())
			i++
			continue
		}
		i += copy(b[i:], words[r.IntN(len(words))])
	}
	ix := wire.Index{Type: pb.MessageType_MESSAGE_TYPE_EVENT, TimestampUs: 1_700_000_000_000_000 + off, Threads: crashThreads(p, off)}
	for _, t := range ix.Threads {
		if off%40 == 0 {
			ix.Events = append(ix.Events, wire.RunEvent{ThreadID: t.ThreadID, Seq: t.Seq, EventType: pb.EventType_EVENT_TYPE_GRAPH_START, GraphName: "g"})
		}
	}
	ix.MultiThread = len(ix.Threads) > 1
	return store.Record{Partition: p, Offset: off, Time: time.UnixMilli(1_700_000_000_000 + off).UTC(), Payload: b, Index: ix}
}

// TestCrashChild is the child process of TestCrash: it appends batches
// until killed, telling the parent through fd 3 each time an Append is
// about to commit and then waiting inside the transaction for a byte on
// fd 4. The parent sends one per commit it lets through and none before a
// kill, so that kill lands while the transaction is open; EOF on fd 4
// (the parent closed it) lets the child run freely.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		t.Skip("only runs as TestCrash's child")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashEnvSeed), 10, 64)
	hook, gate := os.NewFile(3, "hook"), os.NewFile(4, "gate")
	free := false
	rng := rand.New(rand.NewPCG(seed, 99))
	s, err := Open(path, Options{Fsync: true, testHook: func(stage string) error {
		if stage != "append" {
			return nil
		}
		if _, err := hook.Write([]byte{'A'}); err != nil {
			os.Exit(3)
		}
		if !free {
			var b [1]byte
			if _, err := gate.Read(b[:]); err != nil {
				free = true
			}
		}
		return nil
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for {
		next := s.IngestOffsets()
		var b store.Batch
		b.NextOffsets = map[int32]int64{}
		for p := int32(0); p < crashParts; p++ {
			if rng.IntN(3) == 0 {
				continue
			}
			off := next[p]
			for n := rng.IntN(crashMaxBatch) + 1; n > 0; n-- {
				if crashHole(p, off) {
					if crashSkipRecorded(p, off) {
						b.Skipped = append(b.Skipped, store.SkippedRange{Partition: p, From: off, To: off + 1, Reason: store.SkipInvalid})
					}
				} else {
					b.Records = append(b.Records, crashRecord(p, off))
				}
				off++
			}
			b.NextOffsets[p] = off
		}
		if err := s.Append(ctx, b); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(2)
		}
	}
}

// TestCrash kills a child process that appends in a loop with SIGKILL at
// random moments, most of them while an Append transaction is in flight,
// and checks after each kill that the file opens and holds exactly what
// the child committed: records, holes, skipped ranges, thread index and
// run summaries. DASHSTREAM_LONG=1 runs 100 rounds instead of 20.
func TestCrash(t *testing.T) {
	if os.Getenv(crashEnvPath) != "" {
		t.Skip("child")
	}
	rounds := 20
	if os.Getenv("DASHSTREAM_LONG") == "1" {
		rounds = 100
	}
	path := filepath.Join(t.TempDir(), FileName)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	inFlight, commits := 0, 0
	for round := 0; round < rounds; round++ {
		hr, hw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		gr, gw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvSeed+"="+strconv.Itoa(round))
		cmd.ExtraFiles = []*os.File{hw, gr}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hw.Close()
		gr.Close()
		hooks := bufio.NewReader(hr)
		next := func() {
			if _, err := hooks.ReadByte(); err != nil {
				t.Fatalf("round %d: child stopped early: %v", round, err)
			}
		}
		// Most rounds let a few Appends commit, then kill while the child
		// waits inside the next one's transaction; the others let it run
		// and kill after a random delay, wherever it is (encoding, fsync,
		// retention, idle).
		flight := round%4 != 3
		if flight {
			want := 1 + rng.IntN(12)
			for i := 0; i < want-1; i++ {
				next()
				if _, err := gw.Write([]byte{'g'}); err != nil {
					t.Fatal(err)
				}
			}
			next() // the child now waits on the gate, transaction open
			_ = cmd.Process.Signal(syscall.SIGKILL)
			inFlight++
			commits += want - 1
		} else {
			gw.Close()
			next()
			time.Sleep(time.Duration(rng.IntN(40_000)) * time.Microsecond)
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
		_ = cmd.Wait()
		hr.Close()
		gw.Close()
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() {
			t.Fatalf("round %d: child was not killed: %v", round, cmd.ProcessState)
		}
		verifyCrashStore(t, round, path)
	}
	fmt.Fprintf(os.Stderr, "TestCrash: %d rounds, %d kills inside an open Append transaction, %d commits before those kills\n", rounds, inFlight, commits)
	if inFlight*2 < rounds {
		t.Fatalf("only %d of %d kills landed in flight", inFlight, rounds)
	}
}

// verifyCrashStore reopens the store and checks it against the child's
// deterministic stream.
func verifyCrashStore(t *testing.T, round int, path string) {
	t.Helper()
	s, err := Open(path, Options{Fsync: true})
	if err != nil {
		t.Fatalf("round %d: reopen after kill: %v", round, err)
	}
	defer s.Close()
	ctx := context.Background()
	next := s.IngestOffsets()
	threads := map[string][]store.Record{}
	total := int64(0)
	for p := int32(0); p < crashParts; p++ {
		n, ok := next[p]
		if !ok {
			n = 0
		}
		var want []int64
		var wantSkips []store.SkippedRange
		for off := int64(0); off < n; off++ {
			if !crashHole(p, off) {
				want = append(want, off)
			} else if crashSkipRecorded(p, off) {
				wantSkips = append(wantSkips, store.SkippedRange{Partition: p, From: off, To: off + 1, Reason: store.SkipInvalid})
			}
		}
		var got []int64
		after := int64(-1)
		for {
			recs, more, err := s.ReadPartition(ctx, p, after, store.Limits{MaxRecords: 500})
			if err != nil {
				t.Fatalf("round %d: ReadPartition(%d): %v", round, p, err)
			}
			for _, r := range recs {
				exp := crashRecord(p, r.Offset)
				if string(r.Payload) != string(exp.Payload) || !r.Time.Equal(exp.Time) || !slices.Equal(r.Index.Threads, exp.Index.Threads) {
					t.Fatalf("round %d: record %d/%d differs from what the child wrote", round, p, r.Offset)
				}
				for _, th := range r.Index.Threads {
					threads[th.ThreadID] = append(threads[th.ThreadID], r)
				}
				got = append(got, r.Offset)
				after = r.Offset
			}
			if !more {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: partition %d holds %d records, want %d (next offset %d)", round, p, len(got), len(want), n)
		}
		total += int64(len(got))
		skips, err := s.Skipped(p, 0, n+1000)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(skips, wantSkips) {
			t.Fatalf("round %d: partition %d skipped ranges %v, want %v", round, p, skips, wantSkips)
		}
		if o, l, ok := s.Bounds(p); len(want) > 0 && (!ok || o != want[0] || l != want[len(want)-1]) {
			t.Fatalf("round %d: Bounds(%d) = %d, %d, %v", round, p, o, l, ok)
		}
	}
	if st := s.Stats(); st.Records != total || st.Threads != int64(len(threads)) {
		t.Fatalf("round %d: Stats %d records, %d threads; read %d records, %d threads", round, st.Records, st.Threads, total, len(threads))
	}
	for id, recs := range threads {
		trs, _, err := s.ReadThread(ctx, id, store.ThreadKey{}, store.Limits{MaxRecords: 1 << 20, MaxBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		var want []store.ThreadKey
		for _, r := range recs {
			for _, th := range r.Index.Threads {
				if th.ThreadID == id {
					want = append(want, store.ThreadKey{Seq: th.Seq, Partition: r.Partition, Offset: r.Offset})
				}
			}
		}
		slices.SortFunc(want, compareTK)
		if len(trs) != len(want) {
			t.Fatalf("round %d: thread %s has %d entries, records say %d", round, id, len(trs), len(want))
		}
		// Each entry is the key the record implies and resolves to that
		// very record.
		for i, tr := range trs {
			exp := crashRecord(tr.Key.Partition, tr.Key.Offset)
			if tr.Key != want[i] || tr.Partition != tr.Key.Partition || tr.Offset != tr.Key.Offset ||
				string(tr.Payload) != string(exp.Payload) {
				t.Fatalf("round %d: thread %s entry %d: key %+v → record %d/%d, want key %+v", round, id, i, tr.Key, tr.Partition, tr.Offset, want[i])
			}
		}
		run, ok, err := s.Run(ctx, id)
		if err != nil || !ok || run.Messages != int64(len(recs)) {
			t.Fatalf("round %d: run %s: %+v, %v, %v; want %d messages", round, id, run, ok, err, len(recs))
		}
	}
	runs, _, err := s.Runs(ctx, store.RunQuery{Limit: store.MaxRunLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) <= store.MaxRunLimit && len(runs) != len(threads) {
		t.Fatalf("round %d: %d runs listed, %d threads", round, len(runs), len(threads))
	}
}
