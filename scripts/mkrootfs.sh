#!/usr/bin/env bash
# Build a minimal busybox root filesystem for runtime tests and benchmarks.
#
#   scripts/mkrootfs.sh DIR
#
# DIR gets bin/busybox (Debian's busybox-static) plus one symlink per applet,
# the usual empty mount points, and /etc/passwd + /etc/group with root (0),
# app (1000) and nobody (65534). Idempotent: if DIR/bin/busybox already
# exists the script does nothing. The tree is built in a sibling temp dir and
# renamed into place, so concurrent callers never see a half-built rootfs.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1

if [ -x "$dir/bin/busybox" ]; then
    exit 0
fi

find_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        if [ -x "$b" ] && file_is_static "$b"; then
            echo "$b"
            return 0
        fi
    done
    return 1
}

# A dynamically linked busybox would need the host's libc inside the rootfs.
file_is_static() {
    if command -v readelf >/dev/null 2>&1; then
        # No PT_INTERP program header means no dynamic loader is needed.
        ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'
    else
        ! grep -qa -e '/ld-linux' -e '/ld-musl' "$1"
    fi
}

if ! busybox=$(find_busybox); then
    echo "mkrootfs: no static busybox found; installing busybox-static" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q busybox-static >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q busybox-static >/dev/null
    fi
    busybox=$(find_busybox) || {
        echo "mkrootfs: busybox-static installed but no static busybox at /bin/busybox" >&2
        exit 1
    }
fi

parent=$(dirname -- "$dir")
mkdir -p -- "$parent"
tmp=$(mktemp -d "$parent/.mkrootfs.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home/app,run,var}
chmod 1777 "$tmp/tmp"
chmod 0700 "$tmp/root"
cp -- "$busybox" "$tmp/bin/busybox"
chmod 0755 "$tmp/bin/busybox"

# One symlink per applet, all in /bin (PATH covers /bin; /sbin and /usr/bin
# exist so that configs and scripts naming them find a directory).
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$tmp/bin/$applet"
done

cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$tmp/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
EOF
chown 1000:1000 "$tmp/home/app"
echo strato >"$tmp/etc/hostname"
: >"$tmp/etc/resolv.conf"
# The engine binds its /etc files over these; without them each container's
# layer gets /etc and a mount point copied up.
: >"$tmp/etc/hosts"
chmod 0755 "$tmp"

# Someone else may have finished first; theirs is as good as ours.
if [ -x "$dir/bin/busybox" ]; then
    exit 0
fi
if [ -d "$dir" ] && [ -z "$(ls -A -- "$dir")" ]; then
    rmdir -- "$dir"
fi
if [ -e "$dir" ]; then
    # Existing non-empty dir without busybox: fill it in place.
    cp -a -- "$tmp/." "$dir/"
else
    mv -T -- "$tmp" "$dir" 2>/dev/null || cp -a -- "$tmp/." "$dir/"
fi
