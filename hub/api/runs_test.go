package api_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dashstream/dashstream/hub/api"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

type runOut struct {
	ThreadID  string  `json:"thread_id"`
	GraphName string  `json:"graph_name"`
	Status    string  `json:"status"`
	StartedAt string  `json:"started_at"`
	EndedAt   *string `json:"ended_at"`
	Messages  int64   `json:"messages"`
	LastError *string `json:"last_error"`
	FirstSeq  uint64  `json:"first_seq"`
	LastSeq   uint64  `json:"last_seq"`
	UpdatedAt string  `json:"updated_at"`
}

type runsOut struct {
	Runs []runOut `json:"runs"`
	Next *string  `json:"next"`
}

const oddThread = "odd/id: x y?#%"

// runFixture stores four runs; newest first they are oddThread, t-run,
// t-err, t-done.
func runFixture(t *testing.T) (*recBuilder, string) {
	st := newMemStore(t)
	b := newRecBuilder(t, st)
	t0 := testNow.Add(-time.Hour)
	b.add(0, "t-done", 1, t0, graphStart("alpha"))
	b.add(1, "t-done", 2, t0.Add(time.Second))
	b.add(0, "t-done", 3, t0.Add(3*time.Second), graphEnd())
	b.add(1, "t-err", 1, t0.Add(10*time.Second), graphStart("beta"))
	b.add(1, "t-err", 2, t0.Add(12*time.Second), nodeError("Boom: timeout"))
	b.add(2, "t-run", 1, t0.Add(20*time.Second), graphStart("alpha"))
	b.add(2, oddThread, 1, t0.Add(30*time.Second), graphStart("gamma"))
	srv := start(t, api.Config{}, api.Deps{Store: st})
	return b, srv.URL
}

func listRuns(t *testing.T, base, query string) runsOut {
	t.Helper()
	var out runsOut
	res := get(t, base+"/api/runs?"+query).want(t, 200)
	if err := json.Unmarshal(res.body, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.body, []byte(`"next":`)) {
		t.Errorf("no next field: %s", res.body)
	}
	return out
}

func ids(p runsOut) []string {
	var out []string
	for _, r := range p.Runs {
		out = append(out, r.ThreadID)
	}
	return out
}

func TestRunsList(t *testing.T) {
	_, base := runFixture(t)
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{oddThread, "t-run", "t-err", "t-done"}},
		{"status=error", []string{"t-err"}},
		{"status=running", []string{oddThread, "t-run"}},
		{"status=completed", []string{"t-done"}},
		{"graph=alpha", []string{"t-run", "t-done"}},
		{"q=BOOM", []string{"t-err"}},
		{"q=odd%2F", []string{oddThread}},
		{"graph=alpha&status=completed", []string{"t-done"}},
		{"graph=nope", nil},
		{"limit=1000", []string{oddThread, "t-run", "t-err", "t-done"}}, // capped at 500
	}
	for _, c := range cases {
		p := listRuns(t, base, c.query)
		if got := ids(p); !slices.Equal(got, c.want) {
			t.Errorf("?%s: %q, want %q", c.query, got, c.want)
		}
		if p.Next != nil {
			t.Errorf("?%s: next %q on the only page", c.query, *p.Next)
		}
	}

	// Run fields.
	p := listRuns(t, base, "")
	byID := map[string]runOut{}
	for _, r := range p.Runs {
		byID[r.ThreadID] = r
	}
	done, errRun, running := byID["t-done"], byID["t-err"], byID["t-run"]
	t0 := testNow.Add(-time.Hour)
	if done.Status != "completed" || done.GraphName != "alpha" || done.Messages != 3 || done.FirstSeq != 1 ||
		done.LastSeq != 3 || done.EndedAt == nil || *done.EndedAt != t0.Add(3*time.Second).Format(time.RFC3339Nano) ||
		done.StartedAt != t0.Format(time.RFC3339Nano) || done.LastError != nil {
		t.Errorf("t-done = %+v", done)
	}
	if errRun.Status != "error" || errRun.LastError == nil || *errRun.LastError != "Boom: timeout" || errRun.EndedAt == nil {
		t.Errorf("t-err = %+v", errRun)
	}
	if running.Status != "running" || running.EndedAt != nil || running.LastError != nil {
		t.Errorf("t-run = %+v", running)
	}
	for _, r := range p.Runs {
		for _, ts := range []string{r.StartedAt, r.UpdatedAt} {
			tm, err := time.Parse(time.RFC3339, ts)
			if err != nil || !strings.HasSuffix(ts, "Z") || tm.IsZero() {
				t.Errorf("%s: time %q not RFC 3339 UTC: %v", r.ThreadID, ts, err)
			}
		}
	}

	// Paging with limit=1 walks every run once, newest first.
	var walked []string
	before := ""
	for page := 0; page < 10; page++ {
		q := "limit=1"
		if before != "" {
			q += "&before=" + url.QueryEscape(before)
		}
		p := listRuns(t, base, q)
		walked = append(walked, ids(p)...)
		if p.Next == nil {
			break
		}
		before = *p.Next
	}
	if want := []string{oddThread, "t-run", "t-err", "t-done"}; !slices.Equal(walked, want) {
		t.Errorf("paged %q, want %q", walked, want)
	}

	// Bad queries.
	for _, q := range []string{"limit=0", "limit=-3", "limit=abc", "status=bogus", "before=%21%21%21"} {
		res := get(t, base+"/api/runs?"+q).want(t, 400)
		if res.object(t)["error"] == nil {
			t.Errorf("?%s: no JSON error: %s", q, res.body)
		}
	}
}

