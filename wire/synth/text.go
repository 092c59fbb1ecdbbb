package synth

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Word lists for the template-based prose generator. The text only has to
// look plausible and compress like natural language (zstd ratios of about
// 3–5), not make sense.
var (
	nouns = []string{
		"request", "customer", "invoice", "refund", "account", "subscription", "cluster", "partition",
		"broker", "consumer", "producer", "topic", "index", "query", "latency", "throughput",
		"deployment", "service", "endpoint", "database", "schema", "migration", "cache", "replica",
		"model", "prompt", "embedding", "vector", "document", "paragraph", "citation", "source",
		"report", "summary", "policy", "contract", "shipment", "order", "ticket", "incident",
		"dashboard", "metric", "alert", "threshold", "budget", "forecast", "quarter", "region",
		"pipeline", "workflow", "agent", "tool", "result", "answer", "question", "hypothesis",
		"experiment", "benchmark", "dataset", "sample", "error", "timeout", "retry", "checkpoint",
		"transaction", "ledger", "balance", "payment", "card", "address", "warehouse", "supplier",
		"release", "feature", "regression", "test", "build", "commit", "branch", "review",
	}
	verbs = []string{
		"reduces", "increases", "requires", "supports", "replaces", "validates", "updates", "triggers",
		"blocks", "improves", "exposes", "tracks", "stores", "summarizes", "references", "delays",
		"contains", "routes", "rejects", "approves", "matches", "exceeds", "follows", "precedes",
		"duplicates", "invalidates", "compresses", "streams", "caches", "retries", "measures", "explains",
	}
	adjectives = []string{
		"current", "previous", "pending", "critical", "regional", "primary", "secondary", "stale",
		"large", "small", "recent", "annual", "monthly", "internal", "external", "failed",
		"successful", "duplicate", "missing", "expected", "unexpected", "average", "peak", "default",
		"encrypted", "public", "private", "shared", "temporary", "permanent", "partial", "complete",
	}
	adverbs = []string{
		"quickly", "rarely", "usually", "significantly", "slightly", "automatically", "manually",
		"consistently", "temporarily", "eventually", "immediately", "gradually",
	}
	preps     = []string{"for", "after", "before", "during", "within", "across", "without", "behind", "under", "over"}
	firstName = []string{
		"Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Gustavo", "Hana", "Ivan", "Jia",
		"Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
	}
	lastName = []string{
		"Anderson", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Haddad",
		"Ito", "Jensen", "Kowalski", "Lindqvist", "Müller", "Nakamura", "Okafor", "Petrov",
	}
	domains  = []string{"example.com", "docs.example.org", "blog.example.net", "wiki.example.io", "news.example.com", "arxiv.example.org"}
	models   = []string{"gpt-4o-2024-08-06", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "llama-3.1-70b-instruct", "mistral-large-2407"}
	locales  = []string{"en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR"}
	channels = []string{"web_chat", "email", "mobile_app", "slack", "api"}
)

// textGen produces prose, identifiers and numbers from one run's RNG.
type textGen struct {
	r *rand.Rand
}

func (t textGen) pick(list []string) string { return list[t.r.IntN(len(list))] }

// between returns a uniformly random int in [lo, hi].
func (t textGen) between(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + t.r.IntN(hi-lo+1)
}

// chance reports true with probability p.
func (t textGen) chance(p float64) bool { return t.r.Float64() < p }

