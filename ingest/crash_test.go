package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire/synth"
)

// Environment of the crash child.
const (
	crashChildEnv = "DASHSTREAM_CRASH_CHILD"
	crashBrokers  = "DASHSTREAM_CRASH_BROKERS"
	crashStore    = "DASHSTREAM_CRASH_STORE"
	crashUntil    = "DASHSTREAM_CRASH_UNTIL" // "p:next,p:next": exit cleanly once reached
	crashBlockAt  = "DASHSTREAM_CRASH_BLOCK" // n: the n-th committing Append never returns
)

// signalStore tells the parent (fd 3) when an Append has begun writing its
// transaction to the file ('A') and when it returned ('C'). Nothing inside
// the bolt write transaction can be hooked from here, so the store file
// is watched: bbolt writes the file only when committing, and its mtime
// changes then. Before each Append it waits until the file's mtime is old
// enough that the write cannot share its (coarse, ≤ 10 ms) clock tick, so
// every committing Append is seen. The blockAt-th such Append never
// returns (the parent kills the child meanwhile; it writes 'B' once the
// bolt Append returned), so a kill sent on its 'A' certainly lands after
// the commit began and before ingest learned of it.
type signalStore struct {
	store.Store
	w       *os.File
	path    string
	blockAt int // 0: never block
	commits int
}

func (s *signalStore) Append(ctx context.Context, b store.Batch) error {
	before, _ := os.Stat(s.path)
	if before != nil {
		if d := 20*time.Millisecond - time.Since(before.ModTime()); d > 0 {
			time.Sleep(d)
		}
	}
	done := make(chan struct{})
	var signalled atomic.Bool
	var wg sync.WaitGroup
	signal := func() {
		if fi, err := os.Stat(s.path); err == nil && before != nil &&
			(!fi.ModTime().Equal(before.ModTime()) || fi.Size() != before.Size()) &&
			signalled.CompareAndSwap(false, true) {
			_, _ = s.w.Write([]byte{'A'})
		}
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Microsecond):
				signal()
			}
		}
	})
	err := s.Store.Append(ctx, b)
	close(done)
	wg.Wait()
	signal() // a commit faster than the watcher
	if signalled.Load() {
		if s.commits++; s.commits == s.blockAt {
			_, _ = s.w.Write([]byte{'B'})
			time.Sleep(time.Hour) // killed here
		}
	}
	_, _ = s.w.Write([]byte{'C'})
	return err
}

// TestIngestCrashChild is the child process of
// TestIngestCrashExactlyOnce: real ingest on a bolt store (fsync on),
// killed with SIGKILL by the parent. It is skipped in a normal run.
func TestIngestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("crash child: run by TestIngestCrashExactlyOnce")
	}
	real := openBolt(t, filepath.Dir(os.Getenv(crashStore)), filepath.Base(os.Getenv(crashStore)))
	defer real.Close()
	blockAt, _ := strconv.Atoi(os.Getenv(crashBlockAt))
	st := &signalStore{Store: real, w: os.NewFile(3, "signal"), path: os.Getenv(crashStore), blockAt: blockAt}
	cfg := itConfig(strings.Split(os.Getenv(crashBrokers), ","))
	cfg.MaxPayloadBytes = 1 << 20
	cfg.BatchMaxRecords = 200
	r := startIngest(t, cfg, st)
	until := parseOffsets(os.Getenv(crashUntil))
	for {
		time.Sleep(20 * time.Millisecond)
		if until == nil {
			continue // run until killed
		}
		next := real.IngestOffsets()
		done := true
		for p, n := range until {
			if next[p] < n {
				done = false
			}
		}
		if done {
			r.stop(t)
			return
		}
	}
}

func parseOffsets(s string) map[int32]int64 {
	if s == "" {
		return nil
	}
	out := map[int32]int64{}
	for kv := range strings.SplitSeq(s, ",") {
		p, n, _ := strings.Cut(kv, ":")
		pi, _ := strconv.Atoi(p)
		ni, _ := strconv.ParseInt(n, 10, 64)
		out[int32(pi)] = ni
	}
	return out
}

