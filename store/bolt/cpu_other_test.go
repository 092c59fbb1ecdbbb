//go:build !unix

package bolt

import "time"

func processCPU() time.Duration { return 0 }
