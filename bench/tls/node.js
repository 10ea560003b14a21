// tls peer: a TLS echo server on Node's tls module.
// Run as: node bench/tls/node.js CERT KEY [PORT]   (PEM files; default port 0: a free one)
// Prints: port=P    (once listening on 127.0.0.1)
//
// bench/echo/node.js with tls.createServer: each chunk that arrives on a
// connection, after its handshake, is written back as it is. Node's
// defaults hold (its OpenSSL, TLS 1.3). Runs until killed (bench/run
// sends SIGTERM).
'use strict';

const fs = require('fs');
const tls = require('tls');

const [cert, key, rawPort] = process.argv.slice(2);
if (!cert || !key) throw new Error('usage: node.js CERT KEY [PORT]');
const port = Number(rawPort || 0);
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (socket) => {
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => socket.destroy());
});
server.listen(port, '127.0.0.1', () => {
  console.log(`port=${server.address().port}`);
});
