# Sourced by the benchmarks that drive one `strato daemon` of their own
# (engine-cpu.sh, client-cli.sh). The caller sets STRATO, work (a temp dir,
# removed by the stop), bridge and table, then:
#
#   strato_daemon_start POOL PREFIX   # sets sock and s_pid; returns once it answers
#   strato_daemon_stop                # containers, daemon, its supervisor,
#                                     # bridge, nft table, mounts, $work

strato_daemon_start() {
    sock=$work/strato.sock
    # The exec root on a tmpfs, as the default /run/strato/engine is on
    # most hosts (mounted here: /run is not always a tmpfs).
    run=$(mktemp -d /run/strato-bench.XXXXXX)
    mount -t tmpfs -o mode=0755 strato-bench "$run"
    "$STRATO" daemon --host "unix://$sock" --data-root "$work/data" --exec-root "$run/exec" \
        --bridge-name "$bridge" --nft-table "$table" --bridge-pool "$1" --subnet-prefix "$2" \
        >"$work/daemon.log" 2>&1 &
    s_pid=$!
    for _ in $(seq 1 200); do
        "$STRATO" -H "unix://$sock" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "strato daemon did not answer; its log: $work/daemon.log" >&2
    return 1
}

strato_daemon_stop() {
    set +e
    [ -S "${sock:-}" ] && "$STRATO" -H "unix://$sock" ps -aq 2>/dev/null |
        xargs -r -n 50 "$STRATO" -H "unix://$sock" rm -f >/dev/null 2>&1
    [ -n "${s_pid:-}" ] && kill "$s_pid" 2>/dev/null && wait "$s_pid" 2>/dev/null
    # The supervisor of this daemon only: the one whose arguments name our exec root.
    pkill -f -- "supervisor --root $run/exec" 2>/dev/null
    sleep 0.3
    ip link del "$bridge" 2>/dev/null
    nft delete table ip "$table" 2>/dev/null
    grep -o -E " ($work|${run:-$work})[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$work" ${run:+"$run"}
}
