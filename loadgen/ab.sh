#!/usr/bin/env bash
# Compares two roomledger binaries (or one binary under two environments) on this machine, in
# alternating order: round 1 runs A then B, round 2 B then A, and so on, each run against a
# fresh server over a fresh data directory. Pairs always run in the same order favoured the
# second run by about 10% here (loadgen/FINDINGS.md), so a comparison must alternate.
#
#   loadgen/ab.sh ROUNDS MODE BIN_A BIN_B [ENV_B]
#
# MODE  load: as fast as possible (--seed 42 --connections 64 --events 400000 --duration 15)
#       steady: 5,000 events/s for 20 s
# ENV_B KEY=VALUE words set for B's server only (e.g. "ROOMLEDGER__STORAGE__SYNC_TO_DISK=false"
#       with BIN_A = BIN_B compares a setting).
#
# Prints one line per run: events/s, ack p50/p99, the end check, and the server's CPU per
# acknowledged event (utime + stime around the run, end check included). Runs from a temporary
# directory, so the servers use their compiled-in configuration, not ./config.toml. Every server
# it starts is stopped by it. Knobs: LOADGEN (the generator binary, default
# target-perf/release/roomledger-loadgen), PORT=18090.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if (($# < 4)); then
    sed -n '2,17p' "$0" >&2
    exit 2
fi
ROUNDS=$1 MODE=$2
BIN_A=$(realpath "$3") BIN_B=$(realpath "$4")
ENV_B=${5:-}
LOADGEN=$(realpath "${LOADGEN:-$ROOT/target-perf/release/roomledger-loadgen}")
PORT=${PORT:-18090}
# shellcheck source=loadgen/measure.sh
source "$ROOT/loadgen/measure.sh"
WORK=$(mktemp -d /tmp/roomledger-ab.XXXXXX)
SERVER_PID=
cleanup() {
    stop_pid "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

run() {
    local which=$1 bin=$BIN_A extra=()
    if [[ $which == B ]]; then
        bin=$BIN_B
        read -r -a extra <<<"$ENV_B"
    fi
    rm -rf data out server.log
    start_roomledger "$bin" "$PORT" data server.log "${extra[@]}"
    SERVER_PID=$ROOMLEDGER_PID
    "$LOADGEN" --mode health --target "127.0.0.1:$PORT" --since-ms "$(date +%s%3N)" >/dev/null
    local before after
    before=$(cpu_ticks "$SERVER_PID")
    case $MODE in
    load) "$LOADGEN" --target "127.0.0.1:$PORT" --seed 42 --connections 64 --events 400000 \
        --duration 15 >out 2>/dev/null ;;
    steady) "$LOADGEN" --target "127.0.0.1:$PORT" --rate 5000 --duration 20 --events 100000 \
        >out 2>/dev/null ;;
    *) echo "ab: unknown mode $MODE" >&2; exit 2 ;;
    esac
    after=$(cpu_ticks "$SERVER_PID")
    stop_pid "$SERVER_PID"
    SERVER_PID=
    echo "$which: $(field out events_per_s) events/s, p50 $(field out p50_ms) ms, p99 $(field out p99_ms) ms, lost $(field out lost) doubled $(field out doubled) wrong $(field out wrong), $(us_per_event $((after - before)) "$(field out acked)") µs CPU per event"
}

for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then run A; run B; else run B; run A; fi
done
