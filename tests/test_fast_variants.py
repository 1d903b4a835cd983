"""Every faster variant of tinyconvmixer.fast against its reference: outputs, gradients, buffers.

The reference ops are the truth. For each variant that fast/__init__.py registers,
and on both devices, this builds inputs the variant applies to, checks that
dispatch really picks that variant for them (a test that silently ran the
reference would prove nothing), and compares it with the reference alone on
the same inputs: the op's output, the gradient of every input, and the buffers
it updates (BatchNorm's running statistics, AdamW's parameters and moments).

Devices: on "cpu" the CPU variants run as they are and the CUDA variants run in
the tests' CUDA emulator (tests/support/cuda_emulator.py); on "gpu" the CUDA
variants run on CuPy (the real one, or the stand-in). A CPU variant on the GPU
does not apply and is skipped. A variant registered without a case here fails
test_every_variant_has_a_case.
"""

import contextlib

import numpy as np
import pytest

import cuda_emulator
import tinyconvmixer.fast as fast
import tinyconvmixer.functional as F
from tinyconvmixer import Tensor, nn
from tinyconvmixer.engine import backend, dispatch
from tinyconvmixer.functional.activation import GELU
from tinyconvmixer.functional.depthwise import DepthwiseConv2d
from tinyconvmixer.functional.normalization import BatchNorm
from tinyconvmixer.optim import AdamW, adamw_updates

VARIANTS = [(ref, variant.__name__, variant) for ref, variant, _ in fast.VARIANTS]
CUDA = {name for _, name, variant in VARIANTS if variant.__module__.startswith("tinyconvmixer.fast.cuda")}


