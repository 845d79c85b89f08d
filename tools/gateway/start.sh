#!/usr/bin/env bash
# Start the pinned Portkey gateway on 127.0.0.1:PORT in the background and print its PID (the only line on
# stdout). Installs it first when needed (npm ci from the committed lock, install scripts off: the gateway's
# own postinstall runs patch-package without any patch files) and applies patch.mjs. The gateway's output
# goes to $RLT_GATEWAY_LOG (default: a file in $TMPDIR named after the port). Stop it with `kill PID`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-}
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "usage: $0 PORT (1-65535)" >&2
  exit 2
fi
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "start.sh: $tool not found (install Node.js 18.18 or later)" >&2; exit 2; }
done
# `node --import` (the loopback preload) needs 18.18 or later.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 18) ? 0 : 1)'; then
  echo "start.sh: Node.js $(node --version) is too old; 18.18 or later is needed" >&2
  exit 2
fi

stamp="$here/node_modules/.installed-from-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  echo "start.sh: npm ci in $here" >&2
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  cp "$here/package-lock.json" "$stamp"
fi
node "$here/patch.mjs"

log=${RLT_GATEWAY_LOG:-${TMPDIR:-/tmp}/portkey-gateway-$port.log}

nohup node --import "file://$here/loopback.mjs" \
  "$here/node_modules/@portkey-ai/gateway/build/start-server.js" --port="$port" --headless >"$log" 2>&1 </dev/null &
pid=$!

# Ready when GET / answers 200 ("AI Gateway says hey!"); give up after 30 s or if the process dies.
for _ in $(seq 1 150); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start.sh: the gateway exited during startup; its log ($log):" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if node -e "fetch('http://127.0.0.1:$port/').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" 2>/dev/null; then
    echo "$pid"
    exit 0
  fi
  sleep 0.2
done
echo "start.sh: the gateway did not answer on 127.0.0.1:$port within 30 s; its log ($log):" >&2
tail -n 20 "$log" >&2
kill "$pid" 2>/dev/null || true
exit 1
