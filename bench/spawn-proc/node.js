// spawn-proc peer: N runs of /bin/true through child_process, at most 8 at
// a time, each waited for.
// Run as: node bench/spawn-proc/node.js [N]
// Prints: runs=N seconds=S cpu=C inflight=8 peak=P clock=hrtime
//
// Node has no semaphore, so 8 runner functions share one counter: each
// takes the next run, starts /bin/true with child_process.spawn (stdin,
// stdout and stderr inherited: no pipes, no /dev/null, the same in every
// contender), awaits a promise that its 'exit' event resolves ('error'
// rejects) and checks that it exited with code 0, until N runs have been
// made. With no pipes, 'close' follows 'exit' at once. P is the most
// children that were running at once, checked to be min(8, N). cpu is this
// process's CPU time only, not its children's.
'use strict';

const { spawn } = require('child_process');

const INFLIGHT = 8;
const CMD = '/bin/true';

let live = 0;
let peak = 0;

function runOnce() {
  return new Promise((resolve, reject) => {
    const child = spawn(CMD, [], { stdio: 'inherit' });
    child.once('error', reject);
    child.once('spawn', () => {
      live++;
      if (live > peak) peak = live;
    });
    child.once('exit', (code, signal) => {
      live--;
      if (code !== 0) {
        reject(new Error(`${CMD} (pid ${child.pid}) ended with code ${code}, signal ${signal}`));
      } else {
        resolve();
      }
    });
  });
}

async function main(n) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let next = 0;
  let exited = 0;
  async function runner() {
    while (next < n) {
      next++;
      await runOnce();
      exited++;
    }
  }
  const runners = [];
  for (let j = 0; j < INFLIGHT; j++) runners.push(runner());
  await Promise.all(runners);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cu = process.cpuUsage(c0);

  // Every run counted, and the concurrency was what the header says.
  if (exited !== n) throw new Error('runs missing');
  if (peak !== Math.min(INFLIGHT, n)) throw new Error(`peak in flight ${peak}`);
  const cpu = (cu.user + cu.system) / 1e6;
  console.log(`runs=${n} seconds=${seconds.toFixed(6)} cpu=${cpu.toFixed(6)} inflight=${INFLIGHT}` +
    ` peak=${peak} clock=hrtime`);
}

const n = Number(process.argv[2] || process.env.BENCH_N || 1000);
main(n).catch((err) => {
  console.error(err);
  process.exit(1);
});
