package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/wire/pb"
)

// Framing bytes that precede every DashStream Kafka value.
const (
	FrameRaw  byte = 0x00 // raw protobuf follows
	FrameZstd byte = 0x01 // one zstd frame follows
)

// DefaultMaxPayload is the default limit on a Kafka value and on its
// decompressed content (WEBSOCKET_MAX_PAYLOAD_BYTES).
const DefaultMaxPayload = 10 << 20

// CompressionThreshold: messages whose encoding is longer than this are
// offered to zstd.
const CompressionThreshold = 512

// zstdMagic opens every zstd frame (little-endian 0xFD2FB528).
const zstdMagic = "\x28\xb5\x2f\xfd"

// ErrorClass is the reference server's label for a decode failure
// (reference §8.2), used as the error_type of websocket_decode_errors_total.
type ErrorClass string

// The reference decode-error labels, exactly as the reference spells them.
const (
	ClassPayloadTooLarge       ErrorClass = "payload_too_large"
	ClassBufferUnderflow       ErrorClass = "buffer_underflow"
	ClassSchemaVersionMismatch ErrorClass = "schema_version_mismatch"
	ClassInvalidProtobuf       ErrorClass = "invalid_protobuf"
	ClassUnknownDecodeError    ErrorClass = "unknown_decode_error"
)

// Sentinel causes carried by DecodeError.Err; test them with errors.Is.
var (
	// ErrEmptyPayload: the Kafka value has no bytes (unknown_decode_error).
	ErrEmptyPayload = errors.New("empty message payload")
	// ErrPayloadTooLarge: the value is longer than the limit, checked
	// before anything is copied or decompressed (payload_too_large).
	ErrPayloadTooLarge = errors.New("payload exceeds maximum size")
	// ErrContentTooLarge: a zstd frame declares, or its blocks or its
	// decompression produce, more than the limit (unknown_decode_error, as
	// the reference's capped decompression error).
	ErrContentTooLarge = errors.New("zstd content over the decompression cap")
	// ErrZstdFrame: a zstd frame is malformed, uses a dictionary, has
	// trailing bytes, or fails to decompress (unknown_decode_error).
	ErrZstdFrame = errors.New("bad zstd frame")
	// ErrTruncated: protobuf data ends inside a tag, value or length
	// delimited field (buffer_underflow).
	ErrTruncated = errors.New("protobuf buffer underflow (truncated data)")
	// ErrMalformed: protobuf data is not valid wire format for the schema:
	// bad field number or wire type, varint overflow, stray end-group,
	// invalid UTF-8 in a string field, nesting too deep (invalid_protobuf).
	ErrMalformed = errors.New("invalid protobuf wire data")
)

// DecodeError is every error Unframe, Decode, Extract and ExtractProto
// return. Class is the reference label; Err the cause, which wraps one of
// the sentinel errors above.
type DecodeError struct {
	Class ErrorClass
	Err   error
}

// Error implements error.
func (e *DecodeError) Error() string {
	return "wire: decode (" + string(e.Class) + "): " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// ClassOf returns the decode-error class of err: the Class of the
// DecodeError in its chain, "" for nil, ClassUnknownDecodeError for any
// other error.
func ClassOf(err error) ErrorClass {
	if err == nil {
		return ""
	}
	var de *DecodeError
	if errors.As(err, &de) && de.Class != "" {
		return de.Class
	}
	return ClassUnknownDecodeError
}

func decodeErr(c ErrorClass, sentinel error, format string, args ...any) error {
	return &DecodeError{Class: c, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// EncodeOptions tunes EncodeWith. The zero value is the reference
// producer's behaviour without its size limit.
type EncodeOptions struct {
	// DisableCompression always emits FrameRaw.
	DisableCompression bool
	// Threshold: an encoding longer than this is offered to zstd.
	// 0 means CompressionThreshold.
	Threshold int
	// MaxMessageSize, when > 0, rejects a message whose protobuf encoding
	// is longer (the reference producer uses 1 MiB).
	MaxMessageSize int
}

// marshalOpts makes the encoding of a message reproducible (sorted map
// keys), so seeded corpora are byte-identical from run to run.
var marshalOpts = proto.MarshalOptions{Deterministic: true}

// sharedEncoder is the process-wide zstd encoder; EncodeAll is safe for
// concurrent use. Level 3 (SpeedDefault), no checksum and single-segment
// frames, like the reference producer's zstd::bulk: every frame declares
// Frame_Content_Size, which the browser decoder requires.
var sharedEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(false),
		zstd.WithSingleSegment(true),
	)
})

