"""NumPy's OpenBLAS, kept off the cores while our own threads work.

After every matrix product that it runs on several threads, OpenBLAS keeps its
worker threads busy-waiting for about a tenth of a second (2^28 cycles) in case
another product follows. Meanwhile they hold the cores that our threads need
for the elementwise work between the products (threads.py): measured on the
2-core AMD EPYC, the smoke run took 33 s instead of 23 s. The environment
variable OPENBLAS_THREAD_TIMEOUT shortens the wait, but OpenBLAS reads it only
when it loads, that is when NumPy is first imported: a script that imports
NumPy before tinyconvmixer would never get it.

So the step's large products (the patch and 1x1 convolutions, forward and
backward: conv.py) never go to OpenBLAS's threads at all. They are cut into
blocks of rows that our own threads hand to OpenBLAS one block each, while
OpenBLAS is told to use one thread (`single_threaded`, set through its C
function at run time, whatever the import order); its workers then never
wake, so they never spin. OpenBLAS's setting is restored afterwards, so matrix
products elsewhere in the process keep every thread.

Where NumPy uses another BLAS, or OpenBLAS cannot be found (not Linux, where
/proc/self/maps lists the loaded libraries, and no numpy.libs folder holds
it), `single_threaded` changes nothing: the products then share the cores as
that BLAS decides.
"""

import contextlib
import ctypes
import glob
import os
import threading

import numpy as np

# The name of OpenBLAS's "set/get number of threads" functions: NumPy 2's wheels carry
# scipy-openblas (a prefix and a 64-bit-integer suffix), older wheels openblas64_, and a
# system OpenBLAS has the plain names.
_NAMES = [("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
          ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
          ("openblas_set_num_threads", "openblas_get_num_threads")]
_lock = threading.Lock()
_active = 0                  # how many single_threaded blocks are running (threads may nest them)
_saved = None                # OpenBLAS's thread count before the first of them


def _candidates():
    """Paths of the OpenBLAS libraries this process has loaded, or that NumPy ships."""
    paths = []
    try:
        with open("/proc/self/maps") as f:
            paths = [line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line]
    except OSError:
        pass
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    paths += glob.glob(os.path.join(libs, "*openblas*"))
    return list(dict.fromkeys(paths))


def _find():
    """(set, get) of the loaded OpenBLAS's thread count, or None."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _NAMES:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.restype, getter.restype = None, ctypes.c_int
                return setter, getter
    return None


_functions = _find()


def available():
    """True when NumPy's OpenBLAS was found (its threads can be set at run time)."""
    return _functions is not None


def threads():
    """OpenBLAS's thread count now (None where it was not found)."""
    return _functions[1]() if _functions else None


@contextlib.contextmanager
def single_threaded():
    """Inside the block, OpenBLAS runs every product on the calling thread alone.

    Nested and concurrent blocks are counted: the setting goes back to what it was when
    the last of them ends."""
    global _active, _saved
    if _functions is None:
        yield
        return
    setter, getter = _functions
    with _lock:
        if _active == 0:
            _saved = getter()
            setter(1)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                setter(_saved)
