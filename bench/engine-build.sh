#!/usr/bin/env bash
# Benchmark: `docker build` (the classic builder) on `strato daemon` against
# Debian's dockerd, measured in the same run, both driven by the same docker
# CLI with DOCKER_BUILDKIT=0.
#
#   bench/engine-build.sh                       # RUNS=5
#   STRATO=/path/to/strato DOCKERD=/usr/sbin/dockerd RUNS=9 bench/engine-build.sh
#
# The build: FROM busybox, ENV, WORKDIR, COPY of a context of 200 small files
# and one 8 MiB file, a RUN writing 100 files, CMD. Each daemon builds it
# RUNS times with --no-cache (cold) and RUNS times from its cache (warm),
# interleaved; medians and strato/docker ratios.
#
# Not a test: no assertions, only numbers. Needs root and Debian's docker.io.
# Both daemons get private sockets, data and exec roots under a temp dir;
# dockerd runs with --iptables=false on its own bridge. Everything is
# removed on exit.
set -euo pipefail

RUNS=${RUNS:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "engine-build.sh: needs root" >&2; exit 1; }
DOCKERD=${DOCKERD:-$(command -v dockerd || true)}
[ -x "$DOCKERD" ] || { echo "engine-build.sh: dockerd not found: apt-get install docker.io" >&2; exit 1; }
command -v docker >/dev/null || { echo "engine-build.sh: no docker CLI on PATH" >&2; exit 1; }
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi
export DOCKER_BUILDKIT=0

. "$repo/bench/engine-daemons.sh"
engine_daemons bld 198.18.192.0/20 24 198.18.8.1/24
import_busybox

ctx=$work/ctx
mkdir -p "$ctx/files"
for i in $(seq 1 200); do echo "file $i" >"$ctx/files/f$i"; done
head -c 8M /dev/urandom >"$ctx/files/big"
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox:bench
ENV A=1
WORKDIR /app
COPY files/ /app/
RUN for i in $(seq 1 100); do echo $i > /app/n$i; done
CMD ["ls", "/app"]
EOF

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
build_once() { # sock, extra args -> prints ms
    local sock=$1; shift
    local t0 t1
    t0=${EPOCHREALTIME/[.,]/}000
    DOCKER_HOST=unix://$sock docker build -q "$@" -t bench:built "$ctx" >/dev/null 2>&1
    t1=${EPOCHREALTIME/[.,]/}000
    ms "$t0" "$t1"
}

echo "strato:  $STRATO"
echo "dockerd: $("$DOCKERD" --version)"
echo "host:    $(uname -r), $(nproc) cpus"
for kind in cold warm; do
    extra=()
    [ "$kind" = cold ] && extra=(--no-cache)
    : >"$work/s.$kind"; : >"$work/d.$kind"
    for i in $(seq 1 "$RUNS"); do
        if [ $((i % 2)) = 0 ]; then
            build_once "$s_sock" "${extra[@]}" >>"$work/s.$kind"
            build_once "$d_sock" "${extra[@]}" >>"$work/d.$kind"
        else
            build_once "$d_sock" "${extra[@]}" >>"$work/d.$kind"
            build_once "$s_sock" "${extra[@]}" >>"$work/s.$kind"
        fi
    done
    s_med=$(median <"$work/s.$kind"); d_med=$(median <"$work/d.$kind")
    echo
    echo "docker build, $kind ($RUNS runs each, interleaved)"
    echo "  strato median: $s_med ms"
    echo "  docker median: $d_med ms"
    echo "  ratio strato/docker: $(awk -v a="$s_med" -v b="$d_med" 'BEGIN {printf "%.2f", a/b}')"
done