// Encode frames m for Kafka with the default options: FrameZstd when the
// encoding is longer than CompressionThreshold and zstd makes it smaller
// (with Header.compression = COMPRESSION_ZSTD inside), else FrameRaw.
func Encode(m *pb.DashStreamMessage) ([]byte, error) {
	return EncodeWith(m, EncodeOptions{})
}

// EncodeWith frames m for Kafka (reference §2.1). P = protobuf(m). If
// compression is enabled and len(P) > threshold and zstd(P) is smaller, a
// copy of m gets Header.compression = COMPRESSION_ZSTD in its variant header
// and in every inner event header of an EventBatch, is re-encoded to P' and
// compressed to Z'; if Z' is smaller than P' the result is 0x01‖Z'.
// Otherwise it is 0x00‖P with m's headers as the caller set them. m is not
// modified.
func EncodeWith(m *pb.DashStreamMessage, opts EncodeOptions) ([]byte, error) {
	if m == nil {
		return nil, errors.New("wire: encode: nil message")
	}
	framed, err := marshalOpts.MarshalAppend([]byte{FrameRaw}, m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode: %w", err)
	}
	raw := framed[1:]
	if opts.MaxMessageSize > 0 && len(raw) > opts.MaxMessageSize {
		return nil, fmt.Errorf("wire: encode: message of %d bytes exceeds maximum %d", len(raw), opts.MaxMessageSize)
	}
	threshold := opts.Threshold
	if threshold <= 0 {
		threshold = CompressionThreshold
	}
	if opts.DisableCompression || len(raw) <= threshold {
		return framed, nil
	}
	enc, err := sharedEncoder()
	if err != nil {
		return nil, fmt.Errorf("wire: encode: zstd encoder: %w", err)
	}
	if z := enc.EncodeAll(raw, make([]byte, 0, len(raw))); len(z) >= len(raw) {
		return framed, nil
	}
	marked := proto.Clone(m).(*pb.DashStreamMessage)
	markCompressed(marked)
	raw2, err := marshalOpts.Marshal(marked)
	if err != nil {
		return nil, fmt.Errorf("wire: encode: %w", err)
	}
	z2 := enc.EncodeAll(raw2, append(make([]byte, 0, len(raw2)+1), FrameZstd))
	if len(z2)-1 < len(raw2) {
		return z2, nil
	}
	return framed, nil
}

// markCompressed sets Header.compression = COMPRESSION_ZSTD in the
// variant's header and, for an EventBatch, in every inner event header.
// Missing headers are left missing.
func markCompressed(m *pb.DashStreamMessage) {
	var h *pb.Header
	switch v := m.GetMessage().(type) {
	case *pb.DashStreamMessage_Event:
		h = v.Event.GetHeader()
	case *pb.DashStreamMessage_StateDiff:
		h = v.StateDiff.GetHeader()
	case *pb.DashStreamMessage_TokenChunk:
		h = v.TokenChunk.GetHeader()
	case *pb.DashStreamMessage_ToolExecution:
		h = v.ToolExecution.GetHeader()
	case *pb.DashStreamMessage_Checkpoint:
		h = v.Checkpoint.GetHeader()
	case *pb.DashStreamMessage_Metrics:
		h = v.Metrics.GetHeader()
	case *pb.DashStreamMessage_Error:
		h = v.Error.GetHeader()
	case *pb.DashStreamMessage_ExecutionTrace:
		h = v.ExecutionTrace.GetHeader()
	case *pb.DashStreamMessage_EventBatch:
		h = v.EventBatch.GetHeader()
		for _, e := range v.EventBatch.GetEvents() {
			if eh := e.GetHeader(); eh != nil {
				eh.Compression = pb.CompressionType_COMPRESSION_ZSTD
			}
		}
	}
	if h != nil {
		h.Compression = pb.CompressionType_COMPRESSION_ZSTD
	}
}

