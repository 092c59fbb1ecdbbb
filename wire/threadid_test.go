package wire

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSipHash24Vectors(t *testing.T) {
	// Reference vectors from the SipHash paper (key 00..0f, message 00..n-1),
	// checking the structure LegacyHash shares with SipHash-1-3.
	const k0, k1 = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	msg := make([]byte, 16)
	for i := range msg {
		msg[i] = byte(i)
	}
	tests := []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{8, 0x93f5f5799a932462},
		{15, 0xa129ca6149be45e5},
	}
	for _, tc := range tests {
		if got := sipHash(2, 4, k0, k1, msg[:tc.n]); got != tc.want {
			t.Errorf("SipHash-2-4(%d bytes) = %016x, want %016x", tc.n, got, tc.want)
		}
	}
}

func TestLegacyHash(t *testing.T) {
	tests := []struct {
		id   string
		want uint64
	}{
		{"thread:with:colons", 0xf855df7581c92419},
		{"a:b", 0xe4d562f6c05edea5},
	}
	for _, tc := range tests {
		if got := LegacyHash(tc.id); got != tc.want {
			t.Errorf("LegacyHash(%q) = %016x, want %016x", tc.id, got, tc.want)
		}
	}
	// Exercise every tail length, including the 7-byte tail where the 0xFF
	// terminator completes a block; results must differ pairwise.
	seen := map[uint64]string{}
	for n := 0; n <= 17; n++ {
		id := strings.Repeat("x", n)
		h := LegacyHash(id)
		if prev, ok := seen[h]; ok {
			t.Errorf("LegacyHash collision between %q and %q", prev, id)
		}
		seen[h] = id
	}
}

func TestSanitizeKey(t *testing.T) {
	enc := func(s string) string { return "b64_" + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	a128 := strings.Repeat("a", 128)
	a129 := strings.Repeat("a", 129)
	tests := []struct {
		name, id, want string
	}{
		{"vector", "thread:with:colons", "b64_dGhyZWFkOndpdGg6Y29sb25z"},
		{"colon", "a:b", "b64_YTpi"},
		{"empty", "", ""},
		{"plain", "t-42", "t-42"},
		{"all allowed chars", "AZaz09_-", "AZaz09_-"},
		{"128 bytes", a128, a128},
		{"129 bytes", a129, enc(a129)},
		{"space", "a b", enc("a b")},
		{"dot", "a.b", enc("a.b")},
		{"slash", "a/b", enc("a/b")},
		{"glob star", "a*", enc("a*")},
		{"non-ASCII", "thé", enc("thé")},
		{"looks encoded", "b64_YTpi", "b64_YTpi"}, // reference quirk: collides
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SanitizeKey(tc.id)
			if got != tc.want {
				t.Errorf("SanitizeKey(%q) = %q, want %q", tc.id, got, tc.want)
			}
			if !keySafe(got) {
				t.Errorf("SanitizeKey(%q) = %q has characters outside [A-Za-z0-9_-]", tc.id, got)
			}
		})
	}
}

func TestLegacyKey(t *testing.T) {
	a128 := strings.Repeat("a", 128)
	a129 := strings.Repeat("a", 129)
	tests := []struct {
		name, id, want string
	}{
		{"vector colons", "thread:with:colons", "h_f855df7581c92419"},
		{"vector a:b", "a:b", "h_e4d562f6c05edea5"},
		{"plain", "t-42", "t-42"},
		{"space kept raw", "a b", "a b"},
		{"non-ASCII kept raw", "thé", "thé"},
		{"128 bytes", a128, a128},
		{"129 bytes", a129, fmt.Sprintf("h_%016x", LegacyHash(a129))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LegacyKey(tc.id); got != tc.want {
				t.Errorf("LegacyKey(%q) = %q, want %q", tc.id, got, tc.want)
			}
		})
	}
}

