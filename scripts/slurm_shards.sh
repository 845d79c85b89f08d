#!/usr/bin/env bash
# Four shards of one open-model run on a real Slurm cluster, merged, against one process sending the same schedule:
# once as `srun -n 4` tasks (identity from SLURM_PROCID/SLURM_NTASKS) and once as `sbatch --wait --array=0-3`
# (identity from SLURM_ARRAY_TASK_ID), each merged with `merge --expect 4`. Needs the cluster of
# tools/slurm/start.sh (run by .ci/run); the target is `run-load-test mock` on loopback with a fixed delay.
#
#   scripts/slurm_shards.sh            # prints arrivals, requests, p50/p99 of each and the largest start skew
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet
bin=$(pwd)/target/release/run-load-test
# Slurm runs the tasks as this user on this node: any directory both can reach will do.
work=$(mktemp -d "${TMPDIR:-/tmp}/rlt-slurm.XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" mock --port "$port" --output-tokens 1 --first-token-delay 40ms --token-delay 0ms --seed 3 >"$work/mock.log" 2>&1 &
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
python3 - "$port" <<'PY'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("the mock did not start")
PY
cat >"$work/open.toml" <<'TOML'
name = "slurm-open"
[load]
rate = 200.0
max_in_flight = 400
duration = "3s"
[[user]]
name = "U"
[[user.step]]
name = "chat"
post = "/v1/chat/completions"
json = { model = "m", messages = [{ role = "user", content = "hi" }], max_tokens = 1 }
TOML
target="http://127.0.0.1:$port"
common="run $work/open.toml --target $target --seed 7 --quiet"
# One absolute instant for every shard: the tasks resolve it alike, however late each one starts.
at() { date -u -d "+$1 seconds" +%Y-%m-%dT%H:%M:%SZ; }

echo "== srun -n 4"
srun -n 4 --output="$work/srun-%t.log" bash -c "$bin $common --start-at $(at 6) --out $work/srun/shard-\$SLURM_PROCID"
"$bin" merge "$work"/srun/shard-* --expect 4 --out "$work/srun/merged" --quiet

echo "== sbatch --wait --array=0-3"
sbatch --wait --array=0-3 --output="$work/array-%a.log" \
  --wrap "$bin $common --start-at $(at 15) --out $work/array/shard-\$SLURM_ARRAY_TASK_ID" >/dev/null
"$bin" merge "$work"/array/shard-* --expect 4 --out "$work/array/merged" --quiet

echo "== one process"
env -u SLURM_PROCID -u SLURM_NTASKS -u SLURM_ARRAY_TASK_ID "$bin" $common --out "$work/one"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
load = lambda p: json.load(open(f"{w}/{p}/result.json"))
one = load("one")
def line(name, r):
    l = r["totals"]["latency"]
    skew = max((s["start_skew_ms"] for s in r.get("shards", [])), default=0.0)
    return (f"{name:>14}: arrivals {r['open']['arrivals']}, requests {r['totals']['requests']}, "
            f"p50 {l['p50_ms']:.2f} ms, p99 {l['p99_ms']:.2f} ms, largest start skew {skew:.0f} ms")
print(line("one process", one))
for kind in ("srun", "array"):
    m = load(f"{kind}/merged")
    sources = {load(f"{kind}/shard-{i}")["shard"]["source"] for i in range(4)}
    expected = {"srun": {"slurm"}, "array": {"slurm-array"}}[kind]
    assert sources == expected, f"{kind}: shard identities came from {sources}, not {expected}"
    assert m["status"] == "completed" and len(m["shards"]) == 4, f"{kind}: {m['status']}, {len(m['shards'])} shards"
    assert m["open"]["arrivals"] == one["open"]["arrivals"], f"{kind}: arrivals {m['open']['arrivals']} vs {one['open']['arrivals']}"
    assert m["totals"]["requests"] == one["totals"]["requests"], f"{kind}: requests differ"
    print(line(f"{kind} merged", m))
PY
echo "slurm shards: merged arrivals and requests equal one process's"
rm -rf "$work"
