#!/usr/bin/env bash
# Gate quality, measured: how often the baseline gate fails an unchanged service (false failures), and how often
# it catches a real slowdown (detections). Records a baseline of a scenario against the embedded mock, reruns
# the unchanged mock N times against it, then N times with the mock slowed down, and counts exit codes.
#
#   scripts/gate_quality.sh                      # smoke, 20 + 20 runs, slowdown: token latency +20 % (5 → 6 ms)
#   N=5 SLOW="first_token_delay=36ms token_delay=6ms" scripts/gate_quality.sh
#
# Loopback only, each run bounded by the scenario's duration. Exit 0 when false failures are 0 and detections
# are at least N−1; exit 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20}
SCENARIO=${SCENARIO:-smoke}
SLOW=${SLOW:-token_delay=6ms}
bin=target/release/run-load-test
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" run "$SCENARIO" --quiet --out "$work/base" --save-baseline "$work/base.json"
mock_args=()
for kv in $SLOW; do mock_args+=(--mock "$kv"); done

runs() { # kind, extra args...
  local kind=$1; shift
  for i in $(seq 1 "$N"); do
    local rc=0
    "$bin" run "$SCENARIO" --quiet --out "$work/$kind-$i" --baseline "$work/base.json" "$@" 2>/dev/null || rc=$?
    if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
      echo "run $kind-$i ended with exit code $rc" >&2
      exit 2
    fi
    echo "$rc" > "$work/$kind-$i/rc"
  done
}
runs same
runs slow "${mock_args[@]}"

python3 - "$work" "$N" "$SLOW" <<'PY'
import json, sys, collections
work, n, slow = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(kind):
    out = []
    for i in range(1, n + 1):
        d = f"{work}/{kind}-{i}"
        r = json.load(open(f"{d}/result.json"))
        out.append((int(open(f"{d}/rc").read()), r))
    return out
def rows(r):
    return r.get("comparison", {}).get("rows", [])
same, slow_runs = load("same"), load("slow")
false_failures = sum(1 for rc, _ in same if rc != 0)
detections = sum(1 for rc, r in slow_runs if rc == 1 and any(x["verdict"] == "regression" for x in rows(r)))
print(f"unchanged mock, {n} runs: {false_failures} false failures")
worst = collections.defaultdict(float)
for _, r in same:
    for x in rows(r):
        if x["delta"] is not None and x["allowed"] > 0:
            worse = x["delta"] if x["higher_is_worse"] else -x["delta"]
            key = f'{x["metric"]} {x["stat"]}'
            worst[key] = max(worst[key], worse / x["allowed"])
for k, v in sorted(worst.items()):
    print(f"  {k:<24} largest worsening {v * 100:5.1f}% of its tolerance")
print(f"slowed mock ({slow}), {n} runs: {detections} detected")
caught = collections.Counter(f'{x["metric"]} {x["stat"]}' for _, r in slow_runs for x in rows(r) if x["verdict"] == "regression")
for k, c in sorted(caught.items()):
    print(f"  {k:<24} flagged in {c}/{n}")
sys.exit(0 if false_failures == 0 and detections >= n - 1 else 1)
PY
