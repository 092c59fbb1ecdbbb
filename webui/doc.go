// Package webui owns the browser app (its TypeScript source and build) and
// the embedded assets the binary serves at /.
package webui
