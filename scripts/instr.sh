#!/usr/bin/env bash
# Instructions per request of the generator's hot path, counted by valgrind (callgrind), beside wrk's.
#
# bench.sh judges speed in CPU-seconds, and on a shared VM those move ±10 % from run to run: a change that saves
# 5 % of user time cannot be seen there. An instruction count barely moves with the host, so it is the figure to
# judge a user-space change by (it says nothing of the kernel's share, ~80 % of a tiny GET's cost: bench.sh
# remains the judge of the whole). Counted on the worker thread (for wrk its one load thread) over a
# closed-loop tiny GET against nginx, divided by the requests the run counted (start-up is on other threads);
# then the open model at a low rate, per arrival.
#
#   scripts/instr.sh                                   # this build and wrk
#   BASE_BIN=/tmp/old/run-load-test scripts/instr.sh   # and another build, in the same sitting
#   DURATION=8 USERS=100 scripts/instr.sh
#   OPEN_RATE=0 scripts/instr.sh                       # skip the open model (2,000 arrivals/s by default)
#   STREAM_TOKENS= scripts/instr.sh                    # skip the streamed rows (1 and 16 tokens by default)
#
# The streamed rows are bench.sh's streaming criterion in instructions: the generator per streamed response
# against `run-load-test mock` (this build's, zero delays), then the mock per request with the generator
# running natively, since on one host the mock sets the pace of that figure as much as the generator.
#
# Traffic goes to 127.0.0.1 only, bounded by DURATION (valgrind slows the generator ~50×, so a run makes a few
# tens of thousands of requests).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/scenarios.sh

DURATION=${DURATION:-4}
USERS=${USERS:-50}
NGINX_PORT=${NGINX_PORT:-18943}
BASE_BIN=${BASE_BIN:-}
case $DURATION in '' | *[!0-9]* | 0) echo "instr.sh: DURATION is whole seconds >= 1" >&2; exit 2 ;; esac
case $USERS in '' | *[!0-9]* | 0) echo "instr.sh: USERS is a whole number >= 1" >&2; exit 2 ;; esac
# Under valgrind the generator manages ~3,000 arrivals/s; 2,000 leaves it time to keep to the schedule.
OPEN_RATE=${OPEN_RATE:-2000}
case $OPEN_RATE in '' | *[!0-9]*) echo "instr.sh: OPEN_RATE is a whole number (0: no open-model row)" >&2; exit 2 ;; esac
STREAM_TOKENS=${STREAM_TOKENS-1 16}
MOCK_PORT=${MOCK_PORT:-18944}
for t in $STREAM_TOKENS; do
  case $t in *[!0-9]* | 0) echo "instr.sh: STREAM_TOKENS is whole numbers >= 1 ('$t')" >&2; exit 2 ;; esac
done
if [ -n "$BASE_BIN" ] && [ ! -x "$BASE_BIN" ]; then echo "instr.sh: BASE_BIN '$BASE_BIN' is not an executable" >&2; exit 2; fi

missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (Debian)" >&2
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet
BIN=$PWD/target/release/run-load-test

WORK=$(mktemp -d)
NGINX_PID=
MOCK_PID=
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy; fastcgi_temp_path $WORK/nginx/fcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type text/plain; return 200 "ok"; }
  }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break; sleep 0.1; done

# A tiny GET under the load model given as `[load]` lines.
scenario() { # file name load-lines
  printf 'name = "%s"\ndescription = "a tiny GET"\n[load]\n%s\nduration = "%ss"\n' "$2" "$3" "$DURATION" > "$1"
  printf '[[user]]\nname = "Bench"\n  [[user.step]]\n  name = "get"\n  get = "/"\n' >> "$1"
}
scenario "$WORK/get.toml" instr "users = $USERS"
scenario "$WORK/open.toml" instr-open "rate = $OPEN_RATE
max_in_flight = 100"

# The busiest load thread's instruction count in callgrind's per-thread outputs `$1-*`: of run-load-test's
# threads, those that ran an exchange (at a low arrival rate the main thread's per-second snapshots can cost
# more than the worker); of wrk's, all.
busiest() {
  local files
  files=$(grep -l 'HttpClient' "$1"-* 2>/dev/null || true)
  [ -n "$files" ] || files=$(ls "$1"-*)
  for f in $files; do grep -m1 '^summary:' "$f" | awk '{print $2}'; done | sort -n | tail -1
}

row() { # name instructions requests
  python3 -c 'import sys; n, i, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]); print(f"| {n} | {r:,} | {i:,} | {i / r:,.0f} |")' "$@"
}

