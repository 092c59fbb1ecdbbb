package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// The states of the wire-protocol §6 example run.
const (
	stateS0 = `{"draft":null,"notes":[],"plan":null,"query":"What is DashStream?","step":0}`
	stateS1 = `{"draft":null,"notes":[],"plan":"search docs, then summarize","query":"What is DashStream?","step":1}`
	stateS2 = `{"draft":null,"notes":["proto3 envelope","zstd framing"],"plan":"search docs, then summarize","query":"What is DashStream?","step":2}`
	stateS3 = `{"draft":"DashStream is a protobuf telemetry protocol.","notes":["proto3 envelope","zstd framing"],"plan":"search docs, then summarize","query":"What is DashStream?","step":3}`
)

func TestStateHashExampleRun(t *testing.T) {
	tests := []struct {
		name, state string
		length      int
		hash        string
	}{
		{"S0", stateS0, 76, "73acbbb1d4be22b4477e16473b85cc33fe42d678e6c2fc5c2425f16a2b3f0af7"},
		{"S1", stateS1, 101, "33ddaac3c0985c41c26abed709b4d49a61a1dda368282b7e5ac82586f29d4504"},
		{"S2", stateS2, 133, "a8b67d24c4d83432ba25fd07d447a4ac7e2949f9e6e3e17170bd1c8cacc752b0"},
		{"S3", stateS3, 175, "8571668ddb478eceba7ea7dd7f0dc2bc06cc3bb14f239886c8ad9208c3eb6fbb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.state) != tc.length {
				t.Fatalf("state length %d, want %d", len(tc.state), tc.length)
			}
			// The states are canonical already, so the hash is also
			// SHA-256 of the bytes (full_state == canonical form).
			c, err := CanonicalizeJSON([]byte(tc.state))
			if err != nil {
				t.Fatal(err)
			}
			if string(c) != tc.state {
				t.Errorf("canonical form differs:\n got %s\nwant %s", c, tc.state)
			}
			h, err := StateHash([]byte(tc.state))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h[:]); got != tc.hash {
				t.Errorf("StateHash = %s, want %s", got, tc.hash)
			}
			// Re-indented with keys reordered: same hash.
			var v map[string]any
			if err := json.Unmarshal([]byte(tc.state), &v); err != nil {
				t.Fatal(err)
			}
			pretty, _ := json.MarshalIndent(v, "", "  ")
			if h2, err := StateHash(pretty); err != nil || h2 != h {
				t.Errorf("StateHash(indented) = %x, %v; want %x", h2, err, h)
			}
		})
	}

	// A producer building S3 from Go values gets the same bytes and hash.
	s3 := map[string]any{
		"step":  3,
		"query": "What is DashStream?",
		"plan":  "search docs, then summarize",
		"notes": []string{"proto3 envelope", "zstd framing"},
		"draft": "DashStream is a protobuf telemetry protocol.",
	}
	c, err := CanonicalJSON(s3)
	if err != nil {
		t.Fatal(err)
	}
	if string(c) != stateS3 {
		t.Errorf("CanonicalJSON(S3) = %s, want %s", c, stateS3)
	}
	if h := sha256.Sum256(c); hex.EncodeToString(h[:]) != "8571668ddb478eceba7ea7dd7f0dc2bc06cc3bb14f239886c8ad9208c3eb6fbb" {
		t.Errorf("SHA-256(CanonicalJSON(S3)) = %x", h)
	}
}

