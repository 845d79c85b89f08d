#!/usr/bin/env python3
"""Fail when a module imports one above it in the layer table of DESIGN.md section 2 ("every import points down").

usage: layers.py [SRC_DIR]   (default: src)

module-cycles.py only finds cycles; this finds an upward import before it becomes one, and names the file and the
import. A module is the first path component under SRC_DIR. Test code is not counted: files named tests.rs,
*_tests.rs, fixture.rs, and a `#[cfg(test)] mod x { .. }` block (only that block: a `#[cfg(test)] mod x;` line
early in a file does not hide the imports after it).
"""
import re
import sys
from pathlib import Path

# Lowest first; a module may import modules of its own layer or below. Same-layer imports are allowed but must
# not form a cycle (module-cycles.py checks that).
LAYERS = [
    ["limits", "redact", "background"],
    ["metrics", "mock", "cli"],
    ["client", "llm", "result"],
    ["slo", "baseline", "merge"],
    ["scenario"],
    ["engine"],
    ["report", "render"],
    ["config"],
    ["app"],
    ["main", "lib"],
]
LAYER = {m: i for i, ms in enumerate(LAYERS) for m in ms}
CRATE = re.compile(r"\b(?:crate|run_load_test)::(\{[^}]*\}|\w+)", re.S)
TEST_BLOCK = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")


def non_test(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    m = TEST_BLOCK.search(text)
    return text[: m.start()] if m else text


def main() -> int:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    if not src.is_dir():
        sys.exit(f"layers: no folder {src}")
    bad = []
    for f in sorted(src.rglob("*.rs")):
        if f.name in ("tests.rs", "fixture.rs") or f.name.endswith("_tests.rs"):
            continue
        rel = f.relative_to(src).parts
        a = rel[0][:-3] if len(rel) == 1 else rel[0]
        if a not in LAYER:
            bad.append(f"{f}: module `{a}` is not in the layer table of tools/layers.py; add it where it belongs")
            continue
        for m in CRATE.finditer(non_test(f.read_text(errors="replace"))):
            first = m.group(1)
            names = [p.strip().split("::")[0] for p in first[1:-1].split(",")] if first.startswith("{") else [first]
            for b in names:
                if b in LAYER and b != a and LAYER[b] > LAYER[a]:
                    bad.append(f"{f}: `{a}` (layer {LAYER[a]}) imports `{b}` (layer {LAYER[b]}), which is above it")
    for line in sorted(set(bad)):
        print(line)
    if bad:
        print(f"\nlayers: {len(set(bad))} upward import(s); see DESIGN.md section 2 for what each module may import")
        return 1
    print("layers: every import points down the layer table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
