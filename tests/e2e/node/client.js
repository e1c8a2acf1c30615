// A mobile app's WebSocket, played by Node's `ws` package (not chargetwin code).
// Usage: node client.js URL SECONDS
// Prints one JSON line per event: {"kind": "message", "data": <parsed message>} for each
// message received, {"kind": "close", "code": N, "reason": "..."} when closed, and
// {"kind": "error", "message": "..."} on errors. Exits after SECONDS or on close.
"use strict";
const WebSocket = require("ws");

const [url, seconds] = process.argv.slice(2);
const ws = new WebSocket(url);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

ws.on("open", () => out({ kind: "open" }));
ws.on("message", (data) => out({ kind: "message", data: JSON.parse(data.toString()) }));
ws.on("close", (code, reason) => {
  out({ kind: "close", code, reason: reason.toString() });
  process.exit(0);
});
ws.on("error", (err) => out({ kind: "error", message: String(err && err.message) }));
setTimeout(() => ws.close(1000), Number(seconds) * 1000);
