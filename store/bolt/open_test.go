package bolt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
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
	opts.testHook = func(stage string) {
		if stage == "drain" {
			drains++
		}
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
	// Crash during the drain: the hook panics in the first drain chunk.
	for i := 0; i < 10; i++ {
		b := w.batch(300)
		if err := s.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	s.opts.testHook = func(stage string) {
		if stage == "drain" {
			panic("crash")
		}
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = s.Reset(context.Background())
	}()
	// The panic left the writer lock held; the process would be dead.
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
