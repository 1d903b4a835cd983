"""The CPU's threads: blocks of work shared among the cores.

NumPy runs each call on one core, but it releases the GIL inside its loops,
so Python threads that each work on their own block of an array run in
parallel, much like PyTorch's intra-op threads. The fast CPU variants
(depthwise.py, rowwise.py, chunked.py) cut their work into blocks and hand
them to run_blocks; partial results are added in block order (add_in_order),
so a result never depends on how the threads were scheduled.

The calling thread works too (as OpenMP's master thread does), and the blocks
are taken one at a time from a shared counter, so a thread that the operating
system holds back (a busy, shared machine) leaves its next blocks to the others
instead of making everyone wait for it.
"""

import concurrent.futures
import itertools
import os

import numpy as np

from . import machine


def cpu_threads():
    """Threads for the CPU's blocked loops: $TINYCONVMIXER_THREADS, else every core this
    process may use (its affinity and cgroup quota: `taskset -c 1` means one; machine.py)."""
    return max(1, int(os.environ.get("TINYCONVMIXER_THREADS", machine.cores())))


_pool = None


def _forget_pool():
    """After fork() the child has the pool object but not its threads: start a new one."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run_blocks(fn, n, block, xp):
    """Call fn(start, stop) for consecutive blocks of range(n).

    On the GPU (xp is CuPy) this is one call over everything. On the CPU the
    blocks are shared among cpu_threads() threads, the calling thread one of them.
    Blocks are made smaller where needed so that every thread gets one. fn must only
    write to its own block. Returns [fn(start, stop) for each block], in block order
    (see add_in_order).
    """
    global _pool
    threads = cpu_threads() if xp is np else 1
    block = max(1, min(block, -(-n // threads)))
    blocks = [(s, min(s + block, n)) for s in range(0, n, block)]
    if threads == 1 or len(blocks) <= 1:    # (no blocks: an empty batch, nothing to do)
        return [fn(start, stop) for start, stop in blocks]
    helpers = min(threads, len(blocks)) - 1
    if _pool is None or _pool._max_workers != threads - 1:    # $TINYCONVMIXER_THREADS may change
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads - 1)
    results = [None] * len(blocks)
    claim = itertools.count()                 # next() on it is atomic under the GIL

    def work():
        for i in iter(claim.__next__, None):
            if i >= len(blocks):
                return
            results[i] = fn(*blocks[i])
    futures = [_pool.submit(work) for _ in range(helpers)]
    try:
        work()
    finally:
        for future in futures:
            future.result()                   # waits, and re-raises any error from a block
    return results


def add_in_order(parts):
    """The sum of per-block partial results, added in block order: the same sum however
    the threads were scheduled (floating-point addition depends on the order)."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total
