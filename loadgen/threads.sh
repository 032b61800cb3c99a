#!/usr/bin/env bash
# Where roomledger's CPU goes at full load, thread by thread (README "Performance", "Where the
# CPU goes"). RUNS rounds of: the ceiling, then roomledger, each under the same load as
# `loadgen/bench.sh throughput` but without the end check (its reads are not ingest); each
# thread's utime and stime from /proc/PID/task/TID/stat before and after the run. Prints a
# Markdown table of medians over the rounds, in µs of CPU per acknowledged event.
#
#   loadgen/threads.sh
#
# Knobs (environment): RUNS=3 SEED=42 CONNECTIONS=64 EVENTS=400000 DURATION=15 PORT=18082
# CEILING_PORT=18083 CARGO_TARGET_DIR=<repo>/target-perf, RATE=N to send N events/s instead
# of as fast as possible (`RATE=5000` for the README's figures below full load), and FLOOR=D to
# run the journal floor (`journal-floor --durability D`) after the ceiling in every round and
# print its threads beside roomledger's. Every server it starts is stopped by it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-3}
LOAD_ARGS=(--seed "${SEED:-42}" --connections "${CONNECTIONS:-64}" --events "${EVENTS:-400000}"
    --duration "${DURATION:-15}" --no-check)
[[ -z "${RATE:-}" ]] || LOAD_ARGS+=(--rate "$RATE")
PORT=${PORT:-18082}
CEILING_PORT=${CEILING_PORT:-18083}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-perf}
LOADGEN="$CARGO_TARGET_DIR/release/roomledger-loadgen"

