"""Compile and launch the .cu kernels of this folder, on the GPU or in the CPU emulator.

Each kernel file is CUDA C written for one element type `T` and a few
compile-time sizes (kernel size, tile size): `module("depthwise", dtype, KH=5)`
prepends `typedef float T;` and `#define KH 5` to depthwise.cu and compiles it
once with CuPy (NVRTC); later calls reuse the compiled module, and
`kernel("depthwise", "dw_conv_nhwc", dtype, KH=5)` one of its functions. Constants known
at compile time let the compiler unroll the loops over taps and keep small
arrays in registers.

The same wrapper code runs on NumPy arrays inside `with compiled_by(factory):`,
where `factory(code)` stands in for cupy.RawModule: that is how the tests run
every kernel on a machine without a GPU, with an emulator that compiles the
kernel text with g++ (tests/support/cuda_emulator.py).

`active(*arrays)` decides whether an op takes its fast kernel: the arrays are
CuPy arrays (or NumPy ones under compiled_by) of float32 or float64, and the
kernels are enabled. `set_enabled(False)` (or TINYCONVMIXER_CUDA_KERNELS=0)
sends every op down its plain xp path, the readable reference that the kernels
are tested against.
"""

import contextlib
import os

from ...engine import backend

_HERE = os.path.dirname(os.path.abspath(__file__))
_enabled = os.environ.get("TINYCONVMIXER_CUDA_KERNELS", "1") != "0"
_host_compiler = None             # compiled_by's factory: kernels run on NumPy arrays (tests)
_modules = {}                      # (file, dtype, defines, compiler) -> compiled module
_kernels = {}                      # (file, function, dtype, defines, compiler) -> kernel
C_TYPES = {"float32": "float", "float64": "double"}


def set_enabled(flag):
    """Turn the fast kernels on or off (off: every op takes its plain xp path). Returns the old value."""
    global _enabled
    old, _enabled = _enabled, bool(flag)
    return old


@contextlib.contextmanager
def compiled_by(factory):
    """Inside the block, kernels are compiled by factory(code=...) (a stand-in for
    cupy.RawModule) and run on NumPy arrays: how the tests run them without a GPU."""
    global _host_compiler
    old, _host_compiler = _host_compiler, factory
    try:
        yield
    finally:
        _host_compiler = old


def active(*arrays):
    """True when the fast kernels should handle these arrays (see the module docstring)."""
    if not _enabled or not arrays:
        return False
    xp = backend.get_array_module(*arrays)
    on_gpu = xp is not backend.numpy_module()
    if not (on_gpu or _host_compiler is not None):
        return False
    dtype = arrays[0].dtype
    return dtype.name in C_TYPES and all(a.dtype == dtype for a in arrays)


def source(name, dtype, **defines):
    """The CUDA C text compiled for `name`.cu, element type dtype and #define'd constants."""
    with open(os.path.join(_HERE, name + ".cu")) as f:
        body = f.read()
    head = [f"typedef {C_TYPES[dtype.name]} T;"] + [f"#define {k} {v}" for k, v in sorted(defines.items())]
    return "\n".join(head) + "\n" + body


def module(name, dtype, **defines):
    """The compiled module of `name`.cu for element type dtype with #define'd constants."""
    key = (name, dtype.name, tuple(sorted(defines.items())), _host_compiler)
    if key not in _modules:
        code = source(name, dtype, **defines)
        if _host_compiler is not None:
            _modules[key] = _host_compiler(code=code)
        else:
            _modules[key] = backend.xp_for("gpu").RawModule(code=code)
    return _modules[key]


def kernel(name, function, dtype, **defines):
    """The kernel `function` of `name`.cu (compiled as module() does), looked up once and kept."""
    key = (name, function, dtype.name, tuple(sorted(defines.items())), _host_compiler)
    if key not in _kernels:
        _kernels[key] = module(name, dtype, **defines).get_function(function)
    return _kernels[key]


def ptr(array):
    """The address of an array's first element, as the kernels see it."""
    if backend.get_array_module(array) is backend.numpy_module():
        return array.ctypes.data
    return array.data.ptr


def i32(n):
    """A C `int` kernel argument (CuPy and the emulator both take NumPy scalars)."""
    return backend.numpy_module().int32(n)


def i64(n):
    """A C `long long` kernel argument."""
    return backend.numpy_module().int64(n)


def scalar(value, dtype):
    """A kernel argument of type T (float or double)."""
    return backend.numpy_module().dtype(dtype).type(value)


def blocks(n, per_block):
    """Number of blocks of per_block items that cover n items."""
    return max(1, -(-n // per_block))


def grid_stride(n, threads=256, max_blocks=4096):
    """(grid, block) for a kernel whose threads walk n elements in a grid-stride loop
    (i += gridDim.x * blockDim.x): enough blocks to fill the GPU, not one per element."""
    return (min(max_blocks, blocks(n, threads)),), (threads,)
