#!/usr/bin/env bash
# Benchmark: strato's registry against Debian's docker-registry (distribution
# 2.8), measured side by side in the same run, both driven by the same skopeo.
#
#   bench/registry-push-pull.sh                 # RUNS=3 LAYERS=8 LAYER_MIB=64 (512 MiB)
#   RUNS=5 bench/registry-push-pull.sh
#   STRATO=/path/to/strato DISTRIBUTION=/usr/bin/docker-registry bench/registry-push-pull.sh
#
# Builds an OCI layout of LAYERS layers of incompressible (random) data, then
# for each of RUNS rounds starts both registries on fresh temporary roots and
# loopback ports, pushes the layout to each with `skopeo copy` and pulls it
# back into a fresh layout, alternating which registry goes first. Prints the
# median push and pull times, strato/distribution ratios, and each
# registry's peak RSS (VmHWM from /proc/PID/status, the largest of the
# rounds). strato runs with its defaults (blobs fsynced in the background
# after they become visible, re-verified at start after a crash);
# distribution with its filesystem driver and no auth (it never fsyncs).
# Between push and pull the disk is synced, outside the timings.
#
# Not a test: no assertions, only numbers. Needs skopeo and docker-registry
# (apt-get install skopeo docker-registry). Everything is removed on exit.
set -euo pipefail

RUNS=${RUNS:-3}
LAYERS=${LAYERS:-8}
LAYER_MIB=${LAYER_MIB:-64}
repo=$(cd "$(dirname "$0")/.." && pwd)

command -v skopeo >/dev/null || { echo "registry-push-pull.sh: needs skopeo: apt-get install skopeo" >&2; exit 1; }
DISTRIBUTION=${DISTRIBUTION:-$(command -v docker-registry || true)}
[ -x "$DISTRIBUTION" ] || { echo "registry-push-pull.sh: docker-registry not found: apt-get install docker-registry" >&2; exit 1; }
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

work=$(mktemp -d /tmp/strato-registry-bench.XXXXXX)
s_pid=
d_pid=
cleanup() {
    set +e
    [ -n "$s_pid" ] && kill "$s_pid" 2>/dev/null && wait "$s_pid" 2>/dev/null
    [ -n "$d_pid" ] && kill "$d_pid" 2>/dev/null && wait "$d_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$1/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "registry on port $1 did not come up" >&2
    exit 1
}

