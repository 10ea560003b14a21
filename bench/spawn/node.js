// spawn peer: N async function calls (promises) alive at once, then awaited
// in order.
// Run as: node bench/spawn/node.js [N]
// Prints: tasks=N seconds=S cpu=C clock=hrtime
'use strict';

async function work(i) {
  return i;
}

async function main(n) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const promises = new Array(n);
  for (let i = 0; i < n; i++) promises[i] = work(i + 1);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await promises[i];
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);

  // The checksum keeps every result observable and catches a broken run.
  if (sum !== (n * (n + 1)) / 2) throw new Error('checksum mismatch');
  const cpu = (c.user + c.system) / 1e6;
  console.log(`tasks=${n} seconds=${seconds.toFixed(6)} cpu=${cpu.toFixed(6)} clock=hrtime`);
}

const n = Number(process.argv[2] || process.env.BENCH_N || 1000000);
main(n).catch((err) => {
  console.error(err);
  process.exit(1);
});