func TestCanonicalizeJSONStrings(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", `"abc"`, `"abc"`},
		{"quote and backslash", `"a\"b\\c"`, `"a\"b\\c"`},
		{"short escapes", `"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
		{"NUL", `"\u0000"`, `"\u0000"`},
		{"control lowercase hex", `"\u001F\u000B\u0001"`, `"\u001f\u000b\u0001"`},
		{"DEL not escaped", `"\u007f"`, "\"\x7f\""},
		{"slash unescaped", `"a\/b/c"`, `"a/b/c"`},
		{"HTML chars unescaped", `"<a href='x'>&amp;</a>"`, `"<a href='x'>&amp;</a>"`},
		{"escaped HTML chars", `"\u003c\u003e\u0026"`, `"<>&"`},
		{"line separators", `"\u2028\u2029"`, "\"\u2028\u2029\""},
		{"raw line separators", "\"\u2028\u2029\"", "\"\u2028\u2029\""},
		{"non-ASCII", `"h\u00e9llo \u4e16\u754c"`, `"héllo 世界"`},
		{"surrogate pair", `"\ud83d\ude00"`, `"😀"`},
		{"raw astral", `"😀"`, `"😀"`},
		{"lone surrogate", `"\ud800"`, "\"\uFFFD\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalizeJSON([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("CanonicalizeJSON(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
	// Every control character, via CanonicalJSON.
	for c := range 0x20 {
		got, err := CanonicalJSON(string(rune(c)))
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]string{8: `"\b"`, 9: `"\t"`, 10: `"\n"`, 12: `"\f"`, 13: `"\r"`}[c]
		if want == "" {
			want = `"\u00` + hex.EncodeToString([]byte{byte(c)}) + `"`
		}
		if string(got) != want {
			t.Errorf("control %#x: got %s, want %s", c, got, want)
		}
	}
}

func TestCanonicalizeJSONStructure(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"null", ` null `, `null`},
		{"bools", `[true, false]`, `[true,false]`},
		{"empty object", `{ }`, `{}`},
		{"empty array", `[ ]`, `[]`},
		{"key order", `{"b":1,"a":2,"c":3}`, `{"a":2,"b":1,"c":3}`},
		{"byte-wise key order", `{"b":0,"B":0,"é":0,"a":0,"_":0,"1":0,"":0}`, `{"":0,"1":0,"B":0,"_":0,"a":0,"b":0,"é":0}`},
		{"astral vs BMP private use keys", `{"😀":1,"\ue000":2}`, "{\"\ue000\":2,\"😀\":1}"},
		{"duplicate keys: last wins", `{"a":1,"a":2}`, `{"a":2}`},
		{"nested", "{\n \"z\": {\"y\": [3, {\"b\": null, \"a\": [ ]}], \"x\": \"\"},\n \"a\": [[1], []]\n}",
			`{"a":[[1],[]],"z":{"x":"","y":[3,{"a":[],"b":null}]}}`},
		{"array order kept", `[3,1,2]`, `[3,1,2]`},
		{"escaped keys", `{"a\nb":1,"a\"b":2}`, `{"a\nb":1,"a\"b":2}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalizeJSON([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("CanonicalizeJSON(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestCanonicalizeJSONNumbers(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		// Integers: verbatim while they fit u64 / i64.
		{"0", "0"},
		{"42", "42"},
		{"-42", "-42"},
		{"9007199254740993", "9007199254740993"}, // 2^53+1
		{"-9007199254740993", "-9007199254740993"},
		{"18446744073709551615", "18446744073709551615"}, // u64 max
		{"-9223372036854775808", "-9223372036854775808"}, // i64 min
		// serde_json turns these into f64.
		{"-0", "-0.0"},
		{"18446744073709551616", "1.8446744073709552e19"},
		{"-9223372036854775809", "-9.223372036854776e18"},
		{"100000000000000000000000", "1e23"},
		// Floats.
		{"0.0", "0.0"},
		{"-0.0", "-0.0"},
		{"0e10", "0.0"},
		{"1.0", "1.0"},
		{"1.50", "1.5"},
		{"-2.5", "-2.5"},
		{"1e2", "100.0"},
		{"1E2", "100.0"},
		{"1e+2", "100.0"},
		{"0.1", "0.1"},
		{"0.30000000000000004", "0.30000000000000004"},
		{"123456.789e3", "123456789.0"},
		{"3.141592653589793", "3.141592653589793"},
		{"1e15", "1000000000000000.0"},
		{"1.5e15", "1500000000000000.0"},
		{"9007199254740993.0", "9007199254740992.0"},
		{"1.2345678901234567e15", "1234567890123456.8"},
		{"1e16", "1e16"},
		{"1.5e16", "1.5e16"},
		{"1e21", "1e21"},
		{"1.2345e22", "1.2345e22"},
		{"0.00001", "0.00001"},
		{"0.000012", "0.000012"},
		{"0.000001", "1e-6"},
		{"1e-7", "1e-7"},
		{"-1.5e-7", "-1.5e-7"},
		{"5e-324", "5e-324"},
		{"1e-400", "0.0"},
		{"1.7976931348623157e308", "1.7976931348623157e308"},
		{"-1.7976931348623157e308", "-1.7976931348623157e308"},
	}
	for _, tc := range tests {
		got, err := CanonicalizeJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("CanonicalizeJSON(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("CanonicalizeJSON(%s) = %s, want %s", tc.in, got, tc.want)
		}
		again, err := CanonicalizeJSON(got)
		if err != nil || string(again) != string(got) {
			t.Errorf("not idempotent: %s -> %s (%v)", got, again, err)
		}
	}
}

func TestCanonicalizeJSONErrors(t *testing.T) {
	for _, in := range []string{
		``,
		`   `,
		`{`,
		`{"a":1,}`,
		`[1,]`,
		`{a:1}`,
		`'a'`,
		`01`,
		`+1`,
		`.5`,
		`1.`,
		`NaN`,
		`Infinity`,
		`1e400`,
		`-1e400`,
		`{"a":1} {"b":2}`,
		`{"a":1}x`,
		`[] []`,
		`null,`,
		"\"a\x01b\"",   // raw control character
		"\"\xff\"",     // invalid UTF-8
		"{\"\xc3\":1}", // truncated rune in a key
		`"\x41"`,
	} {
		if got, err := CanonicalizeJSON([]byte(in)); err == nil {
			t.Errorf("CanonicalizeJSON(%q) = %s, want error", in, got)
		}
		if _, err := StateHash([]byte(in)); err == nil {
			t.Errorf("StateHash(%q): want error", in)
		}
	}
}

func TestCanonicalJSONGoValues(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, `null`},
		{"bool", true, `true`},
		{"string HTML", "<&>\u2028", "\"<&>\u2028\""},
		{"int", -7, `-7`},
		{"int8", int8(-8), `-8`},
		{"uint64 max", uint64(math.MaxUint64), `18446744073709551615`},
		{"int64 min", int64(math.MinInt64), `-9223372036854775808`},
		{"float64 whole", 1.0, `1.0`},
		{"float64", 0.1, `0.1`},
		{"float64 negative zero", math.Copysign(0, -1), `-0.0`},
		{"float64 big", 1e21, `1e21`},
		{"float32", float32(0.1), `0.1`},
		{"float32 big", float32(3e38), `3e38`},
		{"json.Number int", json.Number("12345678901234567890"), `12345678901234567890`},
		{"json.Number float", json.Number("1E3"), `1000.0`},
		{"json.Number -0", json.Number("-0"), `-0.0`},
		{"raw message", json.RawMessage(`{"b": 1, "a": [true]}`), `{"a":[true],"b":1}`},
		{"map[string]string", map[string]string{"b": "2", "a": "1"}, `{"a":"1","b":"2"}`},
		{"nested", map[string]any{
			"z": []any{1, "x", nil, map[string]any{"k": 2.5}},
			"a": map[string]any{},
			"m": []string{},
		}, `{"a":{},"m":[],"z":[1,"x",null,{"k":2.5}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalJSON(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("CanonicalJSON = %s, want %s", got, tc.want)
			}
			again, err := CanonicalizeJSON(got)
			if err != nil || string(again) != string(got) {
				t.Errorf("CanonicalizeJSON(CanonicalJSON) = %s, %v; want %s", again, err, got)
			}
		})
	}

	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	for name, in := range map[string]any{
		"NaN":             math.NaN(),
		"+Inf":            math.Inf(1),
		"-Inf float32":    float32(math.Inf(-1)),
		"bad json.Number": json.Number("1.2.3"),
		"empty Number":    json.Number(""),
		"bad raw":         json.RawMessage(`{`),
		"invalid UTF-8":   "\xff",
		"invalid key":     map[string]any{"\xff": 1},
		"struct":          struct{ A int }{1},
		"[]byte":          []byte("x"),
		"nested bad":      []any{1, map[string]any{"x": math.NaN()}},
		"cyclic":          cyclic,
	} {
		if got, err := CanonicalJSON(in); err == nil {
			t.Errorf("%s: CanonicalJSON = %s, want error", name, got)
		}
	}
}

func TestAppendCanonicalFloatRoundTrip(t *testing.T) {
	// Every power of ten and a few neighbours round-trip and stay canonical.
	for e := -324; e <= 308; e++ {
		for _, m := range []float64{1, 1.5, 9.999999999999999} {
			f, err := strconv.ParseFloat(strconv.FormatFloat(m, 'g', -1, 64)+"e"+strconv.Itoa(e), 64)
			if err != nil || f == 0 || math.IsInf(f, 0) {
				continue
			}
			s := string(AppendCanonicalFloat(nil, f))
			back, err := strconv.ParseFloat(s, 64)
			if err != nil || back != f {
				t.Fatalf("%v formatted %s parses back as %v (%v)", f, s, back, err)
			}
			if !strings.ContainsAny(s, ".e") {
				t.Fatalf("%v formatted %s looks like an integer", f, s)
			}
			if c, err := CanonicalizeJSON([]byte(s)); err != nil || string(c) != s {
				t.Fatalf("%s re-canonicalises to %s (%v)", s, c, err)
			}
		}
	}
}

func FuzzCanonicalizeJSON(f *testing.F) {
	for _, s := range []string{
		stateS0, stateS3, `{"b":[1,2.5,-0,1e21,"\u2028<"],"a":{"z":null,"y":true}}`,
		`18446744073709551616`, `"\ud83d\ude00\u0001"`, `[]`, `1e-7`, `{"a":1,"a":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := CanonicalizeJSON(in)
		if err != nil {
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		again, err := CanonicalizeJSON(out)
		if err != nil {
			t.Fatalf("canonical output %q does not re-parse: %v", out, err)
		}
		if string(again) != string(out) {
			t.Fatalf("not idempotent:\n in %q\n 1st %q\n 2nd %q", in, out, again)
		}
		var vIn, vOut any
		if err := json.Unmarshal(in, &vIn); err != nil {
			t.Fatalf("input %q: %v", in, err)
		}
		if err := json.Unmarshal(out, &vOut); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		if !jsonEqual(vIn, vOut) {
			t.Fatalf("value changed:\n in %q\nout %q", in, out)
		}
		h, err := StateHash(in)
		if err != nil || h != sha256.Sum256(out) {
			t.Fatalf("StateHash(%q) = %x, %v; want SHA-256 of %q", in, h, err, out)
		}
	})
}

// jsonEqual compares values decoded by encoding/json (numbers as float64),
// treating 0 and -0 as equal.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}