// produced remembers what the parent produced, by partition and offset.
type produced struct {
	mu   sync.Mutex
	recs map[int32]map[int64][]byte // value; nil = invalid record
	end  map[int32]int64
}

func (pr *produced) add(recs []*kgo.Record, invalid map[*kgo.Record]bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, r := range recs {
		if pr.recs[r.Partition] == nil {
			pr.recs[r.Partition] = map[int64][]byte{}
		}
		v := r.Value
		if invalid[r] {
			v = nil
		}
		pr.recs[r.Partition][r.Offset] = v
		pr.end[r.Partition] = max(pr.end[r.Partition], r.Offset+1)
	}
}

func TestIngestCrashExactlyOnce(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		t.Skip("inside the crash child")
	}
	rounds := 10
	if os.Getenv("DASHSTREAM_LONG") == "1" {
		rounds = 100
	}
	c := itCluster(t, 3)
	addrs := c.ListenAddrs()
	prod := itProducer(t, addrs)
	storePath := filepath.Join(t.TempDir(), "crash.db")

	gen, err := synth.NewGenerator(synth.Config{Seed: 42, Partitions: 3}) // endless
	if err != nil {
		t.Fatal(err)
	}
	pr := &produced{recs: map[int32]map[int64][]byte{}, end: map[int32]int64{}}
	seq := 0
	produceChunk := func(n int) error {
		recs := make([]*kgo.Record, 0, n)
		invalid := map[*kgo.Record]bool{}
		for range n {
			sr, ok := gen.Next()
			if !ok {
				return fmt.Errorf("generator stopped: %w", gen.Err())
			}
			r := &kgo.Record{Key: sr.Key, Value: sr.Value, Partition: sr.Partition}
			if seq++; seq%97 == 0 { // some invalid records: skipped ranges must be exact too
				r.Value = []byte{0x00, 0x0f, byte(seq)}
				invalid[r] = true
			}
			recs = append(recs, r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		pr.add(recs, invalid)
		return nil
	}
	if err := produceChunk(3000); err != nil {
		t.Fatal(err)
	}

	// Keep producing while the child is killed and restarted.
	stopProd := make(chan struct{})
	prodDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopProd:
				prodDone <- nil
				return
			case <-time.After(25 * time.Millisecond):
				if err := produceChunk(60); err != nil {
					prodDone <- err
					return
				}
			}
		}
	}()
	stopProducing := func() {
		close(stopProd)
		if err := <-prodDone; err != nil {
			t.Fatalf("background producer: %v", err)
		}
	}

	kills, inFlight, midCommit := 0, 0, 0
	for round := range rounds {
		onAppend := round%3 != 2
		killedInFlight, killedMidCommit, err := crashRound(t, addrs, storePath, onAppend)
		if err != nil {
			stopProducing()
			t.Fatalf("round %d: %v", round, err)
		}
		kills++
		if killedInFlight {
			inFlight++
		}
		if killedMidCommit {
			midCommit++
		}
		checkStoreInvariants(t, storePath, pr, false)
	}
	stopProducing()

	// Final clean run up to the end of the topic.
	pr.mu.Lock()
	var until []string
	for p, n := range pr.end {
		until = append(until, fmt.Sprintf("%d:%d", p, n))
	}
	pr.mu.Unlock()
	cmd := crashChild(addrs, storePath, strings.Join(until, ","), 0)
	r, w, _ := os.Pipe()
	cmd.ExtraFiles = []*os.File{w}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() { _, _ = bufio.NewReader(r).WriteTo(discard{}) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("final child: %v\n%s", err, out.String())
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("final child did not catch up\n%s", out.String())
	}
	r.Close()
	checkStoreInvariants(t, storePath, pr, true)
	// Stderr, so that the counts show without -v in directory mode
	// (`cd ingest && go test -run …`); in package-list mode go test shows
	// a passing package's output only with -v.
	fmt.Fprintf(os.Stderr, "crash test: %d rounds, %d SIGKILLs, %d of them while a store append was in flight (its commit begun, not returned to ingest; %d before bolt's Append returned); store holds every produced offset exactly once\n",
		rounds, kills, inFlight, midCommit)
	if inFlight*2 < kills {
		t.Fatalf("only %d of %d kills landed while an append was in flight (want at least half)", inFlight, kills)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func crashChild(addrs []string, storePath, until string, blockAt int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestIngestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashBrokers+"="+strings.Join(addrs, ","),
		crashStore+"="+storePath, crashUntil+"="+until, crashBlockAt+"="+strconv.Itoa(blockAt))
	return cmd
}

