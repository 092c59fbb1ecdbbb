package bolt

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/dict"
	"github.com/klauspost/compress/zstd"
)

// zstdMagic starts every zstd frame. Values store frames without it (4
// bytes a record) and the reader puts it back.
var zstdMagic = [4]byte{0x28, 0xb5, 0x2f, 0xfd}

// Dictionary training: after dictTrainBytes of plain payloads (or
// dictTrainSamples records) the store trains one zstd dictionary (about a
// second, once per file, inside that Append), stores it in meta in its own
// transaction and compresses later blocks with it. Blocks written before
// keep their codec; every dictionary stays in meta (they are small) so old
// values always decode.
const (
	// 1 MiB of samples store 0.397 of the D9 corpus's plain bytes where
	// 512 KiB stored 0.400 (2 MiB: 0.396, at twice the training time).
	dictTrainBytes   = 1 << 20
	dictTrainSamples = 5000
	dictMaxSize      = 32 << 10
	dictSampleMax    = 4 << 10 // only a record's first bytes matter for training
	// minSaving: compressed data must save at least 1/minSavingDiv of the
	// content, else the value is stored raw.
	minSavingDiv = 16
)

// codecs is the immutable set of coders in use; a new dictionary makes a
// new set, swapped atomically.
type codecs struct {
	plain  *zstd.Encoder
	dictID uint32 // 0 = no dictionary yet
	dict   *zstd.Encoder
	dec    *zstd.Decoder
	dicts  map[uint32][]byte
}

// compressor owns the zstd coders and dictionary training. Its coding
// methods are safe for concurrent use; sampling and training run under
// the store's writer lock.
type compressor struct {
	level zstd.EncoderLevel
	cur   atomic.Pointer[codecs]

	want atomic.Bool // training wants samples (fast path of sample)

	mu      sync.Mutex // guards the fields below and the swap of cur
	old     []*codecs  // replaced sets, closed on close
	samples [][]byte
	sampleN int
}

func newCoders(level zstd.EncoderLevel, dicts map[uint32][]byte, useID uint32) (*codecs, error) {
	n := runtime.GOMAXPROCS(0)
	eopts := []zstd.EOption{
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(n),
		zstd.WithEncoderCRC(false),
		zstd.WithSingleSegment(true),
		zstd.WithAllLitEntropyCompression(true),
	}
	c := &codecs{dicts: dicts}
	var err error
	if c.plain, err = zstd.NewWriter(nil, eopts...); err != nil {
		return nil, err
	}
	var raw [][]byte
	for _, d := range dicts {
		raw = append(raw, d)
	}
	if useID != 0 {
		if c.dict, err = zstd.NewWriter(nil, append(eopts, zstd.WithEncoderDict(dicts[useID]))...); err != nil {
			return nil, fmt.Errorf("dictionary %d: %w", useID, err)
		}
		c.dictID = useID
	}
	c.dec, err = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(n),
		zstd.WithDecoderMaxMemory(maxContent),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderDicts(raw...))
	if err != nil {
		return nil, fmt.Errorf("dictionaries: %w", err)
	}
	return c, nil
}

func (c *codecs) close() {
	c.plain.Close()
	if c.dict != nil {
		c.dict.Close()
	}
	c.dec.Close()
}

// newCompressor builds coders knowing dicts, compressing with dictionary
// useID (0 = none). train enables dictionary training when no dictionary
// is in use.
func newCompressor(level zstd.EncoderLevel, dicts map[uint32][]byte, useID uint32, train bool) (*compressor, error) {
	c, err := newCoders(level, dicts, useID)
	if err != nil {
		return nil, err
	}
	z := &compressor{level: level}
	z.want.Store(train && useID == 0)
	z.cur.Store(c)
	return z, nil
}

func (z *compressor) close() {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.cur.Load().close()
	for _, c := range z.old {
		c.close()
	}
	z.old = nil
}

// encScratch holds an encoder's reusable buffers.
type encScratch struct {
	content []byte
	z       []byte
}

// encodeBlock appends the value of a block holding recs (offsets strictly
// increasing) to dst. The section is compressed with the dictionary once
// there is one, and stored raw when compression saves under 1/16. It also
// returns the section's plain and stored lengths.
func (z *compressor) encodeBlock(dst []byte, recs []blockRec, threads bool, sc *encScratch) (val []byte, plain, stored int) {
	for i := range recs {
		recs[i].resolveIndex()
	}
	if err := prepareTimes(recs); err != nil {
		// Lazily decoded records come from a block that decoded, and
		// their index extracts as it did then. Should it not, such a
		// record loses its time rather than the batch failing.
		for i := range recs {
			recs[i].hdrTime = false
		}
	}
	c := z.cur.Load()
	content, flags := buildContent(sc.content[:0], recs, threads)
	sc.content = content
	enc, codec, id := c.plain, byte(codecZstd), uint32(0)
	if c.dict != nil {
		enc, codec, id = c.dict, codecZstdDict, c.dictID
	}
	comp := enc.EncodeAll(content, sc.z[:0])
	sc.z = comp
	if len(comp) > 4 && [4]byte(comp[:4]) == zstdMagic && len(comp)-4 < len(content)-len(content)/minSavingDiv {
		comp = comp[4:]
	} else {
		comp, codec, id = content, codecRaw, 0
	}
	dst = putBlockHeader(dst, flags|codec, id, recs, len(content), len(comp))
	dst = append(dst, comp...)
	return appendRawSection(dst, recs), len(content), len(comp)
}

