package bolt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dashstream/dashstream/store"
)

func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

func TestOpenCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	wantErrContains(t, err, path, "corrupted or not a bbolt file")
	_, err = Open(path, Options{ReadOnly: true})
	wantErrContains(t, err, path, "corrupted or not a bbolt file")
}

func TestOpenForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, Options{})
	wantErrContains(t, err, path, "not a DashStream store", "widgets")
	_, err = Open(path, Options{ReadOnly: true})
	wantErrContains(t, err, path, "not a DashStream store")
}

// setLayout rewrites the layout version of a closed store file.
func setLayout(t *testing.T, path string, v uint32) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bMeta).Put(kLayout, binary.BigEndian.AppendUint32(nil, v))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenLayoutVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	setLayout(t, path, LayoutVersion+98)
	_, err = Open(path, Options{})
	wantErrContains(t, err, path, "layout version 99", "newer than this build supports (1)")
	_, err = Open(path, Options{ReadOnly: true})
	wantErrContains(t, err, path, "layout version 99")

	setLayout(t, path, 0)
	_, err = Open(path, Options{})
	wantErrContains(t, err, path, "layout version 0", "cannot migrate", "refills from Kafka")

	setLayout(t, path, LayoutVersion)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("current layout: %v", err)
	}
	s.Close()
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = Open(path, Options{LockTimeout: 200 * time.Millisecond})
	wantErrContains(t, err, "store "+path+" is locked by another process (is a server running?)")
	_, err = Open(path, Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	wantErrContains(t, err, "is locked by another process")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("locked opens took %v", d)
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	_, err := Open(path, Options{ReadOnly: true})
	wantErrContains(t, err, path, "does not exist")
	ret := store.Retention{MaxAge: time.Hour, MaxBytes: 1 << 20, MaxFileBytes: 4 << 20}
	s, err := Open(path, Options{Retention: ret})
	if err != nil {
		t.Fatal(err)
	}
	w := newStreamer(t, s, 2, 200)
	if err := w.append(50); err != nil {
		t.Fatal(err)
	}
	want := s.Stats()
	s.Close()
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := r.Stats()
	if got.Retention != ret || got.Records != want.Records || got.Epoch != want.Epoch {
		t.Fatalf("read-only Stats %+v, want %+v", got, want)
	}
	wantErrContains(t, r.Append(context.Background(), w.batch(1)), "read-only")
	if _, err := r.Reset(context.Background()); err == nil {
		t.Fatal("Reset on a read-only store")
	}
}

