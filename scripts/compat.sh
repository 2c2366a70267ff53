#!/usr/bin/env bash
# Runs Intel's Postman suites (../shared/compat) with newman against a fresh
# `amtd serve --auth=none` on an empty data folder each, and fails when fewer
# than 95% of a suite's assertions pass. docs/compat.md explains each failure.
# Usage: scripts/compat.sh [suite…]   (suites: rps rps-security; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
COMPAT=${COMPAT_DIR:-}
if [ -z "$COMPAT" ]; then
  for d in ../shared/compat /work/shared/compat; do [ -d "$d" ] && { COMPAT=$d; break; }; done
fi
[ -n "$COMPAT" ] && [ -d "$COMPAT" ] || { echo "compat: Intel's Postman suites not found (../shared/compat); set COMPAT_DIR"; exit 1; }
NEWMAN=${NEWMAN:-.tools/node_modules/.bin/newman}
AMTD=${AMTD:-bin/amtd}
THRESHOLD=${THRESHOLD:-95}
[ -x "$NEWMAN" ] || scripts/tools.sh
[ -x "$AMTD" ] || go build -o "$AMTD" ./cmd/amtd
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

start_server() { # $1 = name; sets PORT and PID
  PORT=$(free_port)
  mkdir -p "$out/$1"
  "$AMTD" serve --auth=none --data "$out/$1/data" --http "127.0.0.1:$PORT" --log-level warn \
    >"$out/$1/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    if node -e "require('http').get('http://127.0.0.1:$PORT/api/v1/admin/health',r=>process.exit(r.statusCode<500?0:1)).on('error',()=>process.exit(1))" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "compat: amtd did not start"; cat "$out/$1/server.log"; return 1
}

run_suite() { # $1 name, then newman args
  local name=$1; shift
  start_server "$name"
  "$NEWMAN" run "$@" --env-var "host=127.0.0.1:$PORT" --reporters cli,json \
    --reporter-json-export "$out/$name/report.json" --reporter-cli-no-summary --reporter-cli-no-banner \
    --reporter-cli-no-success-assertions >"$out/$name/newman.txt" 2>&1 || true
  kill "$PID"; wait "$PID" 2>/dev/null || true
  node -e '
    const r = require(process.argv[1]).run.stats.assertions;
    const pass = r.total - r.failed, pct = r.total ? 100 * pass / r.total : 0;
    console.log(`compat ${process.argv[2]}: ${pass}/${r.total} assertions passed (${pct.toFixed(1)}%)`);
    process.exit(pct >= Number(process.argv[3]) ? 0 : 1);
  ' "$out/$name/report.json" "$name" "$THRESHOLD" || { grep -E "^\s+[0-9]+\. " "$out/$name/newman.txt" | head -80; exit 1; }
}

suites=${*:-rps rps-security}
for s in $suites; do
  case $s in
    rps) run_suite rps "$COMPAT/rps.postman_collection.json" -e "$COMPAT/rps.postman_environment.json" ;;
    rps-security) run_suite rps-security "$COMPAT/rps_security_api_test.postman_collection.json" \
        -e "$COMPAT/rps.postman_environment.json" -d "$COMPAT/data/rps_security_api_test.data.json" ;;
    *) echo "compat: unknown suite $s"; exit 2 ;;
  esac
done
