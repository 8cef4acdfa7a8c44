#!/usr/bin/env bash
# Benchmark: strato's load balancer (`strato lb`) against nginx as a reverse
# proxy, in front of the same two members, measured in the same run with wrk.
#
#   bench/lb-vs-nginx.sh                    # CONN=64 DUR=10 ROUNDS=2
#   CONN=64 DUR=20 ROUNDS=3 STRATO=/path/to/strato bench/lb-vs-nginx.sh
#
# Members: two nginx servers answering a 13-byte text from memory. Fronts:
# nginx (upstream keepalive 128, workers = CPUs, access log off) and strato lb
# (round-robin, its default threads). Each round runs wrk against each front
# in turn and prints, per front, the CPU its own processes and the members
# spent per 1000 requests (comparable on a busy host, where requests/s are
# not); the best requests/s of each and its p99 latency are printed, with
# strato/nginx ratios. Not a test: no assertions. Installs nginx and wrk from
# Debian when missing.
#
# ISOLATE=1 runs everything in a CPU cgroup of the highest weight (v1 `cpu`
# or v2), so that other work on the host (a build) takes little CPU from the
# measured setup while it runs: close to a quiet host on a shared one.
set -euo pipefail

CONN=${CONN:-64}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -z "${STRATO:-}" ]; then
    echo "building strato (release)..." >&2
    (cd "$repo" && cargo build --release -q -p strato)
    STRATO="${CARGO_TARGET_DIR:-$repo/target}/release/strato"
fi

work=$(mktemp -d /tmp/strato-lb-bench.XXXXXX)
pids=()
cg=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for c in "$work"/*.conf; do [ -e "$c" ] && "$NGINX" -c "$c" -p "$work" -s stop 2>/dev/null || true; done
    rm -rf "$work"
    if [ -n "$cg" ]; then
        # Out of the cgroup, then remove it once its processes are gone.
        echo $$ >"$(dirname "$cg")/cgroup.procs" 2>/dev/null || true
        for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
    fi
}
trap cleanup EXIT

if [ -n "${ISOLATE:-}" ]; then
    if [ -d /sys/fs/cgroup/cpu ] && [ -e /sys/fs/cgroup/cpu/cpu.shares ]; then
        cg=/sys/fs/cgroup/cpu/strato-lb-bench.$$
        mkdir "$cg" && echo 262144 >"$cg/cpu.shares"
    elif grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
        cg=/sys/fs/cgroup/strato-lb-bench.$$
        mkdir "$cg" && echo 10000 >"$cg/cpu.weight"
    else
        echo "ISOLATE: no cgroup cpu controller found (v1 /sys/fs/cgroup/cpu or v2 with cpu enabled)" >&2
        exit 1
    fi
    echo $$ >"$cg/cgroup.procs"
fi

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
m1=$(port); m2=$(port); fn=$(port); fs=$(port)

nginx_conf() { # name, body of the http block
    cat >"$work/$1.conf" <<CONF
worker_processes auto;
pid $work/$1.pid;
error_log $work/$1.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/tmp-$1;
    proxy_temp_path $work/tmp-$1;
    fastcgi_temp_path $work/tmp-$1;
    uwsgi_temp_path $work/tmp-$1;
    scgi_temp_path $work/tmp-$1;
$2
}
CONF
    mkdir -p "$work/tmp-$1"
    "$NGINX" -c "$work/$1.conf" -p "$work"
}
nginx_conf member1 "    server { listen 127.0.0.1:$m1; location / { return 200 'hello member\n'; } }"
nginx_conf member2 "    server { listen 127.0.0.1:$m2; location / { return 200 'hello member\n'; } }"
nginx_conf front "    upstream members { server 127.0.0.1:$m1; server 127.0.0.1:$m2; keepalive 128; }
    server { listen 127.0.0.1:$fn; location / { proxy_pass http://members; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
"$STRATO" lb --listen "127.0.0.1:$fs" --backend "127.0.0.1:$m1" --backend "127.0.0.1:$m2" ${LB_THREADS:+--threads "$LB_THREADS"} 2>"$work/lb.err" &
pids+=($!)

for p in $fn $fs; do
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$p/" >/dev/null 2>&1 && break; sleep 0.05; done
    curl -fsS "http://127.0.0.1:$p/" >/dev/null || { echo "front on port $p does not answer" >&2; cat "$work"/*.err >&2; exit 1; }
done

# CPU ticks (user + system, all threads) of the given processes.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
workers() { pgrep -P "$(cat "$work/$1.pid")" | tr '\n' ' '; }
members="$(workers member1) $(workers member2)"
front_nginx="$(workers front)"

# wrk --latency against port $1, CPU of front processes $2 →
# "requests/s p99_ms front_ms_per_1000 members_ms_per_1000"
measure() {
    local out rps p99 n f0 m0 f1 m1
    m0=$(ticks $members); f0=$(ticks $2)
    out=$(wrk -t"$THREADS" -c"$CONN" -d"${DUR}s" --latency "http://127.0.0.1:$1/")
    m1=$(ticks $members); f1=$(ticks $2)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$rps $p99 $(awk -v f=$((f1 - f0)) -v m=$((m1 - m0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.1f %.1f", f*1e6/hz/n, m*1e6/hz/n}')"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)${cg:+ (isolated in $cg)}"
best_s=0; best_n=0; p99_s=0; p99_n=0
for r in $(seq "$ROUNDS"); do
    read -r rs ps cs ms < <(measure "$fs" "${pids[0]}")
    read -r rn pn cn mn < <(measure "$fn" "$front_nginx")
    printf 'round %d: strato %8.0f req/s p99 %6.2f ms | nginx %8.0f req/s p99 %6.2f ms | CPU ms/1000 req: front %.1f vs %.1f, members %.1f vs %.1f\n' \
        "$r" "$rs" "$ps" "$rn" "$pn" "$cs" "$cn" "$ms" "$mn"
    if awk -v a="$rs" -v b="$best_s" 'BEGIN{exit !(a>b)}'; then best_s=$rs; p99_s=$ps; fi
    if awk -v a="$rn" -v b="$best_n" 'BEGIN{exit !(a>b)}'; then best_n=$rn; p99_n=$pn; fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
rss_s=$(awk '/VmHWM/ {print $2}' "/proc/${pids[0]}/status")
echo
printf 'best: strato lb %.0f req/s (p99 %.2f ms), nginx %.0f req/s (p99 %.2f ms)\n' "$best_s" "$p99_s" "$best_n" "$p99_n"
awk -v s="$best_s" -v n="$best_n" -v ps="$p99_s" -v pn="$p99_n" \
    'BEGIN { printf "ratio strato/nginx: throughput %.2f (target >= 1.0), p99 %.2f (target <= 1.0)\n", s/n, ps/pn }'
echo "strato lb peak RSS: ${rss_s} kB (wrk: $CONN connections, $THREADS threads, ${DUR}s x $ROUNDS rounds)"
