#!/usr/bin/env bash
# The README's main job, on one machine with no manual steps: build strato and
# run `strato up`, which starts the daemon with the PaaS (embedded defaults:
# data in /var/lib/strato, sockets in /run/strato), builds a sample HTTP
# cartridge image locally, registers Stratos 4.1 sample definitions, deploys a
# two-cartridge application behind the built-in load balancer, and prints its
# URLs. Then this script asks the load balancer for a page.
#
#   scripts/quickstart.sh           (as root: containers need namespaces and cgroups)
#
# The daemon keeps running afterwards; `strato application undeploy
# php-mysql-app --wait` removes the application.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "quickstart: run as root (containers need namespaces, mounts, cgroups and a bridge)" >&2
    exit 1
fi

# What the engine needs from Debian: busybox for the sample image, nftables
# (or iptables) for NAT and published ports, tini for `--init` containers,
# curl for the last step.
missing=()
for pkg in busybox-static nftables iptables tini curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> building strato (release)"
(cd "$repo" && cargo build --release -q -p strato)
strato="${CARGO_TARGET_DIR:-$repo/target}/release/strato"

echo "==> strato up"
out=$("$strato" up | tee /dev/stderr)
url=$(grep -Eo 'http://127\.0\.0\.1:[0-9]+/' <<<"$out" | head -n 1)
if [ -n "$url" ]; then
    echo "==> curl $url (through strato's load balancer)"
    curl -fsS --retry 5 --retry-connrefused --retry-delay 1 "$url"
fi
