#!/usr/bin/env bash
# Benchmark: CPU per container start of `strato daemon`, which stays stable on
# a loaded host where wall-clock figures do not.
#
#   STRATO=/path/to/strato bench/engine-cpu.sh        # N=100 PAR=8 NET=bridge
#   N=200 NET=none bench/engine-cpu.sh
#   PERF=/tmp/p.data bench/engine-cpu.sh              # also a perf profile
#
# Starts a daemon on private paths, imports a busybox rootfs, starts one
# container to warm up, then N `strato run -d busybox sleep` (PAR clients at
# once) and prints, per container:
#   - the CPU time of the daemon, the supervisor and its forker, with their reaped
#     children (starters, nft), from /proc/PID/stat utime+stime+cutime+cstime;
#   - the CPU time the containers' own processes spent before they executed
#     `sleep` (their setup: mounts, pivot_root), summed over their pids;
#   - the growth of the host's mount table (lines of /proc/self/mountinfo);
#   - the wall time (noisy on a shared host; the CPU figures are not).
# Then, with the N containers still running, it times 20 more starts to show
# how the cost grows with the number of running containers.
#
# Not a test: no assertions, only numbers. Needs root. Everything is removed
# on exit.
set -euo pipefail

N=${N:-100}
PAR=${PAR:-8}
NET=${NET:-bridge}
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "engine-cpu.sh: needs root" >&2; exit 1; }
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

work=$(mktemp -d /tmp/strato-engine-cpu.XXXXXX)
sock=$work/strato.sock
bridge=stc$$
table=strato_cpu$$
export STRATO_HOST=unix://$sock DOCKER_HOST=unix://$sock

. "$repo/bench/strato-daemon.sh"
. "$repo/bench/settle.sh"
trap strato_daemon_stop EXIT
settle_base=$(settle_netns_count)

strato_daemon_start 198.18.128.0/17 20
"$repo/scripts/mkrootfs.sh" "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -c . | "$STRATO" import - busybox:bench >/dev/null
netargs=()
[ "$NET" = none ] && netargs=(--network none)
"$STRATO" run -d "${netargs[@]}" busybox:bench sleep 3600 >/dev/null
sup=$(pgrep -f "supervisor --root $run/exec" | head -1)
# The supervisor's forker forks the starters and reaps them: their CPU is in
# its cutime+cstime. (None with builds from before the forker.)
forker=$(pgrep -P "$sup" -x strato-forker | head -1 || true)

hz=$(getconf CLK_TCK)
ticks() { # pid -> utime+stime+cutime+cstime in clock ticks
    awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0
}
forker_ticks() { if [ -n "$forker" ]; then ticks "$forker"; else echo 0; fi; }
kids_ticks() { # CPU of the supervisor's children (the containers), in ticks
    # schedstat is in ns: exact for short-lived setup work, unlike stat's ticks.
    local ns=0 p
    for p in $(cat /proc/"$sup"/task/*/children); do
        [ "$p" = "$forker" ] && continue
        ns=$(( ns + $(awk '{print $1}' "/proc/$p/schedstat" 2>/dev/null || echo 0) ))
    done
    echo $(( ns * hz / 1000000000 ))
}
per() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN {printf "%.2f", t * 1000 / hz / n}'; }

round() { # count label
    local n=$1 label=$2 d0 s0 k0 m0 t0 d1 s1 k1 m1 t1
    d0=$(ticks "$s_pid"); s0=$(( $(ticks "$sup") + $(forker_ticks) )); k0=$(kids_ticks); m0=$(wc -l </proc/self/mountinfo)
    t0=${EPOCHREALTIME/[.,]/}000
    seq 1 "$n" | xargs -P "$PAR" -I{} "$STRATO" run -d "${netargs[@]}" busybox:bench sleep 3600 >/dev/null || true
    t1=${EPOCHREALTIME/[.,]/}000
    d1=$(ticks "$s_pid"); s1=$(( $(ticks "$sup") + $(forker_ticks) )); k1=$(kids_ticks); m1=$(wc -l </proc/self/mountinfo)
    local all=$(( d1 - d0 + s1 - s0 + k1 - k0 ))
    echo "$label: $n starts, $PAR clients, network $NET"
    echo "  CPU per container: $(per "$all" "$n") ms (daemon $(per $((d1 - d0)) "$n"), supervisor+starters $(per $((s1 - s0)) "$n"), container setup $(per $((k1 - k0)) "$n"))"
    echo "  mountinfo lines per container: $(awk -v a="$m0" -v b="$m1" -v n="$n" 'BEGIN {printf "%.1f", (b - a) / n}')"
    echo "  wall: $(( (t1 - t0) / 1000000 )) ms (load $(cut -d' ' -f1 /proc/loadavg))"
}

# PERF=FILE: the first round runs under `perf record -g` of the daemon and
# the supervisor (with the starters they and the forker fork), written to FILE.
perf_pid=
if [ -n "${PERF:-}" ]; then
    perf record -q -g -o "$PERF" -p "$s_pid,$sup${forker:+,$forker}" 2>/dev/null &
    perf_pid=$!
    sleep 1
fi
echo "strato: $STRATO"
settle_host
echo "host:   $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1 /proc/loadavg)"
round "$N" "first $N"
if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
round 20 "20 more with $((N + 1)) running"
echo "  running: $("$STRATO" ps -q | wc -l)"
