package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashstream/dashstream/hub/api"
	"github.com/dashstream/dashstream/webui"
	"github.com/dashstream/dashstream/wire"
)

func TestVersion(t *testing.T) {
	st := newMemStore(t)
	ns := wire.ResumeNamespace("", "dashstream-quality", "websocket-server-v4", "127.0.0.1:9092")
	srv := start(t, api.Config{
		Version: "v0.3.0", GitSHA: "abc1234", Namespace: ns,
		KafkaTopic: "dashstream-quality", KafkaGroupID: "websocket-server-v4",
		MaxPayloadBytes: 10 << 20, DecodeErrorPolicy: "pause",
	}, api.Deps{Store: st})

	v := get(t, srv.URL+"/version").want(t, 200).object(t)
	want := map[string]any{
		"git_sha": "abc1234", "build_date": "unknown", "schema_version": float64(1),
		"component": "websocket-server", "kafka_topic": "dashstream-quality",
		"kafka_group_id": "websocket-server-v4", "max_payload_bytes": float64(10 << 20),
		"decode_error_policy": "pause", "version": "v0.3.0", "epoch": st.Epoch(),
		"resume_namespace": "v1_dG9waWM9ZGFzaHN0cmVhbS1xdWFsaXR5O2dyb3VwPXdlYnNvY2tldC1zZXJ2ZXItdjQ7YnJva2Vycz0xMjcuMC4wLjE6OTA5Mg_" + st.Epoch(),
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %v, want %v", k, v[k], w)
		}
	}

	// The namespace follows the epoch (DECISIONS D2): computed per request.
	newEpoch, err := st.Reset(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v = get(t, srv.URL+"/version").want(t, 200).object(t)
	if v["epoch"] != newEpoch || v["resume_namespace"] != wire.NamespaceWithEpoch(ns, newEpoch) {
		t.Errorf("after reset: epoch %v namespace %v, want %s", v["epoch"], v["resume_namespace"], newEpoch)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "dashstream_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	srv := start(t, api.Config{Gatherer: reg}, api.Deps{Store: newMemStore(t)})
	res := get(t, srv.URL+"/metrics").want(t, 200)
	if !strings.Contains(string(res.body), "dashstream_test_things_total 3") {
		t.Errorf("metrics body lacks the counter:\n%s", res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestExpectedSchema(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "data", "expected_schemas.json") // parent does not exist yet
	cfg := api.Config{ExpectedSchemasPath: path}
	srv := start(t, cfg, api.Deps{Store: newMemStore(t)})
	base := srv.URL + "/api/expected-schema"
	const jsonCT = "application/json"

	if body := string(get(t, base).want(t, 200).body); strings.TrimSpace(body) != "[]" {
		t.Errorf("empty list = %s", body)
	}
	nf := get(t, base+"/g1").want(t, 404).object(t)
	if nf["error"] != "No expected schema set for this graph" || nf["graph_name"] != "g1" {
		t.Errorf("404 body %v", nf)
	}
	nf = do(t, http.MethodDelete, base+"/g1", nil).want(t, 404).object(t)
	if nf["error"] != "No expected schema to delete" || nf["graph_name"] != "g1" {
		t.Errorf("delete 404 body %v", nf)
	}

	put := func(graph, body string, header ...string) response {
		return do(t, http.MethodPut, base+"/"+graph, strings.NewReader(body), header...)
	}
	e := put("g1", `{"schema_id":"abc123","environment":"prod","pinned_by":"ana"}`, "Content-Type", jsonCT).want(t, 200).object(t)
	if e["schema_id"] != "abc123" || e["graph_name"] != "g1" || e["environment"] != "prod" ||
		e["pinned_by"] != "ana" || e["note"] != nil || e["pinned_at"] != float64(testNow.UnixMilli()) {
		t.Errorf("PUT entry %v", e)
	}
	// A graph name needing escaping, with no Content-Type at all.
	put("my%2Fgraph%20x", `{"schema_id":"def456","note":"n"}`).want(t, 200)
	if g := get(t, base+"/my%2Fgraph%20x").want(t, 200).object(t); g["graph_name"] != "my/graph x" || g["note"] != "n" {
		t.Errorf("escaped graph entry %v", g)
	}

	// Rejections like the reference's JSON extractor.
	put("g2", `{"environment":"prod"}`, "Content-Type", jsonCT).want(t, 422)
	put("g2", `{"schema_id":42}`, "Content-Type", jsonCT).want(t, 422)
	put("g2", `{"schema_id":`, "Content-Type", jsonCT).want(t, 400)
	put("g2", `{"schema_id":"x"}`, "Content-Type", "text/plain").want(t, 415)
	get(t, base+"/g2").want(t, 404)

	var list []map[string]any
	res := get(t, base).want(t, 200)
	if err := json.Unmarshal(res.body, &list); err != nil || len(list) != 2 {
		t.Fatalf("list %s: %v", res.body, err)
	}

	// Persisted atomically: the file exists, no .tmp is left behind.
	checkNoTmp := func() {
		t.Helper()
		ents, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") {
				t.Errorf("left behind %s", e.Name())
			}
		}
	}
	checkNoTmp()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk map[string]map[string]any
	if err := json.Unmarshal(raw, &onDisk); err != nil || onDisk["g1"]["schema_id"] != "abc123" || onDisk["my/graph x"] == nil {
		t.Fatalf("file %s: %v", raw, err)
	}
	if !strings.Contains(string(raw), "\n  ") {
		t.Errorf("file not pretty-printed: %s", raw)
	}

	// DELETE answers the removed entry and persists.
	if d := do(t, http.MethodDelete, base+"/g1", nil).want(t, 200).object(t); d["schema_id"] != "abc123" {
		t.Errorf("DELETE body %v", d)
	}
	checkNoTmp()

	// A new handler over the same file sees the state.
	srv2 := start(t, cfg, api.Deps{Store: newMemStore(t)})
	get(t, srv2.URL+"/api/expected-schema/g1").want(t, 404)
	if g := get(t, srv2.URL+"/api/expected-schema/my%2Fgraph%20x").want(t, 200).object(t); g["schema_id"] != "def456" {
		t.Errorf("reloaded entry %v", g)
	}
}

func TestExpectedSchemaCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "expected_schemas.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := start(t, api.Config{ExpectedSchemasPath: path}, api.Deps{Store: newMemStore(t)})
	if body := strings.TrimSpace(string(get(t, srv.URL+"/api/expected-schema").want(t, 200).body)); body != "[]" {
		t.Errorf("list after corrupt file = %s", body)
	}
	do(t, http.MethodPut, srv.URL+"/api/expected-schema/g", strings.NewReader(`{"schema_id":"s"}`)).want(t, 200)
	raw, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(raw), `"schema_id": "s"`) {
		t.Errorf("file after PUT: %s, %v", raw, err)
	}
}