// crashRound runs one child and SIGKILLs it: inside the first to third
// committing append (the child blocks in it; the kill follows its 'A'
// within 0–1 ms, so it may also land mid-fsync) or at a random moment. It
// reports whether the kill landed while an append was in flight (the last
// signal the child wrote was 'A' or 'B': its commit had begun and it had
// not returned to ingest), and whether bolt's Append itself had not
// returned yet ('A').
func crashRound(t *testing.T, addrs []string, storePath string, onAppend bool) (inFlight, midCommit bool, err error) {
	want := 0
	if onAppend {
		want = 1 + rand.IntN(3)
	}
	cmd := crashChild(addrs, storePath, "", want)
	r, w, err := os.Pipe()
	if err != nil {
		return false, false, err
	}
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		w.Close()
		return false, false, err
	}
	w.Close()
	sig := make(chan byte, 1<<16)
	go func() {
		br := bufio.NewReader(r)
		for {
			b, err := br.ReadByte()
			if err != nil {
				close(sig)
				return
			}
			sig <- b
		}
	}()
	var last byte
	if onAppend {
		timeout := time.After(20 * time.Second)
	wait:
		for seen := 0; seen < want; {
			select {
			case b, ok := <-sig:
				if !ok {
					_ = cmd.Wait()
					return false, false, fmt.Errorf("child exited early:\n%s", out.String())
				}
				last = b
				if b == 'A' {
					seen++
				}
			case <-timeout:
				break wait
			}
		}
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
	} else {
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	for b := range sig { // everything the child wrote before it died
		last = b
	}
	return last == 'A' || last == 'B', last == 'A', nil
}

// checkStoreInvariants opens the store the child left and checks, for
// every partition: offsets strictly increasing, each stored record
// byte-identical to what was produced there and valid, every recorded
// skip covering invalid offsets only, and stored ∪ skipped == [0, next)
// with nothing twice. With final, next must be the end of the topic.
func checkStoreInvariants(t *testing.T, path string, pr *produced, final bool) {
	t.Helper()
	st := openBolt(t, filepath.Dir(path), filepath.Base(path))
	defer st.Close()
	next := st.IngestOffsets()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for p := range int32(3) {
		n := next[p]
		if final && n != pr.end[p] {
			t.Fatalf("partition %d: next offset %d, want the topic end %d", p, n, pr.end[p])
		}
		seen := map[int64]string{}
		recs := readPartition(t, st, p)
		for k, r := range recs {
			if k > 0 && r.Offset <= recs[k-1].Offset {
				t.Fatalf("partition %d: offsets not strictly increasing at %d", p, r.Offset)
			}
			want, ok := pr.recs[p][r.Offset]
			if !ok || want == nil || !bytes.Equal(want, r.Payload) {
				t.Fatalf("partition %d offset %d: stored payload differs from the produced one (known %v, invalid %v)", p, r.Offset, ok, want == nil)
			}
			seen[r.Offset] = "record"
		}
		for _, s := range storeSkips(t, st, p) {
			for o := s.From; o < s.To; o++ {
				if seen[o] != "" {
					t.Fatalf("partition %d offset %d: both %s and skipped (%s)", p, o, seen[o], s.Reason)
				}
				if v, ok := pr.recs[p][o]; !ok || v != nil || s.Reason != store.SkipInvalid {
					t.Fatalf("partition %d offset %d: recorded %s but was produced valid", p, o, s.Reason)
				}
				seen[o] = "skip"
			}
		}
		var missing []int64
		for o := range n {
			if seen[o] == "" {
				missing = append(missing, o)
			}
		}
		if len(missing) > 0 || len(seen) != int(n) {
			slices.Sort(missing)
			t.Fatalf("partition %d: next %d but %d offsets below it are neither stored nor skipped (first %v), %d accounted",
				p, n, len(missing), missing[:min(5, len(missing))], len(seen))
		}
	}
}
