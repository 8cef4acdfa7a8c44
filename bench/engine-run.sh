#!/usr/bin/env bash
# Benchmark: `strato daemon` against Debian's dockerd, measured in the same run,
# both driven by the same docker CLI.
#
#   bench/engine-run.sh                 # RUNS=20 N="100 500" PAR=8
#   RUNS=30 N=500 PAR=8 bench/engine-run.sh
#   STRATO=/path/to/strato DOCKERD=/usr/sbin/dockerd bench/engine-run.sh
#
# 1. `docker run --rm busybox true`, with the default bridge network and with
#    `--network none`, RUNS each, PAUSE (0.5) seconds apart; medians and
#    strato/docker; and as many `strato run --rm` (strato's own client),
#    interleaved with strato's docker CLI runs. Each daemon's runs come in a
#    block of their own on a settled host: a run of one daemon right after
#    the other's pays for the other's deletions (see bench/settle.sh; the
#    docker runs made the strato runs 9 ms slower when interleaved).
# 2. For each count in N (default 100, then 500): that many `docker run -d
#    busybox sleep` containers with networking, PAR clients in parallel: wall
#    time until all run, and memory per container (daemon, supervisor or
#    containerd, and shims: RSS growth / count). The strato daemon is timed
#    twice: driven by the docker CLI (the ratio), and by strato's own client
#    (`strato run -d`), which shows the daemon's pace without the docker
#    CLI's own cost (about 22 ms of CPU per call here). Each of these
#    phases starts once the host has settled from the previous phase's
#    removals (bench/settle.sh).
#
# Not a test: no assertions, only numbers. Needs root and Debian's docker.io
# (dockerd, containerd). Both daemons get private sockets, data and exec
# roots under a temp dir; dockerd runs with --iptables=false and its bridge on
# a benchmark-range /21 (room for 2000 containers); strato on its own bridge,
# pool and nft table.
# Everything is removed on exit.
set -euo pipefail

RUNS=${RUNS:-20}
N=${N:-100 500}
PAR=${PAR:-8}
repo=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "engine-run.sh: needs root" >&2; exit 1; }
DOCKERD=${DOCKERD:-$(command -v dockerd || true)}
[ -x "$DOCKERD" ] || { echo "engine-run.sh: dockerd not found: apt-get install docker.io" >&2; exit 1; }
command -v docker >/dev/null || { echo "engine-run.sh: no docker CLI on PATH" >&2; exit 1; }
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

. "$repo/bench/engine-daemons.sh"
. "$repo/bench/settle.sh"
settle_base=$(settle_netns_count)
engine_daemons run 198.18.128.0/17 20 198.18.0.1/21
import_busybox

ms() { echo $(( ($2 - $1) / 1000000 )).$(( (($2 - $1) / 10000) % 100 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

run_once() { # sock, client, extra args -> prints ms
    local sock=$1 client=$2; shift 2
    local t0 t1
    # Each run on a quiet host: what the previous run (either daemon's)
    # left to finish in the background (shim exits, namespace teardown,
    # deferred deletions) does not land on this one.
    sleep "${PAUSE:-0.5}"
    t0=${EPOCHREALTIME/[.,]/}000
    DOCKER_HOST=unix://$sock STRATO_HOST=unix://$sock "$client" run --rm "$@" busybox:bench true >/dev/null
    t1=${EPOCHREALTIME/[.,]/}000
    ms "$t0" "$t1"
}

echo "strato:  $STRATO"
echo "dockerd: $("$DOCKERD" --version)"
echo "host:    $(uname -r), $(nproc) cpus"
echo
for mode in bridge none; do
    extra=()
    [ "$mode" = none ] && extra=(--network none)
    : >"$work/s.$mode"; : >"$work/d.$mode"; : >"$work/o.$mode"
    settle_host
    for i in $(seq 1 "$RUNS"); do
        if [ $((i % 2)) = 0 ]; then
            run_once "$s_sock" docker "${extra[@]}" >>"$work/s.$mode"
            run_once "$s_sock" "$STRATO" "${extra[@]}" >>"$work/o.$mode"
        else
            run_once "$s_sock" "$STRATO" "${extra[@]}" >>"$work/o.$mode"
            run_once "$s_sock" docker "${extra[@]}" >>"$work/s.$mode"
        fi
    done
    settle_host
    for i in $(seq 1 "$RUNS"); do
        run_once "$d_sock" docker "${extra[@]}" >>"$work/d.$mode"
    done
    s_med=$(median <"$work/s.$mode"); d_med=$(median <"$work/d.$mode"); o_med=$(median <"$work/o.$mode")
    echo "docker run --rm true, network $mode: $RUNS runs each"
    echo "  strato median: $s_med ms"
    echo "  docker median: $d_med ms"
    echo "  ratio strato/docker: $(awk -v a="$s_med" -v b="$d_med" 'BEGIN {printf "%.2f", a/b}')"
    echo "  strato run --rm (own client) median: $o_med ms, ratio to docker: $(awk -v a="$o_med" -v b="$d_med" 'BEGIN {printf "%.2f", a/b}')"
done

rss_kb() { # pattern... -> summed RSS in KB of matching processes
    local total=0 p
    for pat in "$@"; do
        for p in $(pgrep -f "$pat"); do
            total=$(( total + $(ps -o rss= -p "$p" 2>/dev/null || echo 0) ))
        done
    done
    echo "$total"
}

for n in $N; do
echo
echo "$n containers (docker run -d, networked), $PAR clients in parallel"
for who in strato docker strato_own; do
    client=(docker)
    if [ "$who" != docker ]; then
        sock=$s_sock; pats=("daemon --host unix://$s_sock" "supervisor --root $run/strato-exec")
        [ "$who" = strato_own ] && client=("$STRATO")
    else
        sock=$d_sock; pats=("dockerd -H unix://$d_sock" "containerd.*($work|$run)" "containerd-shim")
    fi
    settle_host
    before=$(rss_kb "${pats[@]}")
    t0=${EPOCHREALTIME/[.,]/}000
    # Failed runs show as fewer running, rather than ending the script.
    seq 1 "$n" | xargs -P "$PAR" -I{} env DOCKER_HOST=unix://$sock STRATO_HOST=unix://$sock "${client[@]}" run -d busybox:bench sleep 3600 >/dev/null || true
    t1=${EPOCHREALTIME/[.,]/}000
    running=$(DOCKER_HOST=unix://$sock docker ps -q | wc -l)
    after=$(rss_kb "${pats[@]}")
    label=$who; [ "$who" = strato_own ] && label="strato, own client"
    echo "  $label: $(ms "$t0" "$t1") ms until $running running; memory per container $(( (after - before) / n )) KB (RSS $before -> $after KB)"
    eval "${who}_ms=$(( (t1 - t0) / 1000000 ))"
    eval "${who}_kb=$(( (after - before) / n ))"
    DOCKER_HOST=unix://$sock docker ps -aq | xargs -r -P "$PAR" -n 20 env DOCKER_HOST=unix://$sock docker rm -f >/dev/null ||
        echo "  ($who: some removals failed)"
done
echo "  ratio strato/docker: time $(awk -v a="$strato_ms" -v b="$docker_ms" 'BEGIN {printf "%.2f", a/b}'), memory per container $(awk -v a="$strato_kb" -v b="$docker_kb" 'BEGIN {if (b > 0) printf "%.3f", a/b; else print "n/a"}'); with strato's own client, time $(awk -v a="$strato_own_ms" -v b="$docker_ms" 'BEGIN {printf "%.2f", a/b}')"
done
