"""The stand-in's cupyx.scipy.special: SciPy's ufuncs behind the stand-in's checks.

Like every ufunc of the stand-in, they refuse NumPy arrays, check CuPy's signature and
return fresh C-ordered device arrays.
"""

import scipy.special

import cupy
from cupy import _api


def __getattr__(name):
    entry = _api.module_entry("cupyx.scipy.special", name)
    np_ufunc = getattr(scipy.special, name, None)
    if entry["kind"] != "ufunc" or np_ufunc is None:
        raise AttributeError(f"the CuPy stand-in does not model cupyx.scipy.special.{name}")
    value = cupy.ufunc("cupyx.scipy.special", name, np_ufunc, entry["params"])
    globals()[name] = value
    return value
