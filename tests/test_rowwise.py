"""BatchNorm's rows variant on the CPU (fast/cpu/rowwise.py) against the reference.

A channels-last batch (or an (N, C) C-order one) takes the rows variant; the same
values in C order (or Fortran order for (N, C)) take the reference, so the two
are compared on identical numbers.
"""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.engine import backend
from tinyconvmixer.engine import dispatch
from tinyconvmixer.fast.cpu import rowwise
from tinyconvmixer.functional.normalization import BatchNorm
from tinyconvmixer.gradcheck import gradcheck


def rows_and_plain_layouts(x):
    if x.ndim == 2:
        return np.ascontiguousarray(x), np.asfortranarray(x)
    return backend.channels_last(x), np.ascontiguousarray(x)


def run_bn(x, w, b, training, upstream):
    C = x.shape[1]
    rm, rv = np.linspace(-1, 1, C).astype(x.dtype), np.linspace(0.5, 2, C).astype(x.dtype)
    X = Tensor(x, requires_grad=True)
    params = [Tensor(a, requires_grad=True) if a is not None else None for a in (w, b)]
    y = F.batch_norm(X, rm, rv, *params, training=training)
    y.backward(Tensor(upstream))
    grads = [p.grad for p in params if p is not None]
    return [y.data, X.grad, *grads, rm, rv]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (2, 300, 9, 9), (7, 33)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_rows_path_matches_the_plain_path(dtype, shape, training, affine, rng, monkeypatch):
    monkeypatch.setattr(rowwise, "chunk_elements", lambda *a: 1000)   # many blocks of rows, shared
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "2")                   # among threads
    x = (2 * rng.standard_normal(shape) + 1).astype(dtype)
    C = shape[1]
    w, b = (rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)) if affine else (None, None)
    g = rng.standard_normal(shape).astype(dtype)
    seen = []
    real = rowwise.mean_var if training else rowwise.normalize
    monkeypatch.setattr(rowwise.BatchNormCPU.impl, real.__name__, lambda *a, **k: seen.append(1) or real(*a, **k))
    x_rows, x_plain = rows_and_plain_layouts(x)
    rows = run_bn(x_rows, w, b, training, g)
    assert seen, "the channels-last batch did not take the rows path"
    seen.clear()
    plain = run_bn(x_plain, w, b, training, g)
    assert not seen, "the C-order batch did not take the reference"
    rtol, atol = (1e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)
    for a, r in zip(rows, plain):
        np.testing.assert_allclose(a, r, rtol=rtol, atol=atol)
    if len(shape) == 4:
        assert rows[0].transpose(0, 2, 3, 1).flags.c_contiguous     # the output stays channels-last


def test_rows_path_gradcheck(rng):
    x = rng.standard_normal((2, 4, 3, 5))
    x = Tensor(backend.channels_last(x), requires_grad=True)
    w, b = Tensor(rng.standard_normal(4), requires_grad=True), Tensor(rng.standard_normal(4), requires_grad=True)
    assert rowwise.is_rows(x.data) and dispatch.pick(BatchNorm, x.data) is rowwise.BatchNormCPU
    result = gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    assert result.passed, result.inputs


def test_variance_of_a_large_offset_in_float32(rng):
    x = (1000 + 0.01 * rng.standard_normal((4096, 3))).astype(np.float32)
    mean, var = rowwise.mean_var(x)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=0), rtol=1e-3)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), rtol=1e-6)


def test_batchnorm_function_keeps_nothing_batch_sized_on_the_rows_path(rng):
    x = np.ascontiguousarray(rng.standard_normal((2, 3, 4, 4)).astype(np.float32).transpose(0, 2, 3, 1))
    f = rowwise.BatchNormCPU(training=True, running_mean=None, running_var=None, momentum=0.1, eps=1e-5)
    y = f.forward(x.transpose(0, 3, 1, 2))
    assert [k for k, v in vars(f).items() if isinstance(v, np.ndarray) and v.size > 3] == []
    assert f.saves == (0,)                        # the input is kept by the tape (its Stub), no copy
    f.inputs = [Tensor(x.transpose(0, 3, 1, 2))]
    np.testing.assert_array_equal(f.output(), y)  # the output, made again from it, bit for bit


def test_mean_var_combines_blocks_without_cancelling(rng, monkeypatch):
    """Per-block sums about each block's own mean, combined as Chan et al.: the float32 variance
    of a batch whose blocks have very different means (and a large common offset) stays exact."""
    monkeypatch.setattr(rowwise, "chunk_elements", lambda *a: 64)       # blocks of 32 rows
    x = np.concatenate([500 + 0.1 * rng.standard_normal((96, 2)), 520 + 0.1 * rng.standard_normal((64, 2))])
    x = x.astype(np.float32)
    mean, var = rowwise.mean_var(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-4)


