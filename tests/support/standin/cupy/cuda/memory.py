"""The stand-in's cupy.cuda.memory: the pool classes and OutOfMemoryError."""

from .._core import MemoryPointer, OutOfMemoryError  # noqa: F401


def __getattr__(name):
    from . import MemoryPool, PinnedMemoryPool
    if name in ("MemoryPool", "PinnedMemoryPool"):
        return {"MemoryPool": MemoryPool, "PinnedMemoryPool": PinnedMemoryPool}[name]
    raise AttributeError(f"the CuPy stand-in does not model cupy.cuda.memory.{name}")
