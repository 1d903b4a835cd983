"""The array backend: the one place that knows about NumPy and CuPy.

Every op in tinyconvmixer works on "some ndarray" and asks this module which
array module (`xp`) owns it: NumPy for the CPU, CuPy for the GPU. Because NumPy
and CuPy share one API, the same op code runs on both devices. No other module
imports numpy or cupy for computation on tensors.

Device names are the strings ``"cpu"`` and ``"gpu"``.
"""

import sys

import numpy as np

DEVICES = ("cpu", "gpu")

_cupy = None          # the cupy module once imported successfully
_cupy_error = None    # why importing / using cupy failed, for a clear message


class DeviceError(RuntimeError):
    """Raised when a device is asked for that this machine cannot provide."""


def _load_cupy():
    """Import CuPy lazily (the CPU path must work without it installed)."""
    global _cupy, _cupy_error
    if _cupy is not None or _cupy_error is not None:
        return _cupy
    try:
        import cupy  # noqa: WPS433 (lazy: the CPU path must work without CuPy)
        cupy.cuda.runtime.getDeviceCount()     # raises without a driver or a GPU
        cupy.ones(1) + 1                       # the first kernel: CuPy compiles it for this GPU
        _cupy = cupy
    except Exception as exc:  # ImportError, CUDA driver errors, a GPU too old for this CUDA, ...
        from ..util.gpu_doctor import diagnose   # (only here: why, and the command that fixes it)
        _cupy_error = diagnose(exc, sys.modules.get("cupy"))
    return _cupy


def gpu_available():
    """True when CuPy imports and sees at least one GPU."""
    return _load_cupy() is not None


def check_device(device):
    """Validate a device name and make sure the device is usable."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    if device == "gpu" and not gpu_available():
        raise DeviceError(f"device 'gpu' is not available: {_cupy_error}; or use --device cpu")
    return device


def resolve_device(device):
    """Map 'auto' to 'gpu' when a GPU is usable, else 'cpu'."""
    if device == "auto":
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
