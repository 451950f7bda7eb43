#!/usr/bin/env bash
# Bytes on disk per sample, side by side: one OpenMetrics file of SERIES
# series × HOURS at 15 s (the mix of benches/restart.rs: half counters with
# small steps, 40% constant gauges, 10% gauges with three significant
# digits) imported into argus (`argus import openmetrics`), Prometheus
# (`promtool tsdb create-blocks-from openmetrics`) and, when installed,
# VictoriaMetrics (`/api/v1/import/prometheus`, then a forced flush and
# merge). Prints each one's bytes on disk and bytes per sample.
#
# Needs: promtool (Debian prometheus), python3; victoria-metrics optional.
# Usage: benches/compare/disk.sh [SERIES=10000] [HOURS=12]
set -euo pipefail
SERIES=${1:-10000}
HOURS=${2:-12}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
command -v promtool >/dev/null || { echo "promtool not found (apt-get install prometheus)"; exit 1; }
(cd "$ROOT" && cargo build --release --quiet)
ARGUS="$ROOT/target/release/argus"

python3 - "$WORK/data.om" "$SERIES" "$HOURS" <<'PY'
import sys, time
path, n, hours = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
steps = hours * 240
end = int(time.time()) // 15 * 15 - 3600
start = end - (steps - 1) * 15
counters = [0] * n
with open(path, "w", buffering=1 << 22) as f:
    f.write("# TYPE node_metric gauge\n")
    for s in range(steps):
        t = start + s * 15
        lines = []
        for i in range(n):
            k = i % 10
            if k <= 4:
                counters[i] += (i + s) % 5
                v = counters[i]
            elif k <= 8:
                v = 1
            else:
                v = ((s * 7 + i) % 1000) / 10
            lines.append(f'node_metric{{instance="10.1.{i // 500 % 250}.{i % 250}:9100",device="dev{i % 8}",series="{i}"}} {v} {t}\n')
        f.write("".join(lines))
    f.write("# EOF\n")
PY
SAMPLES=$((SERIES * HOURS * 240))
"$ARGUS" import openmetrics "$WORK/data.om" --storage.path "$WORK/argus" >/dev/null
A=$(du -sb "$WORK/argus" | cut -f1)
promtool tsdb create-blocks-from openmetrics --max-block-duration=24h "$WORK/data.om" "$WORK/prom" >/dev/null
P=$(du -sb "$WORK/prom" | cut -f1)
V=""
if command -v victoria-metrics >/dev/null; then
  VPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr="127.0.0.1:$VPORT" -retentionPeriod=10y -loggerLevel=ERROR >"$WORK/vm.log" 2>&1 &
  VMP=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$VPORT/health" >/dev/null && break; sleep 0.2; done
  # The Prometheus text format's timestamps are milliseconds; streamed
  # (chunked), not read into memory first.
  grep -v '^#' "$WORK/data.om" | awk '{ $NF = $NF "000"; print }' \
    | curl -sf -X POST -T - "http://127.0.0.1:$VPORT/api/v1/import/prometheus"
  curl -sf "http://127.0.0.1:$VPORT/internal/force_flush" >/dev/null
  curl -sf "http://127.0.0.1:$VPORT/internal/force_merge" >/dev/null || true
  sleep 20
  V=$(du -sb "$WORK/vm/data" | cut -f1)
  kill $VMP
fi
echo "series=$SERIES hours=$HOURS samples=$SAMPLES"
printf "%-16s %14s %16s\n" "" "bytes" "bytes_per_sample"
printf "%-16s %14s %16s\n" argus "$A" "$(python3 -c "print(f'{$A/$SAMPLES:.3f}')")"
printf "%-16s %14s %16s\n" prometheus "$P" "$(python3 -c "print(f'{$P/$SAMPLES:.3f}')")"
if [ -n "$V" ]; then
  printf "%-16s %14s %16s\n" victoriametrics "$V" "$(python3 -c "print(f'{$V/$SAMPLES:.3f}')")"
fi
