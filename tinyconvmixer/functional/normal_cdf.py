"""Phi(x), the standard normal CDF, for exact GELU: two ways to compute it.

`normal_cdf(x)` is the reference: 0.5 * (1 + erf(x / sqrt 2)) with the erf of
SciPy (CPU) or CuPy (GPU), correctly rounded for float64.

On the CPU, SciPy's erf is the single slowest thing in a float32 training step
(about 12 ns an element, 20x NumPy's exp), so float32 CPU arrays take
`normal_cdf_fast`: the complementary error function approximation from
Numerical Recipes (Chebyshev fit, fractional error below 1.2e-7 everywhere,
i.e. float32's own precision),

    erfc(z) ~ t * exp(-z^2 + P(t)),   t = 1 / (1 + z / 2),   P a degree-9 polynomial,

evaluated with in-place NumPy ufuncs over cache-sized chunks so no temporary
array ever leaves the cache, the chunks shared among the CPU threads. tests/test_normal_cdf.py checks it against the
reference (max abs error about 5e-7 in float32).
"""

import math

from .. import backend

_P = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
      0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277)   # P(t) = sum _P[i] t^i
_CHUNK = 16384                                                           # elements (64 KB in float32)


def normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, picking the fast path where it is accurate enough."""
    xp = backend.get_array_module(x)
    if xp is backend.numpy_module() and x.dtype == xp.float32:
        return normal_cdf_fast(x)
    return 0.5 * (1.0 + backend.erf(x * (1.0 / math.sqrt(2.0))))


def normal_cdf_fast(x):
    """Phi(x) for a float32 NumPy array via the erfc approximation, chunk by chunk.

    Blocks of 16 chunks are shared among the CPU threads (backend.run_blocks).
    """
    xp = backend.get_array_module(x)
    out, src, dst = _flat_views(xp, x)

    def run(b0, b1):
        z, t, p = (xp.empty(_CHUNK, dtype=x.dtype) for _ in range(3))   # this thread's scratch
        for start in range(b0, b1, _CHUNK):
            xs, o = src[start:min(start + _CHUNK, b1)], dst[start:min(start + _CHUNK, b1)]
            _phi_chunk(xp, xs, o, z[:xs.size], t[:xs.size], p[:xs.size])
    backend.run_blocks(run, src.size, 16 * _CHUNK, xp)
    return out


def _phi_chunk(xp, xs, o, zz, tt, pp):
    """o = Phi(xs) for one chunk, using the scratch arrays zz, tt, pp in place."""
    xp.abs(xs, out=zz)
    zz *= 1.0 / math.sqrt(2.0)                        # z = |x| / sqrt 2
    xp.multiply(zz, 0.5, out=tt)
    tt += 1.0
    xp.reciprocal(tt, out=tt)                         # t = 1 / (1 + z/2)
    pp.fill(_P[-1])
    for c in _P[-2::-1]:                              # Horner: P(t)
        pp *= tt
        pp += c
    xp.multiply(zz, zz, out=zz)
    xp.subtract(pp, zz, out=pp)
    xp.exp(pp, out=pp)
    pp *= tt                                          # pp = erfc(|x| / sqrt 2)
    pp *= 0.5                                         # = Phi(-|x|), the smaller tail
    # Phi(x) = Phi(-|x|) for x < 0 and 1 - Phi(-|x|) for x >= 0, i.e.
    # 0.5 + sign(x) * (0.5 - Phi(-|x|)), without a branch:
    xp.subtract(0.5, pp, out=pp)
    xp.copysign(pp, xs, out=o)
    o += 0.5


def _flat_views(xp, x):
    """(out, x_flat, out_flat): out has x's memory layout (e.g. channels-last), and the
    flat views walk both in memory order, so no copy is needed for any dense layout."""
    order = sorted(range(x.ndim), key=lambda axis: -x.strides[axis])   # axes in memory order
    if x.transpose(order).flags.c_contiguous:
        out = xp.empty_like(x)                                         # same strides as x
        return out, x.transpose(order).reshape(-1), out.transpose(order).reshape(-1)
    x = xp.ascontiguousarray(x)                                        # gaps or overlaps: copy
    out = xp.empty_like(x)
    return out, x.reshape(-1), out.reshape(-1)
