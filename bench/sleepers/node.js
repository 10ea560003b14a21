// sleepers peer: N setTimeout promises of one second under Promise.all.
// Run as: node bench/sleepers/node.js [N]
// Prints: sleepers=N seconds=S clock=hrtime
'use strict';

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(n) {
  const t0 = process.hrtime.bigint();
  const sleeps = new Array(n);
  for (let i = 0; i < n; i++) sleeps[i] = sleep(1000);
  await Promise.all(sleeps);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`sleepers=${n} seconds=${seconds.toFixed(6)} clock=hrtime`);
}

const n = Number(process.argv[2] || process.env.BENCH_N || 100000);
main(n).catch((err) => {
  console.error(err);
  process.exit(1);
});
