#!/usr/bin/env bash
# Reproduces roomledger's performance figures (issue 6, README "Performance") on this machine
# and prints them as a Markdown table. Release builds; the generator shares the machine with
# the server, as the targets say. Every server this script starts is stopped by it.
#
#   loadgen/bench.sh                      everything below, in this order
#   loadgen/bench.sh throughput latency   a selection of: throughput latency fill criterion
#
# throughput  RUNS x (ceiling run, journal floor run(s), then roomledger run), same seed and
#             connections, as fast as possible; roomledger's runs end with the end check
#             (lost/doubled sessions), and their /metrics give the group commits' size and time.
#             The journal floor (`journal-floor`) is the ceiling plus a durable group-commit
#             journal and nothing else: one run per FLOOR_DURABILITY, each with its share.
# latency     RUNS x roomledger at a steady STEADY_RATE events/s: ack latency percentiles.
# fill        FILL_RUNS x: FILL_PARTICIPANTS live participants in FILL_ROOMS rooms → RSS;
#             kill -9 → restart (full journal replay: time to /health 200, replay events/s);
#             GET /api/v1/rooms?limit=50 latency with webhooks at STEADY_RATE beside it;
#             SIGTERM (final snapshot) → restart (time to /health 200 from the snapshot),
#             then snapshots every SNAPSHOT_EVERY s for SNAPSHOT_WATCH s → RSS and peak RSS.
# criterion   cargo bench: hot path per provider, Room::apply, snapshot write and recovery, the
#             dedupe cache.
#
# Knobs (environment): RUNS=5 FILL_RUNS=3 SEED=42 CONNECTIONS=64 EVENTS=400000 DURATION=15
# STEADY_RATE=5000 STEADY_SECONDS=20 FILL_ROOMS=100000 FILL_PARTICIPANTS=1000000 PORT=18080
# SNAPSHOT_EVERY=5 SNAPSHOT_WATCH=25 (the fill's snapshot phase)
# CEILING_PORT=18081 FLOOR_DURABILITY=sled-sync (space-separated, any of sled-sync sled-flush
# file-sync none; empty for no floor runs) CARGO_TARGET_DIR=<repo>/target-perf KEEP=1 (keep the
# work directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-5}
FILL_RUNS=${FILL_RUNS:-3}
SEED=${SEED:-42}
CONNECTIONS=${CONNECTIONS:-64}
EVENTS=${EVENTS:-400000}
DURATION=${DURATION:-15}
STEADY_RATE=${STEADY_RATE:-5000}
STEADY_SECONDS=${STEADY_SECONDS:-20}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-5}
SNAPSHOT_WATCH=${SNAPSHOT_WATCH:-25}
FILL_ROOMS=${FILL_ROOMS:-100000}
FILL_PARTICIPANTS=${FILL_PARTICIPANTS:-1000000}
PORT=${PORT:-18080}
CEILING_PORT=${CEILING_PORT:-18081}
FLOOR_DURABILITY=${FLOOR_DURABILITY-sled-sync}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-perf}
SECTIONS=${*:-throughput latency fill criterion}

# shellcheck source=loadgen/measure.sh
source "$ROOT/loadgen/measure.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/roomledger-bench.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "work directory kept: $WORK" >&2; fi
}
trap cleanup EXIT

log() { echo "[bench $(date +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)] $*" >&2; }
now_ms() { date +%s%3N; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# min–max of the numbers on stdin.
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) print lo "–" hi }'; }
# The space-separated words of $1, one per line.
words() { tr ' ' '\n' <<<"$1" | sed '/^$/d'; }
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { if (v == "n/a") print v; else printf "%.*f\n", d, v }'; }

LOADGEN="$CARGO_TARGET_DIR/release/roomledger-loadgen"
SERVER="$CARGO_TARGET_DIR/release/roomledger"
CEILING="$CARGO_TARGET_DIR/release/ceiling"
FLOOR="$CARGO_TARGET_DIR/release/journal-floor"

log "building release binaries into $CARGO_TARGET_DIR"
cargo build --release --quiet -p roomledger -p roomledger-loadgen

