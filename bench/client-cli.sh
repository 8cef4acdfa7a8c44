#!/usr/bin/env bash
# Benchmark: strato's own client verbs against the stock docker CLI, both
# driving the same `strato daemon` in the same run, so the ratio is the
# client's cost alone (process start, API calls, stream handling).
#
#   bench/client-cli.sh                  # RUNS=20
#   STRATO=/path/to/strato RUNS=50 bench/client-cli.sh
#
# Commands, RUNS each, interleaved: `version`, `ps -a`, `images`,
# `run --rm --network none busybox true`, `run --rm --network none busybox
# echo hi` (attached output). Prints medians and strato/docker.
#
# Not a test: no assertions, only numbers. Needs root and the docker CLI.
# The daemon gets a private socket, data and exec roots under a temp dir, its
# own bridge, pool and nft table; everything is removed on exit.
set -euo pipefail

RUNS=${RUNS:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "client-cli.sh: needs root" >&2; exit 1; }
command -v docker >/dev/null || { echo "client-cli.sh: no docker CLI on PATH" >&2; exit 1; }
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

work=$(mktemp -d /tmp/strato-client-bench.XXXXXX)
bridge=stcb$$
table=strato_cb$$
export DOCKER_CONFIG=$work/docker-config DOCKER_CLI_HINTS=false
unset STRATO_HOST DOCKER_HOST

. "$repo/bench/strato-daemon.sh"
trap strato_daemon_stop EXIT

strato_daemon_start 100.73.0.0/24 26

bash "$repo/scripts/mkrootfs.sh" "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf - . | "$STRATO" -H "unix://$sock" import - busybox:latest >/dev/null

# Milliseconds of one run of "$@".
ms() {
    local t0 t1
    t0=${EPOCHREALTIME/[.,]/}000
    "$@" >/dev/null 2>&1
    t1=${EPOCHREALTIME/[.,]/}000
    echo $(((t1 - t0) / 1000000))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

bench() {
    local name=$1
    shift
    local s=() d=()
    for _ in $(seq 1 "$RUNS"); do
        s+=("$(ms "$STRATO" -H "unix://$sock" "$@")")
        d+=("$(ms docker -H "unix://$sock" "$@")")
    done
    local sm dm
    sm=$(printf '%s\n' "${s[@]}" | median)
    dm=$(printf '%s\n' "${d[@]}" | median)
    printf '%-40s strato %6s ms   docker %6s ms   ratio %s\n' "$name" "$sm" "$dm" \
        "$(awk -v a="$sm" -v b="$dm" 'BEGIN {printf (b > 0) ? "%.2f" : "n/a", a / b}')"
}

echo "client CLIs against the same strato daemon, median of $RUNS (strato: $STRATO)"
bench "version" version
bench "ps -a" ps -a
bench "images" images
bench "run --rm --network none busybox true" run --rm --network none busybox true
bench "run --rm --network none busybox echo hi" run --rm --network none busybox echo hi
