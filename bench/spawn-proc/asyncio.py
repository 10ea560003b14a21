"""spawn-proc peer: N runs of /bin/true through asyncio subprocesses, at
most 8 at a time, each waited for.

Run as: python3 bench/spawn-proc/asyncio.py [N]
Prints: runs=N seconds=S cpu=C inflight=8 peak=P watcher=W clock=perf_counter

One coroutine per run, all gathered at once; an asyncio.Semaphore(8) lets
8 of them hold a child at a time. Each starts /bin/true with
asyncio.create_subprocess_exec (stdin, stdout and stderr inherited: no
pipes, no /dev/null, the same in every contender), awaits proc.wait() and
checks that it exited with code 0. P is the most children that were running
at once, checked to be min(8, N). W is how the event loop learns that a
child exited: on Python before 3.12 the default ThreadedChildWatcher, one
thread per child blocked in waitpid; from 3.12 a pidfd where the kernel has
them. cpu is this process's CPU time only, not its children's.
"""
import os
import sys

# This file is named asyncio.py and Python puts the script's directory first
# on sys.path, so drop it or "import asyncio" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

INFLIGHT = 8
CMD = "/bin/true"


def watcher_name():
    """The child watcher in use, for the result line (a name, no spaces)."""
    if sys.version_info >= (3, 12):
        # 3.12 deprecates the watchers; the loop picks a pidfd itself when
        # os.pidfd_open works, else a thread per child.
        try:
            os.close(os.pidfd_open(os.getpid()))
            return "pidfd"
        except (AttributeError, OSError):
            return "thread"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return type(asyncio.get_child_watcher()).__name__


async def main(n):
    sem = asyncio.Semaphore(INFLIGHT)
    state = {"live": 0, "peak": 0, "exited": 0}

    async def one():
        async with sem:
            proc = await asyncio.create_subprocess_exec(CMD)
            state["live"] += 1
            state["peak"] = max(state["peak"], state["live"])
            code = await proc.wait()
            state["live"] -= 1
            if code != 0:
                raise RuntimeError(f"{CMD} (pid {proc.pid}) ended with {code}")
            state["exited"] += 1

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    t1, c1 = time.perf_counter(), time.process_time()

    # Every run counted, and the concurrency was what the header says.
    assert state["exited"] == n, "runs missing"
    assert state["peak"] == min(INFLIGHT, n), f"peak in flight {state['peak']}"
    print(f"runs={n} seconds={t1 - t0:.6f} cpu={c1 - c0:.6f} inflight={INFLIGHT}"
          f" peak={state['peak']} watcher={watcher_name()} clock=perf_counter")


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_N", "1000")
    asyncio.run(main(int(raw)))
