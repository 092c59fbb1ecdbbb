#!/bin/sh
# Benchmark suite: `dashstream bench` against same-run baselines.
#
#   scripts/bench.sh               # full run: table on stdout
#   scripts/bench.sh --quick       # CI size (about 3 minutes on 2 cores)
#   scripts/bench.sh --quick --json > bench.json
# Progress goes to stderr; the exit status is non-zero only on error, never
# on a missed target.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
go build -o bin/dashstream ./cmd/dashstream
exec bin/dashstream bench "$@"
