"""The strict CuPy stand-in (tests/support/standin) itself: it refuses what CuPy refuses, looks like CuPy,
and catches the CuPy-only bugs it exists for.

These tests run only where the GPU module is the stand-in (TINYCONVMIXER_SIMULATE_GPU=1, as
in CI's GPU pass: they carry the `gpu` marker); on a real GPU or without the variable they
skip. test_planted_cupy_only_bugs is the point of it all: each plant passes on the CPU and
fails on the stand-in.
"""

import json
import operator
import os
import warnings

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.engine import backend, ops
from tinyconvmixer.gradcheck import gradcheck

cp = backend.xp_for("gpu") if backend.gpu_available() else None
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not getattr(cp, "__standin__", False), reason="the GPU module is not the CuPy stand-in "
    "(run with TINYCONVMIXER_SIMULATE_GPU=1)")]

API = os.path.join(os.path.dirname(__file__), "support", "standin", "cupy_api.json")


@pytest.fixture
def cupyx():
    import cupyx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # allow_synchronize's deprecation warning
        yield cupyx


def dev(a):
    return cp.asarray(np.asarray(a, dtype=np.float32))


# ----- it refuses what CuPy refuses -----------------------------------------------------------
def test_device_arrays_do_not_become_numpy_arrays():
    d = dev([[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(d)
    with pytest.raises(TypeError):
        operator.index(d[0, 0])                     # no __index__: range(d), lst[d] fail as on CuPy
    for name in ("ctypes", "__array_interface__"):
        assert not hasattr(d, name)
    assert not hasattr(d.flags, "writeable")
    np.testing.assert_array_equal(d.get(), [[1, 2], [3, 4]])   # the explicit way out


def test_numpy_arrays_do_not_mix_into_device_computations():
    d = dev([1, 2, 3])
    for attempt in (lambda: d + np.ones(3), lambda: np.ones(3) * d, lambda: d * np.array(2.0),
                    lambda: cp.add(d, np.ones(3)), lambda: cp.where(np.ones(3, bool), d, 0)):
        with pytest.raises(TypeError, match="Unsupported type"):
            attempt()
    assert (d * np.float32(2)).get().tolist() == [2, 4, 6]      # NumPy *scalars* are fine
    assert (np.float32(2) * d).get().tolist() == [2, 4, 6]
    assert (d < np.array(2.5)).get().tolist() == [True, True, False]   # CuPy compares with its value
    with pytest.raises(TypeError, match="NumPy's"):
        np.exp(d)                                # stricter than CuPy: the project computes with xp
    with pytest.raises(TypeError, match="NumPy's"):
        np.sum(d)


def test_only_what_cupy_14_has():
    d = dev(np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="writeable"):
        cp.lib.stride_tricks.as_strided(d, (3,), (4,), writeable=False)   # NumPy has it, CuPy not
    with pytest.raises(TypeError, match="initial"):
        d.sum(axis=0, initial=0)
    with pytest.raises(AttributeError, match="errstate"):
        cp.errstate                                  # NumPy's, not CuPy's (cupyx has one)
    with pytest.raises(TypeError, match="where"):
        cp.exp(d, where=d > 0)


def test_the_stand_ins_names_all_exist_in_cupy_14():
    """Every public name the stand-in defines by hand is in the dump of the real CuPy."""
    with open(API) as f:
        api = json.load(f)
    import cupy.cuda.runtime  # noqa: F401
    hand_written = {
        "cupy": [n for n in vars(cp) if not n.startswith("_")],
        "cupy.cuda": [n for n in vars(cp.cuda) if not n.startswith("_")],
        "cupy.cuda.runtime": [n for n in vars(cp.cuda.runtime) if not n.startswith("_")],
    }
    for module, names in hand_written.items():
        missing = [n for n in names if n not in api["modules"][module]]
        assert not missing, f"{module} defines names the real CuPy lacks: {missing}"
    classes = {"cupy.cuda.Device": cp.cuda.Device, "cupy.cuda.Stream": cp.cuda.Stream,
               "cupy.cuda.Event": cp.cuda.Event, "cupy.cuda.MemoryPool": cp.cuda.MemoryPool,
               "cupy.ndarray": cp.ndarray}
    for name, cls in classes.items():
        extra = [n for n in vars(cls) if not n.startswith("_") and n not in api["classes"][name]]
        assert not extra, f"{name} has members the real one lacks: {extra}"


# ----- it looks like CuPy --------------------------------------------------------------------
def test_reductions_and_scalar_indexing_give_0d_device_arrays():
    d = dev([[1, 2], [3, 4]])
    for value in (d.sum(), d[1, 1], cp.max(d), d.mean(axis=None)):
        assert isinstance(value, cp.ndarray) and value.shape == ()
    assert float(d.sum()) == 10.0


def test_fresh_results_are_c_ordered_and_views_stay_views():
    x = backend.channels_last(dev(np.random.default_rng(0).standard_normal((2, 3, 4, 5))))
    assert not x.flags.c_contiguous
    assert (x * 2).flags.c_contiguous and cp.exp(x).flags.c_contiguous     # CuPy: C order
    assert not x[:, :2].flags.c_contiguous and x[:, :2].base is not None   # a view
    assert not cp.empty_like(x).flags.c_contiguous                         # keeps the layout
    assert cp.add(x, 1, out=cp.empty_like(x)).strides == x.strides


def test_integer_indices_wrap_around_as_in_cupy():
    d = dev([10, 20, 30])
    assert d[cp.asarray(np.array([1, 4]))].get().tolist() == [20, 20]   # 4 -> 4 % 3 = 1, no IndexError


def test_host_data_is_copied_not_shared():
    host = np.ones(3, np.float32)
    d = cp.asarray(host)
    host[0] = 5
    assert d.get().tolist() == [1, 1, 1]


# ----- synchronisation and memory ---------------------------------------------------------------
def test_host_synchronisations_are_refused_when_disallowed(cupyx):
    d = dev([1, 2, 3])
    with cupyx.allow_synchronize(False):
        e = (d * 2 + 1).sum()                          # stays on the device: fine
        for sync in (lambda: float(e), lambda: e.item(), lambda: d.get(), lambda: cp.asnumpy(d),
                     lambda: bool(e > 3), lambda: d[d > 1], lambda: f"{e:.2f}"):
            with pytest.raises(cupyx.DeviceSynchronized):
                sync()
    assert float(e) == 15.0


def test_memory_pool_counts_live_arrays():
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    d = cp.zeros(1000, np.float64)
    assert pool.used_bytes() == before + 8192 and pool.total_bytes() >= pool.used_bytes()   # 512-byte units
    del d
    assert pool.used_bytes() == before
    pool.set_limit(size=before + 4000)
    try:
        with pytest.raises(MemoryError, match="Out of memory"):
            cp.zeros(1000, np.float64)
    finally:
        pool.set_limit(size=0)


# ----- raw kernels: CuPy's argument conversions, then the emulator's type checks ----------------
KERNEL = r'''
extern "C" __global__ void scale(float* x, float a, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) x[i] *= a;
}'''


def test_raw_kernels_convert_arguments_as_cupy_does():
    kernel = cp.RawModule(code=KERNEL).get_function("scale")
    x = dev(np.arange(5))
    kernel((1,), (32,), (x, np.float32(2), np.int32(5)))
    assert x.get().tolist() == [0, 2, 4, 6, 8]
    with pytest.raises(TypeError, match="int64"):            # a Python int is a 64-bit integer in CuPy
        kernel((1,), (32,), (x, np.float32(2), 5))
    with pytest.raises(TypeError, match="float64"):          # a Python float is a double
        kernel((1,), (32,), (x, 2.0, np.int32(5)))
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel((1,), (32,), (np.ones(5, np.float32), np.float32(2), np.int32(5)))
    with pytest.raises(TypeError, match="tuple"):
        kernel(1, (32,), (x, np.float32(2), np.int32(5)))
    with pytest.raises(ValueError, match="below 1"):
        kernel((0,), (32,), (x, np.float32(2), np.int32(5)))
    with pytest.raises(TypeError, match="options"):
        cp.RawModule(code=KERNEL, options=["-O3"])          # a list: CuPy's Cython wants a tuple


# ----- the plants: each passes on the CPU and fails on the stand-in ----------------------------
def _gradcheck_mul(device):
    xp = backend.xp_for(device)
    rng = np.random.default_rng(0)
    a = Tensor(xp.asarray(rng.standard_normal((3, 4))), requires_grad=True)
    b = Tensor(xp.asarray(rng.standard_normal((1, 4))), requires_grad=True)
    return gradcheck(lambda a, b: a * b, [a, b]).passed


# Each plant fails on the real CuPy 14 too (not only because the stand-in is stricter than CuPy).
PLANTS = {
    # an op's backward makes the gradient contiguous with NumPy: np.ascontiguousarray converts
    # through __array__, which CuPy refuses
    "numpy call in backward": lambda g, a, b: (ops.unbroadcast(np.ascontiguousarray(g) * b, a.shape),
                                               ops.unbroadcast(g * a, b.shape)),
    # a NumPy 0-d array (not a NumPy scalar) mixed into a device expression: CuPy's ufuncs refuse
    # host arrays ("Unsupported type"), 0-d ones included
    "numpy 0-d array in expression": lambda g, a, b: (ops.unbroadcast(g * b * np.array(1.0), a.shape),
                                                      ops.unbroadcast(g * a, b.shape)),
    # a keyword that NumPy has and CuPy has not: CuPy's sum(axis, dtype, out, keepdims)
    "keyword cupy lacks": lambda g, a, b: (g * b, (g * a).sum(axis=0, keepdims=True, initial=0.0)),
    # np.asarray on a device array
    "np.asarray of a device array": lambda g, a, b: (ops.unbroadcast(np.asarray(g) * b, a.shape),
                                                     ops.unbroadcast(g * a, b.shape)),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_planted_cupy_only_bugs(monkeypatch, plant):
    def backward(self, g):
        return PLANTS[plant](g, self.a, self.b)
    monkeypatch.setattr(ops.Mul, "backward", backward)
    assert _gradcheck_mul("cpu")                      # NumPy is happy with all of them
    with pytest.raises(TypeError):
        _gradcheck_mul("gpu")


def test_planted_bug_in_a_forward_pass(monkeypatch):
    """The same in a forward pass: GELU's reference computing its CDF with SciPy's erf instead of
    backend.erf. On CuPy, scipy.special.erf(device) is a NumPy ufunc call that CuPy cannot
    dispatch (cupy has no `erf`; it lives in cupyx.scipy.special): a TypeError there too."""
    import scipy.special
    from tinyconvmixer.engine import dispatch
    from tinyconvmixer.functional import activation
    monkeypatch.setattr(activation, "normal_cdf", lambda x: 0.5 * (1 + scipy.special.erf(x * 0.7071)))
    with dispatch.reference_only():                   # the reference, not a faster variant
        F.gelu(Tensor(np.ones((2, 3), np.float32)))   # the CPU does not notice
        with pytest.raises(TypeError):
            F.gelu(Tensor(dev(np.ones((2, 3)))))


def test_what_cupy_refuses_that_numpy_would_convert():
    d = dev(np.arange(6).reshape(2, 3))
    n = cp.asarray(np.array(3))                        # a 0-d device integer
    for attempt in (lambda: cp.exp([1.0, 2.0]), lambda: cp.sum([1, 2]), lambda: cp.where(True, d, 0),
                    lambda: cp.zeros(n), lambda: d.reshape(n, 2), lambda: d.sum(axis=cp.asarray(np.array(0))),
                    lambda: d.astype(np.float64, casting="unsafe"), lambda: float(d[0:1, 0]),
                    lambda: d.__setitem__(slice(None), [1, 2, 3]), lambda: d == None):   # noqa: E711
        with pytest.raises(TypeError):
            attempt()
    with pytest.raises(ValueError, match="Unsupported dtype"):
        cp.asarray(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="initial"):
        cp.add.reduce(d, initial=0)


def test_what_cupy_allows_that_looks_like_host_data():
    d = dev([1, 2, 3])
    cp.copyto(d, np.array([7.0], np.float32))          # a one-element host source: its value
    assert d.get().tolist() == [7, 7, 7]
    d.fill(np.array(2.0))
    assert cp.einsum("i,i->", d, np.ones(3, np.float32)).item() == 6.0   # einsum uploads its operands
    assert d.take(np.array([0, 4])).get().tolist() == [2, 2]             # take wraps around
    assert d.argmax(dtype=np.int32).dtype == np.int32                   # a CuPy-only keyword
    b = cp.broadcast_to(d, (2, 3))
    assert not b.flags.c_contiguous                                      # a view; writable as in CuPy


def test_undefined_on_the_gpu_is_refused():
    d = dev(np.arange(5))
    with pytest.raises(ValueError, match="more than once"):
        d[cp.asarray(np.array([1, 1]))] = dev([3, 4])   # which value lands is undefined on the GPU
    with pytest.raises(ValueError, match="overlapping"):
        d[1:] = d[:-1]                                   # memcpy between overlapping regions
    assert np.isnan(cp.empty(3, np.float32).get()).all()  # fresh memory is garbage, not zeros


def test_scalar_indexing_is_a_view():
    d = dev([1, 2, 3])
    v = d[1]
    d[1] = 9
    assert v.item() == 9.0 and v.shape == ()
    assert cp.ascontiguousarray(v).shape == ()