func TestBoundThreadID(t *testing.T) {
	bounded := func(prefix, whole string) string {
		return prefix + "..." + fmt.Sprintf("%016x", LegacyHash(whole))
	}
	a := strings.Repeat
	a256 := a("a", 256)
	a257 := a("a", 257)
	// Multibyte runes around the 236-byte cut.
	straddle2 := a("a", 235) + "é" + a("b", 30)   // é at bytes 235-236
	straddle3 := a("a", 234) + "€" + a("b", 30)   // € at bytes 234-236
	straddle4 := a("a", 233) + "😀" + a("b", 30)   // 😀 at bytes 233-236
	startsAt236 := a("a", 236) + "é" + a("b", 30) // é starts at byte 236
	endsAt236 := a("a", 234) + "é" + a("b", 30)   // é at bytes 234-235
	allWide := a("€", 90)                         // 270 bytes
	tests := []struct {
		name, id, want string
	}{
		{"empty", "", ""},
		{"whitespace only", " \t\r\n\v\f", ""},
		{"unicode whitespace only", "\u00a0\u3000\u2028 ", ""},
		{"trim", "  t-42\n", "t-42"},
		{"trim unicode", "\u00a0t-42\u3000", "t-42"},
		{"inner space kept", " a b ", "a b"},
		{"256 bytes", a256, a256},
		{"256 bytes after trim", "  " + a256 + "\t", a256},
		{"257 bytes", a257, bounded(a("a", 236), a257)},
		{"257 bytes hashed after trim", " " + a257 + " ", bounded(a("a", 236), a257)},
		{"2-byte rune straddles cut", straddle2, bounded(a("a", 235), straddle2)},
		{"3-byte rune straddles cut", straddle3, bounded(a("a", 234), straddle3)},
		{"4-byte rune straddles cut", straddle4, bounded(a("a", 233), straddle4)},
		{"rune starts at cut", startsAt236, bounded(a("a", 236), startsAt236)},
		{"rune ends before cut", endsAt236, bounded(a("a", 234)+"é", endsAt236)},
		{"all 3-byte runes", allWide, bounded(a("€", 78), allWide)},
		{"invalid UTF-8 replaced", "a\xffb", "a\uFFFDb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := BoundThreadID(tc.id)
			if got != tc.want {
				t.Errorf("BoundThreadID(%q) = %q, want %q", tc.id, got, tc.want)
			}
			checkBounded(t, tc.id, got)
		})
	}
}

// checkBounded asserts the invariants every BoundThreadID result has.
func checkBounded(t *testing.T, id, got string) {
	t.Helper()
	if !utf8.ValidString(got) {
		t.Errorf("BoundThreadID(%q) = %q is not valid UTF-8", id, got)
	}
	if len(got) > MaxThreadIDBytes {
		t.Errorf("BoundThreadID(%q) has %d bytes, max %d", id, len(got), MaxThreadIDBytes)
	}
	if again := BoundThreadID(got); again != got {
		t.Errorf("BoundThreadID not idempotent: %q -> %q", got, again)
	}
	if strings.TrimSpace(got) != got {
		t.Errorf("BoundThreadID(%q) = %q is not trimmed", id, got)
	}
}

func keySafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func FuzzBoundThreadID(f *testing.F) {
	for _, s := range []string{
		"", " ", "t-42", "thread:with:colons", strings.Repeat("a", 257),
		strings.Repeat("a", 235) + "é" + strings.Repeat("b", 30),
		strings.Repeat("😀", 70), "a\xffb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got := BoundThreadID(id)
		checkBounded(t, id, got)
		if trimmed := strings.TrimSpace(id); utf8.ValidString(id) && len(trimmed) <= MaxThreadIDBytes && got != trimmed {
			t.Errorf("BoundThreadID(%q) = %q, want trimmed id %q", id, got, trimmed)
		}
		key := SanitizeKey(got)
		if !keySafe(key) {
			t.Errorf("SanitizeKey(%q) = %q is not key-safe", got, key)
		}
		if enc, ok := strings.CutPrefix(key, "b64_"); ok && key != got {
			dec, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil || string(dec) != got {
				t.Errorf("SanitizeKey(%q) = %q does not decode back (%q, %v)", got, key, dec, err)
			}
		}
	})
}
