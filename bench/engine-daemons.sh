# Sourced by the engine benchmarks (engine-run.sh, engine-build.sh,
# engine-pull.sh): `strato daemon` and Debian's dockerd side by side, each on
# private sockets and data roots under one temp dir, exec roots under one
# tmpfs in /run (where both keep them by default), and its own bridge (dockerd
# with --iptables=false), removed with everything they made on exit.
#
#   engine_daemons TAG STRATO_POOL STRATO_PREFIX DOCKER_BRIDGE_CIDR
#
# sets work, s_sock, d_sock, s_pid, d_pid and waits until both answer; a
# script may define `extra_cleanup` for what it starts itself.
# `import_busybox` gives both daemons the same busybox:bench image from
# Debian's busybox-static. Needs $STRATO, $DOCKERD and $repo.

engine_daemons() {
    local tag=$1 pool=$2 prefix=$3 dcidr=$4
    work=$(mktemp -d "/tmp/strato-$tag-bench.XXXXXX")
    # Exec roots on a tmpfs, as /run is on most hosts and both daemons keep
    # them there by default (/run/docker with containerd's state,
    # /run/strato). Mounted here because /run is not always one (on this
    # project's VMs it is a directory of the ext4 root).
    run=$(mktemp -d "/run/strato-$tag-bench.XXXXXX")
    mount -t tmpfs -o mode=0755 "strato-$tag-bench" "$run"
    s_sock=$work/strato.sock
    d_sock=$work/docker.sock
    ed_bridge=s$tag$$
    ed_dbridge=d$tag$$
    ed_table=strato_$tag$$
    trap engine_daemons_cleanup EXIT
    "$STRATO" daemon --host "unix://$s_sock" --data-root "$work/strato-data" --exec-root "$run/strato-exec" \
        --bridge-name "$ed_bridge" --nft-table "$ed_table" --bridge-pool "$pool" --subnet-prefix "$prefix" \
        >"$work/strato.log" 2>&1 &
    s_pid=$!
    ip link add "$ed_dbridge" type bridge && ip addr add "$dcidr" dev "$ed_dbridge" && ip link set "$ed_dbridge" up
    "$DOCKERD" -H "unix://$d_sock" --data-root "$work/docker-data" --exec-root "$run/docker-exec" \
        --pidfile "$work/dockerd.pid" --iptables=false --ip6tables=false --bridge "$ed_dbridge" \
        >"$work/dockerd.log" 2>&1 &
    d_pid=$!
    engine_daemons_wait "$s_sock"
    engine_daemons_wait "$d_sock"
}

engine_daemons_wait() {
    for _ in $(seq 1 200); do
        DOCKER_HOST=unix://$1 docker version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): daemon on $1 did not come up" >&2
    exit 1
}

engine_daemons_cleanup() {
    set +e
    for sock in "$s_sock" "$d_sock"; do
        [ -S "$sock" ] && DOCKER_HOST=unix://$sock docker ps -aq 2>/dev/null |
            xargs -r -n 20 env DOCKER_HOST=unix://$sock docker rm -f >/dev/null 2>&1
    done
    [ -n "${s_pid:-}" ] && kill "$s_pid" 2>/dev/null && wait "$s_pid" 2>/dev/null
    pkill -TERM -f "supervisor --root $run/strato-exec" 2>/dev/null
    [ -n "${d_pid:-}" ] && kill "$d_pid" 2>/dev/null && wait "$d_pid" 2>/dev/null
    declare -F extra_cleanup >/dev/null && extra_cleanup
    sleep 0.5
    pkill -f "containerd.*($work|$run)" 2>/dev/null
    ip link del "$ed_bridge" 2>/dev/null
    ip link del "$ed_dbridge" 2>/dev/null
    nft delete table ip "$ed_table" 2>/dev/null
    grep -o -E " ($work|$run)[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$work" "$run"
}

import_busybox() {
    "$repo/scripts/mkrootfs.sh" "$work/rootfs"
    for sock in "$s_sock" "$d_sock"; do
        tar -C "$work/rootfs" -c . | DOCKER_HOST=unix://$sock docker import - busybox:bench >/dev/null
    done
}
