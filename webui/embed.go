//go:build webui

package webui

import (
	"embed"
	"io/fs"
)

// Built reports whether the real UI (webui/dist, built by npm) is embedded.
const Built = true

//go:embed all:dist
var dist embed.FS

// Assets returns the built UI, rooted at dist (index.html at the top).
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid, embedded directory name
	}
	return sub
}
