"""files peer: read a file in 64 KiB chunks, then write it back to a second
file in 64 KiB chunks, each read and write run_in_executor'd.

Run as: python3 bench/files/asyncio.py IN OUT [BYTES]
Prints: bytes=N read_s=R write_s=W sum=S chunk=65536 cpu_read=C cpu_write=C clock=perf_counter

asyncio has no file I/O of its own; the usual way is to hand each blocking
call to the default executor (a ThreadPoolExecutor):

1. read phase (timed): open(IN, 'rb', buffering=0), await
   loop.run_in_executor(None, f.read, 65536) until it returns b'', adding
   the check sum of every chunk (bench/files/gen.c), close.
2. load (not timed): read IN again, the chunks kept in a list, so that the
   write phase has the file's bytes to write back.
3. write phase (timed): open(OUT, 'wb', buffering=0), await
   loop.run_in_executor(None, f.write, chunk) for each chunk, close. No
   fsync: the data goes into the page cache.

The files are unbuffered (FileIO), so each read or write is one read(2) or
write(2). bench/run checks N and S and compares OUT with IN byte for byte.
BYTES is not used here (the run script passes it to every contender).
"""
import os
import sys

# This file is named asyncio.py and Python puts the script's directory first
# on sys.path, so drop it or "import asyncio" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402
import time  # noqa: E402

CHUNK = 65536
STEP = 16384


def sample(chunk, off):
    """The check sum of chunk, found at file offset off."""
    s = 0
    start = -off % STEP
    for i in range(start, len(chunk), STEP):
        s += chunk[i] * ((off + i) // STEP + 1)
    return s


async def main(path_in, path_out):
    loop = asyncio.get_running_loop()

    # 1. read
    t0, c0 = time.perf_counter(), time.process_time()
    total = 0
    total_sum = 0
    with open(path_in, "rb", buffering=0) as f:
        while True:
            chunk = await loop.run_in_executor(None, f.read, CHUNK)
            if not chunk:
                break
            total_sum += sample(chunk, total)
            total += len(chunk)
    t1, c1 = time.perf_counter(), time.process_time()

    # 2. load
    chunks = []
    have = 0
    with open(path_in, "rb", buffering=0) as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            have += len(chunk)
    assert have == total, "the input changed size between reads"

    # 3. write
    t2, c2 = time.perf_counter(), time.process_time()
    with open(path_out, "wb", buffering=0) as f:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                n = await loop.run_in_executor(None, f.write, view)
                view = view[n:]
    t3, c3 = time.perf_counter(), time.process_time()

    print(f"bytes={total} read_s={t1 - t0:.6f} write_s={t3 - t2:.6f} sum={total_sum}"
          f" chunk={CHUNK} cpu_read={c1 - c0:.6f} cpu_write={c3 - c2:.6f} clock=perf_counter")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python3 bench/files/asyncio.py IN OUT [BYTES]")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