// Unframe returns the protobuf bytes of a Kafka value (reference §8.1):
// 0x00‖protobuf, 0x01‖zstd frame, a bare zstd frame (legacy, starts with
// the zstd magic) or legacy unframed protobuf. maxPayload <= 0 means
// DefaultMaxPayload. The length limit is checked first, before anything is
// copied: len > max+1 for framed values, len > max otherwise. zstd frames
// must be one single frame without dictionary; their output is capped at
// max bytes and a frame that declares more is rejected before
// decompressing. For 0x00 and unframed values the result aliases payload;
// decompressed results are freshly allocated.
func Unframe(payload []byte, maxPayload int) ([]byte, error) {
	body, _, err := unframe(payload, maxPayload, nil)
	return body, err
}

// unframe is Unframe decompressing into scratch's capacity when it is big
// enough; inflated reports whether body is decompressed output (not
// aliasing payload).
func unframe(payload []byte, maxPayload int, scratch []byte) (body []byte, inflated bool, err error) {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	n := len(payload)
	if n == 0 {
		return nil, false, decodeErr(ClassUnknownDecodeError, ErrEmptyPayload, "no bytes")
	}
	framed := payload[0] == FrameRaw || payload[0] == FrameZstd
	if (framed && n-1 > maxPayload) || (!framed && n > maxPayload) {
		return nil, false, decodeErr(ClassPayloadTooLarge, ErrPayloadTooLarge,
			"payload of %d bytes exceeds maximum of %d (framed: %t)", n, maxPayload, framed)
	}
	switch {
	case payload[0] == FrameRaw:
		return payload[1:], false, nil
	case payload[0] == FrameZstd:
		body, err = inflate(scratch, payload[1:], maxPayload)
		return body, err == nil, err
	case bytes.HasPrefix(payload, []byte(zstdMagic)):
		body, err = inflate(scratch, payload, maxPayload)
		return body, err == nil, err
	default:
		return payload, false, nil
	}
}

// Decode unframes (Unframe) and unmarshals a Kafka value. Errors are
// *DecodeError with the reference class; a value without a oneof arm (for
// example [0x00]) decodes to an empty message without error.
func Decode(payload []byte, maxPayload int) (*pb.DashStreamMessage, error) {
	body, err := Unframe(payload, maxPayload)
	if err != nil {
		return nil, err
	}
	m := new(pb.DashStreamMessage)
	if err := proto.Unmarshal(body, m); err != nil {
		return nil, classifyProto(body, err)
	}
	return m, nil
}

// classifyProto turns a proto.Unmarshal failure into a DecodeError: the
// structural walk Extract uses finds the first error and tells truncation
// (buffer_underflow) from malformed data (invalid_protobuf).
func classifyProto(body []byte, uerr error) error {
	if err := validateMessage(body); err != nil {
		return err
	}
	return decodeErr(ClassInvalidProtobuf, ErrMalformed, "%v", uerr)
}

// --- zstd ------------------------------------------------------------------

// Limits of the zstd format used by the frame walk.
const (
	zstdMaxBlockSize  = 128 << 10 // Block_Maximum_Size ceiling
	zstdMinWindow     = 1 << 10
	zstdOutputSlack   = 32 // klauspost's per-block over-allocation
	maxCachedDecoders = 8
)

