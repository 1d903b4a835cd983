"""The stand-in's cupy.cuda.runtime: one device, CUDA 13.0, and nothing to wait for."""

from .. import _api, _core

_TOTAL_MEMORY = 141 * 10 ** 9           # bytes: an H200's worth


class CUDARuntimeError(RuntimeError):
    """cupy.cuda.runtime.CUDARuntimeError."""


is_hip = False


def getDeviceCount():
    return 1


def getDevice():
    return 0


def setDevice(device):
    if device != 0:
        raise CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal ({device})")


def deviceSynchronize():
    _core.synchronize("cupy.cuda.runtime.deviceSynchronize()", declared=False)


def runtimeGetVersion():
    return 13000


def driverGetVersion():
    return 13000


def memGetInfo():
    """(free, total) bytes of the device."""
    return _TOTAL_MEMORY - _core.MEMORY.held, _TOTAL_MEMORY


def getDeviceProperties(device):
    setDevice(device)
    return {"name": b"CuPy stand-in (NumPy on the CPU)", "totalGlobalMem": _TOTAL_MEMORY, "major": 9,
            "minor": 0, "multiProcessorCount": 132, "maxThreadsPerBlock": 1024,
            "sharedMemPerBlock": 48 * 1024, "warpSize": 32, "regsPerBlock": 65536}


def __getattr__(name):
    _api.module_entry("cupy.cuda.runtime", name)
    if name.startswith("__"):
        raise AttributeError(name)

    def not_modelled(*args, **kwargs):
        raise NotImplementedError(f"the CuPy stand-in does not model cupy.cuda.runtime.{name}")
    return not_modelled
