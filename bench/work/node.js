// work peer: N calls of a small function on a pool of worker_threads, at
// most 64 in flight.
// Run as: node bench/work/node.js [N]
// Prints: calls=N seconds=S cpu=C inflight=64 pool=P clock=hrtime
//
// Node has no built-in worker pool, so this is a small one: P workers
// (UV_THREADPOOL_SIZE, default 4: the size of the libuv pool loom.work
// runs on), each started from this same file with the function already
// loaded. A call posts {id, i} to the next worker in turn and returns a
// promise that the worker's reply resolves. 64 caller functions share one
// counter, the same shape as loom.lua and asyncio.py. The workers start
// before the clock starts (loom's and Python's threads start inside the
// timed section, lazily), since a worker is a whole V8 isolate.
'use strict';

const { Worker, isMainThread, parentPort } = require('worker_threads');

const INFLIGHT = 64;

// Sum of 1..1000, plus the index so every call's result differs.
function sum(i) {
  let s = 0;
  for (let k = 1; k <= 1000; k++) s += k;
  return s + i;
}

if (!isMainThread) {
  parentPort.on('message', ({ id, i }) => parentPort.postMessage({ id, r: sum(i) }));
  return;
}

function startPool(size) {
  const pending = new Map();
  const workers = [];
  let nextId = 0;
  let turn = 0;
  const ready = [];
  for (let w = 0; w < size; w++) {
    const worker = new Worker(__filename);
    worker.on('message', ({ id, r }) => {
      const resolve = pending.get(id);
      pending.delete(id);
      resolve(r);
    });
    worker.on('error', (err) => {
      console.error(err);
      process.exit(1);
    });
    ready.push(new Promise((resolve) => worker.once('online', resolve)));
    workers.push(worker);
  }
  return {
    ready: Promise.all(ready),
    run(i) {
      const id = nextId++;
      const worker = workers[turn];
      turn = (turn + 1) % size;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        worker.postMessage({ id, i });
      });
    },
    close() {
      return Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

async function main(n) {
  const size = Math.max(1, Math.min(1024, Number(process.env.UV_THREADPOOL_SIZE) || 4));
  const pool = startPool(size);
  await pool.ready;

  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let next = 1;
  let total = 0;
  async function caller() {
    while (next <= n) {
      const i = next++;
      // Await first: "total += await ..." would read total before the
      // suspension and lose the other callers' additions.
      const r = await pool.run(i);
      total += r;
    }
  }
  const callers = [];
  for (let j = 0; j < INFLIGHT; j++) callers.push(caller());
  await Promise.all(callers);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cu = process.cpuUsage(c0);
  await pool.close();

  // The checksum keeps every result observable and catches a broken run.
  if (total !== n * 500500 + (n * (n + 1)) / 2) throw new Error('checksum mismatch');
  const cpu = (cu.user + cu.system) / 1e6;
  console.log(`calls=${n} seconds=${seconds.toFixed(6)} cpu=${cpu.toFixed(6)} inflight=${INFLIGHT}` +
    ` pool=${size} clock=hrtime`);
}

const n = Number(process.argv[2] || process.env.BENCH_N || 10000);
main(n).catch((err) => {
  console.error(err);
  process.exit(1);
});