// sentence builds one sentence from a template.
func (t textGen) sentence() string {
	var s string
	switch t.r.IntN(7) {
	case 0:
		s = fmt.Sprintf("the %s %s %s the %s %s %s the %s", t.pick(adjectives), t.pick(nouns), t.pick(adverbs),
			t.pick(adjectives), t.pick(nouns), t.pick(preps), t.pick(nouns))
	case 1:
		s = fmt.Sprintf("each %s %s a %s %s, so the %s %s %d%%", t.pick(nouns), t.pick(verbs), t.pick(adjectives),
			t.pick(nouns), t.pick(nouns), t.pick(verbs), t.between(2, 97))
	case 2:
		s = fmt.Sprintf("%s %s %s the %s when the %s %s", t.pick(firstName), t.pick(adverbs), t.pick(verbs),
			t.pick(nouns), t.pick(nouns), t.pick(verbs))
	case 3:
		s = fmt.Sprintf("in the %s %s, %d %ss %s the %s %s", t.pick(adjectives), t.pick(nouns), t.between(2, 4000),
			t.pick(nouns), t.pick(verbs), t.pick(adjectives), t.pick(nouns))
	case 4:
		s = fmt.Sprintf("a %s %s %s %s %s the %s %s", t.pick(adjectives), t.pick(nouns), t.pick(preps), t.pick(nouns),
			t.pick(verbs), t.pick(nouns), t.pick(nouns))
	case 5:
		s = fmt.Sprintf("according to %s, the %s %s by %.1f ms %s the %s", t.pick(domains), t.pick(nouns),
			t.pick(verbs), float64(t.between(1, 9000))/10, t.pick(preps), t.pick(nouns))
	default:
		s = fmt.Sprintf("this %s %s the %s %s and %s the %s %s", t.pick(nouns), t.pick(verbs), t.pick(nouns),
			t.pick(adverbs), t.pick(verbs), t.pick(adjectives), t.pick(nouns))
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// prose returns whole sentences adding up to roughly n bytes.
func (t textGen) prose(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			if t.chance(0.15) {
				b.WriteString("\n\n")
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(t.sentence())
	}
	return b.String()
}

// question returns a user question.
func (t textGen) question() string {
	switch t.r.IntN(5) {
	case 0:
		return fmt.Sprintf("Why does the %s %s keep %s the %s since the last %s?", t.pick(adjectives), t.pick(nouns),
			strings.TrimSuffix(t.pick(verbs), "s")+"ing", t.pick(nouns), t.pick(nouns))
	case 1:
		return fmt.Sprintf("Can you compare the %s %s with the %s one and summarize the %s?", t.pick(adjectives),
			t.pick(nouns), t.pick(adjectives), t.pick(nouns))
	case 2:
		return fmt.Sprintf("What is the %s %s for %s %s in %s?", t.pick(adjectives), t.pick(nouns), t.pick(nouns),
			t.pick(nouns)+"s", t.pick([]string{"Q1", "Q2", "Q3", "Q4", "2024", "2025", "EMEA", "APAC"}))
	case 3:
		return fmt.Sprintf("My %s %s was %s twice — order #%d. Please fix it and explain what happened.",
			t.pick(adjectives), t.pick(nouns), strings.TrimSuffix(t.pick(verbs), "s")+"ed", t.between(100000, 999999))
	default:
		return fmt.Sprintf("Write a short report on how the %s %s affects %s %s, with sources.", t.pick(adjectives),
			t.pick(nouns), t.pick(nouns), t.pick(nouns))
	}
}

// hexID returns n random bytes as lowercase hex.
func (t textGen) hexID(n int) string {
	b := make([]byte, n)
	t.fill(b)
	return hex.EncodeToString(b)
}

func (t textGen) fill(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := t.r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// uuidBytes returns 16 random bytes shaped as a UUIDv4.
func (t textGen) uuidBytes() []byte {
	b := make([]byte, 16)
	t.fill(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// uuid returns a UUIDv4 in its canonical string form.
func (t textGen) uuid() string { return uuidString(t.uuidBytes()) }

func uuidString(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// pngAttachment is an inline image as tools return them: base64 of n
// incompressible bytes (a real PNG is already deflated).
func (t textGen) pngAttachment(n int) map[string]any {
	b := make([]byte, n)
	t.fill(b)
	copy(b, "\x89PNG\r\n\x1a\n")
	return map[string]any{"mime_type": "image/png", "name": t.pick(nouns) + ".png", "size": num(n),
		"data_base64": base64.StdEncoding.EncodeToString(b)}
}

// person returns a display name.
func (t textGen) person() string { return t.pick(firstName) + " " + t.pick(lastName) }

// url returns a plausible document URL.
func (t textGen) url() string {
	return fmt.Sprintf("https://%s/%s/%s-%s-%d", t.pick(domains), t.pick(nouns), t.pick(adjectives), t.pick(nouns),
		t.between(10, 99999))
}

// title returns a document title.
func (t textGen) title() string {
	s := fmt.Sprintf("%s %s %s %s", t.pick(adjectives), t.pick(nouns), t.pick(preps), t.pick(nouns)+"s")
	return strings.ToUpper(s[:1]) + s[1:]
}

// num is an integer JSON number (kept as an integer so every verifier
// hashes it identically).
func num(i int) json.Number { return json.Number(strconv.Itoa(i)) }

// frac is a JSON number in (-1, 1) with at most 4 decimals, never whole
// and never in exponent range, so Rust, JS and Go format it the same way.
func (t textGen) frac(signed bool) json.Number {
	v := t.between(100, 9999)
	s := strconv.FormatFloat(float64(v)/10000, 'f', -1, 64)
	if signed && t.r.IntN(2) == 0 {
		s = "-" + s
	}
	return json.Number(s)
}

// embedding returns a dims-long vector of fractions.
func (t textGen) embedding(dims int) []any {
	v := make([]any, dims)
	for i := range v {
		v[i] = t.frac(true)
	}
	return v
}
