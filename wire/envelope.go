package wire

import (
	"errors"

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

// Encode frames m for Kafka. STUB: replaced by the codec implementation.
func Encode(m *pb.DashStreamMessage) ([]byte, error) {
	return nil, errors.New("wire.Encode: not implemented")
}

// Decode unframes and unmarshals a Kafka value. STUB.
func Decode(payload []byte, maxPayload int) (*pb.DashStreamMessage, error) {
	return nil, errors.New("wire.Decode: not implemented")
}