def test_output_of_a_large_offset_keeps_its_digits(rng):
    """y = (x - mean) * scale + shift: subtracting first keeps the float32 digits that
    x * scale + (shift - mean * scale) would cancel away (an error of ~0.03 here)."""
    x = (1000 + 0.01 * rng.standard_normal((8, 4, 8, 8))).astype(np.float32)
    x_rows, _ = rows_and_plain_layouts(x)
    y = F.batch_norm(Tensor(x_rows), None, None, training=True).data
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    assert np.abs(y - ref).max() < 5e-3


def test_gradients_of_a_large_offset_keep_their_digits(rng):
    """dweight = invstd * sum(g * (x - mean)), summed per block: not sum(g x) - mean sum(g)."""
    x = (1000 + rng.standard_normal((8, 16, 8, 8))).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    w = Tensor(np.ones(16, np.float32), requires_grad=True)
    X = Tensor(rows_and_plain_layouts(x)[0], requires_grad=True)
    F.batch_norm(X, None, None, w, None, training=True).backward(Tensor(g))
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    xhat = (x64 - x64.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    dweight = (g64 * xhat).sum(axis=(0, 2, 3))
    assert np.abs(w.grad - dweight).max() < 1e-4 * np.abs(dweight).max() + 1e-3


def test_rows_path_only_for_matching_dtypes(rng):
    x = rows_and_plain_layouts(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))[0]
    y = F.batch_norm(Tensor(x), None, None, Tensor(np.ones(3)), None, training=True)   # float64 weight
    assert dispatch.pick(BatchNorm, x, np.ones(3), training=True) is BatchNorm
    assert y.dtype == np.float64                     # promoted, as on the reference


@pytest.mark.parametrize("rows", [4096, 4096 + 37])       # whole wide rows; and a ragged last block
def test_wide_views_give_what_plain_broadcasting_gives(rng, monkeypatch, rows):
    """The four passes with their per-column vectors tiled into long rows (_lanes) against the
    same passes broadcasting the vectors row by row (_repeats forced to 1)."""
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "3")   # the threads' shares are whole blocks
    C = 64
    x = (3 + rng.standard_normal((rows, C))).astype(np.float32)
    g = rng.standard_normal((rows, C)).astype(np.float32)
    mean, a, b, c = (rng.standard_normal(C).astype(np.float32) for _ in range(4))

    def passes():
        y, dx = np.empty_like(x), np.empty_like(x)
        rowwise.normalize(x, mean, a, b, out=y)
        rowwise.backward(g, x, mean, a, b, c, out=dx)
        return [*rowwise.mean_var(x), y, *rowwise.grad_sums(g, x, mean), dx]
    took_wide, lanes = [], rowwise._lanes

    def seen_lanes(n, vectors, tiled):
        view, chosen = lanes(n, vectors, tiled)
        took_wide.append(chosen is tiled)
        return view, chosen
    monkeypatch.setattr(rowwise, "_lanes", seen_lanes)
    wide = passes()
    ragged = rows % 256 != 0                     # (256 rows of 64 channels make a wide row)
    assert took_wide.count(False) == 4 * ragged  # every block wide, but each pass's ragged end
    monkeypatch.setattr(rowwise, "_repeats", lambda C: 1)
    plain = passes()
    for i, (w, p) in enumerate(zip(wide, plain)):
        if i in (2, 5):                        # y and dx, element by element: the same operations
            np.testing.assert_allclose(w, p, rtol=1e-6, atol=1e-6)
        else:                                  # column sums, added in other blocks
            np.testing.assert_allclose(w, p, rtol=1e-4, atol=1e-3)


def test_a_result_that_would_be_lost_is_refused(rng):
    x = rng.standard_normal((64, 8)).astype(np.float32)
    v = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        rowwise.normalize(x, v, v, v, out=np.empty((64, 8), np.float32, order="F"))
    with pytest.raises(ValueError, match=r"\(64, 8\) array needed, got \(8, 64\)"):
        rowwise.backward(x, x, v, v, v, v, out=np.empty((8, 64), np.float32))


@pytest.mark.parametrize("shape", [(4133, 64), (300, 33), (7, 5)])
def test_sums_do_not_depend_on_the_threads(rng, monkeypatch, shape):
    """The same blocks of rows on any number of threads, added in block order: the same bits."""
    x = (3 + rng.standard_normal(shape)).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("TINYCONVMIXER_THREADS", threads)
        results.append([*rowwise.mean_var(x), *rowwise.grad_sums(g, x, x[0])])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
