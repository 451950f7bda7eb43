#!/usr/bin/env bash
# Side-by-side: N static targets served by nginx-light (one port each,
# SERIES series per target), scraped every INTERVAL by the real Prometheus
# and by argus with the same scrape config, for DURATION seconds. Prints
# CPU-seconds and peak RSS of each and the argus/Prometheus ratios.
#
# With RULES=FILE (a Prometheus rule file, e.g. benches/data/rules.yml),
# both then load the same rules with a config reload and run DURATION
# seconds more; the script prints the CPU the rules added (CPU of the
# second window minus the first) and the longest group evaluation each
# reported while polling once a second.
#
# With vmagent on the PATH (Debian victoria-metrics), it scrapes the same
# targets too, remote-writing to a sink on 127.0.0.1 that answers 204.
#
# With CURVE=SECONDS, the RSS and the CPU-seconds used so far of each are
# sampled every SECONDS and printed as curves at the end (is memory flat
# once the store fills? does the CPU a second change after the first
# chunks are cut?).
#
# With RESTART=1, Prometheus and argus are then restarted on the data they
# gathered, after a kill -9 and after a clean stop, one at a time, and the
# seconds until each answers /-/ready are printed (log replay beside log
# replay).
#
# Needs: nginx (Debian nginx-light), prometheus (Debian package), python3.
# With ARGUS_BIN=PATH that binary runs instead of this tree's release build;
# with NO_VMAGENT=1 vmagent is left out. With ARGUS_B=PATH a second argus
# (another build, with ARGUS_B_ENV="VAR=value ..." in its environment and
# ARGUS_B_ARGS="--flag=value ..." on its command line; ARGUS_ARGS does
# the same for the first) scrapes the same targets beside the first, for A/B figures from one run;
# run each A/B twice with the two swapped, as the one started second
# measures a few percent more CPU than the first even on the same binary.
#
# Usage: [RULES=FILE] [CURVE=30] [RESTART=1] [ARGUS_BIN=PATH] [ARGUS_B=PATH] [NO_VMAGENT=1] benches/compare/run.sh [N] [SERIES] [DURATION] [INTERVAL]
set -euo pipefail
N=${1:-50}
SERIES=${2:-2000}
DURATION=${3:-60}
INTERVAL=${4:-1s}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT

