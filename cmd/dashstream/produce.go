package main

import (
	"context"
	"errors"
	"io"
)

// STUB: replaced by the producer implementation.
func runProduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}
