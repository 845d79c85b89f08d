#!/usr/bin/env bash
# Requests per generator CPU-second against a standalone mock on loopback, and wrk on the same target for
# comparison when wrk is installed (apt-get install wrk). Bounded: each load lasts $SECS seconds.
#
#   scripts/bench.sh            # 10 s, 64 connections, 1 generator thread
#   SECS=5 USERS=128 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
USERS=${USERS:-64}
WORKERS=${WORKERS:-1}
PORT=${PORT:-18931}
cargo build --release --quiet
BIN=target/release/run-load-test
OUT=$(mktemp -d)
trap 'kill $MOCK 2>/dev/null || true; rm -rf "$OUT"' EXIT

# Zero token delays: the mock answers as fast as it can, so the generator's own cost dominates.
$BIN mock --port "$PORT" --first-token-delay 0ms --token-delay 0ms --output-tokens 1 2>/dev/null &
MOCK=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

cat > "$OUT/bench.toml" <<TOML
name = "bench"
description = "generator cost: one fixed request, no think time"
[[user]]
name = "Bench"
  [[user.step]]
  name = "health"
  get = "/health"
TOML

echo "== run-load-test: $USERS users, $WORKERS worker thread(s), ${SECS}s against http://127.0.0.1:$PORT/health"
$BIN run "$OUT/bench.toml" --target "http://127.0.0.1:$PORT" --users "$USERS" --workers "$WORKERS" \
  --duration "${SECS}s" --quiet --out "$OUT/rlt"
python3 - "$OUT/rlt/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, g = r["totals"], r["generator"]
print(f"requests {t['requests']}  failures {t['failures']}  req/s {t['rps']:.0f}  p50 {t['latency']['p50_ms']:.3f} ms  p99 {t['latency']['p99_ms']:.3f} ms")
print(f"generator CPU {g['cpu_s']:.2f} s  ->  {g['requests_per_cpu_s']:.0f} requests per CPU-second")
PY

if command -v wrk >/dev/null; then
  echo "== wrk: $USERS connections, 1 thread, ${SECS}s against the same target"
  python3 - "$USERS" "$SECS" "$PORT" <<'PY'
import re, resource, subprocess, sys
users, secs, port = sys.argv[1:4]
out = subprocess.run(["wrk", "-t1", f"-c{users}", f"-d{secs}s", f"http://127.0.0.1:{port}/health"],
                     capture_output=True, text=True, check=True).stdout
n = int(re.search(r"(\d+) requests in", out).group(1))
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
print(f"requests {n}  req/s {n / float(secs):.0f}")
print(f"wrk CPU {cpu:.2f} s  ->  {n / cpu:.0f} requests per CPU-second")
PY
fi
