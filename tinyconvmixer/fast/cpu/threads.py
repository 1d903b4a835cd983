"""The CPU's threads: blocks of work shared among the cores.

NumPy runs each call on one core, but it releases the GIL inside its loops,
so Python threads that each work on their own block of an array run in
parallel, much like PyTorch's intra-op threads. The fast CPU variants
(depthwise.py, rowwise.py, chunked.py) cut their work into blocks and hand
them to run_blocks; partial results are added in block order (add_in_order),
so a result never depends on how the threads were scheduled.
"""

import concurrent.futures
import os

import numpy as np


def cpu_threads():
    """Threads for the CPU's blocked loops: $TINYCONVMIXER_THREADS, else every core this
    process may run on (its affinity: `taskset -c 1` means one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, int(os.environ.get("TINYCONVMIXER_THREADS", cores or 1)))


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
    blocks are shared among cpu_threads() threads. Blocks are made smaller where needed so that
    every thread gets one. fn must only write to its own block. Returns
    [fn(start, stop) for each block], in block order (see add_in_order).
    """
    global _pool
    threads = cpu_threads() if xp is np else 1
    block = max(1, min(block, -(-n // threads)))
    blocks = [(s, min(s + block, n)) for s in range(0, n, block)]
    if threads == 1 or len(blocks) <= 1:    # (no blocks: an empty batch, nothing to do)
        return [fn(start, stop) for start, stop in blocks]
    if _pool is None or _pool._max_workers != threads:     # $TINYCONVMIXER_THREADS may change
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
    futures = [_pool.submit(fn, start, stop) for start, stop in blocks]
    return [future.result() for future in futures]      # re-raises any error from a block


def add_in_order(parts):
    """The sum of per-block partial results, added in block order: the same sum however
    the threads were scheduled (floating-point addition depends on the order)."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total
