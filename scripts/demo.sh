#!/usr/bin/env bash
# make demo: start the demo workload and a triage sidecar in development mode
# beside it (mTLS on loopback with certificates made on first use), then walk
# the capabilities with the CLI. Artifacts go to demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-demo-out}
DEV="$OUT/dev"
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.txt "$OUT"/*.json

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# wait_for FILE REGEX: wait until a line of FILE matches REGEX, print the match.
wait_for() {
  for _ in $(seq 1 100); do
    if m=$(grep -oE "$2" "$1" 2>/dev/null | head -n1) && [ -n "$m" ]; then echo "$m"; return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

bin/triage-demo --addr 127.0.0.1:0 >"$OUT/demo-app.log" 2>&1 &
pids+=($!)
DEMO_PID=$(wait_for "$OUT/demo-app.log" 'pid=[0-9]+' | cut -d= -f2)
DEMO_ADDR=$(wait_for "$OUT/demo-app.log" 'listening on [0-9.:]+' | awk '{print $3}')

bin/triage-sidecar --dev "$DEV" --addr 127.0.0.1:0 --audit-log "$OUT/audit.log" >"$OUT/sidecar.log" 2>&1 &
pids+=($!)
ADDR=$(wait_for "$OUT/sidecar.log" 'addr=127\.0\.0\.1:[0-9]+' | cut -d= -f2)

triage() { bin/triage --dev "$DEV" --addr "$ADDR" "$@"; }
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

curl -fsS "http://$DEMO_ADDR/work?ms=50" >/dev/null 2>&1 || true

section "demo app: pid $DEMO_PID on http://$DEMO_ADDR; sidecar: $ADDR (mTLS, dev certificates in $DEV)"
section "triage version"
triage version | tee "$OUT/version.txt"
section "triage explain"
triage explain | tee "$OUT/explain.txt"
triage explain -o json >"$OUT/explain.json"
section "triage proc"
triage proc | tee "$OUT/proc.txt"
section "triage proc --pid $DEMO_PID   (the demo app, seen through /proc)"
triage proc --pid "$DEMO_PID" --sockets | tee "$OUT/proc-demo.txt"
triage proc --pid "$DEMO_PID" -o json >"$OUT/proc-demo.json"
section "a denied call: a bad request gets a clear error, and the server keeps serving"
triage proc --pid 999999999 || true
section "audit log ($OUT/audit.log): one JSON line per call"
tail -n 3 "$OUT/audit.log"
printf '\ndemo: artifacts are in %s/\n' "$OUT"