func TestAuth(t *testing.T) {
	st := newMemStore(t)
	newRecBuilder(t, st).add(0, "t1", 1, testNow, graphStart("g"))
	srv := start(t, api.Config{AuthToken: "s3cret", AdminToken: "adm1n", Assets: webui.Assets()},
		api.Deps{Store: st})

	for _, p := range []string{"/api/runs", "/api/runs/t1", "/api/runs/t1/records", "/api/expected-schema", "/api/nope"} {
		res := get(t, srv.URL+p).want(t, 401)
		if res.object(t)["error"] == nil || res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without JSON error or challenge: %s", p, res.body)
		}
		get(t, srv.URL+p, "Authorization", "Bearer wrong").want(t, 401)
		get(t, srv.URL+p+"?token=wrong").want(t, 401)
	}
	get(t, srv.URL+"/api/runs", "Authorization", "Bearer s3cret").want(t, 200)
	get(t, srv.URL+"/api/runs?token=s3cret").want(t, 200)
	get(t, srv.URL+"/api/runs/t1/records?token=s3cret").want(t, 200)
	get(t, srv.URL+"/api/runs", "Authorization", "Bearer adm1n").want(t, 200)
	do(t, http.MethodPut, srv.URL+"/api/expected-schema/g", strings.NewReader(`{"schema_id":"s"}`)).want(t, 401)
	do(t, http.MethodPut, srv.URL+"/api/expected-schema/g", strings.NewReader(`{"schema_id":"s"}`),
		"Authorization", "Bearer s3cret").want(t, 200)
	get(t, srv.URL+"/api/nope?token=s3cret").want(t, 404)

	for _, p := range []string{"/health", "/version", "/metrics", "/", "/runs/t1"} {
		get(t, srv.URL+p).want(t, 200)
	}
}

