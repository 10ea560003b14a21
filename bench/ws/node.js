// ws peer: a WebSocket echo server on Node with npm's ws package.
// Run as: node bench/ws/node.js [PORT]     (default 0: a free port)
// Prints: port=P    (once listening on 127.0.0.1)
//
// bench/run installs ws into bench/.build/ws/node_modules and puts that
// folder on NODE_PATH. Each message is sent back as it came (text or
// binary); permessage-deflate is off (ws's default for a server). Runs
// until killed (bench/run sends SIGTERM).
'use strict';

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || process.env.BENCH_PORT || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port }, () => {
  console.log(`port=${wss.address().port}`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
