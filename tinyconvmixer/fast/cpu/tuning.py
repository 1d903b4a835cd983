"""Process settings outside NumPy that decide much of the CPU's speed.

Measured on a training step of ConvMixer-256/8 at batch 32 on 2 cores: 745 ms
with neither, 460 ms with both:
 * OpenBLAS's thread timeout (OPENBLAS_THREAD_TIMEOUT, see blas_timeout below);
 * where NumPy's large arrays come from (keep_freed_memory).
Both apply to the whole process, so only the commands (training, benchmarks)
make them, never the library on import.
"""

import ctypes
import ctypes.util
import os
import sys

BLAS_TIMEOUT = "8"


def blas_timeout():
    """Ask OpenBLAS's idle threads to sleep at once instead of spinning.

    After every matrix product OpenBLAS's threads busy-wait for about 2^28
    cycles (a tenth of a second) in case another product follows; meanwhile they
    hold the cores that our own threads need for the elementwise work in between
    (measured: GELU ran 1.8x slower right after a matrix product). With 2^8
    cycles they go to sleep almost at once. OpenBLAS reads the setting when it
    loads, that is when NumPy is first imported: returns False when that has
    already happened (then the setting comes too late). A value the user set is kept.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_TIMEOUT)
    return "numpy" not in sys.modules


def relaunch_with_blas_timeout():
    """For a command such as `python -m tinyconvmixer.train`: start it again, once, with
    OPENBLAS_THREAD_TIMEOUT in its environment, so that OpenBLAS reads it when it loads.

    By the time a command's own code runs, `import tinyconvmixer` (its parent package) has
    loaded NumPy and OpenBLAS, so blas_timeout comes too late there (the smoke run took 33 s
    instead of 23 s). The process replaces itself (os.execv: the same process id, the same
    arguments, interpreter flags included) before anything else has happened. Returns where
    nothing needs doing: the variable was set already (by the user, or by this very
    relaunch), NumPy is not loaded yet (blas_timeout still counts), or the system cannot
    replace a process (not POSIX)."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ or blas_timeout():
        return
    if os.name != "posix" or not getattr(sys, "orig_argv", None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + sys.orig_argv[1:])


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
