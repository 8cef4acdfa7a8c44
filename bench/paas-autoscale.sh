#!/usr/bin/env bash
# Benchmark: the PaaS's autoscaling reaction with its default settings, from
# a load step to a new member Active and taking traffic.
#
#   bench/paas-autoscale.sh                 # ROUNDS=2
#   ROUNDS=3 STRATO=/path/to/strato bench/paas-autoscale.sh
#
# A daemon with the PaaS (own sockets, data root, bridge and nft table; its
# listeners shifted by OFFSET) runs `strato up`: the sample php + mysql
# application, one php member, autoscaling policy requestsInFlight 20. Each
# round then holds 30 requests of /cgi-bin/slow?2 in flight through the load
# balancer (ceil(30/20) = 2 members wanted) and asks for / every 20 ms until a
# page names a member other than the first: that time is the reaction. Load
# off, it waits for the scale-in to one member before the next round.
# Incumbent: Apache Stratos 4.1 evaluated its rules every 90 s (no Stratos
# runs here); the issue's target is 2 s. Not a test: no assertions. As root.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
OFFSET=${OFFSET:-1700}
. "$(dirname "$0")/paas-daemon.sh"
paas_daemon asb 100.76.0.0/24 26 "$OFFSET" php-mysql-app
psock=$STRATO_PAAS_HOST
echo "strato up (sample application, defaults)..." >&2
s up --timeout 120 >"$work/up.log" 2>&1 || { cat "$work/up.log" "$work/daemon.log" >&2; exit 1; }
port=$((8280 + OFFSET))

python3 - "$port" "$ROUNDS" "$STRATO" "$dsock" "$psock" <<'PY'
import json, re, socket, subprocess, sys, threading, time
port, rounds, strato, dsock, psock = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
PHP = "php-mysql-app.my-php.php.domain"

def get(path, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out.decode(errors="replace")

def members():
    rt = subprocess.run([strato, "-H", dsock, "application", "runtime", "php-mysql-app"],
                        capture_output=True, text=True)
    if rt.returncode != 0:
        return []
    return [m["memberId"] for c in json.loads(rt.stdout)["clusters"] if c["clusterId"] == PHP
            for m in c["members"] if m["status"] == "Active"]

def serving_member():
    m = re.search(r"member (\S+)", get("/"))
    return m.group(1) if m else None

results = []
for r in range(rounds):
    deadline = time.time() + 120
    while len(members()) != 1:
        if time.time() > deadline:
            sys.exit("php cluster did not settle at one member")
        time.sleep(0.5)
    first = serving_member()
    stop = threading.Event()
    def load():
        while not stop.is_set():
            try:
                get("/cgi-bin/slow?2")
            except OSError:
                pass
    t0 = time.time()
    threads = [threading.Thread(target=load, daemon=True) for _ in range(30)]
    for t in threads:
        t.start()
    reaction = None
    while time.time() - t0 < 60:
        try:
            who = serving_member()
        except OSError:
            who = None
        if who and who != first:
            reaction = time.time() - t0
            break
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    print(f"round {r + 1}: reaction {reaction:.2f} s" if reaction else f"round {r + 1}: no new member within 60 s")
    if reaction:
        results.append(reaction)
if results:
    results.sort()
    print(f"autoscale reaction (load step -> new member Active and serving), defaults: "
          f"median {results[len(results) // 2]:.2f} s, best {results[0]:.2f} s over {len(results)} rounds; "
          f"target 2 s; Stratos 4.1 evaluated every 90 s")
PY
