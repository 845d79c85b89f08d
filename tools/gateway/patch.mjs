// Applies the two one-line fixes the pinned Portkey gateway needs, to node_modules, idempotently. Each is a
// literal replacement that must match exactly once: if an install ever brings a different source (a version
// drifted past the lock), this fails loudly instead of starting a gateway that is broken in a subtle way.
//
// 1. @hono/node-server 1.13.5: await `responseViaResponseObject` in the request listener. Without it every
//    streamed response fails with 500 `TypeError: immutable` (Portkey-AI/gateway#1389); upstream's
//    repository carries the same line as patches/@hono+node-server+1.13.5.patch.
// 2. async-retry 1.3.3: hand the retry operation to the retried function, which Portkey uses to honour an
//    upstream Retry-After (`retry.use_retry_after_header`); upstream's patches/async-retry+1.3.3.patch.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
const patches = [
  {
    file: "@hono/node-server/dist/index.mjs",
    from: "      return responseViaResponseObject(res, outgoing, options);",
    to: "      return await responseViaResponseObject(res, outgoing, options);",
  },
  {
    file: "async-retry/lib/index.js",
    from: "        val = fn(bail, num);",
    to: "        val = fn(bail, num, op);",
  },
];

const count = (text, needle) => text.split(needle).length - 1;
let failed = false;
for (const { file, from, to } of patches) {
  const path = join(modules, file);
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    console.error(`patch: cannot read ${path} (${e.code}); run npm ci in tools/gateway first`);
    failed = true;
    continue;
  }
  if (count(text, to) === 1 && count(text, from) === 0) {
    continue; // already applied
  }
  if (count(text, from) !== 1) {
    console.error(`patch: ${file} does not contain the expected line exactly once: ${from.trim()}`);
    failed = true;
    continue;
  }
  writeFileSync(path, text.replace(from, to));
  console.error(`patch: applied to ${file}`);
}
process.exit(failed ? 1 : 0);
