package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// maxCanonicalDepth bounds nesting in CanonicalJSON, matching the nesting
// limit of encoding/json's decoder (which bounds CanonicalizeJSON), so cyclic
// Go values fail instead of overflowing the stack.
const maxCanonicalDepth = 10000

// CanonicalizeJSON rewrites one JSON document in the canonical form the
// state hash is computed over (wire-protocol §3.5): what Rust's serde_json
// writes after parsing the document into a serde_json::Value with its
// default sorted maps.
//
//   - No whitespace. Object keys sorted byte-wise (UTF-8 order); on duplicate
//     keys the last one wins. Arrays keep their order.
//   - Strings: only '"', '\\' and control characters below 0x20 are escaped
//     (\b \f \n \r \t, others as \u00xx with lowercase hex). Non-ASCII, '/',
//     '<', '>', '&', U+2028 and U+2029 are written as they are.
//   - Integer literals (no '.', 'e' or 'E') that fit in uint64, or are
//     negative and fit in int64, are kept digit for digit. Other integer
//     literals become floats, as in serde_json: "-0" is written "-0.0", and
//     integers beyond the 64-bit range are rounded to the nearest float64.
//   - Other numbers are parsed to the nearest float64 and formatted like
//     serde_json's ryu formatter; see AppendCanonicalFloat.
//
// The input must be valid UTF-8 holding exactly one JSON value (surrounding
// whitespace allowed); numbers outside the float64 range are rejected, as
// serde_json does. Escaped lone surrogates (e.g. "\ud800") decode to U+FFFD,
// as in JavaScript, where serde_json would reject the document.
func CanonicalizeJSON(raw []byte) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("wire: canonical JSON: invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("wire: canonical JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("wire: canonical JSON: trailing data after the JSON value")
	}
	return appendCanonical(make([]byte, 0, len(raw)), v, 0)
}

// CanonicalJSON encodes a Go value in the same canonical form as
// CanonicalizeJSON, so producers can build states and their hashes without
// an encoding/json round trip. Supported: nil, bool, string, json.Number,
// json.RawMessage (canonicalised), float32, float64, all integer types,
// map[string]any, map[string]string, []any and []string, nested freely.
// float64 values are written like serde_json writes an f64 (1 ⇒ "1.0"); use
// an integer type or json.Number for integral values. float32 values are
// written with their shortest float32 digits in the same layout (0.1 ⇒
// "0.1"), which is what re-parsing them as float64 canonicalises to. NaN, ±Inf, invalid
// UTF-8 and other types are errors.
func CanonicalJSON(v any) ([]byte, error) {
	return appendCanonical(nil, v, 0)
}

// StateHash is SHA-256 of the canonical form of a JSON state
// (CanonicalizeJSON), the StateDiff.state_hash of wire-protocol §3.5.
func StateHash(raw []byte) ([32]byte, error) {
	c, err := CanonicalizeJSON(raw)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(c), nil
}