now() { date +%s.%N; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"; }

# ---------------------------------------------------------------- the image
layout=$work/layout
mkdir -p "$layout/blobs/sha256"
echo "building a ${LAYERS}-layer layout of $((LAYERS * LAYER_MIB)) MiB of random data..." >&2
layers_json=
diff_ids=
for i in $(seq "$LAYERS"); do
    head -c "$((LAYER_MIB << 20))" /dev/urandom >"$work/layer"
    d=$(sha256sum "$work/layer" | cut -d' ' -f1)
    mv "$work/layer" "$layout/blobs/sha256/$d"
    layers_json+="${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$((LAYER_MIB << 20))}"
    diff_ids+="${diff_ids:+,}\"sha256:$d\""
done
put() { # stdin → blob; prints "digest size"
    cat >"$work/blob"
    local d s
    d=$(sha256sum "$work/blob" | cut -d' ' -f1)
    s=$(stat -c %s "$work/blob")
    mv "$work/blob" "$layout/blobs/sha256/$d"
    echo "$d $s"
}
read -r cd cs < <(printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$diff_ids" | put)
read -r md ms < <(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd" "$cs" "$layers_json" | put)
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$md" "$ms" >"$layout/index.json"

# ---------------------------------------------------------------- registries
start_strato() {
    rm -rf "$work/strato-root"
    s_port=$(free_port)
    "$STRATO" registry serve --addr "127.0.0.1:$s_port" --root "$work/strato-root" --gc-interval 0 \
        >"$work/strato.log" 2>&1 &
    s_pid=$!
    wait_port "$s_port"
}

start_distribution() {
    rm -rf "$work/dist-root"
    d_port=$(free_port)
    cat >"$work/dist.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/dist-root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$d_port
YML
    "$DISTRIBUTION" serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
    d_pid=$!
    wait_port "$d_port"
}

push() { # port
    skopeo copy -q --preserve-digests --dest-tls-verify=false \
        "oci:$layout:bench" "docker://127.0.0.1:$1/bench/img:v1" >/dev/null
}

pull() { # port
    rm -rf "$work/pulled"
    skopeo copy -q --preserve-digests --src-tls-verify=false \
        "docker://127.0.0.1:$1/bench/img:v1" "oci:$work/pulled:bench" >/dev/null
    local got
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$work/pulled/index.json")
    [ "$got" = "sha256:$md" ] || { echo "pulled manifest $got, pushed sha256:$md" >&2; exit 1; }
}

s_push=() s_pull=() d_push=() d_pull=()
# The registry process's own CPU time per push and pull: the part of the
# wall time a registry controls (the rest is skopeo hashing and writing,
# and the disk).
s_push_cpu=() s_pull_cpu=() d_push_cpu=() d_pull_cpu=()
s_hwm=0 d_hwm=0
for r in $(seq "$RUNS"); do
    start_strato
    start_distribution
    if [ $((r % 2)) = 1 ]; then order="s d"; else order="d s"; fi
    for who in $order; do
        if [ "$who" = s ]; then port=$s_port; pid=$s_pid; else port=$d_port; pid=$d_pid; fi
        sync
        c0=$(cpu_s "$pid")
        t0=$(now); push "$port"; t1=$(now)
        c1=$(cpu_s "$pid")
        # Let writeback finish outside the timings: strato's background fsync
        # of what was pushed, the kernel's for distribution (which never
        # fsyncs); otherwise it competes with the pull for the disk.
        sleep 1; sync
        c2=$(cpu_s "$pid")
        t2=$(now); pull "$port"; t3=$(now)
        c3=$(cpu_s "$pid")
        tp=$(echo "$t1 - $t0" | bc -l); tl=$(echo "$t3 - $t2" | bc -l)
        cp=$(echo "$c1 - $c0" | bc -l); cl=$(echo "$c3 - $c2" | bc -l)
        if [ "$who" = s ]; then
            s_push+=("$tp"); s_pull+=("$tl"); s_push_cpu+=("$cp"); s_pull_cpu+=("$cl")
        else
            d_push+=("$tp"); d_pull+=("$tl"); d_push_cpu+=("$cp"); d_pull_cpu+=("$cl")
        fi
    done
    h=$(hwm_kib "$s_pid"); [ "$h" -gt "$s_hwm" ] && s_hwm=$h
    h=$(hwm_kib "$d_pid"); [ "$h" -gt "$d_hwm" ] && d_hwm=$h
    kill "$s_pid" "$d_pid"; wait "$s_pid" "$d_pid" 2>/dev/null || true
    s_pid= d_pid=
    printf 'round %d: strato push %.2fs pull %.2fs | distribution push %.2fs pull %.2fs\n' \
        "$r" "${s_push[-1]}" "${s_pull[-1]}" "${d_push[-1]}" "${d_pull[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
sp=$(median "${s_push[@]}"); sl=$(median "${s_pull[@]}")
dp=$(median "${d_push[@]}"); dl=$(median "${d_pull[@]}")
spc=$(median "${s_push_cpu[@]}"); slc=$(median "${s_pull_cpu[@]}")
dpc=$(median "${d_push_cpu[@]}"); dlc=$(median "${d_pull_cpu[@]}")
mib=$((LAYERS * LAYER_MIB))
echo
echo "image: $LAYERS layers, $mib MiB random; $RUNS rounds; medians"
printf '%-14s %10s %10s %12s\n' "" push pull "peak RSS"
printf '%-14s %9.2fs %9.2fs %9d MiB\n' strato "$sp" "$sl" $((s_hwm / 1024))
printf '%-14s %9.2fs %9.2fs %9d MiB\n' distribution "$dp" "$dl" $((d_hwm / 1024))
printf 'strato/distribution: push %.2fx, pull %.2fx, peak RSS %.2fx\n' \
    "$(echo "$sp / $dp" | bc -l)" "$(echo "$sl / $dl" | bc -l)" "$(echo "$s_hwm / $d_hwm" | bc -l)"
printf 'throughput (MiB/s): strato push %.0f pull %.0f | distribution push %.0f pull %.0f\n' \
    "$(echo "$mib / $sp" | bc -l)" "$(echo "$mib / $sl" | bc -l)" "$(echo "$mib / $dp" | bc -l)" "$(echo "$mib / $dl" | bc -l)"
printf 'registry CPU (user+system) per push / pull: strato %.2fs / %.2fs | distribution %.2fs / %.2fs | strato/distribution %.2fx / %.2fx\n' \
    "$spc" "$slc" "$dpc" "$dlc" "$(echo "$spc / $dpc" | bc -l)" "$(echo "$slc / $dlc" | bc -l)"
# Were a registry free (no CPU at all), the wall time would still hold what
# is left of distribution's once its own CPU is taken out: the floor of the
# wall-time ratio in this bench.
printf 'floor of the wall-time ratio (a registry using no CPU): push %.2fx, pull %.2fx\n' \
    "$(echo "($dp - $dpc) / $dp" | bc -l)" "$(echo "($dl - $dlc) / $dl" | bc -l)"