# shellcheck source=loadgen/measure.sh
source "$ROOT/loadgen/measure.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/roomledger-threads.XXXXXX")
PID=
cleanup() {
    stop_pid "$PID"
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building release binaries into $CARGO_TARGET_DIR" >&2
cargo build --release --quiet -p roomledger -p roomledger-loadgen

# thread_ticks PID: one line per thread: "group utime stime", the group being the thread's name
# with a trailing number dropped (rooms-0 and rooms-1 are "rooms-N").
thread_ticks() {
    local task
    for task in /proc/"$1"/task/*; do
        # sled starts IO threads beyond its seven when work queues up and ends them after a
        # second idle, so a thread listed here can be gone by the time it is read.
        local comm stat
        comm=$(cat "$task/comm" 2>/dev/null) && stat=$(cat "$task/stat" 2>/dev/null) || continue
        echo "$(tr ' ' '_' <<<"$comm" | sed 's/-[0-9]*$/-N/') $(sed 's/^.*) //' <<<"$stat" | awk '{ print $12, $13 }')"
    done | awk '{ u[$1] += $2; s[$1] += $3 } END { for (k in u) print k, u[k], s[k] }' | sort
}

# per_event BEFORE AFTER ACKED: "group user_us sys_us" per acknowledged event, from the two
# thread_ticks listings (threads that ended during the run are not counted).
per_event() {
    join -a 2 -e 0 -o 0,1.2,1.3,2.2,2.3 "$1" "$2" |
        awk -v n="$3" -v hz="$(getconf CLK_TCK)" '{ printf "%s %.3f %.3f\n", $1, ($4 - $2) / hz * 1e6 / n, ($5 - $3) / hz * 1e6 / n }'
}

# children_seconds FILE: writes the CPU seconds (user + system) of this shell's finished
# children so far to FILE. `times` must run in this shell, not in a $(...) subshell.
children_seconds() {
    times >"$1"
    tail -n 1 "$1" | tr 'ms' '  ' | awk '{ print $1 * 60 + $2 + $3 * 60 + $4 }' >"$1.s"
    mv "$1.s" "$1"
}

# generator_us BEFORE AFTER RESULT: the generator's CPU µs per acknowledged event of that run.
generator_us() {
    awk -v a="$(cat "$1")" -v b="$(cat "$2")" -v n="$(field "$3" acked)" \
        'BEGIN { printf "%.1f\n", (b - a) * 1e6 / n }'
}

# measure_threads PID NAME I: sends the load to the server PID (listening on $PORT) and
# appends its threads' CPU per event to NAME-threads.txt, the generator's to
# NAME-generator-us.txt; the generator's output goes to NAME-I.txt.
measure_threads() {
    local pid=$1 name=$2 i=$3
    "$LOADGEN" --mode health --target "127.0.0.1:$PORT" --since-ms "$(date +%s%3N)" >/dev/null
    thread_ticks "$pid" >before.txt
    children_seconds generator-before.txt
    "$LOADGEN" --target "127.0.0.1:$PORT" "${LOAD_ARGS[@]}" >"$name-$i.txt" 2>/dev/null
    thread_ticks "$pid" >after.txt
    children_seconds generator-after.txt
    generator_us generator-before.txt generator-after.txt "$name-$i.txt" >>"$name-generator-us.txt"
    per_event before.txt after.txt "$(field "$name-$i.txt" acked)" | sed "s/^/$i /" >>"$name-threads.txt"
}

cd "$WORK"
for i in $(seq "$RUNS"); do
    "$CARGO_TARGET_DIR/release/ceiling" --bind "127.0.0.1:$CEILING_PORT" >ceiling.log 2>&1 &
    PID=$!
    "$LOADGEN" --mode health --target "127.0.0.1:$CEILING_PORT" --since-ms "$(date +%s%3N)" >/dev/null
    before=$(cpu_ticks "$PID")
    children_seconds generator-before.txt
    "$LOADGEN" --target "127.0.0.1:$CEILING_PORT" "${LOAD_ARGS[@]}" >"ceiling-$i.txt" 2>/dev/null
    children_seconds generator-after.txt
    generator_us generator-before.txt generator-after.txt "ceiling-$i.txt" >>ceiling-generator-us.txt
    us_per_event "$(($(cpu_ticks "$PID") - before))" "$(field "ceiling-$i.txt" acked)" >>ceiling-us.txt
    echo >>ceiling-us.txt
    stop_pid "$PID"
    PID=

    if [[ -n "${FLOOR:-}" ]]; then
        rm -rf data
        "$CARGO_TARGET_DIR/release/journal-floor" --bind "127.0.0.1:$PORT" --data data \
            --durability "$FLOOR" >floor.log 2>&1 &
        PID=$!
        measure_threads "$PID" floor "$i"
        echo "round $i/$RUNS: journal floor ($FLOOR) $(field "floor-$i.txt" events_per_s)/s" >&2
        stop_pid "$PID"
        PID=
    fi

    rm -rf data
    # From a directory without a config.toml: the compiled-in defaults.
    start_roomledger "$CARGO_TARGET_DIR/release/roomledger" "$PORT" data server.log
    PID=$ROOMLEDGER_PID
    measure_threads "$PID" run "$i"
    echo "round $i/$RUNS: ceiling $(field "ceiling-$i.txt" events_per_s)/s, roomledger $(field "run-$i.txt" events_per_s)/s" >&2
    stop_pid "$PID"
    PID=
done

# what SERVER GROUP: what the thread group runs in that server (run: roomledger, floor: the
# journal floor).
what() {
    case $1:$2 in
    run:http-worker) echo "actix-web workers: HTTP, signature check, parse, normalise, answer" ;;
    floor:http-worker) echo "actix-web workers: HTTP, parse, hand to the committer, answer" ;;
    run:journal-committ) echo "group commit: dedupe, journal append, flush and fsync, dedupe keys" ;;
    floor:journal-committ) echo "group commit: journal append, flush and fsync" ;;
    run:store-writer) echo "the StoreActor: finished sessions, indexes, watermarks, snapshots" ;;
    run:rooms-N) echo "room actors: Room::apply, live index" ;;
    run:room-directory) echo "routes committed entries to room actors" ;;
    *:sled-io-N | *:log_flusher) echo "sled's own threads" ;;
    run:webhook-log) echo "the webhook log's writer" ;;
    run:roomledger | floor:journal-floor) echo "main thread" ;;
    *) echo "" ;;
    esac
}

# thread_table NAME: the Markdown rows of NAME-threads.txt, medians over the rounds, largest first.
thread_table() {
    echo "| thread | what it runs | µs of CPU per event (user + system) |"
    echo "|---|---|---|"
    for group in $(awk '{ print $2 }' "$1-threads.txt" | sort -u); do
        user=$(awk -v g="$group" '$2 == g { print $3 }' "$1-threads.txt" | median)
        sys=$(awk -v g="$group" '$2 == g { print $4 }' "$1-threads.txt" | median)
        awk -v g="$group" -v w="$(what "$1" "$group")" -v u="$user" -v s="$sys" \
            'BEGIN { if (u + s >= 0.05) printf "%.2f| `%s` | %s | %.1f (%.1f + %.1f) |\n", u + s, g, w, u + s, u, s }'
    done | sort -t'|' -k1 -gr | cut -d'|' -f2- | sed 's/^/|/'
    for i in $(seq "$RUNS"); do
        awk -v i="$i" '$1 == i { t += $3 + $4 } END { print t }' "$1-threads.txt"
    done | median | awk '{ printf "| all threads | | %.1f |\n", $1 }'
}

echo
echo "roomledger $(for i in $(seq "$RUNS"); do field "run-$i.txt" events_per_s; done | median) events/s," \
    "ceiling $(for i in $(seq "$RUNS"); do field "ceiling-$i.txt" events_per_s; done | median) requests/s" \
    "(medians of $RUNS rounds: \`loadgen/threads.sh\`, \`roomledger-loadgen ${LOAD_ARGS[*]}\`)"
echo
thread_table run
echo "| the ceiling, all threads | read, parse, answer 200 | $(grep -v '^$' ceiling-us.txt | median) per request |"
echo "| the generator (not a server thread) | sign, send, wait | $(median <run-generator-us.txt) ($(median <ceiling-generator-us.txt) against the ceiling) |"
if [[ -n "${FLOOR:-}" ]]; then
    echo
    echo "journal floor (\`journal-floor --durability $FLOOR\`):" \
        "$(for i in $(seq "$RUNS"); do field "floor-$i.txt" events_per_s; done | median) requests/s"
    echo
    thread_table floor
    echo "| the generator (not a server thread) | sign, send, wait | $(median <floor-generator-us.txt) |"
fi
