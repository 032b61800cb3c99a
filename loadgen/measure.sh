# Helpers shared by loadgen/bench.sh, loadgen/ab.sh, loadgen/threads.sh and scripts/soak.sh;
# sourced, not run.

# The generator's default credentials; every measured server is configured with the same.
AGORA_SECRET=loadgen-agora-secret
LIVEKIT_KEY=APIloadgen
LIVEKIT_SECRET=loadgen-livekit-secret

# start_roomledger BIN PORT DATA LOG [KEY=VALUE ...]: starts BIN in the background on
# 127.0.0.1:PORT over DATA with the generator's credentials, the KEY=VALUE overrides on top,
# and its log (info) appended to LOG; sets ROOMLEDGER_PID. It runs in the current directory:
# start it from one without a config.toml to get the compiled-in defaults.
start_roomledger() {
    local bin=$1 port=$2 data=$3 logfile=$4
    shift 4
    env ROOMLEDGER__SERVER__BIND="127.0.0.1:$port" \
        ROOMLEDGER__STORAGE__PATH="$data" \
        ROOMLEDGER__AGORA__SECRET="$AGORA_SECRET" \
        ROOMLEDGER__LIVEKIT__KEYS="{$LIVEKIT_KEY=\"$LIVEKIT_SECRET\"}" \
        ROOMLEDGER__LOG__LEVEL=info NO_COLOR=1 \
        "$@" "$bin" >>"$logfile" 2>&1 &
    ROOMLEDGER_PID=$!
}

# stop_pid PID [SIGNAL]: signals the process (TERM by default) and waits for it to end, at most
# 60 s before a SIGKILL. An empty PID is nothing to stop. PID must be a child of this shell.
stop_pid() {
    local pid=$1 signal=${2:-TERM}
    [[ -n "$pid" ]] || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# field FILE KEY: the value of KEY in the generator's RESULT line in FILE.
field() { { grep '^RESULT' "$1" || true; } | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks (after the
# "pid (comm)" prefix of /proc/PID/stat, utime and stime are the 12th and 13th fields).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# us_per_event TICKS ACKED: CPU microseconds per acknowledged event.
us_per_event() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "n/a" }'; }

# The median of the numbers on stdin (one a line).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# metrics PORT: the server's /metrics text, over bash's own TCP (no curl needed).
metrics() {
    local port=$1
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
    cat <&"$fd"
    exec {fd}>&-
}

# commit_cycle METRICS_FILE SECONDS: "cycle flush group" of the run that took SECONDS: the time
# per group commit (SECONDS over the number of commits) and the append-and-flush part of it, in
# ms, and the events per commit, from roomledger_journal_commit_* in METRICS_FILE.
commit_cycle() {
    awk -v d="$2" '
        /^roomledger_journal_commit_duration_seconds_sum / { s = $2 }
        /^roomledger_journal_commit_duration_seconds_count / { c = $2 }
        /^roomledger_journal_commit_events_sum / { e = $2 }
        END { if (c > 0) printf "%.3f %.3f %.1f\n", d / c * 1000, s / c * 1000, e / c; else print "n/a n/a n/a" }
    ' "$1"
}
