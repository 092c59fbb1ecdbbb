//go:build !webui

package webui

import (
	"embed"
	"io/fs"
)

// Built reports whether the real UI (webui/dist, built by npm) is embedded.
// Without the webui build tag a placeholder page explains how to build it.
const Built = false

//go:embed placeholder/index.html
var placeholder embed.FS

// Assets returns the placeholder page, rooted so index.html is at the top.
func Assets() fs.FS {
	sub, err := fs.Sub(placeholder, "placeholder")
	if err != nil {
		panic(err) // "placeholder" is a valid, embedded directory name
	}
	return sub
}