command -v nginx >/dev/null || { echo "nginx not found (apt-get install nginx-light)"; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus not found (apt-get install prometheus)"; exit 1; }

# ARGUS_BIN runs another build (an A/B against an older commit).
if [ -z "${ARGUS_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
fi
ARGUS="${ARGUS_BIN:-$ROOT/target/release/argus}"

# Below the kernel's ephemeral range (32768 up), where the TIME_WAIT
# sockets of an earlier run's scrapes would hold some of the ports.
BASE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(20000 + s.getsockname()[1] % 12000)')
mkdir -p "$WORK/www" "$WORK/nginx"
python3 - "$WORK/www/metrics" "$SERIES" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
out = []
i = 0
buckets = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "+Inf"]
# Histograms: 13 series per label set.
h = 0
while i + 13 <= n * 6 // 10:
    name = f"http_request_duration_seconds_{h % 10}"
    if h < 10:
        out.append(f"# HELP {name} Request duration.\n# TYPE {name} histogram")
    lbl = f'handler="/api/v1/resource/{h}",method="GET",code="200"'
    c = 0
    for j, b in enumerate(buckets):
        c += (h * 7 + j) % 13
        out.append(f'{name}_bucket{{{lbl},le="{b}"}} {c}')
    out.append(f"{name}_sum{{{lbl}}} {c * 0.37:.3f}")
    out.append(f"{name}_count{{{lbl}}} {c}")
    i += 13
    h += 1
out.append("# HELP app_events_total Events.\n# TYPE app_events_total counter")
k = 0
while i < n:
    out.append(f'app_events_total{{kind="k{k % 50}",shard="{k}",pod="app-5f7d8c9b4-{k:05d}"}} {k * 3 + 1}')
    i += 1
    k += 1
open(path, "w").write("\n".join(out) + "\n")
PY

{
  echo "worker_processes 1; pid $WORK/nginx.pid; error_log $WORK/nginx/error.log;"
  echo "events { worker_connections 1024; }"
  echo "http { access_log off; default_type text/plain;"
  echo "  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;"
  for i in $(seq 0 $((N - 1))); do
    echo "  server { listen 127.0.0.1:$((BASE_PORT + i)); location /metrics { alias $WORK/www/metrics; } }"
  done
  echo "}"
} > "$WORK/nginx.conf"
# nginx workers run as an unprivileged user and must be able to read the file.
chmod -R a+rX "$WORK"
nginx -c "$WORK/nginx.conf" -p "$WORK/nginx"

TARGETS=$(for i in $(seq 0 $((N - 1))); do printf "'127.0.0.1:%d'," $((BASE_PORT + i)); done)
cat > "$WORK/scrape.yml" <<YML
global:
  scrape_interval: $INTERVAL
  scrape_timeout: $INTERVAL
scrape_configs:
  - job_name: bench
    static_configs:
      - targets: [${TARGETS%,}]
YML

P_PORT=$((BASE_PORT - 2)); A_PORT=$((BASE_PORT - 1))
start_prom() {
  prometheus --config.file="$WORK/scrape.yml" --web.listen-address="127.0.0.1:$P_PORT" \
    --storage.tsdb.path="$WORK/prom" >>"$WORK/prom.log" 2>&1 &
  PROM=$!
}
start_argus() {
  "$ARGUS" run --config "$WORK/scrape.yml" --web.listen-address "127.0.0.1:$A_PORT" \
    --storage.path "$WORK/argus" --log.level warn ${ARGUS_ARGS:-} >>"$WORK/argus.log" 2>&1 &
  ARG=$!
}
start_prom
start_argus
ARGB=""
if [ -n "${ARGUS_B:-}" ]; then
  env ${ARGUS_B_ENV:-} "$ARGUS_B" run --config "$WORK/scrape.yml" --web.listen-address "127.0.0.1:$((BASE_PORT - 5))" \
    --storage.path "$WORK/argus_b" --log.level warn ${ARGUS_B_ARGS:-} >"$WORK/argus_b.log" 2>&1 &
  ARGB=$!
fi
VMA=""
if [ -z "${NO_VMAGENT:-}" ] && command -v vmagent >/dev/null; then
  SINK_PORT=$((BASE_PORT - 3)); V_PORT=$((BASE_PORT - 4))
  python3 - "$SINK_PORT" >"$WORK/sink.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
  vmagent -promscrape.config="$WORK/scrape.yml" -httpListenAddr="127.0.0.1:$V_PORT" \
    -remoteWrite.url="http://127.0.0.1:$SINK_PORT/api/v1/write" \
    -remoteWrite.tmpDataPath="$WORK/vmagent" -loggerLevel=ERROR >"$WORK/vmagent.log" 2>&1 &
  VMA=$!
fi

cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
if [ -n "${CURVE:-}" ]; then
  CURVE_OUT=$(printf "%-8s %12s %12s %12s %12s" "t_s" "prometheus" "argus" "vmagent" "${ARGB:+argus_b}")
  CPU_OUT=$CURVE_OUT
  for t in $(seq "$CURVE" "$CURVE" "$DURATION"); do
    sleep "$CURVE"
    CURVE_OUT+=$(printf "\n%-8s %12s %12s %12s %12s" "$t" "$(rss $PROM)" "$(rss $ARG)" "${VMA:+$(rss $VMA)}" "${ARGB:+$(rss $ARGB)}")
    CPU_OUT+=$(printf "\n%-8s %12s %12s %12s %12s" "$t" "$(cpu $PROM)" "$(cpu $ARG)" "${VMA:+$(cpu $VMA)}" "${ARGB:+$(cpu $ARGB)}")
  done
else
  sleep "$DURATION"
fi

if [ -n "${RULES:-}" ]; then
  # Window 1: scraping only (after the first DURATION of warm-up).
  P0=$(cpu $PROM); A0=$(cpu $ARG)
  sleep "$DURATION"
  P1=$(cpu $PROM); A1=$(cpu $ARG)
  cp "$RULES" "$WORK/rules.yml"
  printf 'rule_files: [rules.yml]\n' >> "$WORK/scrape.yml"
  sed -i "s/^global:/global:\n  evaluation_interval: $INTERVAL/" "$WORK/scrape.yml"
  kill -HUP $PROM $ARG
  sleep 10
  # Window 2: scraping and rules; the longest group evaluation seen.
  P2=$(cpu $PROM); A2=$(cpu $ARG)
  PMAX=0; AMAX=0
  for _ in $(seq 1 "$DURATION"); do
    sleep 1
    PD=$(curl -s "http://127.0.0.1:$P_PORT/metrics" | awk '/^prometheus_rule_group_last_duration_seconds/ {print $2}' | sort -g | tail -1)
    AD=$(curl -s "http://127.0.0.1:$A_PORT/metrics" | awk '/^argus_rule_group_last_duration_seconds/ {print $2}' | sort -g | tail -1)
    PMAX=$(python3 -c "print(max($PMAX, float('${PD:-0}')))"); AMAX=$(python3 -c "print(max($AMAX, float('${AD:-0}')))")
  done
  P3=$(cpu $PROM); A3=$(cpu $ARG)
  NRULES=$(grep -c 'record:\|alert:' "$RULES")
  RULES_OUT=$(python3 - <<PY
pr = ($P3 - $P2) - ($P1 - $P0); ar = ($A3 - $A2) - ($A1 - $A0)
print(f"rules: $NRULES rules every $INTERVAL over {int('$N') * int('$SERIES')} scraped series, {$DURATION}s windows")
print(f"{'':<12} {'rule_cpu_s':>12} {'max_group_eval_ms':>18}")
print(f"{'prometheus':<12} {pr:12.2f} {$PMAX * 1000:18.1f}")
print(f"{'argus':<12} {ar:12.2f} {$AMAX * 1000:18.1f}")
print(f"ratio argus/prometheus: rule_cpu={ar / pr if pr > 0 else float('nan'):.3f}")
PY
)
fi
hwm() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
count() { curl -s "http://127.0.0.1:$1/api/v1/series?match[]=%7Bjob%3D%22bench%22%7D" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))'; }
PC=$(cpu $PROM); PR=$(hwm $PROM); AC=$(cpu $ARG); AR=$(hwm $ARG)
PS=$(count $P_PORT); AS=$(count $A_PORT)
ERR=$(curl -s "http://127.0.0.1:$A_PORT/api/v1/targets" | python3 -c 'import json,sys; e={t["lastError"] for t in json.load(sys.stdin)["data"]["activeTargets"]} - {""}; print("; ".join(sorted(e))[:300])')
[ -z "$ERR" ] || echo "WARNING: scrape errors in argus: $ERR"
echo "targets=$N series_per_target=$SERIES interval=$INTERVAL duration=${DURATION}s"
printf "%-12s %12s %14s %10s\n" "" "cpu_seconds" "peak_rss_MiB" "series"
printf "%-12s %12s %14s %10s\n" prometheus "$PC" "$PR" "$PS"
printf "%-12s %12s %14s %10s\n" argus "$AC" "$AR" "$AS"
if [ -n "$ARGB" ]; then
  BC=$(cpu $ARGB); BR=$(hwm $ARGB)
  printf "%-12s %12s %14s %10s\n" argus_b "$BC" "$BR" "-"
  python3 -c "print(f'ratio argus/argus_b: cpu={$AC/$BC:.3f} rss={$AR/$BR:.3f}')"
