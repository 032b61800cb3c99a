#!/usr/bin/env bash
# Soak test (issue 7, item 6; README "Operations"): a release roomledger over a fresh data
# directory takes signed Agora and LiveKit traffic from roomledger-loadgen at a steady rate for
# SOAK_MINUTES, with rooms starting and finishing throughout, while this script samples the
# server's resident memory every SOAK_SAMPLE_SECONDS. It passes when
#   - every delivery got a 2xx (no non-2xx answers, no transport errors),
#   - the generator's end check passed (no session lost, doubled or wrong, live state right),
#   - memory stayed flat after warm-up: the highest sample of the last SOAK_TAIL_SECONDS (or
#     of everything after warm-up, if the run is shorter) is at most SOAK_RSS_TOLERANCE times
#     the highest sample of the last SOAK_BASE_SECONDS of warm-up (SOAK_WARMUP_SECONDS), so
#     that peaks of the snapshot sawtooth are compared with peaks; judged only when the
#     warm-up is at least SOAK_MIN_WARMUP_SECONDS or was set explicitly, see below,
# prints a summary and exits non-zero otherwise. Every process it starts is stopped on exit.
#
#   scripts/soak.sh                     10 minutes at 200 events/s
#   SOAK_MINUTES=2 scripts/soak.sh      a quick check of deliveries and sessions; memory is
#                                       reported, not judged (too short to level off)
#
# Knobs (environment): SOAK_MINUTES=10 SOAK_RATE=200 SOAK_CONNECTIONS=16 SOAK_SEED=7
# SOAK_WARMUP_SECONDS=<half the run> SOAK_MIN_WARMUP_SECONDS=240 SOAK_TAIL_SECONDS=300
# SOAK_RSS_TOLERANCE=1.2 SOAK_BASE_SECONDS=60 SOAK_SAMPLE_SECONDS=10 SOAK_PORT=18090
# SOAK_SERVER_ENV (server configuration on top of the defaults, KEY=VALUE words; see below)
# CARGO_TARGET_DIR=<repo>/target KEEP=1 (keep the work directory: logs, rss.txt, data).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MINUTES=${SOAK_MINUTES:-10}
RATE=${SOAK_RATE:-200}
CONNECTIONS=${SOAK_CONNECTIONS:-16}
SEED=${SOAK_SEED:-7}
SAMPLE=${SOAK_SAMPLE_SECONDS:-10}
TAIL=${SOAK_TAIL_SECONDS:-300}
TOLERANCE=${SOAK_RSS_TOLERANCE:-1.2}
# RSS rises and falls with each snapshot (one a minute by default); a single sample at the end of
# warm-up could fall anywhere in that sawtooth, and then the same build passed or failed by
# chance. The reference is the highest sample of a snapshot interval.
BASE_WINDOW=${SOAK_BASE_SECONDS:-60}
PORT=${SOAK_PORT:-18090}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

SECONDS_TOTAL=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')
# Memory can only be judged once the state has levelled off: with the settings below, rooms
# are unloaded a minute after their last event and departed participants forgotten two minutes
# after they left, so the state still grows for the first few minutes whatever the rate (a 2-
# minute run grows from start to end). A default warm-up shorter than this reports RSS without
# judging it; one set explicitly is always judged.
MIN_WARMUP=${SOAK_MIN_WARMUP_SECONDS:-240}
JUDGE_RSS=yes
if [[ -n "${SOAK_WARMUP_SECONDS:-}" ]]; then
    WARMUP=$SOAK_WARMUP_SECONDS
else
    WARMUP=$((SECONDS_TOTAL / 2))
    ((WARMUP >= MIN_WARMUP)) || JUDGE_RSS=no
fi
if ((WARMUP + SAMPLE > SECONDS_TOTAL)); then
    echo "soak: a warm-up of ${WARMUP} s leaves no time to measure in a ${SECONDS_TOTAL} s run" >&2
    exit 2
fi
# Distinct events for the whole run; the generator adds ~5% re-deliveries on top, and
# --duration stops it on time whatever is left.
EVENTS=$(awk -v r="$RATE" -v s="$SECONDS_TOTAL" 'BEGIN { printf "%d", r * s }')

