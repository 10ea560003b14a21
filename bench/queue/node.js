// queue peer: N items through a bounded async queue (maxsize 1000), one
// producer to one consumer.
// Run as: node bench/queue/node.js [N]
// Prints: items=N seconds=S cpu=C maxsize=1000 clock=hrtime
//
// Node has no built-in async queue, so this is a small one written with
// promises on the model of asyncio.Queue: a ring buffer, FIFO lists of
// waiting getters and putters (each a promise's resolve function), put()
// awaits while full and get() while empty, and a waiter takes or adds its
// item itself once it runs; task_done()/join() count unfinished items.
// put() and get() are plain functions that return a promise only when they
// must wait, so a put into a non-full queue costs no promise. The producer
// ends with a null sentinel (not counted), as asyncio.py does.
'use strict';

const MAXSIZE = 1000;

class Waiters {
  constructor() { this.list = []; this.head = 0; }
  wait() { return new Promise((resolve) => this.list.push(resolve)); }
  wakeOne() {
    if (this.head < this.list.length) {
      const resolve = this.list[this.head];
      this.list[this.head++] = undefined;
      if (this.head === this.list.length) { this.list.length = 0; this.head = 0; }
      resolve();
    }
  }
}

class BoundedQueue {
  constructor(maxsize) {
    this.maxsize = maxsize;
    this.buf = new Array(maxsize);
    this.first = 0;
    this.count = 0;
    this.unfinished = 0;
    this.getters = new Waiters();
    this.putters = new Waiters();
    this.joiners = [];
  }

  putNowait(v) {
    this.buf[(this.first + this.count) % this.maxsize] = v;
    this.count++;
    this.unfinished++;
    this.getters.wakeOne();
  }

  getNowait() {
    const v = this.buf[this.first];
    this.buf[this.first] = undefined;
    this.first = (this.first + 1) % this.maxsize;
    this.count--;
    this.putters.wakeOne();
    return v;
  }

  async putSlow(v) {
    while (this.count >= this.maxsize) await this.putters.wait();
    this.putNowait(v);
  }

  async getSlow() {
    while (this.count === 0) await this.getters.wait();
    return this.getNowait();
  }

  // Both return a promise only when they must wait: callers always await.
  put(v) {
    if (this.count < this.maxsize) return this.putNowait(v);
    return this.putSlow(v);
  }

  get() {
    if (this.count > 0) return this.getNowait();
    return this.getSlow();
  }

  taskDone() {
    if (--this.unfinished === 0) {
      for (const resolve of this.joiners) resolve();
      this.joiners = [];
    }
  }

  join() {
    if (this.unfinished === 0) return undefined;
    return new Promise((resolve) => this.joiners.push(resolve));
  }
}

async function producer(q, n) {
  for (let i = 1; i <= n; i++) await q.put(i);
  await q.put(null);
}

async function consumer(q) {
  let sum = 0;
  let got = 0;
  for (;;) {
    const v = await q.get();
    q.taskDone();
    if (v === null) return [sum, got];
    sum += v;
    got++;
  }
}

async function main(n) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const q = new BoundedQueue(MAXSIZE);
  const c = consumer(q);
  const p = producer(q, n);
  await p;
  const [sum, got] = await c;
  await q.join();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cu = process.cpuUsage(c0);

  // The checksum keeps every item observable and catches a broken run.
  if (got !== n || sum !== (n * (n + 1)) / 2) throw new Error('checksum mismatch');
  const cpu = (cu.user + cu.system) / 1e6;
  console.log(`items=${n} seconds=${seconds.toFixed(6)} cpu=${cpu.toFixed(6)} maxsize=${MAXSIZE} clock=hrtime`);
}

const n = Number(process.argv[2] || process.env.BENCH_N || 1000000);
main(n).catch((err) => {
  console.error(err);
  process.exit(1);
});
