#!/bin/sh
# Fault harness, long variant: the same tests `make test` runs briefly
# (cmd/dashstream/internal/bench/faults_test.go), against the real
# `dashstream serve` wiring, with DASHSTREAM_LONG=1 and without the race
# detector: 100 SIGKILL cycles mid-ingest, a reconnect storm of 1 000
# clients with larger backlogs, and the stalled-client latency check (the
# healthy clients' p99 latency may change by at most 10 %, measured in the
# same run).
#
#   scripts/faults.sh                 # every fault test
#   scripts/faults.sh StalledClients  # one of them (a -run pattern)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PATTERN=${1:-.}
DASHSTREAM_LONG=1 go test -count=1 -timeout 60m -v -run "TestFault.*${PATTERN}" ./cmd/dashstream/internal/bench/
