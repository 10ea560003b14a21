// http-client peer: N GETs with Node's http.request, at most 64 in flight.
// Run as: node bench/http/client-node-http.js URL [N]
// Prints: requests=N seconds=S cpu=C inflight=64 peak=P clock=hrtime
//
// One http.Agent with keepAlive (maxSockets 64, so each of the 64 runners
// keeps its own connection); 64 runners share one counter: each takes the
// next request, awaits the response of http.request(URL), collects its
// body and checks that it is a 200 with the body "hello", until N
// requests have been made. P is the most requests that were in flight at
// once, checked to be min(64, N). cpu is process.cpuUsage() (user + sys,
// all threads) over the timed section.
'use strict';

const http = require('http');

const INFLIGHT = 64;
const url = process.argv[2];
const n = Number(process.argv[3] || process.env.BENCH_N || 20000);
if (!url) throw new Error('usage: client-node-http.js URL [N]');

const agent = new http.Agent({ keepAlive: true, maxSockets: INFLIGHT });

function get() {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

let started = 0, done = 0, live = 0, peak = 0;

async function client() {
  while (started < n) {
    started++;
    live++;
    if (live > peak) peak = live;
    const res = await get();
    live--;
    if (res.status !== 200 || res.body !== 'hello') {
      throw new Error(`GET ${url}: status ${res.status}, body ${JSON.stringify(res.body)}`);
    }
    done++;
  }
}

async function main() {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const runners = [];
  for (let i = 0; i < INFLIGHT; i++) runners.push(client());
  await Promise.all(runners);
  const c1 = process.cpuUsage(c0);
  const t1 = process.hrtime.bigint();
  if (done !== n) throw new Error('requests missing');
  if (peak !== Math.min(INFLIGHT, n)) throw new Error(`peak in flight ${peak}`);
  const secs = Number(t1 - t0) / 1e9;
  const cpu = (c1.user + c1.system) / 1e6;
  console.log(`requests=${n} seconds=${secs.toFixed(6)} cpu=${cpu.toFixed(6)} inflight=${INFLIGHT} peak=${peak} clock=hrtime`);
  agent.destroy();
}

main().catch((e) => { console.error(e); process.exit(1); });
