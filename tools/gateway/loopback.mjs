// Preloaded with `node --import`: the Portkey gateway has no bind-address option and listens on every
// interface. Every TCP listen in this process is pinned to 127.0.0.1 instead, whatever host was asked for,
// so the CI gateway is reachable from this machine only.
import net from "node:net";

const LOOPBACK = "127.0.0.1";
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    // listen({ port, host, ... }, cb?); a handle or a path ({ fd }, { path }) is left alone.
    if ("port" in first) {
      args[0] = { ...first, host: LOOPBACK };
    }
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    // listen(port, host?, backlog?, cb?): drop a given host (a string or the undefined hono passes), put ours.
    const rest = args.slice(1);
    if (rest.length > 0 && (typeof rest[0] === "string" || rest[0] === undefined || rest[0] === null)) {
      rest.shift();
    }
    args = [first, LOOPBACK, ...rest];
  }
  return listen.apply(this, args);
};