SERVER_PID=
# start_server DATA_DIR LOG [ENV=VALUE ...]: starts roomledger on $PORT over DATA_DIR.
start_server() {
    local data=$1 logfile=$2
    shift 2
    start_roomledger "$SERVER" "$PORT" "$data" "$logfile" "$@"
    SERVER_PID=$ROOMLEDGER_PID
    PIDS+=("$SERVER_PID")
}

# wait_healthy PORT SINCE_MS OUT: waits for GET /health = 200; the RESULT line goes to OUT.
wait_healthy() {
    "$LOADGEN" --mode health --target "127.0.0.1:$1" --since-ms "$2" >"$3"
}

# The field $2 of the last "recovered" log line in $1.
recovered_field() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | { grep ' recovered ' || true; } | tail -n 1 | { grep -o "$2=[0-9]*" || true; } | cut -d= -f2
}

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }
# Lost, doubled and wrong sessions over the end checks of the generator outputs given.
sessions_wrong() { cat "$@" | grep '^RESULT' | tr ' ' '\n' | grep -E '^(lost|doubled|wrong)=' | cut -d= -f2 | awk '{ n += $1 } END { print n + 0 }'; }

LOAD_ARGS=(--seed "$SEED" --connections "$CONNECTIONS" --events "$EVENTS" --duration "$DURATION")

BARE_US=
# bare_run OUT BINARY ARGS...: starts a bare server (the ceiling or the journal floor) on
# $CEILING_PORT, sends it the throughput load without the end check (it keeps no sessions),
# stops it; sets BARE_US to its CPU per answered request.
bare_run() {
    local out=$1 pid ticks
    shift
    "$@" >"$out.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_healthy "$CEILING_PORT" "$(now_ms)" "$out.health"
    ticks=$(cpu_ticks "$pid")
    "$LOADGEN" --target "127.0.0.1:$CEILING_PORT" "${LOAD_ARGS[@]}" --no-check >"$out"
    BARE_US=$(us_per_event "$(($(cpu_ticks "$pid") - ticks))" "$(field "$out" acked)")
    stop_pid "$pid"
}