func TestRunOne(t *testing.T) {
	b, base := runFixture(t)
	var r runOut
	res := get(t, base+"/api/runs/t-done").want(t, 200)
	if err := json.Unmarshal(res.body, &r); err != nil || r.ThreadID != "t-done" || r.Messages != 3 {
		t.Errorf("run %s: %v", res.body, err)
	}
	// The path segment is URL-escaped.
	res = get(t, base+"/api/runs/"+url.PathEscape(oddThread)).want(t, 200)
	if err := json.Unmarshal(res.body, &r); err != nil || r.ThreadID != oddThread || r.GraphName != "gamma" {
		t.Errorf("odd run %s: %v", res.body, err)
	}
	nf := get(t, base+"/api/runs/nope").want(t, 404).object(t)
	if nf["error"] == nil || nf["thread_id"] != "nope" {
		t.Errorf("404 body %v", nf)
	}

	// An over-long id is bounded before lookup, as ingest indexed it.
	long := strings.Repeat("L", 300)
	b.add(3, wire.BoundThreadID(long), 1, testNow, graphStart("long"))
	res = get(t, base+"/api/runs/"+url.PathEscape(long)).want(t, 200)
	if err := json.Unmarshal(res.body, &r); err != nil || r.ThreadID != wire.BoundThreadID(long) || len(r.ThreadID) > 256 {
		t.Errorf("long run %s: %v", res.body, err)
	}
}

// fetchRecords GETs one records page.
func fetchRecords(t *testing.T, base, thread, query string) (recs []batchRecord, more bool, next string) {
	t.Helper()
	res := get(t, base+"/api/runs/"+url.PathEscape(thread)+"/records?"+query).want(t, 200)
	if ct := res.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	recs, err := decodeBatch(res.body)
	if err != nil {
		t.Fatalf("decoding batch: %v", err)
	}
	more, err = strconv.ParseBool(res.header.Get(api.HeaderMore))
	if err != nil {
		t.Fatalf("%s: %v", api.HeaderMore, err)
	}
	next = res.header.Get(api.HeaderNext)
	if next == "" {
		t.Fatalf("no %s", api.HeaderNext)
	}
	return recs, more, next
}