// zstdFrame is what parseZstdFrame learns from a frame's header and block
// headers without decompressing anything.
type zstdFrame struct {
	contentSize    uint64 // Frame_Content_Size, if hasContentSize
	hasContentSize bool
	windowSize     uint64 // as the decoder will use it
	blockMax       uint64 // largest output one block may produce
	minOut, maxOut uint64 // bounds on the decompressed size
}

// parseZstdFrame reads a zstd frame header (RFC 8878 §3.1.1.1) and walks its
// block headers. Raw and RLE blocks declare their output size, so minOut is
// exact for them; compressed blocks add up to blockMax each to maxOut.
// Dictionaries, reserved bits and bytes after the frame are refused.
func parseZstdFrame(b []byte) (zstdFrame, error) {
	var f zstdFrame
	bad := func(format string, args ...any) (zstdFrame, error) {
		return zstdFrame{}, decodeErr(ClassUnknownDecodeError, ErrZstdFrame, format, args...)
	}
	if len(b) < 5 || string(b[:4]) != zstdMagic {
		return bad("no zstd magic and frame header")
	}
	fhd := b[4]
	pos := 5
	single := fhd&0x20 != 0
	if fhd&0x08 != 0 {
		return bad("reserved frame header bit set")
	}
	hasChecksum := fhd&0x04 != 0
	if !single {
		if pos >= len(b) {
			return bad("frame ends inside the window descriptor")
		}
		wd := b[pos]
		pos++
		base := uint64(1) << (10 + wd>>3)
		f.windowSize = base + base/8*uint64(wd&7)
	}
	dictSize := [4]int{0, 1, 2, 4}[fhd&3]
	if len(b)-pos < dictSize {
		return bad("frame ends inside the dictionary id")
	}
	var dictID uint32
	for i := dictSize - 1; i >= 0; i-- {
		dictID = dictID<<8 | uint32(b[pos+i])
	}
	pos += dictSize
	if dictID != 0 {
		return bad("dictionary %d not supported", dictID)
	}
	fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcsSize = 1
	}
	if len(b)-pos < fcsSize {
		return bad("frame ends inside the frame content size")
	}
	if fcsSize > 0 {
		f.hasContentSize = true
		for i := fcsSize - 1; i >= 0; i-- {
			f.contentSize = f.contentSize<<8 | uint64(b[pos+i])
		}
		if fcsSize == 2 {
			f.contentSize += 256
		}
		pos += fcsSize
	}
	if single {
		f.windowSize = max(f.contentSize, zstdMinWindow)
	}
	f.blockMax = min(f.windowSize, zstdMaxBlockSize)
	for {
		if len(b)-pos < 3 {
			return bad("frame ends inside the block header at byte %d", pos)
		}
		bh := uint32(b[pos]) | uint32(b[pos+1])<<8 | uint32(b[pos+2])<<16
		pos += 3
		size := uint64(bh >> 3)
		if size > f.blockMax {
			return bad("block of %d bytes exceeds the block maximum %d", size, f.blockMax)
		}
		data := int(size)
		switch (bh >> 1) & 3 {
		case 0: // raw
			f.minOut += size
			f.maxOut += size
		case 1: // RLE: one byte repeated size times
			data = 1
			f.minOut += size
			f.maxOut += size
		case 2: // compressed
			f.maxOut += f.blockMax
		default:
			return bad("reserved block type")
		}
		if len(b)-pos < data {
			return bad("frame ends inside the block at byte %d", pos)
		}
		pos += data
		if bh&1 != 0 {
			break
		}
	}
	if hasChecksum {
		if len(b)-pos < 4 {
			return bad("frame ends inside the content checksum")
		}
		pos += 4
	}
	if pos != len(b) {
		return bad("%d bytes after the zstd frame", len(b)-pos)
	}
	return f, nil
}

// sharedDecoder decompresses frames that declare their content size: the
// decoder stops as soon as output passes the declared size, which inflate
// has already checked against the caller's limit.
var sharedDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil)
})