func appendCanonical(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxCanonicalDepth {
		return nil, errors.New("wire: canonical JSON: nesting too deep")
	}
	var err error
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return appendCanonicalString(dst, x)
	case json.Number:
		return appendCanonicalNumber(dst, string(x))
	case json.RawMessage:
		c, err := CanonicalizeJSON(x)
		if err != nil {
			return nil, err
		}
		return append(dst, c...), nil
	case float64:
		return appendCheckedFloat(dst, x, 64)
	case float32:
		return appendCheckedFloat(dst, float64(x), 32)
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uintptr:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendCanonical(dst, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendCanonicalString(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		return appendCanonicalObject(dst, x, depth)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return appendCanonicalObject(dst, m, depth)
	default:
		return nil, fmt.Errorf("wire: canonical JSON: unsupported type %T", v)
	}
}

func appendCanonicalObject(dst []byte, m map[string]any, depth int) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // byte-wise, like Rust's BTreeMap<String, _>
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = appendCanonicalString(dst, k); err != nil {
			return nil, err
		}
		dst = append(dst, ':')
		if dst, err = appendCanonical(dst, m[k], depth+1); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// appendCanonicalString writes s as a JSON string with serde_json's escaping.
func appendCanonicalString(dst []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("wire: canonical JSON: invalid UTF-8 in string %q", s)
	}
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

// appendCanonicalNumber writes a JSON number literal canonically: integers
// that serde_json keeps as u64/i64 verbatim, everything else as a float.
func appendCanonicalNumber(dst []byte, lit string) ([]byte, error) {
	if !isJSONNumber(lit) {
		return nil, fmt.Errorf("wire: canonical JSON: invalid number %q", lit)
	}
	integer := true
	for i := 0; i < len(lit); i++ {
		if c := lit[i]; c == '.' || c == 'e' || c == 'E' {
			integer = false
			break
		}
	}
	if integer {
		if lit[0] != '-' {
			if _, err := strconv.ParseUint(lit, 10, 64); err == nil {
				return append(dst, lit...), nil
			}
		} else if lit != "-0" {
			if _, err := strconv.ParseInt(lit, 10, 64); err == nil {
				return append(dst, lit...), nil
			}
		}
		// "-0" and integers beyond 64 bits are floats in serde_json.
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil { // only ErrRange is possible here: ±Inf
		return nil, fmt.Errorf("wire: canonical JSON: number %s out of range", lit)
	}
	return AppendCanonicalFloat(dst, f), nil
}

// isJSONNumber reports whether s matches the JSON number grammar
// (RFC 8259 §6).
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func appendCheckedFloat(dst []byte, f float64, bitSize int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("wire: canonical JSON: unsupported float %v", f)
	}
	return appendFloatBits(dst, f, bitSize), nil
}

// AppendCanonicalFloat appends the canonical text of a finite float64, the
// layout of serde_json's ryu-based formatter (serde_json ≤ 1.0.146; the
// reference's documented "1e21"): the shortest digits that round-trip,
//
//   - "0.0" / "-0.0" for zeros;
//   - plain decimal with at least one fractional digit when the decimal
//     exponent e of the leading digit is in [-5, 15]: 1 ⇒ "1.0",
//     1e15 ⇒ "1000000000000000.0", 0.5 ⇒ "0.5", 1e-5 ⇒ "0.00001";
//   - otherwise d[.ddd]e<exp> with no '+' and no zero padding: 1e16 ⇒ "1e16",
//     1e21 ⇒ "1e21", 1.5e300 ⇒ "1.5e300", 1e-6 ⇒ "1e-6", 5e-324 ⇒ "5e-324".
//
// serde_json ≥ 1.0.147 (zmij) uses the same digits and layout but writes a
// '+' in positive exponents ("1e+21"). NaN and ±Inf must not be passed.
func AppendCanonicalFloat(dst []byte, f float64) []byte {
	return appendFloatBits(dst, f, 64)
}

func appendFloatBits(dst []byte, f float64, bitSize int) []byte {
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Shortest round-trip digits as d.ddddde±XX.
	var buf [32]byte
	sci := strconv.AppendFloat(buf[:0], f, 'e', -1, bitSize)
	ePos := bytes.IndexByte(sci, 'e')
	exp, _ := strconv.Atoi(string(sci[ePos+1:]))
	digits := make([]byte, 0, 17)
	digits = append(digits, sci[0])
	if ePos > 1 {
		digits = append(digits, sci[2:ePos]...)
	}
	n := len(digits)
	kk := exp + 1 // value = 0.digits × 10^kk
	switch {
	case n <= kk && kk <= 16:
		// 1234e7 -> 12340000000.0
		dst = append(dst, digits...)
		for range kk - n {
			dst = append(dst, '0')
		}
		dst = append(dst, '.', '0')
	case 0 < kk && kk <= 16:
		// 1234e-2 -> 12.34
		dst = append(dst, digits[:kk]...)
		dst = append(dst, '.')
		dst = append(dst, digits[kk:]...)
	case -5 < kk && kk <= 0:
		// 1234e-6 -> 0.001234
		dst = append(dst, '0', '.')
		for range -kk {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		// 1e30, 1234e30 -> 1.234e33
		dst = append(dst, digits[0])
		if n > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, int64(kk-1), 10)
	}
	return dst
}
