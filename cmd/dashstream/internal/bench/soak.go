package bench

import (
	"context"
	"errors"
	"io"
	"time"
)

// SoakOptions configure RunSoak.
type SoakOptions struct {
	Duration       time.Duration
	OutDir         string
	Rate           float64
	RetentionBytes string
	Dir            string
	Exe            string
	Progress       io.Writer
}

// RunSoak runs the soak.
func RunSoak(ctx context.Context, o SoakOptions, stdout io.Writer) error {
	return errors.New("not yet")
}
