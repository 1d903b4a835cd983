"""The stand-in's cupyx: allow_synchronize / DeviceSynchronized, and cupyx.scipy.special.

`with cupyx.allow_synchronize(False):` makes every host synchronisation of the stand-in
raise DeviceSynchronized (cupy/_core.py lists what counts as one). The real CuPy has the
same context manager (deprecated, best effort), so a test written with it runs on both.
"""

import contextlib
import warnings

from cupy import _api, _core
from cupy._core import DeviceSynchronized  # noqa: F401


@contextlib.contextmanager
def allow_synchronize(allow):
    """Allow or refuse device synchronisation in this thread, for the duration of the block."""
    warnings.warn("cupyx.allow_synchronize will be removed in future releases as it is not possible to "
                  "reliably detect synchronizations.")
    old = _core.set_sync_allowed(allow)
    try:
        yield
    finally:
        _core.set_sync_allowed(old)


def __getattr__(name):
    if name == "scipy":
        from . import scipy
        return scipy
    _api.module_entry("cupyx", name)
    raise AttributeError(f"the CuPy stand-in does not model cupyx.{name}")