def channels_last(xp, a):
    """a on xp's device, NCHW-shaped in NHWC memory (the layout ConvMixer's layers make)."""
    return xp.ascontiguousarray(xp.asarray(a).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# ----- one case per reference: (pick arguments, run) -------------------------------------------
# run(xp, dtype, rng) returns the arrays to compare; pick(xp, dtype, rng) the (arrays, settings)
# that dispatch.pick sees for the op, to check which code runs.

def depthwise_case(xp, dtype, rng, k=5):
    x = channels_last(xp, rng.standard_normal((3, 32, 9, 9)).astype(dtype))
    w = xp.asarray(rng.standard_normal((32, 1, k, k)).astype(dtype))
    b = xp.asarray(rng.standard_normal(32).astype(dtype))
    g = xp.asarray(rng.standard_normal((3, 32, 9, 9)).astype(dtype))

    def run():
        X, W, B = (Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(X, W, B, padding=k // 2, groups=32)
        y.backward(Tensor(g))
        return [y.data, X.grad, W.grad, B.grad]
    return ((x, w, b), dict(stride=(1, 1), padding=(k // 2, k // 2), groups=32)), run


def gelu_case(xp, dtype, rng):
    x = channels_last(xp, 3 * rng.standard_normal((2, 16, 7, 7)).astype(dtype))
    g = xp.asarray(rng.standard_normal((2, 16, 7, 7)).astype(dtype))

    def run():
        X = Tensor(x, requires_grad=True)
        y = F.gelu(X)
        y.backward(Tensor(g))
        return [y.data, X.grad]
    return ((x,), dict(approximate="none")), run


def batchnorm_case(xp, dtype, rng, training=True):
    x = channels_last(xp, (2 * rng.standard_normal((4, 24, 5, 5)) + 1).astype(dtype))
    w = xp.asarray(rng.standard_normal(24).astype(dtype))
    b = xp.asarray(rng.standard_normal(24).astype(dtype))
    g = xp.asarray(rng.standard_normal((4, 24, 5, 5)).astype(dtype))

    def run():
        rm, rv = xp.linspace(-1, 1, 24).astype(dtype), xp.linspace(0.5, 2, 24).astype(dtype)
        X, W, B = (Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.batch_norm(X, rm, rv, W, B, training=training)
        y.backward(Tensor(g))
        return [y.data, X.grad, W.grad, B.grad, rm, rv]              # the buffers too
    return ((x, w, b), dict(training=training)), run


def adamw_case(xp, dtype, rng):
    shapes = [(7, 3), (5,), (4, 1, 3, 3)]
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]

    def run():
        params = [nn.Parameter(xp.asarray(v)) for v in values]
        opt = AdamW(params, lr=0.01, weight_decay=0.1)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = xp.asarray(g)
            opt.step()
        state = [opt.state[i][k] for i in range(len(params)) for k in ("exp_avg", "exp_avg_sq")]
        return [p.data for p in params] + state
    params = [xp.asarray(v) for v in values]
    entries = [(p, p, p.copy(), p.copy(), (1.0,) * 6, {}) for p in params]
    return ((entries,), {}), run


CASES = {DepthwiseConv2d: depthwise_case, GELU: gelu_case, BatchNorm: batchnorm_case,
         adamw_updates: adamw_case}


def test_every_variant_has_a_case():
    assert {ref for ref, _, _ in VARIANTS} <= set(CASES)
    assert len(VARIANTS) >= 7 and all(dispatch.variants(ref) for ref in CASES)


def where(device, name):
    """(xp, context) for running variant `name` on `device`, or a skip."""
    if device == "gpu":
        if name not in CUDA:
            pytest.skip(f"{name} is a CPU variant")
        if not backend.gpu_available():
            pytest.skip("no CuPy GPU on this machine")
        return backend.xp_for("gpu"), contextlib.nullcontext()
    if name in CUDA:
        if not cuda_emulator.available():
            pytest.skip("the CUDA emulator needs g++ with C++20")
        return np, cuda_emulator.emulated()
    return np, contextlib.nullcontext()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reference, name, variant", VARIANTS, ids=[v[1] for v in VARIANTS])
def test_variant_matches_its_reference(reference, name, variant, dtype, device):
    xp, context = where(device, name)
    rng = np.random.default_rng(7)
    (arrays, settings), run = CASES[reference](xp, dtype, rng)
    with context:
        assert dispatch.pick(reference, *arrays, **settings) is variant, "the variant would not run"
        with dispatch.only(reference, name):
            fast_result = [backend.to_numpy(a) for a in run()]
        with dispatch.reference_only():
            reference_result = [backend.to_numpy(a) for a in run()]
    rtol, atol = (2e-5, 2e-5) if dtype == np.float32 else (1e-11, 1e-11)
    for i, (a, r) in enumerate(zip(fast_result, reference_result)):
        assert a.dtype == r.dtype and a.shape == r.shape, i
        np.testing.assert_allclose(a, r, rtol=rtol, atol=atol, err_msg=f"{name}: result {i}")


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_variants_in_eval_mode_too(training, device):
    """BatchNorm's variants also in eval mode (the running statistics as constants)."""
    for _, name, variant in [v for v in VARIANTS if v[0] is BatchNorm]:
        if device == "gpu" and name not in CUDA or device == "cpu" and name in CUDA \
                and not cuda_emulator.available():
            continue
        if device == "gpu" and not backend.gpu_available():
            pytest.skip("no CuPy GPU on this machine")
        xp, context = where(device, name)
        rng = np.random.default_rng(3)
        (arrays, settings), run = batchnorm_case(xp, np.float64, rng, training=training)
        with context:
            assert dispatch.pick(BatchNorm, *arrays, **settings) is variant
            with dispatch.only(BatchNorm, name):
                fast_result = [backend.to_numpy(a) for a in run()]
            with dispatch.reference_only():
                reference_result = [backend.to_numpy(a) for a in run()]
        for a, r in zip(fast_result, reference_result):
            np.testing.assert_allclose(a, r, rtol=1e-11, atol=1e-11)


def test_the_switch_runs_everything_on_the_references(rng):
    x = channels_last(np, rng.standard_normal((2, 8, 4, 4)).astype(np.float32))
    assert dispatch.pick(GELU, x, approximate="none") is not GELU
    with dispatch.reference_only():
        assert dispatch.pick(GELU, x, approximate="none") is GELU
        assert all(dispatch.pick(ref, *CASES[ref](np, np.float32, rng)[0][0]) is ref
                   for ref in (GELU, BatchNorm, DepthwiseConv2d))
    assert not dispatch.fast_enabled() or dispatch.pick(GELU, x, approximate="none") is not GELU


def test_the_environment_variable_turns_the_variants_off(tmp_path):
    import subprocess
    import sys
    probe = ("import numpy as np, tinyconvmixer.fast\n"
             "from tinyconvmixer.engine import dispatch\n"
             "from tinyconvmixer.functional.activation import GELU\n"
             "print(dispatch.pick(GELU, np.zeros(3, np.float32), approximate='none').__name__)\n")
    for value, expected in (("1", "GELU"), ("0", "GELUChunked")):
        env = {**__import__("os").environ, "TINYCONVMIXER_REFERENCE": value}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.stdout.strip() == expected, out.stderr


def test_only_refuses_a_name_that_is_not_registered():
    with pytest.raises(KeyError, match="no variant 'Nope'"):
        with dispatch.only(GELU, "Nope"):
            pass