func TestValidateRetention(t *testing.T) {
	for _, mode := range []string{"serve", "demo"} {
		r, err := DefaultRetention(mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateRetention(r); err != nil {
			t.Errorf("%s defaults: %v", mode, err)
		}
	}
	if r, _ := DefaultRetention("serve"); r.MaxAge != 168*time.Hour || r.MaxBytes != 1<<30 || r.MaxFileBytes != 2<<30 {
		t.Errorf("serve defaults %+v", r)
	}
	err := ValidateRetention(store.Retention{MaxBytes: 900 << 20, MaxFileBytes: 1 << 30})
	wantErrContains(t, err, "above 0.8 × max db bytes", "DASHSTREAM_RETENTION_BYTES")
	_, err = Open(filepath.Join(t.TempDir(), FileName), Options{Retention: store.Retention{MaxBytes: 900 << 20, MaxFileBytes: 1 << 30}})
	wantErrContains(t, err, "above 0.8")
	if _, err := DefaultRetention("bogus"); err == nil {
		t.Error("unknown mode accepted")
	}
}

// TestResetDrainsInChunks: Reset switches the epoch in one transaction and
// deletes the old data in bounded chunks; a crash mid-drain leaves trash
// that the next Open drains.
func TestResetDrainsInChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	drains := 0
	opts := Options{ChunkKeys: 20}
	opts.testHook = func(stage string) error {
		if stage == "drain" {
			drains++
		}
		return nil
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	w := newStreamer(t, s, 3, 150)
	for i := 0; i < 10; i++ {
		if err := w.append(300); err != nil {
			t.Fatal(err)
		}
	}
	next := s.IngestOffsets()
	ep, err := s.Reset(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(ep, "-1") || drains < 5 {
		t.Fatalf("Reset → %q after %d drain transactions, want generation 1 and several chunks", ep, drains)
	}
	if st := s.Stats(); st.Records != 0 || st.Threads != 0 || s.state().trash {
		t.Fatalf("after Reset: %+v, trash %v", st, s.state().trash)
	}
	for p, n := range next {
		if s.IngestOffsets()[p] != n {
			t.Fatalf("Reset lost the next offset of %d", p)
		}
	}
	// Crash during the drain: the hook fails the first drain chunk and
	// the store is dropped without Close.
	for i := 0; i < 10; i++ {
		b := w.batch(300)
		if err := s.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	s.opts.testHook = func(stage string) error {
		if stage == "drain" {
			return errors.New("crash")
		}
		return nil
	}
	if _, err := s.Reset(context.Background()); err != nil {
		t.Fatal(err) // the epoch switched; the drain is left for later
	}
	s.db.Close()
	s2, err := Open(path, Options{ChunkKeys: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.state().trash || s2.Stats().Records != 0 || !strings.HasSuffix(s2.Epoch(), "-2") {
		t.Fatalf("after reopen: trash %v, %d records, epoch %s", s2.state().trash, s2.Stats().Records, s2.Epoch())
	}
	var left int
	if err := s2.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bTrash).ForEach(func(k, v []byte) error { left++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d trash entries left", left)
	}
}

// Damaged files. Each case runs in a child process (TestDamagedChild), so
// a SIGBUS or an unrecovered bbolt panic fails the test instead of
// killing the test binary.
const (
	damagedEnvPath = "DASHSTREAM_DAMAGED_FILE"
	damagedEnvCase = "DASHSTREAM_DAMAGED_CASE"
)

// damagedStore writes a store of a few MB (records, threads, runs) and
// returns its closed file.
func damagedStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{NoDictionary: true})
	if err != nil {
		t.Fatal(err)
	}
	w := newStreamer(t, s, 2, 3000)
	for i := 0; i < 30; i++ {
		if err := w.append(100); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileMetaOf returns the meta bbolt would use for the file at path.
func fileMetaOf(t *testing.T, data []byte) fileMeta {
	t.Helper()
	m0, ok0 := parseMeta(data)
	m1, ok1 := parseMeta(data[m0.pageSize:])
	if !ok0 || !ok1 {
		t.Fatal("test file has an invalid meta page")
	}
	if m1.txid > m0.txid {
		return m1
	}
	return m0
}

// treePages walks the B+tree rooted at page id of a bbolt file image and
// returns its branch and leaf pages, each with its overflow pages. find, when not
// nil, is the name of a sub-bucket to look up in its leaves instead: the
// result is then that bucket's root page (0 when missing or inline).
func treePages(data []byte, ps int64, id uint64, find []byte) (branches, leaves [][]uint64, sub uint64) {
	ne := binary.NativeEndian
	var walk func(id uint64)
	walk = func(id uint64) {
		p := data[int64(id)*ps:]
		flags, count, overflow := ne.Uint16(p[8:]), int(ne.Uint16(p[10:])), uint64(ne.Uint32(p[12:]))
		var ids []uint64
		for i := uint64(0); i <= overflow; i++ {
			ids = append(ids, id+i)
		}
		if flags&0x01 != 0 {
			branches = append(branches, ids)
		} else {
			leaves = append(leaves, ids)
		}
		for i := 0; i < count; i++ {
			e := p[pageHeaderSize+16*i:]
			if flags&0x01 != 0 {
				walk(ne.Uint64(e[8:]))
				continue
			}
			pos, ksize := int(ne.Uint32(e[4:])), int(ne.Uint32(e[8:]))
			key := e[pos : pos+ksize]
			if find != nil && ne.Uint32(e[0:])&0x01 != 0 && string(key) == string(find) {
				sub = ne.Uint64(e[pos+ksize:])
			}
		}
	}
	walk(id)
	return branches, leaves, sub
}

// bucketPages returns the pages of the bucket at path (names from the
// root) in the file image.
func bucketPages(t *testing.T, data []byte, path ...[]byte) (branches, leaves [][]uint64) {
	t.Helper()
	m := fileMetaOf(t, data)
	root := m.root
	for _, name := range path {
		_, _, root = treePages(data, m.pageSize, root, name)
		if root == 0 {
			t.Fatalf("bucket %q missing or inline", name)
		}
	}
	b, l, _ := treePages(data, m.pageSize, root, nil)
	return b, l
}

// scribble overwrites pages of the image with random bytes, keeping the
// 16-byte page header when keepHeader is set.
func scribble(data []byte, ps int64, pages []uint64, keepHeader bool) {
	for _, id := range pages {
		p := data[int64(id)*ps : int64(id+1)*ps]
		if keepHeader {
			p = p[pageHeaderSize:]
		}
		rand.Read(p)
	}
}

// runDamagedChild runs TestDamagedChild on path for case name and fails
// t with the child's output unless it passed.
func runDamagedChild(t *testing.T, name, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDamagedChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), damagedEnvPath+"="+path, damagedEnvCase+"="+name)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDamagedChild") {
		t.Fatalf("%s: child failed (%v):\n%s", name, err, out)
	}
}

// TestOpenTruncated: a file cut short anywhere past its first bytes fails
// Open with an error naming the file (bbolt itself dies with SIGBUS when
// the freelist or a tree page lies beyond the end of the file).
func TestOpenTruncated(t *testing.T) {
	src := damagedStore(t)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	m := fileMetaOf(t, data)
	ps, hw := m.pageSize, int64(m.highWater)
	cuts := map[string]int64{
		"last byte of the last page":    hw*ps - 1,
		"mid last page":                 hw*ps - ps/2 - 3,
		"half the pages":                hw / 2 * ps,
		"mid page in the middle":        hw/2*ps + 1000,
		"just after the meta pages":     2 * ps,
		"one page after the meta pages": 3 * ps,
		"mid second meta page":          ps + 100,
		"mid first meta page":           100,
		"before the freelist page":      int64(m.freelist) * ps,
		"mid freelist page":             int64(m.freelist)*ps + 40,
		"just after the freelist page":  int64(m.freelist+1) * ps,
		"before the root page":          int64(m.root) * ps,
	}
	for name, n := range cuts {
		if n <= 0 || n >= hw*ps {
			continue
		}
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { runDamagedChild(t, "truncated", path) })
	}
}

// TestOpenScribbled: a file whose data pages hold garbage may open, but
// reads and appends touching them fail with an error naming the file;
// after a write transaction failed so, later writes fail too.
func TestOpenScribbled(t *testing.T) {
	src := damagedStore(t)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	m := fileMetaOf(t, data)
	_, p0 := bucketPages(t, data, bParts, be32(0))
	tb, tl := bucketPages(t, data, bThreads)
	if len(p0) < 8 || len(tl) < 2 {
		t.Fatalf("test store too small: %d partition leaves, %d thread leaves", len(p0), len(tl))
	}
	cases := []struct {
		name  string
		pages []uint64
		keep  bool
	}{
		// Open reads only the first and last leaf of each partition.
		{"partition", slices.Concat(p0[1 : len(p0)-1]...), false},
		{"partition body", slices.Concat(p0[1 : len(p0)-1]...), true},
		{"threads", slices.Concat(append(tb, tl...)...), false},
		{"threads body", slices.Concat(append(tb, tl...)...), true},
		{"all partition pages", slices.Concat(p0...), false},
	}
	for _, tc := range cases {
		img := slices.Clone(data)
		scribble(img, m.pageSize, tc.pages, tc.keep)
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		mode := "scribbled partition"
		if strings.HasPrefix(tc.name, "threads") {
			mode = "scribbled threads"
		}
		if tc.name == "all partition pages" {
			mode = "damaged"
		}
		t.Run(tc.name, func(t *testing.T) { runDamagedChild(t, mode, path) })
	}
}

// TestDamagedChild is the child process of TestOpenTruncated and
// TestOpenScribbled: it opens the damaged file and checks that every
// failure is an error naming it.
func TestDamagedChild(t *testing.T) {
	path := os.Getenv(damagedEnvPath)
	if path == "" {
		t.Skip("only runs as a child of the damaged-file tests")
	}
	kind := os.Getenv(damagedEnvCase)
	named := func(what string, err error) {
		t.Helper()
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", what, err)
		}
	}
	s, err := Open(path, Options{})
	named("Open", err)
	switch kind {
	case "truncated":
		wantErrContains(t, err, path, "truncated or corrupted")
		return
	case "damaged": // may open or not
		if err != nil {
			return
		}
	default:
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	defer s.Close()
	ctx := context.Background()
	var readErr error
	for _, p := range s.Partitions() {
		after := int64(-1)
		for {
			recs, more, err := s.ReadPartition(ctx, p, after, store.Limits{})
			named("ReadPartition", err)
			if err != nil {
				readErr = err
				break
			}
			if len(recs) > 0 {
				after = recs[len(recs)-1].Offset
			}
			if !more {
				break
			}
		}
	}
	_, _, err = s.ReadThread(ctx, "thread-0-3", store.ThreadKey{}, store.Limits{})
	named("ReadThread", err)
	threadErr := err
	_, _, err = s.Runs(ctx, store.RunQuery{})
	named("Runs", err)
	w := newStreamer(t, s, 2, 300)
	w.next = s.IngestOffsets()
	appendErr := w.append(200)
	named("Append", appendErr)
	switch kind {
	case "scribbled partition":
		wantErrContains(t, readErr, path, "corrupted")
	case "scribbled threads":
		wantErrContains(t, threadErr, path, "corrupted")
		wantErrContains(t, appendErr, path, "corrupted")
		// The failed write transaction stops all writes.
		err := s.Append(ctx, store.Batch{NextOffsets: map[int32]int64{5: 1}})
		wantErrContains(t, err, path, "writes stopped")
	}
	_ = s.Stats()
}
