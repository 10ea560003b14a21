// files peer: read a file in 64 KiB chunks, then write it back to a second
// file in 64 KiB chunks, through fs.promises FileHandles.
// Run as: node bench/files/node.js IN OUT [BYTES]
// Prints: bytes=N read_s=R write_s=W sum=S chunk=65536 cpu_read=C cpu_write=C clock=hrtime
//
// 1. read phase (timed): fs.promises.open(IN, 'r'), await fh.read() into one
//    reused 64 KiB Buffer until it reads 0 bytes, adding the check sum of
//    every chunk (bench/files/gen.c), close.
// 2. load (not timed): read IN again into one 64 KiB Buffer per chunk, so
//    the write phase has the file's bytes to write back.
// 3. write phase (timed): fs.promises.open(OUT, 'w'), await fh.write() of
//    each chunk, close. No sync: the data goes into the page cache.
// Each read and write is one request on libuv's thread pool. bench/run
// checks N and S and compares OUT with IN byte for byte. BYTES is not used
// here (the run script passes it to every contender).
'use strict';

const fs = require('fs');

const CHUNK = 65536;
const STEP = 16384;

// The check sum of buf[0, n), found at file offset off.
function sample(buf, n, off) {
  let s = 0;
  for (let at = Math.ceil(off / STEP) * STEP; at < off + n; at += STEP) {
    s += buf[at - off] * (at / STEP + 1);
  }
  return s;
}

function cpuSeconds(since) {
  const cu = process.cpuUsage(since);
  return (cu.user + cu.system) / 1e6;
}

async function main(input, output) {
  // 1. read
  let t0 = process.hrtime.bigint();
  let c0 = process.cpuUsage();
  let total = 0;
  let sum = 0;
  {
    const fh = await fs.promises.open(input, 'r');
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      sum += sample(buf, bytesRead, total);
      total += bytesRead;
    }
    await fh.close();
  }
  const readS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuRead = cpuSeconds(c0);

  // 2. load
  const chunks = [];
  {
    const fd = fs.openSync(input, 'r');
    let have = 0;
    for (;;) {
      const b = Buffer.allocUnsafe(CHUNK);
      const n = fs.readSync(fd, b, 0, CHUNK, null);
      if (n === 0) break;
      chunks.push(n === CHUNK ? b : b.subarray(0, n));
      have += n;
    }
    fs.closeSync(fd);
    if (have !== total) throw new Error('the input changed size between reads');
  }

  // 3. write
  t0 = process.hrtime.bigint();
  c0 = process.cpuUsage();
  {
    const fh = await fs.promises.open(output, 'w');
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, null);
        done += bytesWritten;
      }
    }
    await fh.close();
  }
  const writeS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuWrite = cpuSeconds(c0);

  console.log(`bytes=${total} read_s=${readS.toFixed(6)} write_s=${writeS.toFixed(6)}` +
    ` sum=${sum} chunk=${CHUNK} cpu_read=${cpuRead.toFixed(6)} cpu_write=${cpuWrite.toFixed(6)}` +
    ' clock=hrtime');
}

if (process.argv.length < 4) {
  console.error('usage: node bench/files/node.js IN OUT [BYTES]');
  process.exit(2);
}
main(process.argv[2], process.argv[3]).catch((err) => {
  console.error(err);
  process.exit(1);
});
