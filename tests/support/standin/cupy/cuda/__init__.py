"""The stand-in's cupy.cuda: one device (0), the default stream, events, the memory pools.

Everything runs synchronously on the CPU, so `synchronize()` has nothing to wait for;
it still counts as a host synchronisation (and is refused inside
cupyx.allow_synchronize(False)), as it would be on the GPU. Names that the real
cupy.cuda has but the stand-in does not model raise NotImplementedError when used;
names the real one lacks raise AttributeError.
"""

import time as _time

from .. import _api, _core
from .._core import MemoryPointer  # noqa: F401  (cupy.cuda.MemoryPointer)
from . import memory, runtime  # noqa: F401

_COMPUTE_CAPABILITY = "90"            # what an H100/H200 reports


def _check_device(device):
    if device not in (None, 0):
        raise runtime.CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal ({device}); "
                                       "the stand-in has one device, 0")


class Device:
    """cupy.cuda.Device(device=None): device 0, the only one."""

    def __init__(self, device=None):
        _check_device(int(device) if device is not None else None)
        self.id = 0

    compute_capability = property(lambda self: _COMPUTE_CAPABILITY)
    mem_info = property(lambda self: runtime.memGetInfo())
    pci_bus_id = property(lambda self: "0000:00:00.0")

    @property
    def attributes(self):
        return {"MaxThreadsPerBlock": 1024, "MaxSharedMemoryPerBlock": 48 * 1024, "WarpSize": 32,
                "MultiProcessorCount": 132, "MaxGridDimX": 2 ** 31 - 1, "MaxGridDimY": 65535,
                "MaxGridDimZ": 65535}

    def synchronize(self):
        _core.synchronize("cupy.cuda.Device.synchronize()")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False

    def __int__(self):
        return self.id

    def __repr__(self):
        return "<CUDA Device 0>"


class Stream:
    """cupy.cuda.Stream: work is done when it is queued, so a stream only records where it is."""

    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptr = 0 if null else id(self)

    def synchronize(self):
        _core.synchronize("cupy.cuda.Stream.synchronize()", declared=False)

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False

    done = property(lambda self: True)


Stream.null = Stream(null=True)


class Event:
    """cupy.cuda.Event: records the host clock (the "device" has finished everything queued)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.disable_timing = disable_timing
        self._time = None

    def record(self, stream=None):
        self._time = _time.perf_counter()

    def synchronize(self):
        _core.synchronize("cupy.cuda.Event.synchronize()", declared=False)

    done = property(lambda self: True)


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events."""
    if start_event._time is None or end_event._time is None:
        raise runtime.CUDARuntimeError("cudaErrorInvalidResourceHandle: an event was not recorded")
    return (end_event._time - start_event._time) * 1e3


def get_current_stream(device_id=None):
    return Stream.null


def get_device_id():
    return 0


def is_available():
    return True


def get_local_runtime_version():
    return runtime.runtimeGetVersion()


class MemoryPool:
    """cupy.cuda.MemoryPool: the bytes of live device arrays; freed blocks stay held until
    free_all_blocks(), as in CuPy's pool."""

    def __init__(self, allocator=None):
        pass

    def used_bytes(self):
        return _core.MEMORY.used

    def total_bytes(self):
        _core.MEMORY.held = max(_core.MEMORY.held, _core.MEMORY.used)
        return _core.MEMORY.held

    def free_bytes(self):
        return self.total_bytes() - self.used_bytes()

    def free_all_blocks(self, stream=None):
        _core.MEMORY.held = _core.MEMORY.used

    def n_free_blocks(self):
        return 1 if self.free_bytes() else 0

    def set_limit(self, size=None, fraction=None):
        if fraction is not None:
            size = int(fraction * runtime.memGetInfo()[1])
        _core.MEMORY.limit = int(size or 0)

    def get_limit(self):
        return _core.MEMORY.limit


class PinnedMemoryPool:
    """cupy.cuda.PinnedMemoryPool: pinned host memory is ordinary NumPy memory here."""

    def __init__(self, allocator=None):
        pass

    def free_all_blocks(self):
        pass

    def n_free_blocks(self):
        return 0

    def total_bytes(self):
        return 0

    def used_bytes(self):
        return 0


_DEFAULT_POOL = MemoryPool()
_DEFAULT_PINNED_POOL = PinnedMemoryPool()


def __getattr__(name):
    _api.module_entry("cupy.cuda", name)            # AttributeError if the real cupy.cuda lacks it
    if name.startswith("__"):
        raise AttributeError(name)

    def not_modelled(*args, **kwargs):
        raise NotImplementedError(f"the CuPy stand-in does not model cupy.cuda.{name}")
    return not_modelled

