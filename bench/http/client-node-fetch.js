// http-client peer: N GETs with Node's fetch, at most 64 in flight.
// Run as: node bench/http/client-node-fetch.js URL [N]
// Prints: requests=N seconds=S cpu=C inflight=64 peak=P clock=hrtime
//
// Node's global fetch (undici, whose default dispatcher keeps connections
// alive and opens as many to one origin as requests need); 64 runners
// share one counter: each takes the next request, awaits fetch(URL) and
// its text(), and checks that it is a 200 with the body "hello", until N
// requests have been made. P is the most requests that were in flight at
// once, checked to be min(64, N). cpu is process.cpuUsage() (user + sys,
// all threads) over the timed section.
'use strict';

const INFLIGHT = 64;
const url = process.argv[2];
const n = Number(process.argv[3] || process.env.BENCH_N || 20000);
if (!url) throw new Error('usage: client-node-fetch.js URL [N]');
if (typeof fetch !== 'function') throw new Error('this node has no global fetch');

let started = 0, done = 0, live = 0, peak = 0;

async function client() {
  while (started < n) {
    started++;
    live++;
    if (live > peak) peak = live;
    const res = await fetch(url);
    const body = await res.text();
    live--;
    if (res.status !== 200 || body !== 'hello') {
      throw new Error(`GET ${url}: status ${res.status}, body ${JSON.stringify(body)}`);
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
  // undici keeps its idle connections open for a few seconds; end now.
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
