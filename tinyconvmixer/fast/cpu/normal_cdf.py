"""Phi(x), the standard normal CDF, faster than the reference on the CPU in float32.

The reference, functional/activation.py's `normal_cdf(x)`, is 0.5 * (1 + erf(x /
sqrt 2)) with the erf of SciPy (CPU) or CuPy (GPU), correctly rounded for float64.
On the CPU, SciPy's erf is the single slowest thing in a float32 training step
(about 12 ns an element; NumPy's exp about 4 ns, its multiply 0.25 ns, on the
project's AMD EPYC), so float32 CPU arrays take Abramowitz and Stegun's erfc
(Handbook of Mathematical Functions, 7.1.26) instead, written for Phi:

    1 - Phi(|x|) = t (a1 + a2 t + a3 t^2 + a4 t^3 + a5 t^4) e / 2,
    t = 1 / (1 + p |x| / sqrt 2),  e = exp(-x^2 / 2),
    Phi(x) = 1/2 + sign(x) (1/2 - (1 - Phi(|x|)))

within 1.5e-7 of erf, so within 7.5e-8 of Phi (about 3e-7 evaluated in float32).
It is evaluated with t scaled by lam = a5^(1/5), so that the polynomial in lam t
has leading coefficient 1: Horner's rule then starts with an add, not a
multiply, one NumPy pass fewer (22 passes and an exp in GELU's forward pass).
Its exp is the one GELU's slope needs anyway (phi(x) = e / sqrt(2 pi)), so GELU
computes it once for both (gelu.py). It runs with in-place NumPy ufuncs over
cache-sized chunks (chunked.py), every temporary a scratch chunk.
tests/test_normal_cdf.py checks it against SciPy. (An earlier version, a rational
function of x with no exp, was faster for Phi alone and slower for Phi and the
slope together; a table with linear interpolation, read by np.take, was slower
than both.)
"""

import math

import numpy as np

from ...engine import backend
from ...functional.activation import normal_cdf as reference_normal_cdf
from .chunked import chunked_map, constants

P = 0.3275911 / math.sqrt(2.0)                  # p of 7.1.26, for |x| instead of |x| / sqrt 2
A = tuple(a / 2 for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))
                                                # a5 .. a1, halved (Phi's tail is erfc / 2)
LAM = A[0] ** 0.2                               # u = LAM t: sum a_k t^k = sum (a_k / LAM^k) u^k
B = tuple(a / LAM ** k for a, k in zip(A[1:], (4, 3, 2, 1)))      # b4 .. b1 (b5 = 1)
SIGN = np.array(-2 ** 31, dtype=np.int32)       # a float32's sign bit, as an int32


def normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, picking the fast path where it is accurate enough."""
    xp = backend.get_array_module(x)
    if xp is backend.numpy_module() and x.dtype == xp.float32:
        return normal_cdf_fast(x)
    return reference_normal_cdf(x)


def normal_cdf_fast(x):
    """Phi(x) for a float32 NumPy array, chunk by chunk."""
    return chunked_map(normal_cdf_into, x, scratch=2)


def gauss_into(e, x):
    """e = exp(-x^2 / 2), in place."""
    minus_half, = constants(x.dtype, -0.5)
    with np.errstate(over="ignore"):           # |x| > 1.8e19: x^2 is inf, e is 0, as it should be
        np.multiply(x, x, out=e)
    e *= minus_half
    np.exp(e, out=e)


def normal_cdf_from_gauss(out, x, e, t):
    """out = Phi(x) for one chunk, given e = exp(-x^2 / 2) (t: a scratch chunk); the
    reference's erf unless float32."""
    d = x.dtype
    if d != np.float32:
        out[...] = reference_normal_cdf(x)
        return
    inv_p, lam_inv_p, half = constants(d, 1.0 / P, LAM / P, 0.5)
    b4, *b = constants(d, *B)
    u = t
    np.abs(x, out=u)
    u += inv_p
    np.divide(lam_inv_p, u, out=u)              # u = LAM / (1 + P |x|): two ops (LAM at x = 0)
    np.add(u, b4, out=out)                      # Horner, monic: u^5 + b4 u^4 + ... + b1 u
    out *= u
    for b_k in b:
        out += b_k
        out *= u
    out *= e                                    # 1 - Phi(|x|)
    np.subtract(half, out, out=out)             # Phi(|x|) - 1/2 = |Phi(x) - 1/2|
    sign = t.view(np.int32)                     # Phi(x) - 1/2 has the sign of x: x's sign bit,
    np.bitwise_and(x.view(np.int32), SIGN, out=sign)          # by two integer ops (half the
    np.bitwise_or(out.view(np.int32), sign, out=out.view(np.int32))  # time of np.copysign)
    out += half


def normal_cdf_into(out, x, e, t):
    """out = Phi(x) for one chunk (e, t: scratch chunks); the reference's erf (and no exp)
    unless float32."""
    if x.dtype == np.float32:
        gauss_into(e, x)
    normal_cdf_from_gauss(out, x, e, t)
