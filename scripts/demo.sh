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

rm -f "$OUT/agent.sock"
bin/triage-demo --addr 127.0.0.1:0 --agent-socket "$OUT/agent.sock" >"$OUT/demo-app.log" 2>&1 &
pids+=($!)
DEMO_PID=$(wait_for "$OUT/demo-app.log" 'pid=[0-9]+' | cut -d= -f2)
DEMO_ADDR=$(wait_for "$OUT/demo-app.log" 'listening on [0-9.:]+' | awk '{print $3}')

bin/triage-sidecar --dev "$DEV" --addr 127.0.0.1:0 --audit-log "$OUT/audit.log" --agent-socket "$OUT/agent.sock" >"$OUT/sidecar.log" 2>&1 &
pids+=($!)
ADDR=$(wait_for "$OUT/sidecar.log" 'addr=127\.0\.0\.1:[0-9]+' | cut -d= -f2)

triage() { bin/triage --dev "$DEV" --addr "$ADDR" "$@"; }
# load drives the demo app for $1 seconds: CPU work and waits, so a wall
# profile has both on- and off-CPU time to show.
load() {
  local end=$((SECONDS + $1))
  while [ $SECONDS -lt $end ]; do
    curl -fsS "http://$DEMO_ADDR/work?ms=20" >/dev/null 2>&1 || true
    curl -fsS "http://$DEMO_ADDR/sleep?ms=30" >/dev/null 2>&1 || true
  done
}
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
section "triage goroutines   (the demo app's goroutines, grouped; through its triage agent)"
triage goroutines >"$OUT/goroutines.txt"
head -n 40 "$OUT/goroutines.txt"
triage goroutines -o json >"$OUT/goroutines.json"
section "triage goroutines --path text --filter main\\.   (wait states; stops the world briefly)"
triage goroutines --path text --filter 'main\.' >"$OUT/goroutines-text.txt"
head -n 30 "$OUT/goroutines-text.txt"
section "triage profile --type wall --duration 5s   (on- and off-CPU time, under load)"
load 6 &
LOAD=$!
triage profile --type wall --duration 5s -w "$OUT/wall.pb.gz"
wait "$LOAD"
go tool pprof -top -nodecount=15 "$OUT/wall.pb.gz" 2>/dev/null | tee "$OUT/wall-top.txt" || true
PORT=${DEMO_ADDR##*:}
section "triage capture -i lo -f 'tcp port $PORT' --duration 3s   (the demo's HTTP traffic, as pcapng)"
load 4 &
LOAD=$!
if triage capture -i lo -f "tcp port $PORT" --duration 3s -w "$OUT/http.pcapng"; then
  wait "$LOAD"
  if command -v tcpdump >/dev/null 2>&1; then
    tcpdump -n -r "$OUT/http.pcapng" >"$OUT/http-packets.txt" 2>/dev/null || true
  elif command -v tshark >/dev/null 2>&1; then
    tshark -n -r "$OUT/http.pcapng" >"$OUT/http-packets.txt" 2>/dev/null || true
  fi
  [ -f "$OUT/http-packets.txt" ] && sed -n 1,12p "$OUT/http-packets.txt"
else
  wait "$LOAD"
  echo "(capture needs CAP_NET_RAW: run make demo as root to see it)"
fi
section "triage runtime"
triage runtime | tee "$OUT/runtime.txt"
section "a denied call: a bad request gets a clear error, and the server keeps serving"
triage proc --pid 999999999 || true
section "audit log ($OUT/audit.log): one JSON line per call"
tail -n 3 "$OUT/audit.log"
printf '\ndemo: artifacts are in %s/\n' "$OUT"
