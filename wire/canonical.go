package wire

import "errors"

// CanonicalizeJSON rewrites a JSON document in canonical form. STUB.
func CanonicalizeJSON(raw []byte) ([]byte, error) {
	return nil, errors.New("wire.CanonicalizeJSON: not implemented")
}

// StateHash is SHA-256 of the canonical form of a JSON state. STUB.
func StateHash(raw []byte) ([32]byte, error) {
	return [32]byte{}, errors.New("wire.StateHash: not implemented")
}
