#!/usr/bin/env bash
# A tour of the runtime alone (the README's main job is scripts/quickstart.sh): build strato,
# make a busybox bundle, and run a container in it with strato's OCI runtime.
#
#   scripts/runtime-demo.sh          (as root: namespaces, mounts, cgroups)
#
# Everything it makes lives under $STRATO_QUICKSTART_DIR (default
# /tmp/strato-quickstart); the container is deleted when it exits.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${STRATO_QUICKSTART_DIR:-/tmp/strato-quickstart}

if [ "$(id -u)" != 0 ]; then
    echo "quickstart: run as root (containers need namespaces, mounts and cgroups)" >&2
    exit 1
fi

echo "==> building strato (release)"
(cd "$repo" && cargo build --release -q -p strato)
strato="${CARGO_TARGET_DIR:-$repo/target}/release/strato"

echo "==> building a busybox bundle in $work"
mkdir -p "$work"
"$repo/scripts/mkrootfs.sh" "$work/rootfs"
rm -f "$work/config.json"
"$strato" runtime spec --seccomp --bundle "$work"
# A non-interactive demo process instead of the default interactive shell.
python3 - "$work/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c",
    "echo \"hello from $(hostname): pid $$ in its own pid namespace\"; "
    "echo \"uid $(id -u), root filesystem read-only: $(touch /x 2>/dev/null && echo no || echo yes)\"; "
    "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"]
json.dump(spec, open(path, "w"), indent=2)
PY

id="quickstart-$$"
echo "==> strato runtime run $id"
"$strato" runtime run --bundle "$work" "$id"
echo "==> done: the container exited and was deleted (strato runtime list shows nothing left)"
"$strato" runtime list
