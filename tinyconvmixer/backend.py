"""The array backend: the one place that knows about NumPy and CuPy.

Every op in tinyconvmixer works on "some ndarray" and asks this module which
array module (`xp`) owns it: NumPy for the CPU, CuPy for the GPU. Because NumPy
and CuPy share one API, the same op code runs on both devices. No other module
imports numpy or cupy for computation on tensors.

Device names are the strings ``"cpu"`` and ``"gpu"``.
"""

import concurrent.futures
import ctypes
import ctypes.util
import os
import sys

import numpy as np

DEVICES = ("cpu", "gpu")

_cupy = None          # the cupy module once imported successfully
_cupy_error = None    # why importing / using cupy failed, for a clear message


class DeviceError(RuntimeError):
    """Raised when a device is asked for that this machine cannot provide."""


def _import_cupy():
    """`import cupy`, or for tests, with TINYCONVMIXER_SIMULATE_GPU=1, the strict CuPy stand-in
    of the repository's tests/standin folder, which runs the GPU code paths on a CPU-only
    machine (tests/README.md says what it checks and what it cannot). The variable may
    also name a folder holding another stand-in package `cupy`; a `cupy` that is already
    imported is used as it is."""
    simulate = _simulating()
    if simulate and "cupy" not in sys.modules:
        folder = simulate if simulate != "1" else os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "standin")
        if not os.path.isdir(os.path.join(folder, "cupy")):
            raise RuntimeError(f"TINYCONVMIXER_SIMULATE_GPU is set, but {folder} holds no CuPy stand-in "
                               "(it lives in the repository's tests/standin folder)")
        sys.path.insert(0, folder)
    import cupy  # noqa: WPS433 (import inside a function on purpose)
    return cupy


def _simulating():
    """'' (no stand-in), '1' (the tests' stand-in) or a folder, from TINYCONVMIXER_SIMULATE_GPU."""
    value = os.environ.get("TINYCONVMIXER_SIMULATE_GPU", "")
    if value in ("", "0", "1") or os.path.isdir(value):
        return "" if value == "0" else value
    raise DeviceError(f"TINYCONVMIXER_SIMULATE_GPU must be 1 (the CuPy stand-in of tests/standin), 0, "
                      f"or a folder holding a stand-in package 'cupy'; got {value!r}")


def _load_cupy():
    """Import CuPy lazily (the CPU path must work without it installed)."""
    global _cupy, _cupy_error
    if _cupy is not None or _cupy_error is not None:
        return _cupy
    try:
        cupy = _import_cupy()
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("CuPy is installed but sees no CUDA GPU")
        _cupy = cupy
    except Exception as exc:  # ImportError, CUDA driver errors, ...
        _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def gpu_available():
    """True when CuPy imports and sees at least one GPU."""
    return _load_cupy() is not None


def check_device(device):
    """Validate a device name and make sure the device is usable."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    if device == "gpu" and not gpu_available():
        raise DeviceError(
            "device 'gpu' was asked for but is not available "
            f"({_cupy_error}). On a machine with an NVIDIA GPU, install CuPy for its "
            "CUDA version: `pip install -e '.[gpu]'` brings cupy-cuda13x with CUDA 13's "
            "libraries (for CUDA 12: pip install 'cupy-cuda12x[ctk]'); or use --device cpu.")
    return device


def resolve_device(device):
    """Map 'auto' to 'gpu' when a GPU is usable, else 'cpu' (but a stand-in that was asked for
    and fails to load is an error, not a quiet fall-back to the CPU)."""
    if device == "auto":
        if not gpu_available() and _simulating():
            raise DeviceError(f"TINYCONVMIXER_SIMULATE_GPU is set, but the CuPy stand-in did not load "
                              f"({_cupy_error})")
        return "gpu" if gpu_available() else "cpu"
    return check_device(device)


def get_array_module(*arrays):
    """Return numpy or cupy, whichever owns the given arrays or Tensors (numpy if none)."""
    if _cupy is None:
        return np
    for a in arrays:
        # A Tensor keeps its array in .data (a CuPy array's own .data is a memory pointer).
        if isinstance(a, _cupy.ndarray) or isinstance(getattr(a, "data", None), _cupy.ndarray):
            return _cupy
    return np


def channels_last(array):
    """The same values in NHWC memory, still (N, C, H, W)-shaped: the layout that
    tinyconvmixer's convolutions produce (see functional/conv.py)."""
    xp = get_array_module(array)
    return xp.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def numpy_module():
    """NumPy itself, for code that must tell the CPU path from the GPU path."""
    return np


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

    On the GPU this is one call over everything. On the CPU the blocks are
    shared among cpu_threads() threads: NumPy releases the GIL inside its
    loops, so threads working on different blocks run in parallel, much like
    PyTorch's intra-op threads. Blocks are made smaller where needed so that
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


# ----- CPU tuning ------------------------------------------------------------------------
# Two settings outside NumPy decide much of the CPU's speed (measured on a training
# step of ConvMixer-256/8 at batch 32 on 2 cores: 745 ms with neither, 460 ms with both):
#  * OpenBLAS's thread timeout, set in __init__.py before NumPy is imported;
#  * where NumPy's large arrays come from, set by keep_freed_memory() below.

def keep_freed_memory():
    """Make freed memory reusable by the next array instead of returning it to the OS.

    glibc's malloc gets every block above 128 KB-32 MB straight from the kernel
    (mmap) and hands it back on free. A new array then touches fresh pages, and
    the kernel must zero each 4 KB page on its first touch: about 56,000 such
    page faults in one training step (220 MB zeroed). Turning mmap off and never
    trimming the heap keeps freed blocks in the process for the next array, like
    CuPy's memory pool on the GPU. The price: the process keeps its peak memory (glibc
    still maps very large requests made from threads, above about 64 MB, on its own).
    Returns False where the C library is not glibc (then nothing changes).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4               # from glibc's malloc.h
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def xp_for(device):
    """The array module for a device name."""
    return _load_cupy() if check_device(device) == "gpu" else np


def device_of(array):
    """'gpu' for a CuPy array, 'cpu' for anything else."""
    return "gpu" if get_array_module(array) is not np else "cpu"


def to_device(array, device):
    """Move (or keep) an array on `device`; returns the same array if already there."""
    check_device(device)
    if device_of(array) == device:
        return array
    if device == "gpu":
        return _cupy.asarray(array)
    return _cupy.asnumpy(array)


def to_numpy(array):
    """A NumPy copy/view of any array, for printing, plotting and saving."""
    return to_device(array, "cpu") if device_of(array) == "gpu" else np.asarray(array)


def erf(x):
    """The error function on either device (needed by exact GELU).

    NumPy has no erf, so the CPU uses scipy.special.erf and the GPU
    cupyx.scipy.special.erf; both are elementwise ufuncs.
    """
    if get_array_module(x) is np:
        from scipy.special import erf as _erf
    else:
        from cupyx.scipy.special import erf as _erf
    return _erf(x)
