#!/usr/bin/env bash
# Benchmark: `strato runtime` against runc, measured in the same run.
#
#   bench/runtime-run.sh            # RUNS=30 PARALLEL=100 by default
#   RUNS=50 PARALLEL=200 bench/runtime-run.sh
#   RUNC=/path/to/runc STRATO=/path/to/strato bench/runtime-run.sh
#
# 1. Sequential: `run` of a busybox `true` container, strato and runc
#    interleaved (the order flips every round), RUNS each, fresh id every time
#    and a delete after each. Prints both medians and strato/runc.
# 2. Parallel: PARALLEL containers created+started at once (xargs -P) per
#    runtime; prints wall times and strato/runc.
#
# Not a test: no assertions, only numbers. Needs root. Every container it
# makes lives under its own --root in a temp dir and is force-deleted on
# exit, however the script ends.
set -euo pipefail

RUNS=${RUNS:-30}
PARALLEL=${PARALLEL:-100}
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
    echo "runtime-run.sh: needs root (namespaces, mounts, cgroups)" >&2
    exit 1
fi

RUNC=${RUNC:-$(command -v runc || true)}
if [ -z "$RUNC" ] || [ ! -x "$RUNC" ]; then
    echo "runtime-run.sh: runc not found; apt-get install runc, or set RUNC=" >&2
    exit 1
fi

if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

work=$(mktemp -d /tmp/strato-bench.XXXXXX)
bundle=$work/bundle
# Both state roots on a tmpfs, as /run is on most hosts (runc's default root
# is /run/runc): on a disk file system every state-directory mkdir and rmdir
# pays the file system's own costs, the same for both runtimes.
mkdir -p "$work/state"
mount -t tmpfs -o size=64m,mode=0700 strato-bench "$work/state"
s_root=$work/state/strato-root
r_root=$work/state/runc-root
mkdir -p "$bundle" "$s_root" "$r_root"

# Command prefixes for each runtime: strato takes the `runtime` verb group.
strato_rt() { "$STRATO" runtime --root "$s_root" "$@"; }
runc_rt() { "$RUNC" --root "$r_root" "$@"; }

