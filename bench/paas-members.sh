#!/usr/bin/env bash
# Benchmark: deploying an application of MEMBERS members of one cartridge,
# time until every member is Active, then time to undeploy.
#
#   bench/paas-members.sh                   # MEMBERS=200
#   MEMBERS=50 STRATO=/path/to/strato bench/paas-members.sh
#   STRATO_LOG=strato_paas=debug DAEMON_LOG=/tmp/d.log bench/paas-members.sh
#   PARALLEL=16 bench/paas-members.sh       # --paas-engine-parallel (default 8)
#
# A daemon with the PaaS on its own sockets, data root, bridge (a /22, room
# for 1000 members) and nft table runs `strato up` once (it builds the sample
# HTTP image and registers the sample network partition and policies), then
# gets a small cartridge (10m cpu, 16Mi memory: 200 fit the one local host), a
# deployment policy with partitionMax MEMBERS, and an application with
# cartridgeMin = cartridgeMax = MEMBERS. Active means the member's port
# answered and it joined the load balancer. No incumbent runs here (Stratos
# 4.1 started members through jclouds on an IaaS). Not a test. As root.
set -euo pipefail

MEMBERS=${MEMBERS:-200}
OFFSET=${OFFSET:-1800}
. "$(dirname "$0")/paas-daemon.sh"
paas_daemon mb 100.78.0.0/16 22 "$OFFSET" members-app php-mysql-app -- \
    ${PARALLEL:+--paas-engine-parallel "$PARALLEL"}
echo "strato up (sample image and definitions)..." >&2
s up --timeout 120 >"$work/up.log" 2>&1 || { cat "$work/up.log" "$work/daemon.log" >&2; exit 1; }
s application undeploy php-mysql-app --wait >/dev/null

cat >"$work/cartridge.json" <<EOF
{ "type": "tiny", "provider": "strato", "category": "framework", "host": "strato.local",
  "displayName": "tiny", "description": "sample HTTP server, small", "version": "1",
  "multiTenant": "false",
  "portMapping": [ { "name": "http", "protocol": "http", "port": "80", "proxyPort": "9280" } ],
  "iaasProvider": [ { "type": "strato", "imageId": "strato/sample-http:1", "property": [] } ],
  "property": [ { "name": "cpu", "value": "10m" }, { "name": "memory", "value": "16Mi" } ] }
EOF
cat >"$work/deployment.json" <<EOF
{ "id": "deployment-policy-members",
  "networkPartitions": [ { "id": "network-partition-local", "partitionAlgo": "one-after-another",
    "partitions": [ { "id": "partition-a", "partitionMax": $MEMBERS } ] } ] }
EOF
cat >"$work/application.json" <<EOF
{ "applicationId": "members-app", "alias": "members-app", "name": "members", "multiTenant": false,
  "components": { "cartridges": [ { "type": "tiny", "cartridgeMin": $MEMBERS, "cartridgeMax": $MEMBERS,
    "subscribableInfo": { "alias": "tiny", "autoscalingPolicy": "autoscaling-policy-web",
      "deploymentPolicy": "deployment-policy-members" } } ] } }
EOF
s cartridge add -f "$work/cartridge.json" >/dev/null
s policy deployment add -f "$work/deployment.json" >/dev/null
s application add -f "$work/application.json" >/dev/null

# Active members; the slowest answer of the runtime call (the PaaS API must
# stay responsive during a deploy) is kept in $work/slowest.
echo 0 >"$work/slowest"
active() {
    local a b
    a=$(date +%s.%N)
    s application runtime members-app >"$work/runtime.json" 2>/dev/null || true
    b=$(date +%s.%N)
    awk -v d="$(echo "$b - $a" | bc)" '{ if (d > $1) print d; else print $1 }' "$work/slowest" >"$work/slowest.n"
    mv "$work/slowest.n" "$work/slowest"
    python3 -c 'import json,sys; print(sum(m["status"] == "Active" for c in json.load(sys.stdin)["clusters"] for m in c["members"]))' <"$work/runtime.json" 2>/dev/null || echo 0
}
t0=$(date +%s.%N)
s application deploy members-app application-policy-local >/dev/null
last=-1
while :; do
    n=$(active)
    if [ "$n" != "$last" ]; then
        printf '  %6.2f s: %s Active\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$n" >&2
        last=$n
    fi
    [ "$n" -ge "$MEMBERS" ] && break
    if [ "$(echo "$(date +%s.%N) - $t0 > 600" | bc)" = 1 ]; then
        echo "not all Active after 600 s" >&2
        tail -20 "$work/daemon.log" >&2
        exit 1
    fi
    sleep 0.2
done
t1=$(date +%s.%N)
s application undeploy members-app --wait >/dev/null
t2=$(date +%s.%N)
printf 'deploy of %d members until all Active: %.1f s; undeploy until gone: %.1f s\n' \
    "$MEMBERS" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
printf 'slowest answer of the PaaS runtime call during the deploy: %.2f s\n' "$(cat "$work/slowest")"
