#!/usr/bin/env bash
# Side-by-side alert routing: argus and Alertmanager 0.25 with the same
# routing (benches/notify.rs's: grouping by alertname and service, 100
# inhibition rules), driven by examples/alert_load.rs over HTTP.
#
#  1. Ingestion: 10,000 active alerts, then 200 batches of 1,000 re-posted
#     (POST /api/v2/alerts); alerts per second and CPU seconds per
#     process. argus runs with one runtime worker thread (one core).
#  2. Latency: a new alert every millisecond for 20 s (1,000 alerts/s),
#     each in its own group (group_by: ['...'], group_wait: 0s), to a
#     webhook served by the load generator; p50/p99/max from posting the
#     alert to the webhook request carrying it.
#
# Needs: alertmanager (Debian package prometheus-alertmanager), python3.
# Usage: benches/compare/alerts.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
AM=$(command -v prometheus-alertmanager || command -v alertmanager || true)
[ -n "$AM" ] || { echo "alertmanager not found (apt-get install prometheus-alertmanager)"; exit 1; }
(cd "$ROOT" && cargo build --release --quiet && cargo build --release --quiet --example alert_load)
ARGUS="$ROOT/target/release/argus"
LOAD="$ROOT/target/release/examples/alert_load"
# Each server gets one core (core 0); the load generator runs on core 1.
PIN0=""; PIN1=""
if command -v taskset >/dev/null; then PIN0="taskset -c 0"; PIN1="taskset -c 1"; fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
wait_ready() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/-/ready" >/dev/null && return; sleep 0.2; done; echo "not ready: $1"; exit 1; }

# Routing for ingestion.
python3 - "$WORK/ingest.yml" <<'PY'
import sys
s = """route:
  receiver: default
  group_by: [alertname, service]
  group_wait: 30s
  group_interval: 5m
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
    - matchers: ['team=~"db|storage"']
      receiver: db
      continue: true
    - matchers: ['severity="warning"']
      receiver: default
receivers:
  - name: default
  - name: pager
  - name: db
inhibit_rules:
"""
for i in range(100):
    s += f"""  - source_matchers: ['severity="critical"', 'alertname="Alert{i}"']
    target_matchers: ['severity="warning"']
    equal: [service]
"""
open(sys.argv[1], "w").write(s)
PY

start_pair() { # routing-file -> sets A_PORT AM_PORT A_PID AM_PID
  A_PORT=$(port); AM_PORT=$(port); CL_PORT=$(port)
  printf 'alerting:\n  routing_file: %s\n' "$1" > "$WORK/argus.yml"
  rm -rf "$WORK/a" "$WORK/am"
  TOKIO_WORKER_THREADS=1 $PIN0 "$ARGUS" run --config "$WORK/argus.yml" --web.listen-address "127.0.0.1:$A_PORT" \
    --storage.path "$WORK/a" --log.level warn >"$WORK/argus.log" 2>&1 &
  A_PID=$!
  GOMAXPROCS=1 $PIN0 "$AM" --config.file="$1" --web.listen-address="127.0.0.1:$AM_PORT" \
    --storage.path="$WORK/am" --cluster.listen-address= --log.level=warn >"$WORK/am.log" 2>&1 &
  AM_PID=$!
  wait_ready "$A_PORT"; wait_ready "$AM_PORT"
}

echo "== ingestion: 10000 active alerts, 200 batches of 1000 re-posted, 100 inhibit rules"
start_pair "$WORK/ingest.yml"
for who in argus am; do
  if [ $who = argus ]; then P=$A_PORT; PID=$A_PID; else P=$AM_PORT; PID=$AM_PID; fi
  C0=$(cpu $PID)
  R=$($PIN1 "$LOAD" ingest "http://127.0.0.1:$P" 10000 1000 200)
  C1=$(cpu $PID)
  echo "$who: $R cpu_seconds $(echo "$C1 - $C0" | bc -l)"
done
kill $A_PID $AM_PID 2>/dev/null || true; wait $A_PID $AM_PID 2>/dev/null || true

echo "== latency: 1000 alerts/s for 20 s, group_wait 0s, one group per alert"
for who in argus am; do
  HOOK=$(port)
  cat > "$WORK/latency.yml" <<YML
route:
  receiver: hook
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$HOOK/hook
        send_resolved: false
YML
  start_pair "$WORK/latency.yml"
  if [ $who = argus ]; then P=$A_PORT; PID=$A_PID; else P=$AM_PORT; PID=$AM_PID; fi
  C0=$(cpu $PID)
  R=$($PIN1 "$LOAD" latency "http://127.0.0.1:$P" 1000 20 "127.0.0.1:$HOOK")
  C1=$(cpu $PID)
  echo "$who: $R cpu_seconds $(echo "$C1 - $C0" | bc -l)"
  kill $A_PID $AM_PID 2>/dev/null || true; wait $A_PID $AM_PID 2>/dev/null || true
done
exit 0
