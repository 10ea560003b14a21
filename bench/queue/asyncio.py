"""queue peer: N items through asyncio.Queue(maxsize=1000), one producer task
to one consumer task.

Run as: python3 bench/queue/asyncio.py [N]
Prints: items=N seconds=S cpu=C maxsize=1000 clock=perf_counter

asyncio.Queue has no close() before Python 3.13, so the producer ends with a
None sentinel (not counted as an item) where loom.lua closes the queue.
"""
import os
import sys

# This file is named asyncio.py and Python puts the script's directory first
# on sys.path, so drop it or "import asyncio" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402
import time  # noqa: E402

MAXSIZE = 1000


async def producer(q, n):
    for i in range(1, n + 1):
        await q.put(i)
    await q.put(None)


async def consumer(q):
    total = got = 0
    while True:
        v = await q.get()
        q.task_done()
        if v is None:
            break
        total += v
        got += 1
    return total, got


async def main(n):
    t0, c0 = time.perf_counter(), time.process_time()
    q = asyncio.Queue(maxsize=MAXSIZE)
    c = asyncio.create_task(consumer(q))
    p = asyncio.create_task(producer(q, n))
    await p
    total, got = await c
    await q.join()
    t1, c1 = time.perf_counter(), time.process_time()

    # The checksum keeps every item observable and catches a broken run.
    assert got == n and total == n * (n + 1) // 2, "checksum mismatch"
    print(f"items={n} seconds={t1 - t0:.6f} cpu={c1 - c0:.6f} maxsize={MAXSIZE} clock=perf_counter")


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_N", "1000000")
    asyncio.run(main(int(raw)))