section_throughput() {
    local i ceiling_eps=() server_eps=() ratios=() p99s=() loads=() ceiling_us=() server_us=() bad=0
    local cycles=() flushes=() groups=()
    local durability
    declare -A floor_eps=() floor_ratios=() floor_us=()
    for i in $(seq "$RUNS"); do
        local out="$WORK/ceiling-$i.txt"
        loads+=("$(loadavg)")
        log "throughput $i/$RUNS: ceiling"
        bare_run "$out" "$CEILING" --bind "127.0.0.1:$CEILING_PORT"
        ceiling_us+=("$BARE_US")
        local c
        c=$(field "$out" events_per_s)
        ceiling_eps+=("$c")
        for durability in $FLOOR_DURABILITY; do
            out="$WORK/floor-$durability-$i.txt"
            log "throughput $i/$RUNS: journal floor, $durability"
            bare_run "$out" "$FLOOR" --bind "127.0.0.1:$CEILING_PORT" \
                --data "$WORK/data-floor-$durability-$i" --durability "$durability"
            rm -rf "$WORK/data-floor-$durability-$i"
            floor_us[$durability]+="$BARE_US "
            floor_eps[$durability]+="$(field "$out" events_per_s) "
            floor_ratios[$durability]+="$(awk -v f="$(field "$out" events_per_s)" -v c="$c" 'BEGIN { printf "%.3f", f / c }') "
        done

        out="$WORK/throughput-$i.txt"
        start_server "$WORK/data-throughput-$i" "$WORK/server-throughput-$i.log"
        wait_healthy "$PORT" "$(now_ms)" "$WORK/health-throughput-$i.txt"
        log "throughput $i/$RUNS: roomledger"
        ticks=$(cpu_ticks "$SERVER_PID")
        "$LOADGEN" --target "127.0.0.1:$PORT" "${LOAD_ARGS[@]}" >"$out" || bad=$((bad + 1))
        # Includes the end check's reads (about a second of the run), so slightly high.
        server_us+=("$(us_per_event "$(($(cpu_ticks "$SERVER_PID") - ticks))" "$(field "$out" acked)")")
        metrics "$PORT" >"$WORK/metrics-throughput-$i.txt" || true
        local cycle flush group
        read -r cycle flush group < <(commit_cycle "$WORK/metrics-throughput-$i.txt" "$(field "$out" elapsed_s)")
        cycles+=("$cycle") flushes+=("$flush") groups+=("$group")
        stop_pid "$SERVER_PID"
        rm -rf "$WORK/data-throughput-$i"
        local s
        s=$(field "$out" events_per_s)
        server_eps+=("$s")
        ratios+=("$(awk -v s="$s" -v c="$c" 'BEGIN { printf "%.3f", s / c }')")
        p99s+=("$(field "$out" p99_ms)")
        log "ceiling $c/s, roomledger $s/s, $(field "$out" lost) lost, $(field "$out" doubled) doubled, $(field "$out" non2xx) non-2xx"
    done
    local eps ceil ratio lost
    eps=$(printf '%s\n' "${server_eps[@]}" | median)
    ceil=$(printf '%s\n' "${ceiling_eps[@]}" | median)
    ratio=$(printf '%s\n' "${ratios[@]}" | median)
    lost=$(sessions_wrong "$WORK"/throughput-*.txt)
    row "ingest, durable, as fast as possible" "≥ 25,000 events/s" \
        "$(fmt "$eps") events/s (runs $(printf '%s\n' "${server_eps[@]}" | spread)); $lost lost/doubled/wrong sessions in $RUNS runs ($bad failed checks); load avg $(printf '%s\n' "${loads[@]}" | median)" \
        "\`roomledger-loadgen ${LOAD_ARGS[*]}\`"
    row "ceiling: bare actix-web + JSON parse" "(reference)" \
        "$(fmt "$ceil") events/s (runs $(printf '%s\n' "${ceiling_eps[@]}" | spread))" \
        "\`ceiling\`, then \`roomledger-loadgen ${LOAD_ARGS[*]} --no-check\`"
    row "server CPU per acknowledged event" "–" \
        "roomledger $(printf '%s\n' "${server_us[@]}" | median) µs (runs $(printf '%s\n' "${server_us[@]}" | spread), end check included); ceiling $(printf '%s\n' "${ceiling_us[@]}" | median) µs per request" \
        "utime + stime from \`/proc/PID/stat\` around each run above"
    row "share of the ceiling, same run" "≥ 60%" "$(fmt "$(awk -v r="$ratio" 'BEGIN { print r * 100 }')" 1)% (median of per-run ratios)" "\`loadgen/bench.sh throughput\`"
    for durability in $FLOOR_DURABILITY; do
        local floor_ratio
        floor_ratio=$(words "${floor_ratios[$durability]}" | median)
        row "journal floor ($durability): the ceiling + a group-commit journal, nothing else" "–" \
            "$(fmt "$(words "${floor_eps[$durability]}" | median)") events/s (runs $(words "${floor_eps[$durability]}" | spread)), $(fmt "$(awk -v r="$floor_ratio" 'BEGIN { print r * 100 }')" 1)% of the ceiling (runs $(words "${floor_ratios[$durability]}" | spread)); $(words "${floor_us[$durability]}" | median) µs of server CPU per request" \
            "\`journal-floor --durability $durability\`, then \`roomledger-loadgen ${LOAD_ARGS[*]} --no-check\`"
    done
    row "ack latency at full load" "–" "p99 $(printf '%s\n' "${p99s[@]}" | median) ms (runs $(printf '%s\n' "${p99s[@]}" | spread))" "(same runs)"
    # Ingest is about (events per commit) / (time per commit): loadgen/FINDINGS.md, "Why the
    # commit's shape hardly matters at 64 connections".
    row "group commit at full load" "–" \
        "$(printf '%s\n' "${cycles[@]}" | median) ms per commit (runs $(printf '%s\n' "${cycles[@]}" | spread)), $(printf '%s\n' "${flushes[@]}" | median) ms of it append and flush; $(printf '%s\n' "${groups[@]}" | median) events per commit (runs $(printf '%s\n' "${groups[@]}" | spread))" \
        "\`roomledger_journal_commit_*\` from \`/metrics\` after each run above, over its \`elapsed_s\`"
}

