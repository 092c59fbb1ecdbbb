package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"

	bbolt "go.etcd.io/bbolt"
)

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common, format
// version 2, native byte order): a 16-byte page header (id, flags, count,
// overflow), then magic, version, pageSize, flags (uint32 each), the root
// bucket (root pgid, sequence), freelist pgid, high-water pgid, txid and
// the FNV-64a checksum of the meta bytes before it.
const (
	pageHeaderSize   = 16
	metaMagic        = 0xED0CDAED
	metaVersion      = 2
	metaSize         = 64
	metaChecksumAt   = 56
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
)

// fileMeta is the part of a bbolt meta page checkFile uses.
type fileMeta struct {
	pageSize                  int64
	root, freelist, highWater uint64
	txid                      uint64
}

// parseMeta decodes and validates the meta page at the start of page.
func parseMeta(page []byte) (fileMeta, bool) {
	if len(page) < pageHeaderSize+metaSize {
		return fileMeta{}, false
	}
	m := page[pageHeaderSize : pageHeaderSize+metaSize]
	ne := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	if ne.Uint32(m[0:]) != metaMagic || ne.Uint32(m[4:]) != metaVersion || ne.Uint64(m[metaChecksumAt:]) != h.Sum64() {
		return fileMeta{}, false
	}
	fm := fileMeta{pageSize: int64(ne.Uint32(m[8:])), root: ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]), highWater: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}
	if fm.pageSize < 512 || fm.pageSize&(fm.pageSize-1) != 0 {
		return fileMeta{}, false
	}
	return fm, true
}

// checkFile reads an existing store file's meta pages the way bbolt picks
// one (the valid meta with the highest txid) and refuses a file bbolt
// would crash on: bbolt mmaps the file and reads the freelist and tree
// pages without checking them against its size, so a truncated file dies
// with SIGBUS in bbolt.Open. A missing or empty file passes (bbolt
// creates it).
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("store %s is truncated or corrupted: "+format, append([]any{path}, args...)...)
	}
	read := func(off int64, n int) []byte {
		b := make([]byte, n)
		if k, err := f.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && k == n) {
			return nil
		}
		return b
	}
	var metas []fileMeta
	m0, ok0 := parseMeta(read(0, pageHeaderSize+metaSize))
	if ok0 {
		metas = append(metas, m0)
	}
	// The second meta is one page in; without the first, try every page
	// size bbolt accepts.
	for ps := int64(1024); ps <= 16<<20; ps *= 2 {
		if ok0 && ps != m0.pageSize {
			continue
		}
		if m1, ok := parseMeta(read(ps, pageHeaderSize+metaSize)); ok && m1.pageSize == ps {
			metas = append(metas, m1)
			break
		}
	}
	if len(metas) == 0 {
		return fmt.Errorf("store %s is corrupted or not a bbolt file (%d bytes, no valid meta page)", path, size)
	}
	m := metas[0]
	if len(metas) == 2 && metas[1].txid > m.txid {
		m = metas[1]
	}
	ps := m.pageSize
	if size < 2*ps {
		return bad("%d bytes, less than the two meta pages of %d bytes", size, ps)
	}
	if m.highWater < 2 || m.highWater > uint64(size/ps) {
		return bad("%d bytes, but its meta (txid %d) counts %d pages of %d bytes (%d bytes)",
			size, m.txid, m.highWater, ps, m.highWater*uint64(ps))
	}
	if m.root < 2 || m.root >= m.highWater {
		return bad("root page %d outside the %d pages in use", m.root, m.highWater)
	}
	if m.freelist == noFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.highWater {
		return bad("freelist page %d outside the %d pages in use", m.freelist, m.highWater)
	}
	hdr := read(int64(m.freelist)*ps, pageHeaderSize+8)
	if hdr == nil {
		return bad("freelist page %d unreadable", m.freelist)
	}
	ne := binary.NativeEndian
	flags, count, overflow := ne.Uint16(hdr[8:]), uint64(ne.Uint16(hdr[10:])), uint64(ne.Uint32(hdr[12:]))
	if flags != freelistPageFlag {
		return bad("page %d is not a freelist page (flags %#x)", m.freelist, flags)
	}
	if m.freelist+overflow >= m.highWater {
		return bad("freelist pages %d..%d beyond the %d pages in use", m.freelist, m.freelist+overflow, m.highWater)
	}
	skip := uint64(0)
	if count == 0xFFFF { // the real count is the first element
		count, skip = ne.Uint64(hdr[pageHeaderSize:]), 1
	}
	if (count+skip)*8 > (overflow+1)*uint64(ps)-pageHeaderSize {
		return bad("freelist of %d pages does not fit its %d pages", count, overflow+1)
	}
	ids := read(int64(m.freelist)*ps+pageHeaderSize+int64(skip)*8, int(count)*8)
	if ids == nil {
		return bad("freelist page %d unreadable", m.freelist)
	}
	for i := range count {
		if id := ne.Uint64(ids[i*8:]); id < 2 || id >= m.highWater {
			return bad("freelist lists page %d outside the %d pages in use", id, m.highWater)
		}
	}
	return nil
}

// errCorrupt marks a transaction bbolt aborted with a panic: its pages
// are damaged (or the file shrank under the mmap).
var errCorrupt = errors.New("file is corrupted")

// guard turns a panic out of bbolt (an assertion on a damaged page, or,
// with SetPanicOnFault, a fault reading past the end of a shrunken file)
// into an error, so a damaged file fails the call instead of the process.
// It must be deferred directly.
func (s *Store) guard(err *error, write bool) {
	r := recover()
	if r == nil {
		return
	}
	*err = fmt.Errorf("%w: bbolt: %v", errCorrupt, r)
	s.log.Error("store file is corrupted", "path", s.path, "err", *err)
	if write {
		// bbolt's in-memory freelist and pages may be half updated; no
		// further write may touch the file.
		b := fmt.Errorf("writes stopped: %w", *err)
		s.broken.CompareAndSwap(nil, &b)
	}
}

// view is db.View with guard.
func (s *Store) view(fn func(*bbolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard(&err, false)
	return s.db.View(fn)
}

// update is db.Update with guard; it refuses to write after a write
// transaction panicked.
func (s *Store) update(fn func(*bbolt.Tx) error) (err error) {
	if b := s.broken.Load(); b != nil {
		return *b
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard(&err, true)
	return s.db.Update(fn)
}

// hook calls the test hook of a write transaction; an error aborts it.
func (s *Store) hook(stage string) error {
	if s.opts.testHook == nil {
		return nil
	}
	return s.opts.testHook(stage)
}
