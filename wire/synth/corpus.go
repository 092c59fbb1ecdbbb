package synth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// CorpusMagic opens every corpus file.
const CorpusMagic = "DSCORP1\n"

// MaxCorpusField bounds a key or value length in a corpus file.
const MaxCorpusField = 64 << 20

// Partition is librdkafka's default partitioner for a non-empty key:
// CRC32 (IEEE) of the key modulo n. It returns 0 when n < 1.
func Partition(key []byte, n int) int32 {
	if n < 1 {
		return 0
	}
	return int32(crc32.ChecksumIEEE(key) % uint32(n))
}

// CorpusWriter streams records into the corpus file format.
type CorpusWriter struct {
	w   *bufio.Writer
	n   int
	err error
}

// NewCorpusWriter writes the magic and returns a writer; call Flush at the
// end.
func NewCorpusWriter(w io.Writer) (*CorpusWriter, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(CorpusMagic); err != nil {
		return nil, fmt.Errorf("synth: write corpus magic: %w", err)
	}
	return &CorpusWriter{w: bw}, nil
}

// Write appends one record.
func (cw *CorpusWriter) Write(r Record) error {
	if cw.err != nil {
		return cw.err
	}
	if r.Partition < 0 {
		return fmt.Errorf("synth: record %d: negative partition %d", cw.n, r.Partition)
	}
	if len(r.Key) > MaxCorpusField || len(r.Value) > MaxCorpusField {
		return fmt.Errorf("synth: record %d: key or value longer than %d bytes", cw.n, MaxCorpusField)
	}
	var buf [3 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(buf[:], uint64(r.Partition))
	n += binary.PutUvarint(buf[n:], uint64(len(r.Key)))
	_, err := cw.w.Write(buf[:n])
	if err == nil {
		_, err = cw.w.Write(r.Key)
	}
	if err == nil {
		n = binary.PutUvarint(buf[:], uint64(len(r.Value)))
		_, err = cw.w.Write(buf[:n])
	}
	if err == nil {
		_, err = cw.w.Write(r.Value)
	}
	if err != nil {
		cw.err = fmt.Errorf("synth: write corpus record %d: %w", cw.n, err)
		return cw.err
	}
	cw.n++
	return nil
}

// Count is the number of records written.
func (cw *CorpusWriter) Count() int { return cw.n }

// Flush writes buffered data to the underlying writer.
func (cw *CorpusWriter) Flush() error {
	if cw.err != nil {
		return cw.err
	}
	if err := cw.w.Flush(); err != nil {
		cw.err = fmt.Errorf("synth: flush corpus: %w", err)
		return cw.err
	}
	return nil
}

// WriteCorpus writes a whole corpus file.
func WriteCorpus(w io.Writer, recs []Record) error {
	cw, err := NewCorpusWriter(w)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	return cw.Flush()
}

// CorpusReader streams records out of a corpus file.
type CorpusReader struct {
	r *bufio.Reader
	n int
}

// NewCorpusReader checks the magic and returns a reader.
func NewCorpusReader(r io.Reader) (*CorpusReader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(CorpusMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("synth: read corpus magic: %w", truncated(err))
	}
	if string(magic) != CorpusMagic {
		return nil, fmt.Errorf("synth: not a corpus file (magic %q, want %q)", magic, CorpusMagic)
	}
	return &CorpusReader{r: br}, nil
}

// ErrTruncated reports a corpus file that ends inside a record.
var ErrTruncated = errors.New("corpus file truncated")

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// Next returns the next record, or io.EOF after the last one.
func (cr *CorpusReader) Next() (Record, error) {
	part, err := binary.ReadUvarint(cr.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		return Record{}, fmt.Errorf("synth: corpus record %d: partition: %w", cr.n, truncated(err))
	}
	if part > math.MaxInt32 {
		return Record{}, fmt.Errorf("synth: corpus record %d: partition %d out of range", cr.n, part)
	}
	key, err := cr.field("key")
	if err != nil {
		return Record{}, err
	}
	val, err := cr.field("value")
	if err != nil {
		return Record{}, err
	}
	cr.n++
	return Record{Key: key, Value: val, Partition: int32(part)}, nil
}

func (cr *CorpusReader) field(what string) ([]byte, error) {
	n, err := binary.ReadUvarint(cr.r)
	if err != nil {
		return nil, fmt.Errorf("synth: corpus record %d: %s length: %w", cr.n, what, truncated(err))
	}
	if n > MaxCorpusField {
		return nil, fmt.Errorf("synth: corpus record %d: %s length %d exceeds %d", cr.n, what, n, MaxCorpusField)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(cr.r, b); err != nil {
		return nil, fmt.Errorf("synth: corpus record %d: %s: %w", cr.n, what, truncated(err))
	}
	return b, nil
}

// ReadCorpus reads a whole corpus file.
func ReadCorpus(r io.Reader) ([]Record, error) {
	cr, err := NewCorpusReader(r)
	if err != nil {
		return nil, err
	}
	var out []Record
	for {
		rec, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
}
