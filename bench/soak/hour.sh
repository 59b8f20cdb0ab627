#!/bin/sh
# bench/soak/hour.sh - the one-hour soak of issue 17, in full: `pgfault run
# --scenario soak` for MINUTES (default 60) with --history-zstd, VmRSS
# sampled every 10 s (SOAK_SAMPLE_S) into OUT_DIR/rss.tsv as it runs, then
# OUT_DIR/summary.json and summary.md: history records, operations, health
# checks, violations, peak RSS, RSS slope after warm-up (MB/min and per hour),
# end of load to verdict, history size. The run's own outputs are in
# OUT_DIR/run/, its console (timestamped) in OUT_DIR/console.log, its PID in
# OUT_DIR/pid. Exit 0 when the run finished (pass or fail: read the summary),
# 3 when it did not. PGFAULT names the binary (default
# BUILD_DIR/harness/cli/pgfault): a copy keeps a rebuild from touching it.
#
#   bench/soak/hour.sh [BUILD_DIR [OUT_DIR [MINUTES]]]   (build, out/soak-hour, 60)
#
# Detached, as the full hour is run:
#   mkdir -p /work/soak-1h && cp build/harness/cli/pgfault /work/soak-1h/pgfault
#   PGFAULT=/work/soak-1h/pgfault setsid nohup nice bench/soak/hour.sh build /work/soak-1h 60 \
#       >/work/soak-1h.log 2>&1 &
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
out=${2:-out/soak-hour}
SOAK_MINUTES=${3:-${SOAK_MINUTES:-60}}
export SOAK_MINUTES
exec /usr/bin/python3 "$here/run" --hour "$build" "$out"