# The soak checks that memory is bounded, not how large the bounds are, so the server's bounded
# caches are scaled down to fill during the warm-up: at 200 events/s the default dedupe cache
# (200,000 ids) would take 17 minutes to fill, the webhook log (100,000 entries) 8, and sled's
# 64 MiB page cache grows with the data for as long. Rooms are unloaded a minute after their
# last event instead of 5, and participants who left are forgotten after two minutes instead of
# 60: the generator sends the joins it delivers late right after their own leave (test
# `a_join_sent_after_its_leave_comes_right_after_it`), so the leave is still remembered.
# SOAK_SERVER_ENV="" runs with the defaults.
SERVER_ENV=${SOAK_SERVER_ENV-ROOMLEDGER__STORAGE__CACHE_MB=16 ROOMLEDGER__JOURNAL__DEDUPE_CACHE_ENTRIES=10000 ROOMLEDGER__WEBHOOK_LOG__MAX_ENTRIES=10000 ROOMLEDGER__ROOMS__IDLE_SECONDS=60 ROOMLEDGER__ROOMS__FORGET_AFTER_SECONDS=120}

# shellcheck source=loadgen/measure.sh
source "$ROOT/loadgen/measure.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/roomledger-soak.XXXXXX")
SERVER_PID=
SAMPLER_PID=
LOADGEN_PID=