cleanup() {
    local rc=$?
    set +e
    for rt in strato_rt runc_rt; do
        for id in $($rt list -q 2>/dev/null); do
            $rt delete --force "$id" >/dev/null 2>&1
        done
    done
    # Container cgroups are named after the ids; the runtimes remove them on
    # delete. The rootfs copy and state dirs go with the work dir.
    umount "$work/state" 2>/dev/null
    rm -rf -- "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$repo/scripts/mkrootfs.sh" "$bundle/rootfs"

# A runc-spec-like config running busybox `true`, identical for both.
cat >"$bundle/config.json" <<'EOF'
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": ["/bin/true"],
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": true },
  "hostname": "bench",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": ["nosuid", "noexec", "nodev"] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": ["nosuid", "noexec", "nodev", "ro"] }
  ],
  "linux": {
    "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
    "namespaces": [
      { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
      { "type": "uts" }, { "type": "mount" }
    ],
    "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
EOF

# Bash's own clock: a `date +%s%N` per sample added its own fork and exec
# (about 3 ms on this VM) to every sample of both runtimes.
now_ns() { printf '%s000' "${EPOCHREALTIME/[.,]/}"; }

# One timed foreground run; prints elapsed ms (3 decimals) or "fail".
timed_run() {
    local rt=$1 id=$2 t0 t1 err
    t0=${EPOCHREALTIME/[.,]/}000
    if err=$($rt run --bundle "$bundle" "$id" 2>&1 </dev/null >/dev/null); then
        t1=${EPOCHREALTIME/[.,]/}000
        $rt delete --force "$id" >/dev/null 2>&1 || true
        awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f\n", d / 1e6 }'
    else
        $rt delete --force "$id" >/dev/null 2>&1 || true
        echo "fail"
        printf '%s run failed: %s\n' "$rt" "$err" >&2
    fi
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

echo "strato: $STRATO"
echo "runc:   $RUNC ($("$RUNC" --version | head -n 1))"
echo "host:   $(uname -r), $(nproc) cpus"
echo

# Warm-up (page cache, first cgroup creation), not counted.
timed_run strato_rt warm-s >/dev/null 2>&1 || true
timed_run runc_rt warm-r >/dev/null 2>&1 || true

# --- 1. sequential run, interleaved ---------------------------------------
s_times=$work/strato.ms
r_times=$work/runc.ms
: >"$s_times"
: >"$r_times"
s_fail=0
r_fail=0
echo "sequential: $RUNS x run of busybox true per runtime, interleaved"
for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) = 0 ]; then order="strato runc"; else order="runc strato"; fi
    for which in $order; do
        if [ "$which" = strato ]; then
            t=$(timed_run strato_rt "bench-s-$$-$i")
            if [ "$t" = fail ]; then s_fail=$((s_fail + 1)); else echo "$t" >>"$s_times"; fi
        else
            t=$(timed_run runc_rt "bench-r-$$-$i")
            if [ "$t" = fail ]; then r_fail=$((r_fail + 1)); else echo "$t" >>"$r_times"; fi
        fi
    done
done
s_med=$(median <"$s_times")
r_med=$(median <"$r_times")
printf '  strato median: %s ms (%d ok, %d failed)\n' "$s_med" "$(wc -l <"$s_times")" "$s_fail"
printf '  runc   median: %s ms (%d ok, %d failed)\n' "$r_med" "$(wc -l <"$r_times")" "$r_fail"
printf '  ratio strato/runc: %s\n' "$(ratio "$s_med" "$r_med")"
echo

# --- 2. parallel create+start ---------------------------------------------
# Prints wall ms for PARALLEL concurrent create+start, and how many failed.
parallel_batch() {
    local name=$1 bin=$2 root=$3 prefix=$4 t0 t1 fails
    local failfile=$work/$name.parfail
    : >"$failfile"
    t0=$(now_ns)
    seq 1 "$PARALLEL" | xargs -P "$PARALLEL" -I{} sh -c '
        id="$5-$$-{}"
        if ! { $1 $2 --root "$3" create --bundle "$4" "$id" </dev/null >/dev/null 2>&1 &&
               $1 $2 --root "$3" start "$id" </dev/null >/dev/null 2>&1; }; then
            echo "$id" >>"$6"
        fi' _ "$bin" "$prefix" "$root" "$bundle" "par-$name" "$failfile" || true
    t1=$(now_ns)
    fails=$(wc -l <"$failfile")
    # Clean up before the other runtime's batch so they do not compete.
    local ids
    if [ -n "$prefix" ]; then ids=$("$bin" "$prefix" --root "$root" list -q 2>/dev/null || true)
    else ids=$("$bin" --root "$root" list -q 2>/dev/null || true); fi
    for id in $ids; do
        if [ -n "$prefix" ]; then "$bin" "$prefix" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
        else "$bin" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; fi
    done
    awk -v d=$((t1 - t0)) -v f="$fails" 'BEGIN { printf "%.1f %d\n", d / 1e6, f }'
}

echo "parallel: $PARALLEL containers created+started at once (xargs -P $PARALLEL)"
read -r s_wall s_pfail < <(parallel_batch strato "$STRATO" "$s_root" runtime)
read -r r_wall r_pfail < <(parallel_batch runc "$RUNC" "$r_root" "")
printf '  strato wall: %s ms (%d failed)\n' "$s_wall" "$s_pfail"
printf '  runc   wall: %s ms (%d failed)\n' "$r_wall" "$r_pfail"
if [ "$s_pfail" = 0 ] && [ "$r_pfail" = 0 ]; then
    printf '  ratio strato/runc: %s\n' "$(ratio "$s_wall" "$r_wall")"
else
    echo "  ratio strato/runc: n/a (failures)"
fi
