#!/usr/bin/env bash
# How long `merge` takes, and how much memory, on 4 shards of a 1-hour run: each shard directory holds 3600
# seconds of per-second recorders (3 steps, streamed LLM answers: latency, TTFB, TTFT, ITL... histograms of real
# shape) and a result.json agreeing with them. The seconds are real ones, recorded by 4 short shard runs against
# the embedded mock, each repeated over the hour (a second's histograms are as large as a real second's).
#
#   scripts/merge_time.sh [SECONDS]     # default 3600
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3600}

cargo build --release --locked --quiet
bin=$(pwd)/target/release/run-load-test
work=$(mktemp -d "${TMPDIR:-/tmp}/rlt-merge-time.XXXXXX")
cat >"$work/three.toml" <<'TOML'
name = "three-steps"
[load]
rate = 120.0
max_in_flight = 200
duration = "3s"
[mock]
output_tokens = 8
first_token_delay = "5ms"
token_delay = "1ms"
[[user]]
name = "Agent"
[[user.step]]
name = "plan"
post = "/v1/chat/completions"
stream = true
json = { model = "m", stream = true, max_tokens = 8, messages = [{ role = "user", content = "plan" }] }
[[user.step]]
name = "tool"
post = "/v1/chat/completions"
json = { model = "m", max_tokens = 4, messages = [{ role = "user", content = "tool" }] }
[[user.step]]
name = "answer"
post = "/v1/chat/completions"
stream = true
json = { model = "m", stream = true, max_tokens = 8, messages = [{ role = "user", content = "answer" }] }
TOML
for i in 1 2 3 4; do
  env -u SLURM_PROCID -u SLURM_NTASKS -u SLURM_ARRAY_TASK_ID \
    "$bin" run "$work/three.toml" --shard "$i/4" --seed 1 --quiet --format json --out "$work/src-$i"
done
python3 - "$work" "$seconds" <<'PY'
import json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
# One start for all: the short runs ran one after another, the synthetic shards ran together.
start = json.loads(open(f"{work}/src-1/seconds.ndjson").readlines()[1])["start_ms"]
for i in range(1, 5):
    lines = open(f"{work}/src-{i}/seconds.ndjson").read().splitlines()
    header, secs = lines[0], [json.loads(l) for l in lines[1:]]
    # The fullest second, repeated: every second of the hour as busy as the busiest real one.
    full = max(secs, key=lambda s: sum(x["requests"] for x in s["rec"]["steps"]))
    reqs = sum(x["requests"] for x in full["rec"]["steps"])
    fails = sum(x["failures"] for x in full["rec"]["steps"])
    out = f"{work}/shard-{i}"
    os.makedirs(out, exist_ok=True)
    with open(f"{out}/seconds.ndjson", "w") as f:
        f.write(header + "\n")
        for k in range(n):
            s = dict(full, t=float(k), d=1.0)
            s.pop("start_ms", None)
            if k == 0:
                s["start_ms"] = start
            f.write(json.dumps(s, separators=(",", ":")) + "\n")
    r = json.load(open(f"{work}/src-{i}/result.json"))
    r["totals"]["requests"], r["totals"]["failures"], r["duration_s"] = reqs * n, fails * n, float(n)
    json.dump(r, open(f"{out}/result.json", "w"))
size = sum(os.path.getsize(f"{work}/shard-{i}/seconds.ndjson") for i in range(1, 5))
print(f"4 synthetic shards of {n} s: {size / 1e6:.0f} MB of seconds.ndjson")
PY
timer=()
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -v); fi
start=$(date +%s.%N)
"${timer[@]}" "$bin" merge "$work"/shard-{1,2,3,4} --expect 4 --out "$work/merged" --quiet --format json 2>"$work/time.log" || {
  cat "$work/time.log" >&2
  exit 1
}
end=$(date +%s.%N)
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.log")
python3 - "$work" "$start" "$end" "${rss:-}" <<'PY'
import json, sys
work, start, end, rss = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
r = json.load(open(f"{work}/merged/result.json"))
mem = f", peak RSS {int(rss) / 1024:.0f} MiB" if rss else " (no /usr/bin/time: peak RSS not measured)"
print(f"merge of 4 shards x {len(r['series'])} s ({r['totals']['requests']} requests): {end - start:.1f} s wall{mem}")
PY
rm -rf "$work"