// decodeBlock decodes the block value v stored under key (its first
// offset). The records alias v and a new buffer; v must not be memory of
// a transaction that closes while they are in use.
func (z *compressor) decodeBlock(key, v []byte) (blockHeader, []blockRec, error) {
	h, recs, err := z.decodeBlockLazy(key, v)
	if err == nil {
		err = resolveTimes(recs)
	}
	return h, recs, err
}

// decodeBlockLazy decodes like decodeBlock but leaves times stored
// relative to header timestamps unresolved (hdrTime set): enough to
// re-encode the records, without extracting their indexes.
func (z *compressor) decodeBlockLazy(key, v []byte) (blockHeader, []blockRec, error) {
	h, err := parseBlockHeader(v)
	if err != nil {
		return h, nil, err
	}
	if len(key) != 8 {
		return h, nil, fmt.Errorf("%w: key of %d bytes", errCorruptValue, len(key))
	}
	zdata := v[h.zOff : h.zOff+h.zlen]
	raw := v[h.zOff+h.zlen:]
	content := zdata
	if h.codec != codecRaw {
		if content, err = z.decompress(h, zdata); err != nil {
			return h, nil, err
		}
	}
	recs, err := parseContent(h, int64(beU64(key)), content, raw)
	return h, recs, err
}

// decompress restores a compressed section. The zstd frame must declare
// exactly the length the header says, so allocation is bounded by the
// header (at most maxContent).
func (z *compressor) decompress(h blockHeader, data []byte) ([]byte, error) {
	c := z.cur.Load()
	if h.codec == codecZstdDict {
		if _, ok := c.dicts[h.dictID]; !ok {
			return nil, fmt.Errorf("%w: unknown dictionary %d", errCorruptValue, h.dictID)
		}
	}
	frame := make([]byte, 0, 4+len(data))
	frame = append(append(frame, zstdMagic[:]...), data...)
	var fh zstd.Header
	if err := fh.Decode(frame); err != nil || !fh.HasFCS || fh.FrameContentSize != uint64(h.clen) {
		return nil, fmt.Errorf("%w: zstd frame header does not match the block header", errCorruptValue)
	}
	out, err := c.dec.DecodeAll(frame, make([]byte, 0, h.clen))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorruptValue, err)
	}
	if len(out) != h.clen {
		return nil, fmt.Errorf("%w: decoded %d bytes, header says %d", errCorruptValue, len(out), h.clen)
	}
	return out, nil
}

// sample offers a plain payload to dictionary training (encode workers
// call it concurrently).
func (z *compressor) sample(payload []byte) {
	if !z.want.Load() || isRawPayload(payload) {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.sampleN >= dictTrainBytes || len(z.samples) >= dictTrainSamples {
		return
	}
	s := slices.Clone(payload[:min(len(payload), dictSampleMax)])
	z.samples = append(z.samples, s)
	z.sampleN += len(s)
}

// trainReady trains a dictionary once enough samples are in, returning
// its id and bytes (nil when not ready). Training stops for good after
// one attempt: the caller persists and adopts the result.
func (z *compressor) trainReady() (uint32, []byte) {
	z.mu.Lock()
	if !z.want.Load() || (z.sampleN < dictTrainBytes && len(z.samples) < dictTrainSamples) {
		z.mu.Unlock()
		return 0, nil
	}
	samples := z.samples
	z.samples, z.sampleN = nil, 0
	z.want.Store(false)
	id := uint32(1)
	for d := range z.cur.Load().dicts {
		id = max(id, d+1)
	}
	z.mu.Unlock()
	d, err := trainDict(samples, id)
	if err != nil {
		return 0, nil // the data does not train; stay with plain zstd
	}
	return id, d
}

// trainGroup is the size small samples are packed into before training:
// the builder's cost grows with the number of samples (each one resets an
// encoder with multi-MiB tables), not with their bytes.
const trainGroup = 16 << 10

// trainDict builds a zstd dictionary with the given id from samples.
func trainDict(samples [][]byte, id uint32) ([]byte, error) {
	if len(samples) < 8 {
		return nil, errors.New("too few samples")
	}
	var groups [][]byte
	var cur []byte
	for _, s := range samples {
		if len(cur)+len(s) > trainGroup && len(cur) > 0 {
			groups = append(groups, cur)
			cur = nil
		}
		cur = append(cur, s...)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return dict.BuildZstdDict(groups, dict.Options{MaxDictSize: dictMaxSize, HashBytes: 6, ZstdDictID: id})
}

// adopt switches compression to dictionary id, already persisted.
func (z *compressor) adopt(id uint32, data []byte) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	old := z.cur.Load()
	dicts := make(map[uint32][]byte, len(old.dicts)+1)
	for k, v := range old.dicts {
		dicts[k] = v
	}
	dicts[id] = data
	c, err := newCoders(z.level, dicts, id)
	if err != nil {
		return err
	}
	z.cur.Store(c)
	z.old = append(z.old, old)
	return nil
}
