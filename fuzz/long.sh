#!/usr/bin/env bash
# Long fuzz runs: each named target (all by default) runs until it has done
# 10 million executions or 30 CPU-minutes, whichever comes first, in rounds
# that resume from its corpus. A finding stops that target. One line per
# target is appended to fuzz/long-results.tsv (not committed):
#   target  executions  cpu_seconds  rounds  result
# Needs the targets built first: RUSTC_BOOTSTRAP=1 cargo fuzz build
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$here/target/x86_64-unknown-linux-gnu/release"
want_execs=${FUZZ_EXECS:-10000000}
want_cpu=${FUZZ_CPU_SECONDS:-1800}
# Per-input limit in wall seconds; raise it when the runs share the cores
# with builds at a higher priority (a starved run is not a slow input).
per_input=${FUZZ_TIMEOUT:-10}
out="$here/long-results.tsv"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls "$here/fuzz_targets" | sed 's/\.rs$//'))

for t in "${targets[@]}"; do
  execs=0 cpu=0 rounds=0 result=clean
  extra=()
  # Rule and unit-test seeds run to 40 KB; shorter inputs keep the rate up.
  case $t in rule_file|unit_test_file) extra=(-max_len=8192) ;; esac
  mkdir -p "$here/corpus/$t" "$here/artifacts/$t"
  while [ "$execs" -lt "$want_execs" ] && [ "$cpu" -lt "$want_cpu" ]; do
    rounds=$((rounds + 1))
    log="$here/artifacts/$t/long-round-$rounds.log"
    left=$((want_cpu - cpu)); [ $left -lt 60 ] && left=60
    "$bin/$t" "$here/corpus/$t" \
      -artifact_prefix="$here/artifacts/$t/" -max_total_time=$left \
      -runs=$((want_execs - execs)) -rss_limit_mb=2048 -timeout=$per_input \
      -print_final_stats=1 "${extra[@]}" > "$log" 2>&1 &
    pid=$!
    # CPU is read from the kernel's accounting of the process every 5 s
    # (wall time overstates it when other work competes for the cores; the
    # last seconds not sampled make the figure an underestimate).
    peak=0
    while kill -0 $pid 2>/dev/null; do
      c=$(awk '{ printf "%d", ($14 + $15) / 100 }' "/proc/$pid/stat" 2>/dev/null || echo $peak)
      [ "$c" -gt "$peak" ] && peak=$c
      sleep 5
    done
    wait $pid; rc=$?
    n=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    execs=$((execs + ${n:-0}))
    cpu=$((cpu + peak))
    if [ $rc -ne 0 ]; then result="FOUND (exit $rc, see $log)"; break; fi
    [ -z "$n" ] && { result="no stats (see $log)"; break; }
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$execs" "$cpu" "$rounds" "$result" "$(date -u +%FT%TZ)" | tee -a "$out"
done
