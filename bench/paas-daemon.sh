# Sourced by the PaaS benchmarks (not run on its own): builds strato when
# STRATO is unset, starts a daemon with the PaaS on private sockets, data
# root, bridge and nft table under a temp dir, and removes all of it on exit.
#
#   paas_daemon NAME POOL PREFIX OFFSET [APP...] [-- DAEMON_ARG...]
#
# NAME names the temp dir, bridge (strato-NAME0) and nft table (strato_NAME);
# POOL and PREFIX are the bridge pool and its subnets' prefix length; OFFSET
# shifts the load balancer's ports; the APPs are undeployed on exit; the
# DAEMON_ARGs go to `strato daemon`. DAEMON_LOG=FILE keeps the daemon's log
# (STRATO_LOG sets its filter). Sets
# work, dsock, daemon_pid, exports STRATO_PAAS_HOST, defines s() (strato
# against this daemon), and returns once both APIs answer.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

s() { "$STRATO" -H "$dsock" "$@"; }

paas_daemon() {
    local name=$1 pool=$2 prefix=$3 offset=$4
    shift 4
    paas_apps=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do paas_apps+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    paas_bridge="strato-${name}0"
    paas_table="strato_${name}"
    work=$(mktemp -d "/tmp/strato-$name-bench.XXXXXX")
    dsock="unix://$work/d.sock"
    export STRATO_PAAS_HOST="unix://$work/p.sock"
    daemon_pid=
    trap paas_cleanup EXIT
    "$STRATO" daemon --host "$dsock" --data-root "$work/data" --exec-root "$work/exec" \
        --bridge-pool "$pool" --subnet-prefix "$prefix" --bridge-name "$paas_bridge" \
        --nft-table "$paas_table" --paas --paas-host "$STRATO_PAAS_HOST" \
        --paas-port-offset "$offset" "$@" >"$work/daemon.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 200); do [ -S "$work/p.sock" ] && s version >/dev/null 2>&1 && break; sleep 0.05; done
    s version >/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
}

paas_cleanup() {
    [ -n "${DAEMON_LOG:-}" ] && cp "$work/daemon.log" "$DAEMON_LOG" 2>/dev/null
    if [ -n "$daemon_pid" ]; then
        for app in "${paas_apps[@]}"; do
            s application undeploy "$app" --wait >/dev/null 2>&1 || true
        done
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
        # The supervisor outlives its daemon by design (containers survive
        # a daemon restart); this one's containers are gone with the undeploys.
        # (Matched by its arguments: the binary may have another name.)
        pkill -f " supervisor --root $work/exec/supervisor" 2>/dev/null || true
    fi
    for m in $(awk -v w="$work" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
    ip link del "$paas_bridge" 2>/dev/null || true
    nft delete table ip "$paas_table" 2>/dev/null || true
    rm -rf "$work"
}
