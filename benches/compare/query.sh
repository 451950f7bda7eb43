#!/usr/bin/env bash
# Side-by-side PromQL latency: the same data set (tests/common/om_data.rs)
# backfilled into Prometheus (promtool tsdb create-blocks-from openmetrics)
# and into argus (argus import openmetrics), then each query of the PromQL
# issue's targets run RUNS times against both over HTTP at the data's end
# time. Prints median latencies and the argus/Prometheus ratio.
#
# Needs: prometheus and promtool (Debian package prometheus), curl, python3.
# Usage: benches/compare/query.sh [RUNS]
set -euo pipefail
RUNS=${1:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
command -v prometheus >/dev/null || { echo "prometheus not found (apt-get install prometheus)"; exit 1; }

(cd "$ROOT" && cargo build --release --quiet && cargo build --release --quiet --example gen_openmetrics)
ARGUS="$ROOT/target/release/argus"
END=$(( $(date +%s) / 60 * 60 - 600 ))
# END SPAN STEP COUNTERS HISTOGRAMS GAUGES SLO_DAYS SLO_SERIES
"$ROOT/target/release/examples/gen_openmetrics" "$END" 1800 15 10000 100 0 30 10 > "$WORK/data.om"
mkdir -p "$WORK/prom"
promtool tsdb create-blocks-from openmetrics "$WORK/data.om" "$WORK/prom" >/dev/null
"$ARGUS" import openmetrics "$WORK/data.om" --storage.path "$WORK/argus" >/dev/null
rm "$WORK/data.om"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
P_PORT=$PORT; A_PORT=$((PORT + 1))
printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' > "$WORK/empty.yml"
prometheus --config.file="$WORK/empty.yml" --web.listen-address="127.0.0.1:$P_PORT" \
  --storage.tsdb.path="$WORK/prom" --storage.tsdb.retention.time=60d >"$WORK/prom.log" 2>&1 &
"$ARGUS" run --config "$WORK/empty.yml" --web.listen-address "127.0.0.1:$A_PORT" \
  --storage.path "$WORK/argus" --storage.retention 60d --log.level warn >"$WORK/argus.log" 2>&1 &
for p in $P_PORT $A_PORT; do
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$p/-/ready" >/dev/null && break; sleep 0.5; done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
run() { # port query -> median seconds
  for _ in $(seq 1 3); do curl -s -o /dev/null "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" --data-urlencode "time=$END"; done
  for _ in $(seq 1 "$RUNS"); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" --data-urlencode "time=$END"
  done | median
}
printf "%-40s %12s %12s %8s\n" query prometheus_ms argus_ms ratio
while IFS='|' read -r name q; do
  P=$(run $P_PORT "$q"); A=$(run $A_PORT "$q")
  python3 -c "print(f'{\"$name\":<40} {$P*1000:12.2f} {$A*1000:12.2f} {$A/$P:8.3f}')"
done <<'Q'
sum by (job) (rate[5m]), 10k series|sum by (job) (rate(http_requests_total[5m]))
histogram_quantile, 100 x 20 buckets|histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))
error ratio over 30d at 1m|sum(rate(slo_errors_total[30d])) / sum(rate(slo_requests_total[30d]))
Q