section_latency() {
    local i p50s=() p99s=() maxes=() rates=() loads=() server_us=() ticks bad=0
    local events=$((STEADY_RATE * STEADY_SECONDS))
    for i in $(seq "$RUNS"); do
        local out="$WORK/latency-$i.txt"
        start_server "$WORK/data-latency-$i" "$WORK/server-latency-$i.log"
        wait_healthy "$PORT" "$(now_ms)" "$WORK/health-latency-$i.txt"
        loads+=("$(loadavg)")
        log "latency $i/$RUNS at $STEADY_RATE events/s"
        ticks=$(cpu_ticks "$SERVER_PID")
        "$LOADGEN" --target "127.0.0.1:$PORT" --seed "$SEED" --connections "$CONNECTIONS" \
            --rate "$STEADY_RATE" --events "$events" --duration "$STEADY_SECONDS" >"$out" || bad=$((bad + 1))
        server_us+=("$(us_per_event "$(($(cpu_ticks "$SERVER_PID") - ticks))" "$(field "$out" acked)")")
        stop_pid "$SERVER_PID"
        rm -rf "$WORK/data-latency-$i"
        p50s+=("$(field "$out" p50_ms)")
        p99s+=("$(field "$out" p99_ms)")
        maxes+=("$(field "$out" max_ms)")
        rates+=("$(field "$out" events_per_s)")
        log "p50 $(field "$out" p50_ms) ms, p99 $(field "$out" p99_ms) ms at $(field "$out" events_per_s)/s"
    done
    local lost
    lost=$(sessions_wrong "$WORK"/latency-*.txt)
    row "ack latency at a steady $STEADY_RATE events/s" "p99 ≤ 5 ms" \
        "p99 $(printf '%s\n' "${p99s[@]}" | median) ms (runs $(printf '%s\n' "${p99s[@]}" | spread)); p50 $(printf '%s\n' "${p50s[@]}" | median) ms; max $(printf '%s\n' "${maxes[@]}" | median) ms; at $(printf '%s\n' "${rates[@]}" | median)/s; $lost lost/doubled/wrong sessions in $RUNS runs ($bad failed checks); load avg $(printf '%s\n' "${loads[@]}" | median)" \
        "\`roomledger-loadgen --rate $STEADY_RATE --duration $STEADY_SECONDS --events $events --connections $CONNECTIONS\`"
    # Below full load every group commit holds few events, so its fixed cost (the flush and
    # the threads it wakes) is shared by fewer of them than in the throughput rows.
    row "server CPU per acknowledged event at a steady $STEADY_RATE events/s" "–" \
        "$(printf '%s\n' "${server_us[@]}" | median) µs (runs $(printf '%s\n' "${server_us[@]}" | spread), end check included)" \
        "(same runs)"
}