echo "## instr.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo "valgrind $(valgrind --version | cut -d- -f2), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), nginx $(nginx -v 2>&1 | cut -d/ -f2);" \
  "closed loop, $USERS connections, ${DURATION} s under callgrind, one worker; run-load-test $($BIN --version | cut -d' ' -f2) $(git rev-parse --short HEAD 2>/dev/null || true)."
echo
echo "| generator | requests | instructions (worker thread) | instructions per request |"
echo "|---|---:|---:|---:|"
measure() { # label binary [scenario [port]]
  local out=$WORK/out-$RANDOM
  mkdir -p "$out"
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg" \
    "$2" run "${3:-$WORK/get.toml}" --target "http://127.0.0.1:${4:-$NGINX_PORT}" --workers 1 --quiet --out "$out" \
    >/dev/null 2>"$WORK/valgrind.err" || { echo "instr.sh: $1 failed under valgrind:" >&2; tail -5 "$WORK/valgrind.err" >&2; exit 1; }
  local req
  req=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["totals"]["requests"])' "$out/result.json")
  row "$1" "$(busiest "$out/cg")" "$req"
}
measure "run-load-test (this build)" "$BIN"
[ -n "$BASE_BIN" ] && measure "run-load-test (base build)" "$BASE_BIN"
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/wrk.cg" \
  wrk -t1 -c"$USERS" -d"${DURATION}s" "http://127.0.0.1:$NGINX_PORT/" > "$WORK/wrk.out" 2>"$WORK/valgrind.err"
row "wrk -t1" "$(busiest "$WORK/wrk.cg")" "$(grep -oP '\d+(?= requests in)' "$WORK/wrk.out")"
if [ "$OPEN_RATE" -gt 0 ]; then
  echo
  echo "Open model, $OPEN_RATE arrivals/s, max_in_flight 100 (per arrival; the worker also pays its pacing, and at this"
  echo "low rate the per-second snapshots weigh more than at 50k/s):"
  echo
  echo "| generator | arrivals run | instructions (worker thread) | instructions per arrival |"
  echo "|---|---:|---:|---:|"
  measure "run-load-test (this build)" "$BIN" "$WORK/open.toml"
  [ -n "$BASE_BIN" ] && measure "run-load-test (base build)" "$BASE_BIN" "$WORK/open.toml"
fi
if [ -n "$STREAM_TOKENS" ]; then
  # The zero-delay mock of this build on MOCK_PORT, as `$@` says (valgrind first to count its own instructions).
  start_mock() { # tokens [command prefix...]
    local tokens=$1
    shift
    "$@" "$BIN" mock --port "$MOCK_PORT" --first-token-delay 0ms --token-delay 0ms --output-tokens "$tokens" \
      --seed 1 2>"$WORK/mock.err" &
    MOCK_PID=$!
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$MOCK_PORT") 2>/dev/null && return; sleep 0.1; done
    echo "instr.sh: the mock did not start:" >&2; tail -5 "$WORK/mock.err" >&2; exit 1
  }
  stop_mock() {
    kill -INT "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null || true
    MOCK_PID=
  }
  echo
  echo "Streamed chat against \`run-load-test mock\` (this build, zero delays), closed loop, $USERS users: the generator per"
  echo "response, then the mock per request (under callgrind, the generator running natively):"
  echo
  echo "| generator | responses | instructions (worker thread) | instructions per response |"
  echo "|---|---:|---:|---:|"
  for tokens in $STREAM_TOKENS; do
    f=$WORK/stream-$tokens.toml
    stream_scenario "$f" "$USERS" "$DURATION" true "$tokens"
    start_mock "$tokens"
    measure "run-load-test (this build), $tokens-token stream" "$BIN" "$f" "$MOCK_PORT"
    [ -n "$BASE_BIN" ] && measure "run-load-test (base build), $tokens-token stream" "$BASE_BIN" "$f" "$MOCK_PORT"
    stop_mock
  done
  echo
  echo "| mock | requests | instructions (all threads) | instructions per request |"
  echo "|---|---:|---:|---:|"
  for tokens in $STREAM_TOKENS; do
    out=$WORK/mock-$tokens
    mkdir -p "$out"
    start_mock "$tokens" valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p"
    "$BIN" run "$WORK/stream-$tokens.toml" --target "http://127.0.0.1:$MOCK_PORT" --workers 1 --quiet --out "$out" \
      >/dev/null 2>&1 || true
    stop_mock
    req=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["totals"]["requests"])' "$out/result.json")
    total=$(cat "$out"/cg.* | awk '/^summary:/ {s += $2} END {print s}')
    row "run-load-test mock, $tokens-token stream" "$total" "$req"
  done
fi
echo
echo "User-space instructions only: the kernel's share of a request (send, receive, TCP) is not counted here."
