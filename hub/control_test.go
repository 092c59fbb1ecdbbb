package hub

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseResume(t *testing.T) {
	cases := []struct {
		name        string
		frame       string
		mode, from  string
		offsets     map[int32]int64
		threads     map[string]uint64
		skippedHint string
	}{
		{"strings and numbers", `{"type":"resume","lastOffsetsByPartition":{"0":"12","1":7}}`,
			ModePartition, FromCursor, map[int32]int64{0: 12, 1: 7}, nil, ""},
		{"offset beyond 2^53 round-trips", `{"type":"resume","lastOffsetsByPartition":{"0":"9007199254740993"}}`,
			ModePartition, FromCursor, map[int32]int64{0: 9007199254740993}, nil, ""},
		{"bad entries skipped", `{"type":"resume","lastOffsetsByPartition":{"-1":"3","x":"1","2":"-5","3":"abc","4":true,"5":1.5,"6":"8"}}`,
			ModePartition, FromCursor, map[int32]int64{6: 8}, nil, "negative_partition"},
		{"bogus from is cursor", `{"type":"resume","lastOffsetsByPartition":{},"from":"bogus"}`,
			ModePartition, FromCursor, map[int32]int64{}, nil, "unknown_from"},
		{"null offsets still partition mode", `{"type":"resume","lastOffsetsByPartition":null,"from":"earliest"}`,
			ModePartition, FromEarliest, nil, nil, ""},
		{"mode thread forces thread", `{"type":"resume","mode":"thread","lastOffsetsByPartition":{"0":"1"},"lastSequencesByThread":{"t1":"0","t2":123}}`,
			ModeThread, FromCursor, map[int32]int64{0: 1}, map[string]uint64{"t1": 0, "t2": 123}, ""},
		{"mode partition forces partition", `{"type":"resume","mode":"partition","from":"latest"}`,
			ModePartition, FromLatest, nil, nil, ""},
		{"legacy thread pair", `{"type":"resume","threadId":"  abc ","lastSequence":"5"}`,
			ModeThread, FromCursor, nil, map[string]uint64{"abc": 5}, ""},
		{"thread ids are bounded like ingest", `{"type":"resume","lastSequencesByThread":{"` + strings.Repeat("é", 200) + `":1}}`,
			ModeThread, FromCursor, nil, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseControl([]byte(tc.frame))
			if err != nil {
				t.Fatal(err)
			}
			r := c.Resume
			if r.Mode != tc.mode || r.From != tc.from {
				t.Fatalf("mode %s from %s, want %s %s", r.Mode, r.From, tc.mode, tc.from)
			}
			if tc.offsets != nil && !equalMaps(r.Offsets, tc.offsets) {
				t.Fatalf("offsets %v, want %v", r.Offsets, tc.offsets)
			}
			if tc.threads != nil && !equalMaps(r.Threads, tc.threads) {
				t.Fatalf("threads %v, want %v", r.Threads, tc.threads)
			}
			for id := range r.Threads {
				if len(id) > 256 || !utf8.ValidString(id) {
					t.Fatalf("thread id not bounded: %d bytes", len(id))
				}
			}
			if tc.skippedHint != "" && !strings.Contains(strings.Join(r.Skipped, " "), tc.skippedHint) {
				t.Fatalf("skipped %v lacks %q", r.Skipped, tc.skippedHint)
			}
		})
	}
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestParseResumeLimits(t *testing.T) {
	many := func(n int, key func(int) string) string {
		m := map[string]string{}
		for i := 0; i < n; i++ {
			m[key(i)] = "1"
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	num := itoa10
	_, err := parseControl([]byte(`{"type":"resume","lastOffsetsByPartition":` + many(1025, num) + `}`))
	var le *limitError
	if !errors.As(err, &le) || le.Code != ErrCodeTooManyPartitions {
		t.Fatalf("1025 partitions: %v", err)
	}
	if _, err := parseControl([]byte(`{"type":"resume","lastOffsetsByPartition":` + many(1024, num) + `}`)); err != nil {
		t.Fatalf("1024 partitions: %v", err)
	}
	_, err = parseControl([]byte(`{"type":"resume","lastSequencesByThread":` + many(10001, func(i int) string { return "t" + itoa10(i) }) + `}`))
	if !errors.As(err, &le) || le.Code != ErrCodeTooManyThreads {
		t.Fatalf("10001 threads: %v", err)
	}
}

func itoa10(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestTruncateForLog(t *testing.T) {
	long := strings.Repeat("é", 5<<20) // 10 MB key
	got := truncateForLog(long)
	if len(got) > 160 || !strings.HasSuffix(got, "...(10485760b)") || !utf8.ValidString(got) {
		t.Fatalf("truncated to %d bytes: %q", len(got), got[len(got)-20:])
	}
	if truncateForLog("short") != "short" {
		t.Fatal("short string changed")
	}
}

func TestParseControlIgnoresUnknown(t *testing.T) {
	for _, f := range []string{`{}`, `{"type":42}`, `{"type":"nope"}`} {
		c, err := parseControl([]byte(f))
		if err != nil || c.Resume != nil {
			t.Fatalf("%s: %+v %v", f, c, err)
		}
	}
	for _, f := range []string{`[1,2]`, `"x"`, `null`, `{bad`} {
		if _, err := parseControl([]byte(f)); err == nil {
			t.Fatalf("%s parsed", f)
		}
	}
}

// FuzzParseControl: no input panics, over-limit inputs are typed errors,
// accepted resumes hold only valid, bounded entries.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{
		`{"type":"resume","lastOffsetsByPartition":{"0":"12","1":7},"from":"cursor"}`,
		`{"type":"resume","mode":"thread","lastSequencesByThread":{"t1":"0","t2":123}}`,
		`{"type":"resume","threadId":"abc","lastSequence":"5","epoch":"ab-1"}`,
		`{"type":"ping"}`, `{"type":"cursor_reset","token":"x"}`, `{"type":"resume","lastOffsetsByPartition":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseControl(data)
		if err != nil || c.Resume == nil {
			return
		}
		r := c.Resume
		if len(r.Offsets) > MaxResumePartitions || len(r.Threads) > MaxResumeThreads {
			t.Fatal("limits not enforced")
		}
		for p, o := range r.Offsets {
			if p < 0 || o < 0 {
				t.Fatalf("negative entry %d:%d accepted", p, o)
			}
		}
		for id := range r.Threads {
			if id == "" || len(id) > 256 || !utf8.ValidString(id) {
				t.Fatalf("bad thread id %q", id)
			}
		}
		switch r.From {
		case FromLatest, FromCursor, FromEarliest:
		default:
			t.Fatalf("from %q", r.From)
		}
		for _, s := range r.Skipped {
			if len(s) > 200 {
				t.Fatalf("skipped entry not truncated: %d bytes", len(s))
			}
		}
	})
}

// FuzzParseResume drives the resume parser with well-formed resume frames
// built from fuzzed field values (FuzzParseControl mostly produces JSON
// that does not parse), and checks each entry against an independent
// reading of the same text: a partition key that is a non-negative int32
// with an offset that is a non-negative int64 (a JSON integer or a string
// holding one) is kept with exactly that value; anything else is skipped
// and said why; mode and from follow the protocol's rules.
func FuzzParseResume(f *testing.F) {
	f.Add("0", `"12"`, "1", `7`, "cursor", "", "t1", `"5"`, true)
	f.Add("-1", `"3"`, "x", `true`, "earliest", "partition", "", `1`, true)
	f.Add("2", `"-5"`, "3", `1.5`, "latest", "thread", "abc", `-1`, false)
	f.Add("2147483648", `9223372036854775808`, "007", `" 8 "`, "bogus", "x", " é ", `"18446744073709551615"`, true)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, from, mode, thread, seq string, withOffsets bool) {
		frame := map[string]any{"type": "resume"}
		if from != "" {
			frame["from"] = from
		}
		if mode != "" {
			frame["mode"] = mode
		}
		offs := map[string]json.RawMessage{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if json.Valid([]byte(kv[1])) {
				offs[kv[0]] = json.RawMessage(kv[1])
			}
		}
		if withOffsets {
			frame["lastOffsetsByPartition"] = offs
		}
		if json.Valid([]byte(seq)) {
			frame["lastSequencesByThread"] = map[string]json.RawMessage{thread: json.RawMessage(seq)}
		}
		data, err := json.Marshal(frame)
		if err != nil {
			return // raw values json.Valid accepted but Marshal refused
		}
		c, err := parseControl(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		r := c.Resume
		if r == nil {
			t.Fatalf("%s: no resume", data)
		}
		// from and mode.
		wantFrom := FromCursor
		if from == FromLatest || from == FromEarliest {
			wantFrom = from
		}
		if r.From != wantFrom {
			t.Fatalf("%s: from %q, want %q", data, r.From, wantFrom)
		}
		wantMode := ModeThread
		switch {
		case mode == ModePartition || mode == ModeThread:
			wantMode = mode
		case withOffsets:
			wantMode = ModePartition
		}
		if r.Mode != wantMode {
			t.Fatalf("%s: mode %q, want %q", data, r.Mode, wantMode)
		}
		// Offsets: each entry kept exactly when it reads as valid.
		if !withOffsets {
			if len(r.Offsets) != 0 {
				t.Fatalf("%s: offsets %v without lastOffsetsByPartition", data, r.Offsets)
			}
			return
		}
		want := map[int32]int64{}
		for k, v := range offs {
			p, err := strconv.ParseInt(k, 10, 32)
			if err != nil || p < 0 {
				continue
			}
			if o, ok := oracleOffset(v); ok {
				want[int32(p)] = o
			}
		}
		if len(want) != len(r.Offsets) {
			t.Fatalf("%s: offsets %v, want %v (skipped %q)", data, r.Offsets, want, r.Skipped)
		}
		for p, o := range want {
			if got, ok := r.Offsets[p]; !ok || got != o {
				t.Fatalf("%s: partition %d offset %d (%v), want %d", data, p, got, ok, o)
			}
		}
		if len(r.Skipped) < len(offs)-len(want) {
			t.Fatalf("%s: %d entries dropped but %d reasons given", data, len(offs)-len(want), len(r.Skipped))
		}
	})
}

// oracleOffset reads an offset value the way docs/protocol.md §4 states
// it: a JSON integer, or a string holding one (surrounding spaces
// allowed), non-negative, within int64.
func oracleOffset(v json.RawMessage) (int64, bool) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		s = strings.TrimSpace(s)
	} else {
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return 0, false
		}
		s = n.String()
	}
	o, err := strconv.ParseInt(s, 10, 64)
	if err != nil || o < 0 {
		return 0, false
	}
	return o, true
}
