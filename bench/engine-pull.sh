#!/usr/bin/env bash
# Benchmark: `docker pull` of the same image from a local docker-registry
# (Debian's distribution 2.8) through `strato daemon` and through Debian's
# dockerd, measured in the same run, both driven by the same docker CLI.
#
#   bench/engine-pull.sh                    # RUNS=5 LAYERS=4 LAYER_MB=32
#   RUNS=9 LAYERS=8 LAYER_MB=64 bench/engine-pull.sh
#   STRATO=/path/to/strato DOCKERD=/usr/sbin/dockerd bench/engine-pull.sh
#
# The image: the busybox rootfs of scripts/mkrootfs.sh plus LAYERS layers of
# LAYER_MB MiB of random data each (gzip cannot shrink them), written as a
# docker-save archive, loaded into dockerd and pushed by it to the registry.
# Each run removes the image from both daemons (layers and snapshots go too)
# and times `docker pull`, alternating which daemon goes first; it prints the
# medians and strato/docker.
#
# Not a test: no assertions, only numbers. Needs root, Debian's docker.io
# (dockerd, containerd) and docker-registry. Everything lives under a temp
# dir and is removed on exit.
set -euo pipefail

RUNS=${RUNS:-5}
LAYERS=${LAYERS:-4}
LAYER_MB=${LAYER_MB:-32}
repo=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "engine-pull.sh: needs root" >&2; exit 1; }
DOCKERD=${DOCKERD:-$(command -v dockerd || true)}
[ -x "$DOCKERD" ] || { echo "engine-pull.sh: dockerd not found: apt-get install docker.io" >&2; exit 1; }
REGISTRY=${REGISTRY:-/usr/bin/docker-registry}
[ -x "$REGISTRY" ] || { echo "engine-pull.sh: $REGISTRY not found: apt-get install docker-registry" >&2; exit 1; }
command -v docker >/dev/null || { echo "engine-pull.sh: no docker CLI on PATH" >&2; exit 1; }
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

. "$repo/bench/engine-daemons.sh"
engine_daemons pul 198.18.192.0/18 20 198.19.251.1/24
extra_cleanup() { [ -n "${r_pid:-}" ] && kill "$r_pid" 2>/dev/null && wait "$r_pid" 2>/dev/null; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
image=localhost:$port/bench:v1

cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: bench
EOF
"$REGISTRY" serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
r_pid=$!

# The image, as a docker-save archive.
echo "making the image: busybox + $LAYERS x $LAYER_MB MiB of random data..." >&2
img=$work/image
mkdir -p "$img"
"$repo/scripts/mkrootfs.sh" "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$img/l0.tar" .
for i in $(seq 1 "$LAYERS"); do
    mkdir -p "$work/layer$i/data"
    head -c "$((LAYER_MB << 20))" /dev/urandom >"$work/layer$i/data/blob$i"
    tar -C "$work/layer$i" -cf "$img/l$i.tar" .
    rm -rf "$work/layer$i"
done
diff_ids=""
layers=""
for i in $(seq 0 "$LAYERS"); do
    d=$(sha256sum "$img/l$i.tar" | cut -d' ' -f1)
    diff_ids="$diff_ids${diff_ids:+,}\"sha256:$d\""
    layers="$layers${layers:+,}\"l$i.tar\""
done
arch=$(dpkg --print-architecture)
cat >"$img/config.json" <<EOF
{"architecture":"$arch","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[$diff_ids]}}
EOF
echo "[{\"Config\":\"config.json\",\"RepoTags\":[\"$image\"],\"Layers\":[$layers]}]" >"$img/manifest.json"
tar -C "$img" -cf "$work/image.tar" .
rm -rf "$img"
DOCKER_HOST=unix://$d_sock docker load -i "$work/image.tar" >/dev/null
DOCKER_HOST=unix://$d_sock docker push "$image" >/dev/null
DOCKER_HOST=unix://$d_sock docker rmi "$image" >/dev/null
rm -f "$work/image.tar"

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

pull_once() { # sock -> prints ms
    local sock=$1 t0 t1
    t0=${EPOCHREALTIME/[.,]/}000
    DOCKER_HOST=unix://$sock docker pull -q "$image" >/dev/null
    t1=${EPOCHREALTIME/[.,]/}000
    DOCKER_HOST=unix://$sock docker rmi "$image" >/dev/null
    ms "$t0" "$t1"
}

echo "strato:   $STRATO"
echo "dockerd:  $("$DOCKERD" --version)"
echo "registry: $("$REGISTRY" --version 2>/dev/null || echo "$REGISTRY")"
echo "host:     $(uname -r), $(nproc) cpus"
echo "image:    busybox + $LAYERS x $LAYER_MB MiB random layers"
echo
: >"$work/s"; : >"$work/d"
for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) = 0 ]; then
        pull_once "$s_sock" >>"$work/s"
        pull_once "$d_sock" >>"$work/d"
    else
        pull_once "$d_sock" >>"$work/d"
        pull_once "$s_sock" >>"$work/s"
    fi
done
s_med=$(median <"$work/s"); d_med=$(median <"$work/d")
echo "docker pull from a local docker-registry: $RUNS runs each, interleaved"
echo "  strato: $(tr '\n' ' ' <"$work/s")ms; median $s_med ms"
echo "  docker: $(tr '\n' ' ' <"$work/d")ms; median $d_med ms"
echo "  ratio strato/docker: $(awk -v a="$s_med" -v b="$d_med" 'BEGIN {printf "%.2f", a/b}')"