// cappedDecoders holds one decoder per output cap for frames without a
// declared content size (WithDecoderMaxMemory is per decoder).
var cappedDecoders struct {
	sync.Mutex
	m map[uint64]*zstd.Decoder
}

// cappedDecoder returns a decoder whose DecodeAll fails once output passes
// limit bytes, and a release function to call when done with it.
func cappedDecoder(limit uint64) (*zstd.Decoder, func(), error) {
	cappedDecoders.Lock()
	defer cappedDecoders.Unlock()
	if d, ok := cappedDecoders.m[limit]; ok {
		return d, func() {}, nil
	}
	d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(limit), zstd.WithDecoderMaxWindow(limit))
	if err != nil {
		return nil, nil, err
	}
	if len(cappedDecoders.m) >= maxCachedDecoders {
		return d, d.Close, nil
	}
	if cappedDecoders.m == nil {
		cappedDecoders.m = make(map[uint64]*zstd.Decoder)
	}
	cappedDecoders.m[limit] = d
	return d, func() {}, nil
}

// inflate decompresses the single zstd frame in frame, appending to
// dst[:0] when its capacity suffices, and never produces (or allocates for)
// more than limit bytes plus one block:
//   - the frame header and block headers are checked first (parseZstdFrame);
//     a declared content size over limit, or raw/RLE blocks alone adding up
//     to more than limit, fail without decompressing;
//   - the output buffer is sized from those bounds, and the decoder stops
//     after the first block that passes the declared size (or the cap when
//     no size is declared), so the buffer is never grown.
func inflate(dst, frame []byte, limit int) ([]byte, error) {
	f, err := parseZstdFrame(frame)
	if err != nil {
		return nil, err
	}
	lim := uint64(limit)
	var size uint64
	var dec *zstd.Decoder
	release := func() {}
	if f.hasContentSize {
		if f.contentSize > lim {
			return nil, decodeErr(ClassUnknownDecodeError, ErrContentTooLarge,
				"frame declares %d bytes, cap is %d", f.contentSize, limit)
		}
		if f.minOut > f.contentSize || f.maxOut < f.contentSize {
			return nil, decodeErr(ClassUnknownDecodeError, ErrZstdFrame,
				"blocks produce %d..%d bytes, frame declares %d", f.minOut, f.maxOut, f.contentSize)
		}
		size = min(f.contentSize+f.blockMax, f.maxOut)
		dec, err = sharedDecoder()
	} else {
		if f.minOut > lim {
			return nil, decodeErr(ClassUnknownDecodeError, ErrContentTooLarge,
				"raw and RLE blocks alone produce %d bytes, cap is %d", f.minOut, limit)
		}
		capLim := max(lim, zstdMinWindow)
		size = min(f.maxOut, capLim+f.blockMax)
		dec, release, err = cappedDecoder(capLim)
	}
	if err != nil {
		return nil, decodeErr(ClassUnknownDecodeError, ErrZstdFrame, "zstd decoder: %v", err)
	}
	defer release()
	if size > math.MaxInt-zstdOutputSlack {
		return nil, decodeErr(ClassUnknownDecodeError, ErrContentTooLarge, "output bound %d", size)
	}
	if need := int(size) + zstdOutputSlack; cap(dst) < need {
		dst = make([]byte, 0, need)
	}
	out, err := dec.DecodeAll(frame, dst[:0])
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, &DecodeError{Class: ClassUnknownDecodeError,
				Err: fmt.Errorf("%w: output passed %d bytes: %w", ErrContentTooLarge, limit, err)}
		}
		return nil, &DecodeError{Class: ClassUnknownDecodeError,
			Err: fmt.Errorf("%w: decompress: %w", ErrZstdFrame, err)}
	}
	if len(out) > limit {
		return nil, decodeErr(ClassUnknownDecodeError, ErrContentTooLarge,
			"decompressed to %d bytes, cap is %d", len(out), limit)
	}
	return out, nil
}