func TestRunRecords(t *testing.T) {
	st := newMemStore(t)
	b := newRecBuilder(t, st)
	const thread = "thread/with spaces"
	var want []store.ThreadRecord
	for i := range 30 {
		p := int32(i % 3)
		at := testNow.Add(time.Duration(i) * time.Second)
		seq := uint64(i + 1)
		var rec store.Record
		if i%10 == 4 { // sequence-0 ExecutionTrace messages
			seq = 0
		}
		rec = b.add(p, thread, seq, at)
		want = append(want, store.ThreadRecord{Key: store.ThreadKey{Seq: seq, Partition: p, Offset: rec.Offset}, Record: rec})
		b.add(p, "other", uint64(i+1), at) // interleaved noise
	}
	slices.SortFunc(want, func(x, y store.ThreadRecord) int {
		return cmp.Or(cmp.Compare(x.Key.Seq, y.Key.Seq), cmp.Compare(x.Key.Partition, y.Key.Partition), cmp.Compare(x.Key.Offset, y.Key.Offset))
	})

	check := func(t *testing.T, got []batchRecord) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%d records, want %d", len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			if g.Partition != w.Partition || g.Offset != w.Offset || !bytes.Equal(g.Payload, w.Payload) {
				t.Fatalf("record %d = p%d o%d %q, want p%d o%d %q", i, g.Partition, g.Offset, g.Payload, w.Partition, w.Offset, w.Payload)
			}
		}
	}

	srv := start(t, api.Config{}, api.Deps{Store: st})
	// One page holds all.
	all, more, _ := fetchRecords(t, srv.URL, thread, "")
	if more {
		t.Error("More=true on a complete page")
	}
	check(t, all)

	// Paging by count covers every record exactly once.
	var got []batchRecord
	after, pages := "", 0
	for {
		recs, more, next := fetchRecords(t, srv.URL, thread, "limit=4&after="+after)
		pages++
		got = append(got, recs...)
		after = next
		if !more {
			break
		}
		if len(recs) == 0 || pages > 20 {
			t.Fatalf("page %d: %d records with More=true", pages, len(recs))
		}
	}
	check(t, got)
	if pages != 8 {
		t.Errorf("%d pages of 4 for 30 records, want 8", pages)
	}
	// The last token is a valid, empty tail.
	if recs, more, next := fetchRecords(t, srv.URL, thread, "after="+after); len(recs) != 0 || more || next != after {
		t.Errorf("after the end: %d records, more %v, next %q", len(recs), more, next)
	}

	// Paging by bytes: at least one record per page.
	small := start(t, api.Config{RecordsPageBytes: 1}, api.Deps{Store: st})
	got, after = nil, ""
	for range 40 {
		recs, more, next := fetchRecords(t, small.URL, thread, "after="+after)
		if len(recs) != 1 && more {
			t.Fatalf("byte-bounded page has %d records", len(recs))
		}
		got = append(got, recs...)
		after = next
		if !more {
			break
		}
	}
	check(t, got)

	// Errors.
	get(t, srv.URL+"/api/runs/nope/records").want(t, 404)
	for _, q := range []string{"after=%21%21", "after=AAAA", "limit=0", "limit=x"} {
		if res := get(t, srv.URL+"/api/runs/"+url.PathEscape(thread)+"/records?"+q).want(t, 400); res.object(t)["error"] == nil {
			t.Errorf("?%s: no JSON error", q)
		}
	}
}

func TestRecordsToken(t *testing.T) {
	for _, k := range []store.ThreadKey{{}, {Seq: 1, Partition: 2, Offset: 3}, store.AfterSeq(1<<64 - 1), {Seq: 7, Partition: -1, Offset: -1}} {
		tok := api.EncodeRecordsToken(k)
		got, err := api.DecodeRecordsToken(tok)
		if err != nil || got != k {
			t.Errorf("%+v → %q → %+v, %v", k, tok, got, err)
		}
	}
	if _, err := api.DecodeRecordsToken("not*base64"); err == nil {
		t.Error("bad token accepted")
	}
}
