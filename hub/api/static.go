package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Cache policies of static files. Files under /assets/ carry a content
// hash in their name (the UI build emits them so) and never change;
// everything else (index.html, favicon, …) is revalidated by ETag.
const (
	cacheImmutable   = "public, max-age=31536000, immutable"
	cacheRevalidate  = "no-cache"
	indexFile        = "index.html"
	hashedAssetsPath = "/assets/"
)

// staticFiles serves the UI from an fs.FS with a single-page-app fallback.
type staticFiles struct {
	fsys fs.FS

	mu    sync.Mutex
	etags map[string]string // file name → strong ETag of its content
}

func newStaticFiles(fsys fs.FS) *staticFiles {
	return &staticFiles{fsys: fsys, etags: map[string]string{}}
}

// serveStatic serves GET/HEAD of anything the other routes do not claim:
// the file if it exists; index.html for "/", directories and unknown paths
// without a file extension (client-side routes); 404 otherwise (including
// everything under /assets/ and /ws).
func (s *server) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	st := s.static
	if st.fsys == nil {
		http.NotFound(w, r)
		return
	}
	upath := path.Clean("/" + r.URL.Path)
	name := strings.TrimPrefix(upath, "/")
	if name == "" {
		name = indexFile
	}
	if st.serveFile(w, r, name) {
		return
	}
	if st.serveFile(w, r, path.Join(name, indexFile)) {
		return
	}
	if strings.HasPrefix(upath+"/", hashedAssetsPath) || upath == "/ws" || path.Ext(upath) != "" {
		http.NotFound(w, r)
		return
	}
	if !st.serveFile(w, r, indexFile) {
		http.NotFound(w, r)
	}
}

// serveFile serves one regular file; false if it does not exist.
func (st *staticFiles) serveFile(w http.ResponseWriter, r *http.Request, name string) bool {
	if !fs.ValidPath(name) {
		return false
	}
	data, err := fs.ReadFile(st.fsys, name)
	if err != nil {
		return false // missing, a directory or unreadable: fall through
	}
	h := w.Header()
	ctype := contentType(name)
	if ctype == "" {
		ctype = http.DetectContentType(data)
	}
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix("/"+name, hashedAssetsPath) {
		h.Set("Cache-Control", cacheImmutable)
	} else {
		h.Set("Cache-Control", cacheRevalidate)
	}
	h.Set("ETag", st.etag(name, data))
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	return true
}

// etag returns the cached strong ETag of a file's content.
func (st *staticFiles) etag(name string, data []byte) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if e, ok := st.etags[name]; ok {
		return e
	}
	sum := sha256.Sum256(data)
	e := `"` + hex.EncodeToString(sum[:12]) + `"`
	st.etags[name] = e
	return e
}

// extraTypes covers extensions a minimal system may not know.
var extraTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".html":  "text/html; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ico":   "image/x-icon",
	".wasm":  "application/wasm",
	".txt":   "text/plain; charset=utf-8",
}

// contentType returns the MIME type for name's extension, "" if unknown.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := extraTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext)
}
