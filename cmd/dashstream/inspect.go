package main

import (
	"context"
	"errors"
	"io"
)

// STUB: replaced by the store implementation.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}
