# Sourced by the engine benchmarks: `settle_host` waits until the kernel has
# finished tearing down the network namespaces of containers removed by an
# earlier phase (their count in the net_namespace slab is back to what it was
# before, or 120 s passed), then writes dirty data back and waits
# SETTLE_SECONDS (61).
#
# Why: removing hundreds of containers leaves the kernel work for seconds
# afterwards (namespace teardown in its workers), and on an ext4 without a
# journal, such as this machine's, every new inode is allocated past the
# inodes deleted in the last minute (five more while their inode table is
# not written back: hence the sync), each skipped one looked up: a phase that
# starts right after another's removals pays for them (measured: 13.6 ms of
# CPU per start settled, 21.4 ms right after 500 removals), whichever daemon
# made them.
#
#   settle_host            # before the first phase: remember the baseline
#   settle_host            # between phases: wait for it

settle_netns_count() {
    awk '$1 == "net_namespace" {print $2}' /proc/slabinfo 2>/dev/null || echo 0
}

settle_host() {
    if [ -z "${settle_base:-}" ]; then
        settle_base=$(settle_netns_count)
    fi
    local deadline=$((SECONDS + 120))
    while [ "$(settle_netns_count)" -gt "$((settle_base + 8))" ] && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 1
    done
    sync
    sleep "${SETTLE_SECONDS:-61}"
}
