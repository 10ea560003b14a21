// http peer: "hello" from Node's http module.
// Run as: node bench/http/node.js [PORT]     (default 0: a free port)
// Prints: port=P    (once listening on 127.0.0.1)
//
// http.createServer with a handler that ends every response with "hello";
// Node adds Date, Connection, Keep-Alive and Content-Length. Its defaults
// hold (keep-alive, no limit on requests per connection). Runs until
// killed (bench/run sends SIGTERM).
'use strict';

const http = require('http');

const port = Number(process.argv[2] || process.env.BENCH_PORT || 0);
const server = http.createServer((req, res) => {
  res.end('hello');
});
server.listen(port, '127.0.0.1', () => {
  console.log(`port=${server.address().port}`);
});