section_fill() {
    local i rss=() per=() kill_health=() kill_recovery=() replay_rate=() term_health=() term_recovery=() api_p99=() api_p50=() rss_after=() fill_eps=() loads=() snap_rss=() snap_hwm=()
    for i in $(seq "$FILL_RUNS"); do
        local data="$WORK/data-fill-$i" logfile="$WORK/server-fill-$i.log" out="$WORK/fill-$i.txt"
        # No periodic snapshot: the kill -9 restart below replays the whole journal.
        start_server "$data" "$logfile" ROOMLEDGER__SNAPSHOTS__INTERVAL_SECONDS=86400
        wait_healthy "$PORT" "$(now_ms)" "$WORK/health-fill-$i.txt"
        loads+=("$(loadavg)")
        log "fill $i/$FILL_RUNS: $FILL_PARTICIPANTS participants in $FILL_ROOMS rooms"
        "$LOADGEN" --mode fill --target "127.0.0.1:$PORT" --seed "$SEED" --connections "$CONNECTIONS" \
            --rooms "$FILL_ROOMS" --participants "$FILL_PARTICIPANTS" --server-pid "$SERVER_PID" >"$out" || true
        rss+=("$(field "$out" rss_bytes)")
        per+=("$(awk -v r="$(field "$out" rss_bytes)" -v p="$FILL_PARTICIPANTS" 'BEGIN { printf "%.0f", r / p }')")
        fill_eps+=("$(field "$out" events_per_s)")
        log "RSS $(field "$out" rss_bytes) bytes"

        log "fill $i: kill -9 and restart (journal replay)"
        stop_pid "$SERVER_PID" KILL
        local t0
        t0=$(now_ms)
        start_server "$data" "$logfile" ROOMLEDGER__SNAPSHOTS__INTERVAL_SECONDS=86400
        wait_healthy "$PORT" "$t0" "$WORK/restart-kill-$i.txt"
        kill_health+=("$(field "$WORK/restart-kill-$i.txt" ms)")
        local duration replayed
        duration=$(recovered_field "$logfile" duration_ms)
        replayed=$(recovered_field "$logfile" replayed)
        kill_recovery+=("$duration")
        replay_rate+=("$(awk -v n="$replayed" -v d="$duration" 'BEGIN { if (d > 0) printf "%.0f", n / (d / 1000); else print "n/a" }')")
        # /health answers before the directory has started every room's actor; RSS rises by
        # about 120 MB in the half second after it, so sample once they are all running.
        sleep 5
        rss_after+=("$(grep VmRSS "/proc/$SERVER_PID/status" | awk '{ print $2 * 1024 }')")
        log "restart after kill -9: healthy after $(field "$WORK/restart-kill-$i.txt" ms) ms, recovery $duration ms for $replayed events"

        log "fill $i: GET /api/v1/rooms?limit=50 with webhooks at $STEADY_RATE/s beside it"
        "$LOADGEN" --mode api --target "127.0.0.1:$PORT" --seed $((SEED + 1000 + i)) --connections "$CONNECTIONS" \
            --rate "$STEADY_RATE" --duration "$STEADY_SECONDS" >"$WORK/api-$i.txt" || true
        api_p99+=("$(field "$WORK/api-$i.txt" api_p99_ms)")
        api_p50+=("$(field "$WORK/api-$i.txt" api_p50_ms)")

        log "fill $i: SIGTERM (final snapshot) and restart"
        stop_pid "$SERVER_PID" TERM
        t0=$(now_ms)
        start_server "$data" "$logfile" ROOMLEDGER__SNAPSHOTS__INTERVAL_SECONDS=$SNAPSHOT_EVERY
        wait_healthy "$PORT" "$t0" "$WORK/restart-term-$i.txt"
        term_health+=("$(field "$WORK/restart-term-$i.txt" ms)")
        term_recovery+=("$(recovered_field "$logfile" duration_ms)")
        # Every snapshot serialises every room and writes it; from the third on, each also
        # drops the oldest. The peak (VmHWM) covers them all, and the restart from the
        # snapshot before them.
        log "fill $i: snapshots every $SNAPSHOT_EVERY s for $SNAPSHOT_WATCH s"
        sleep "$SNAPSHOT_WATCH"
        snap_rss+=("$(grep VmRSS "/proc/$SERVER_PID/status" | awk '{ print $2 * 1024 }')")
        snap_hwm+=("$(grep VmHWM "/proc/$SERVER_PID/status" | awk '{ print $2 * 1024 }')")
        log "$(grep -c 'snapshot written' "$logfile") snapshots in the log; RSS $(tail -n1 <<<"${snap_rss[*]}" | awk '{ print $NF }') bytes, peak $(tail -n1 <<<"${snap_hwm[*]}" | awk '{ print $NF }') bytes"
        stop_pid "$SERVER_PID" TERM
        rm -rf "$data"
    done
    row "$FILL_PARTICIPANTS live participants in $FILL_ROOMS live rooms" "≤ 1 GiB RSS" \
        "$(fmt "$(printf '%s\n' "${rss[@]}" | median | awk '{ print $1 / 1048576 }')") MiB RSS ($(printf '%s\n' "${per[@]}" | median) bytes per participant; $(printf '%s\n' "${rss_after[@]}" | median | awk '{ printf "%.0f", $1 / 1048576 }') MiB 5 s after a restart); filled at $(printf '%s\n' "${fill_eps[@]}" | median) joins/s" \
        "\`roomledger-loadgen --mode fill --rooms $FILL_ROOMS --participants $FILL_PARTICIPANTS --server-pid PID\`"
    row "the same state while snapshots are written (every $SNAPSHOT_EVERY s for $SNAPSHOT_WATCH s)" "≤ 1 GiB RSS" \
        "$(printf '%s\n' "${snap_rss[@]}" | median | awk '{ printf "%.0f", $1 / 1048576 }') MiB RSS at the end, peak $(printf '%s\n' "${snap_hwm[@]}" | median | awk '{ printf "%.0f", $1 / 1048576 }') MiB (VmHWM, with the restart from the snapshot)" \
        "the SIGTERM restart below with \`ROOMLEDGER__SNAPSHOTS__INTERVAL_SECONDS=$SNAPSHOT_EVERY\`"
    row "restart with that state after SIGTERM (snapshot)" "serving in ≤ 3 s" \
        "$(printf '%s\n' "${term_health[@]}" | median) ms to /health 200 (recovery $(printf '%s\n' "${term_recovery[@]}" | median) ms)" \
        "\`kill -TERM\`, restart, \`roomledger-loadgen --mode health --since-ms T0\`"
    row "restart after kill -9, whole journal replayed" "serving in ≤ 3 s" \
        "$(printf '%s\n' "${kill_health[@]}" | median) ms to /health 200 (recovery $(printf '%s\n' "${kill_recovery[@]}" | median) ms)" \
        "\`kill -9\`, restart, \`roomledger-loadgen --mode health --since-ms T0\`"
    row "journal replay" "≥ 200,000 events/s" "$(printf '%s\n' "${replay_rate[@]}" | median) events/s (\`replayed\` / \`duration_ms\` of the \"recovered\" log line)" "(same restarts)"
    row "GET /api/v1/rooms?limit=50, $FILL_ROOMS live rooms, webhooks at $STEADY_RATE/s" "p99 ≤ 10 ms" \
        "p99 $(printf '%s\n' "${api_p99[@]}" | median) ms, p50 $(printf '%s\n' "${api_p50[@]}" | median) ms; load avg $(printf '%s\n' "${loads[@]}" | median)" \
        "\`roomledger-loadgen --mode api --rate $STEADY_RATE --duration $STEADY_SECONDS\`"
}

