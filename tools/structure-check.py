#!/usr/bin/env python3
"""Check the size and error-type rules of DESIGN.md §2 on the crate's non-test code; print each breach, exit 1 if any.

usage: structure-check.py [SRC_DIR]   (default: src)

- No file over 600 lines of non-test code.
- No `Result<_, String>`: errors at module boundaries are typed (thiserror), `anyhow` in app/ only.
  (`clippy::too_many_lines`, with clippy.toml's threshold, checks the 120-line limit on functions.)

Test code is not counted: files named tests.rs / *_tests.rs / fixture.rs, snapshot files, and an inline
`#[cfg(test)] mod NAME {` block with everything after it (the convention here: test modules close a file).
"""
import re
import sys
from pathlib import Path

MAX_FILE_LINES = 600
STRING_ERROR = re.compile(r"Result<.*,\s*String>")  # nested generics too: Result<Ask<'_>, String>
INLINE_TESTS = re.compile(r"^#\[cfg\(test\)\]\s*\n\s*(pub(\([^)]*\))?\s+)?mod \w+ \{", re.M)

src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
if not src.is_dir():
    sys.exit(f"structure-check: no folder {src}")

breaches = []
for f in sorted(src.rglob("*.rs")):
    if f.name in ("tests.rs", "fixture.rs") or f.name.endswith("_tests.rs"):
        continue
    text = f.read_text(errors="replace")
    m = INLINE_TESTS.search(text)
    code = text[: m.start()] if m else text
    lines = code.splitlines()
    if len(lines) > MAX_FILE_LINES:
        breaches.append(f"{f}: {len(lines)} lines of non-test code (at most {MAX_FILE_LINES}); split it by what it owns")
    for number, line in enumerate(lines, 1):
        if STRING_ERROR.search(line.split("//", 1)[0]):
            breaches.append(f"{f}:{number}: `Result<_, String>`; return a thiserror enum (anyhow in app/ only)")

for b in breaches:
    print(b)
if breaches:
    print(f"\nstructure-check: {len(breaches)} breach(es)")
    sys.exit(1)
print("structure-check: ok")
