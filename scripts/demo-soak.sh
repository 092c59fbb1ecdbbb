#!/usr/bin/env bash
# Demo soak: runs `dashstream demo` (embedded broker, synthetic producer,
# server) with its own defaults for DURATION (default 30m), sampling every
# INTERVAL seconds the store file, the embedded broker's log, the process's
# RSS and the records the store retains. Then it stops the demo with
# SIGTERM and checks that it exited 0 within 10 s. Writes demo.csv,
# demo.json (the verdict) and demo.png to OUT (default ./demo-soak-out).
#
# The demo's caps (DECISIONS D1: 256 MiB retained, 512 MiB file cap, 64 MiB
# of broker log per partition) take hours to reach at the default 2 runs/s,
# so the script produces faster (RUNS_PER_SECOND, default 20, about 2 800
# records/s) to reach them in the first minutes; the caps are the demo's
# own. Verdict: after the warm-up (the first 40 % of the run), each of file
# size, broker log and RSS must stay within 10 % (plus a growth step: 4 MiB
# file, 8 MiB broker segment, 16 MiB RSS) of its maximum in the first half
# of the remaining samples.
#
#   scripts/demo-soak.sh             # 30 minutes
#   scripts/demo-soak.sh 5m          # shorter
#   RUNS_PER_SECOND=2 scripts/demo-soak.sh 30m
set -euo pipefail
DURATION=${1:-30m}
RUNS_PER_SECOND=${RUNS_PER_SECOND:-20}
INTERVAL=${INTERVAL:-15}
ADDR=${ADDR:-127.0.0.1:3912}
KAFKA_ADDR=${KAFKA_ADDR:-127.0.0.1:19192}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/demo-soak-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DATA=${DATA:-$OUT/data}

case $DURATION in
*h) secs=$((${DURATION%h} * 3600)) ;;
*m) secs=$((${DURATION%m} * 60)) ;;
*s) secs=${DURATION%s} ;;
*) secs=$DURATION ;;
esac

cd "$ROOT"
make -s build
rm -rf "$DATA"
bin/dashstream demo --addr "$ADDR" --kafka-addr "$KAFKA_ADDR" --data-dir "$DATA" \
	--runs-per-second "$RUNS_PER_SECOND" >"$OUT/demo.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT

csv=$OUT/demo.csv
echo "t,file_bytes,kafka_bytes,rss_bytes,store_records" >"$csv"
start=$(date +%s)
while :; do
	sleep "$INTERVAL"
	kill -0 $pid 2>/dev/null || {
		echo "demo-soak: the demo exited early; see $OUT/demo.log" >&2
		exit 1
	}
	t=$(($(date +%s) - start))
	file=$(stat -c %s "$DATA/dashstream.db" 2>/dev/null || echo 0)
	kafka=$(du -sb "$DATA/kafka" 2>/dev/null | cut -f1)
	rss=$(awk '/^VmRSS:/ {print $2 * 1024}' /proc/$pid/status)
	recs=$(curl -fsS "http://$ADDR/health" | sed -n 's/.*"store":{[^}]*"records":\([0-9]*\).*/\1/p')
	echo "$t,$file,${kafka:-0},$rss,${recs:-0}" >>"$csv"
	awk -v t="$t" -v s="$secs" -v f="$file" -v k="${kafka:-0}" -v r="$rss" -v n="${recs:-0}" 'BEGIN {
		printf "demo-soak: %4ds/%ds  file %5.1f MiB  broker log %5.1f MiB  RSS %5.1f MiB  records %s\n",
			t, s, f / 2^20, k / 2^20, r / 2^20, n }' >&2
	[ "$t" -ge "$secs" ] && break
done

trap - EXIT
stopped=$(date +%s%N)
kill -TERM $pid
set +e
wait $pid
code=$?
set -e
took=$(awk -v a="$stopped" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')

# Verdict over the samples after the warm-up, split in halves.
awk -F, -v code="$code" -v took="$took" -v warm=0.4 -v secs="$secs" '
NR == 1 { next }
{ t[n] = $1; f[n] = $2; k[n] = $3; r[n] = $4; n++ }
END {
	from = 0; while (from < n && t[from] < warm * secs) from++
	mid = from + int((n - from) / 2)
	split("file kafka rss", names, " ")
	slack["file"] = 4 * 2^20; slack["kafka"] = 8 * 2^20; slack["rss"] = 16 * 2^20
	ok = (n - from >= 4) && code == 0 && took <= 10
	printf "{\n  \"warmup_seconds\": %d,\n  \"samples\": %d,\n", warm * secs, n
	for (j = 1; j <= 3; j++) {
		name = names[j]; a = 0; b = 0
		for (i = from; i < n; i++) {
			v = (name == "file") ? f[i] : (name == "kafka") ? k[i] : r[i]
			if (i < mid) { if (v > a) a = v } else { if (v > b) b = v }
		}
		flat = b <= a * 1.1 + slack[name]
		ok = ok && flat
		printf "  \"%s\": {\"first_half_max\": %d, \"second_half_max\": %d, \"flat\": %s},\n", name, a, b, flat ? "true" : "false"
	}
	printf "  \"exit_code\": %d,\n  \"sigterm_seconds\": %.2f,\n  \"ok\": %s\n}\n", code, took, ok ? "true" : "false"
}' "$csv" >"$OUT/demo.json"
cat "$OUT/demo.json"

(cd scripts/soakchart && go run . -in "$csv" -out "$OUT/demo.png" -json "$OUT/demo.json" \
	-title "dashstream demo, $RUNS_PER_SECOND runs/s, demo caps")
echo "chart: $OUT/demo.png"
if grep -q '"ok": true' "$OUT/demo.json"; then
	echo "demo-soak: OK (file, broker log and RSS levelled off; SIGTERM exit 0 in ${took%.*}s)"
else
	echo "demo-soak: NOT OK: see $OUT/demo.json" >&2
	exit 1
fi
