#!/bin/sh
# Soak: constant load through `dashstream serve` (fsync on) with retention
# active, for DURATION (default 10m; CI uses 60s). Writes soak.csv,
# soak.json and soak.png to OUT (default ./soak-out) and exits non-zero
# unless the store file size and the server's RSS levelled off after the
# warm-up.
#
#   scripts/soak.sh            # 10 minutes
#   scripts/soak.sh 60s        # CI
#   OUT=/tmp/soak scripts/soak.sh 5m --soak-rate 2000
set -eu
DURATION=${1:-10m}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/soak-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
go build -o bin/dashstream ./cmd/dashstream
bin/dashstream bench --soak "$DURATION" --out "$OUT" "$@"
(cd scripts/soakchart && go run . -in "$OUT/soak.csv" -out "$OUT/soak.png" -json "$OUT/soak.json")
echo "chart: $OUT/soak.png"
if grep -q '"ok": true' "$OUT/soak.json"; then
	echo "soak: OK (file size and RSS levelled off after the warm-up)"
else
	echo "soak: NOT OK: see $OUT/soak.json" >&2
	exit 1
fi