fi
if [ -n "$VMA" ]; then
  VC=$(cpu $VMA); VR=$(hwm $VMA)
  printf "%-12s %12s %14s %10s\n" vmagent "$VC" "$VR" "-"
  python3 -c "print(f'ratio argus/vmagent: cpu={$AC/$VC:.3f} rss={$AR/$VR:.3f}')"
fi
python3 -c "print(f'ratio argus/prometheus: cpu={$AC/$PC:.3f} rss={$AR/$PR:.3f}')"
# Where argus says its memory goes (bytes), to set beside the peak RSS.
echo "argus memory gauges (MB):"
curl -s "http://127.0.0.1:$A_PORT/metrics" | awk '/^argus_(head_memory|wal_buffer|scrape_cache)_bytes/ {printf "  %-50s %8.1f\n", $1, $2 / 1e6}'
[ -z "${CURVE_OUT:-}" ] || { echo "RSS MiB over time:"; echo "$CURVE_OUT"; echo "CPU-seconds used by then:"; echo "$CPU_OUT"; }
if [ -n "${RESTART:-}" ]; then
  # Seconds from start until /-/ready answers 200 (both answer 503 while
  # they replay their log), after a kill -9 and after a clean stop, each
  # on the data it gathered above.
  ready_after() { # port
    local t0; t0=$(date +%s.%N)
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/-/ready")" = 200 ]; do sleep 0.05; done
    python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')"
  }
  restart() { # signal
    kill "-$1" $PROM $ARG; wait $PROM $ARG 2>/dev/null || true
    start_prom; P_T=$(ready_after $P_PORT)
    start_argus; A_T=$(ready_after $A_PORT)
    printf "%-12s %12s %12s\n" "$2" "$P_T" "$A_T"
  }
  echo "seconds to ready after a restart on the data above:"
  printf "%-12s %12s %12s\n" "" prometheus argus
  restart KILL "kill -9"
  restart TERM "clean stop"
fi
[ -z "${RULES_OUT:-}" ] || echo "$RULES_OUT"