cleanup() {
    stop_pid "$LOADGEN_PID"
    stop_pid "$SAMPLER_PID"
    stop_pid "$SERVER_PID"
    if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "soak: work directory kept: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[soak $(date +%H:%M:%S)] $*" >&2; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

log "building release binaries into $CARGO_TARGET_DIR"
cargo build --release --quiet -p roomledger -p roomledger-loadgen
SERVER="$CARGO_TARGET_DIR/release/roomledger"
LOADGEN="$CARGO_TARGET_DIR/release/roomledger-loadgen"

log "starting roomledger on 127.0.0.1:$PORT over $WORK/data; also: ${SERVER_ENV:-nothing}"
# From the work directory, so that no config.toml but the built-in defaults applies.
cd "$WORK"
# shellcheck disable=SC2086 # SERVER_ENV is a list of KEY=VALUE words
start_roomledger "$SERVER" "$PORT" "$WORK/data" "$WORK/server.log" $SERVER_ENV
SERVER_PID=$ROOMLEDGER_PID
if ! "$LOADGEN" --mode health --target "127.0.0.1:$PORT" --since-ms "$(date +%s%3N)" \
    >"$WORK/health.out" 2>&1; then
    log "roomledger did not become healthy:"
    tail -n 20 "$WORK/server.log" >&2
    exit 1
fi

log "load: $RATE events/s over $CONNECTIONS connections for ${SECONDS_TOTAL} s (seed $SEED, $EVENTS events planned); RSS every ${SAMPLE} s"
# The generator builds its whole plan first and prints a "plan:" line when it starts sending;
# the memory clock starts there.
"$LOADGEN" --mode load --target "127.0.0.1:$PORT" --seed "$SEED" --rate "$RATE" \
    --connections "$CONNECTIONS" --duration "$SECONDS_TOTAL" --events "$EVENTS" --settle 60 --steady \
    >"$WORK/loadgen.out" 2>&1 &
LOADGEN_PID=$!

# Sampler: "<seconds since sampling began> <RSS KiB>" lines, until the server or the load ends.
(
    while kill -0 "$LOADGEN_PID" 2>/dev/null && ! grep -q '^plan:' "$WORK/loadgen.out"; do
        sleep 0.2
    done
    started=$(date +%s)
    while kill -0 "$SERVER_PID" 2>/dev/null && kill -0 "$LOADGEN_PID" 2>/dev/null; do
        rss=$(rss_kib "$SERVER_PID")
        [[ -n "$rss" ]] && echo "$(($(date +%s) - started)) $rss"
        sleep "$SAMPLE"
    done
) >"$WORK/rss.txt" &
SAMPLER_PID=$!

LOAD_STATUS=0
wait "$LOADGEN_PID" || LOAD_STATUS=$?
LOADGEN_PID=
stop_pid "$SAMPLER_PID"
SAMPLER_PID=
SERVER_ALIVE=yes
kill -0 "$SERVER_PID" 2>/dev/null || SERVER_ALIVE=no
FINAL_RSS=$(rss_kib "$SERVER_PID")
stop_pid "$SERVER_PID"
SERVER_PID=

# Only samples taken while deliveries were still being sent count towards the memory check
# (the end check afterwards reads every room through the API, a different load).
read -r BASE TAIL_MAX TAIL_FROM SAMPLES PEAK < <(awk -v w="$WARMUP" -v d="$SECONDS_TOTAL" -v tail="$TAIL" -v bw="$BASE_WINDOW" '
    $1 <= d { t[NR] = $1; r[NR] = $2; n = NR }
    END {
        base = 0; for (i = 1; i <= n; i++) if (t[i] > w - bw && t[i] <= w && r[i] > base) base = r[i]
        from = d - tail; if (from < w) from = w
        max = 0; peak = 0
        for (i = 1; i <= n; i++) { if (r[i] > peak) peak = r[i]; if (t[i] >= from && r[i] > max) max = r[i] }
        print base, max, from, n, peak
    }' "$WORK/rss.txt")

ACKED=$(field "$WORK/loadgen.out" acked)
SENT=$(field "$WORK/loadgen.out" sent)
NON2XX=$(field "$WORK/loadgen.out" non2xx)
ERRORS=$(field "$WORK/loadgen.out" errors)
CHECKED=$(field "$WORK/loadgen.out" checked)
LOST=$(field "$WORK/loadgen.out" lost)
DOUBLED=$(field "$WORK/loadgen.out" doubled)
WRONG=$(field "$WORK/loadgen.out" wrong)
SESSIONS=$(field "$WORK/loadgen.out" sessions)
ROOMS=$(field "$WORK/loadgen.out" rooms)
P99=$(field "$WORK/loadgen.out" p99_ms)
MAX_MS=$(field "$WORK/loadgen.out" max_ms)
RATE_SEEN=$(field "$WORK/loadgen.out" events_per_s)
LIMIT=$(awk -v b="$BASE" -v t="$TOLERANCE" 'BEGIN { printf "%d", b * t }')

FAILURES=()
[[ -n "$ACKED" ]] || FAILURES+=("the generator printed no RESULT line")
[[ "$LOAD_STATUS" == 0 ]] || FAILURES+=("the generator exited with $LOAD_STATUS")
[[ "${NON2XX:-x}" == 0 ]] || FAILURES+=("$NON2XX non-2xx answers")
[[ "${ERRORS:-x}" == 0 ]] || FAILURES+=("$ERRORS deliveries without an answer")
[[ "$CHECKED" == true ]] || FAILURES+=("the end check did not run")
[[ "${LOST:-x}" == 0 && "${DOUBLED:-x}" == 0 && "${WRONG:-x}" == 0 ]] ||
    FAILURES+=("end check: $LOST lost, $DOUBLED doubled, $WRONG wrong")
[[ "$SERVER_ALIVE" == yes ]] || FAILURES+=("roomledger died during the run")
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
if [[ "$JUDGE_RSS" == yes ]]; then
    ((BASE > 0)) || FAILURES+=("no RSS sample in the last ${BASE_WINDOW} s of warm-up (to ${WARMUP} s)")
    ((TAIL_MAX <= LIMIT)) ||
        FAILURES+=("RSS grew after warm-up: ${TAIL_MAX} KiB > ${TOLERANCE} x ${BASE} KiB")
    RSS_VERDICT="limit $(mib "$LIMIT")"
else
    RSS_VERDICT="not judged: a warm-up of ${WARMUP} s is under ${MIN_WARMUP} s, too short for the state to level off"
fi

cat <<EOF

roomledger soak: ${MINUTES} min at ${RATE} events/s (${CONNECTIONS} connections, seed ${SEED})
  deliveries      ${SENT:-?} sent, ${ACKED:-?} acknowledged (${RATE_SEEN:-?}/s), ${NON2XX:-?} non-2xx, ${ERRORS:-?} without answer
  ack latency     p99 ${P99:-?} ms, max ${MAX_MS:-?} ms
  end check       ${ROOMS:-?} rooms, ${SESSIONS:-?} sessions: ${LOST:-?} lost, ${DOUBLED:-?} doubled, ${WRONG:-?} wrong
  RSS             $(mib "$BASE") at most in the last ${BASE_WINDOW} s of warm-up (to ${WARMUP} s); max $(mib "$TAIL_MAX") from ${TAIL_FROM} s on (${RSS_VERDICT}); peak $(mib "$PEAK"); $(mib "${FINAL_RSS:-0}") after the end check; ${SAMPLES} samples
EOF
if ((${#FAILURES[@]})); then
    echo "  FAILED:"
    printf '    - %s\n' "${FAILURES[@]}"
    [[ -n "${KEEP:-}" ]] || echo "  logs: set KEEP=1 to keep $WORK (server.log, loadgen.out, rss.txt)"
    exit 1
fi
echo "  PASSED"