func TestStaticPlaceholder(t *testing.T) {
	if webui.Built {
		t.Skip("built with -tags webui: the placeholder is not embedded")
	}
	srv := start(t, api.Config{Assets: webui.Assets()}, api.Deps{Store: newMemStore(t)})
	res := get(t, srv.URL+"/").want(t, 200)
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	for _, s := range []string{"-tags webui", "npm ci", "make build", `href="/health"`, `href="/version"`, `href="/metrics"`, `href="/api/runs"`} {
		if !strings.Contains(string(res.body), s) {
			t.Errorf("placeholder lacks %q", s)
		}
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index Cache-Control %q", cc)
	}
	// SPA fallback for client routes; real 404 for assets and file-like paths.
	if spa := get(t, srv.URL+"/runs/some-thread").want(t, 200); string(spa.body) != string(res.body) {
		t.Error("SPA fallback did not serve index.html")
	}
	get(t, srv.URL+"/index.html").want(t, 200)
	get(t, srv.URL+"/assets/x").want(t, 404)
	get(t, srv.URL+"/assets/app-1234.js").want(t, 404)
	get(t, srv.URL+"/favicon.ico").want(t, 404)
	get(t, srv.URL+"/ws").want(t, 404)
	do(t, http.MethodPost, srv.URL+"/", nil).want(t, 405)
	if head := do(t, http.MethodHead, srv.URL+"/", nil).want(t, 200); len(head.body) != 0 {
		t.Error("HEAD returned a body")
	}
}

func TestStaticBuiltAssets(t *testing.T) {
	assets := fstest.MapFS{
		"index.html":             {Data: []byte("<!doctype html><title>app</title>")},
		"assets/app-1a2b3c.js":   {Data: []byte("console.log(1)")},
		"assets/app-1a2b3c.css":  {Data: []byte("body{}")},
		"assets/font-9f.woff2":   {Data: []byte("wOF2")},
		"favicon.svg":            {Data: []byte("<svg/>")},
		"docs/index.html":        {Data: []byte("<p>docs</p>")},
		"assets/sub/logo-77.png": {Data: []byte("\x89PNG\r\n\x1a\n")},
	}
	srv := start(t, api.Config{Assets: assets}, api.Deps{Store: newMemStore(t)})
	cases := []struct {
		path, ctype, cache string
	}{
		{"/assets/app-1a2b3c.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/assets/app-1a2b3c.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/assets/font-9f.woff2", "font/woff2", "public, max-age=31536000, immutable"},
		{"/assets/sub/logo-77.png", "image/png", "public, max-age=31536000, immutable"},
		{"/favicon.svg", "image/svg+xml", "no-cache"},
		{"/", "text/html; charset=utf-8", "no-cache"},
		{"/docs/", "text/html; charset=utf-8", "no-cache"},
	}
	for _, c := range cases {
		res := get(t, srv.URL+c.path).want(t, 200)
		if ct := res.header.Get("Content-Type"); ct != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, ct, c.ctype)
		}
		if cc := res.header.Get("Cache-Control"); cc != c.cache {
			t.Errorf("%s: Cache-Control %q, want %q", c.path, cc, c.cache)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", c.path)
		}
	}
	// ETag revalidation.
	res := get(t, srv.URL+"/assets/app-1a2b3c.js")
	etag := res.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	get(t, srv.URL+"/assets/app-1a2b3c.js", "If-None-Match", etag).want(t, 304)
	// API routes take precedence over static files and the fallback.
	if r := get(t, srv.URL+"/health").want(t, 200); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Error("/health not served by the API")
	}
	get(t, srv.URL+"/assets/missing-1.js").want(t, 404)
	if r := get(t, srv.URL+"/graph/x/y").want(t, 200); !strings.Contains(string(r.body), "<title>app</title>") {
		t.Error("SPA fallback did not serve index.html")
	}
}

// TestExpectedSchemaConcurrent: parallel PUTs all land in memory and on
// disk (run with -race).
func TestExpectedSchemaConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "expected_schemas.json")
	srv := start(t, api.Config{ExpectedSchemasPath: path}, api.Deps{Store: newMemStore(t)})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 5 {
				g := fmt.Sprintf("g-%d-%d", w, i)
				req, err := http.NewRequest(http.MethodPut, srv.URL+"/api/expected-schema/"+g,
					strings.NewReader(`{"schema_id":"`+g+`"}`))
				if err != nil {
					t.Error(err)
					return
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("PUT %s: %d", g, res.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk map[string]api.SchemaEntry
	if err := json.Unmarshal(raw, &onDisk); err != nil || len(onDisk) != 20 {
		t.Fatalf("file has %d entries: %v", len(onDisk), err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf(".tmp left behind: %v", err)
	}
}
