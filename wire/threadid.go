package wire

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxThreadIDBytes bounds thread ids before they are indexed.
const MaxThreadIDBytes = 256

// MaxRawKeyBytes is the longest thread id used verbatim in a storage key;
// longer ids are encoded (SanitizeKey) or hashed (LegacyKey).
const MaxRawKeyBytes = 128

// boundedPrefixBytes is the longest prefix of an over-long thread id kept by
// BoundThreadID. Prefix + "..." + 16 hex digits is at most 255 bytes.
const boundedPrefixBytes = 236

// legacyHex formats LegacyHash(id) as 16 lowercase hex digits.
func legacyHex(id string) string {
	return fmt.Sprintf("%016x", LegacyHash(id))
}

// BoundThreadID is the ingest-side normalisation of a header thread id
// (reference §4.4): surrounding Unicode whitespace is trimmed; an id that is
// then empty yields "" (no thread). An id longer than MaxThreadIDBytes bytes
// is replaced by its first at most 236 bytes, cut on a rune boundary, then
// "..." and the 16 lowercase hex digits of LegacyHash of the whole trimmed
// id. The reference cut at exactly 236 bytes and could panic inside a rune;
// cutting on a rune boundary is identical for ASCII ids.
//
// The result is always valid UTF-8 and at most MaxThreadIDBytes bytes long:
// invalid UTF-8 in id (which protobuf decoding already rejects) is replaced
// by U+FFFD first.
func BoundThreadID(id string) string {
	id = strings.TrimSpace(strings.ToValidUTF8(id, "\uFFFD"))
	if len(id) <= MaxThreadIDBytes {
		return id
	}
	cut := boundedPrefixBytes
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "..." + legacyHex(id)
}

// needsKeyEncoding reports whether id must be encoded before being used as a
// key segment: too long, or any byte outside [A-Za-z0-9_-].
func needsKeyEncoding(id string) bool {
	if len(id) > MaxRawKeyBytes {
		return true
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return true
		}
	}
	return false
}

// SanitizeKey returns the key-safe form of a thread id (reference §4.4): the
// id itself when it is at most MaxRawKeyBytes bytes of [A-Za-z0-9_-],
// otherwise "b64_" + base64url without padding of its bytes. The result only
// contains [A-Za-z0-9_-]. As in the reference, a raw id that already looks
// like "b64_…" can collide with an encoded one.
func SanitizeKey(id string) string {
	if !needsKeyEncoding(id) {
		return id
	}
	return "b64_" + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// LegacyKey returns the key form older reference servers wrote for a thread
// id, used only as a read fallback (reference §4.4): "h_" + 16 lowercase hex
// digits of LegacyHash(id) when the id is longer than MaxRawKeyBytes bytes or
// contains ':', otherwise the id unchanged.
func LegacyKey(id string) string {
	if len(id) > MaxRawKeyBytes || strings.Contains(id, ":") {
		return "h_" + legacyHex(id)
	}
	return id
}
