package wire

import (
	"encoding/binary"
	"math/bits"
)

// sipHash computes SipHash-c-d of p under the 128-bit key (k0, k1).
// SipHash-1-3 (c=1, d=3) is what Rust's DefaultHasher uses; SipHash-2-4 is
// the variant with published test vectors, used by the tests to check the
// shared structure.
func sipHash(cRounds, dRounds int, k0, k1 uint64, p []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573

	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}

	n := len(p)
	for len(p) >= 8 {
		m := binary.LittleEndian.Uint64(p)
		v3 ^= m
		for range cRounds {
			round()
		}
		v0 ^= m
		p = p[8:]
	}
	b := uint64(n&0xff) << 56
	for i, c := range p {
		b |= uint64(c) << (8 * uint(i))
	}
	v3 ^= b
	for range cRounds {
		round()
	}
	v0 ^= b
	v2 ^= 0xff
	for range dRounds {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// LegacyHash is the 64-bit hash the reference server used for legacy thread
// keys and bounded thread ids: Rust's DefaultHasher applied to a str, i.e.
// SipHash-1-3 with both keys 0 over the UTF-8 bytes of id followed by one
// 0xFF byte.
func LegacyHash(id string) uint64 {
	buf := make([]byte, len(id)+1)
	copy(buf, id)
	buf[len(id)] = 0xff
	return sipHash(1, 3, 0, 0, buf)
}
