#!/usr/bin/env python3
"""Peak memory of the generator with N concurrent users (default 10,000) against a standalone mock on loopback.

    cargo build --release && python3 scripts/users_memory.py 10000

Bounded: one 8-second run. The mock answers after 50 ms so every user holds a connection most of the time.
"""
import json, resource, subprocess, sys, tempfile, time

users = sys.argv[1] if len(sys.argv) > 1 else "10000"
port = "18977"
binary = "target/release/run-load-test"
mock = subprocess.Popen([binary, "mock", "--port", port, "--first-token-delay", "50ms", "--token-delay", "0ms",
                         "--output-tokens", "1"], stderr=subprocess.DEVNULL)
try:
    time.sleep(0.5)
    d = tempfile.mkdtemp()
    with open(f"{d}/s.toml", "w") as f:
        f.write('[[user]]\nname="U"\n[[user.step]]\nname="chat"\npost="/v1/chat/completions"\n'
                'json={model="m",messages=[{role="user",content="hi"}]}\n')
    start = time.time()
    r = subprocess.run([binary, "run", f"{d}/s.toml", "--target", f"http://127.0.0.1:{port}", "--users", users,
                        "--duration", "8s", "--quiet", "--out", f"{d}/o"])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rep = json.load(open(f"{d}/o/result.json"))
    t = rep["totals"]
    print(f"users {users}: exit {r.returncode}, {time.time() - start:.1f} s, generator peak RSS {peak_mib:.0f} MiB")
    print(f"requests {t['requests']}, failures {t['failures']} {t['errors']}, "
          f"peak users {max(p['users'] for p in rep['series'])}")
finally:
    mock.kill()