section_criterion() {
    log "criterion benchmarks (cargo bench)"
    cargo bench --quiet -p roomledger-web --bench hot_path >"$WORK/bench-web.txt" 2>&1
    cargo bench --quiet -p roomledger-actors --bench room --bench snapshot --bench dedupe_cache >"$WORK/bench-actors.txt" 2>&1
    # "name  time: [..]  thrpt: [lo mid hi]" → name and the middle throughput.
    local name thrpt
    while read -r name thrpt; do
        row "criterion \`$name\`" "$(case "$name" in hot_path/*/verify+normalise) echo "≥ 150,000 events/s on one core" ;; *) echo "–" ;; esac)" "$thrpt" "\`cargo bench\`"
    done < <(cat "$WORK/bench-web.txt" "$WORK/bench-actors.txt" | awk '
        /^[a-z_]+\/[^ ]+/ { name = $1 }
        /thrpt:/ && name != "" { sub(/.*thrpt: *\[[^ ]+ [^ ]+ /, ""); split($0, a, " "); print name, a[1] " " a[2]; name = "" }')
}

for section in $SECTIONS; do
    "section_$section"
done

echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), generator on the same machine; medians of $RUNS runs ($FILL_RUNS for the fill)."
echo
echo "| target | goal | measured | command |"
echo "|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
