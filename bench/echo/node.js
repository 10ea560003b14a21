// echo peer: a TCP echo server on Node's net module.
// Run as: node bench/echo/node.js [PORT]     (default 0: a free port)
// Prints: port=P    (once listening on 127.0.0.1)
//
// Each chunk that arrives is written back as it is; the socket ends when
// the peer ends it. Runs until killed (bench/run sends SIGTERM).
'use strict';

const net = require('net');

const port = Number(process.argv[2] || process.env.BENCH_PORT || 0);
const server = net.createServer((socket) => {
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => socket.destroy());
});
server.listen(port, '127.0.0.1', () => {
  console.log(`port=${server.address().port}`);
});
