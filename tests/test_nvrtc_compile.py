"""Every kernel configuration compiles for the GPU, with the real NVRTC of CUDA 13.

CuPy compiles each RawModule with NVRTC at its first launch on the GPU; a compile
error, a register spill or too much shared memory would show up only there. NVRTC
needs no GPU: the `nvidia-cuda-nvrtc` wheel (a test dependency on Linux x86-64)
brings it. These tests skip, saying why, where it cannot be loaded.
"""

import numpy as np
import pytest

import cuda_emulator as emulate
from tinyconvmixer.fast.cuda import launch, nvrtc

try:
    NVRTC = nvrtc.NVRTC()
    WHY_NOT = None
except nvrtc.NVRTCUnavailable as exc:
    NVRTC, WHY_NOT = None, str(exc)
pytestmark = pytest.mark.skipif(NVRTC is None, reason=f"NVRTC for CUDA 13 unavailable: {WHY_NOT}")


def test_nvrtc_is_cuda_13():
    assert NVRTC.version[0] == 13


def test_every_kernel_configuration_compiles_for_sm90():
    configs = nvrtc.configurations()
    rows, problems = nvrtc.check(configs, NVRTC)
    assert not problems, "\n".join(problems)
    # every kernel of every configuration was compiled and reported on
    for name, dtype, defines, _ in configs:
        kernels = set(emulate._parse_kernels(launch.source(name, dtype, **defines)))
        reported = {r["kernel"] for r in rows if r["config"] == nvrtc.describe(name, dtype, defines)}
        assert reported == kernels, (name, dtype, defines)
    # the ConvMixer-256/8 recipe's own kernels are among them (k = 5 and k = 9, float32)
    names = {r["config"] for r in rows}
    for k in (5, 9):
        assert nvrtc.describe("depthwise", np.dtype(np.float32),
                              dict(KH=k, KW=k, TH=8, TW=8, CT=32)) in names


# Sources that must be refused: a compile error, a spill, too much static shared memory.
BROKEN = {
    "error": 'extern "C" __global__ void broken(float* x) { x[0] = undeclared_name; }',
    "spill": r'''extern "C" __global__ void __launch_bounds__(1024, 2) crowded(const float* x, float* y) {
        float a[48];                    // 48 live values, but at most 32 registers a thread
    #pragma unroll
        for (int i = 0; i < 48; i++) a[i] = x[i * 1024 + threadIdx.x];
        float s = 0;
    #pragma unroll
        for (int i = 0; i < 48; i++) s += a[i] * a[47 - i] * s + a[(i * 7) % 48];
        y[threadIdx.x] = s;
    }''',
    "shared": r'''extern "C" __global__ void big(float* y) {
        __shared__ float tile[13 * 1024];        // 52 KiB
        tile[threadIdx.x] = threadIdx.x;
        __syncthreads();
        y[threadIdx.x] = tile[13 * 1024 - 1 - threadIdx.x];
    }''',
}


@pytest.mark.parametrize("kind,expected", [("error", "compile error"), ("spill", "spills"),
                                           ("shared", "bytes of static shared memory")])
def test_the_check_refuses_errors_spills_and_shared_memory(monkeypatch, kind, expected):
    monkeypatch.setattr(launch, "source", lambda name, dtype, **defines: BROKEN[kind])
    rows, problems = nvrtc.check([("planted", np.dtype(np.float32), {})], NVRTC)
    assert problems and any(expected in p for p in problems), problems


def test_the_check_refuses_a_block_too_large_for_the_registers(monkeypatch):
    """A real kernel, launched with blocks of 1024 threads: its registers would not fit."""
    name, dtype, defines, _ = next(c for c in nvrtc.configurations() if c[0] == "depthwise" and c[2]["KH"] == 9)
    rows, problems = nvrtc.check([(name, dtype, defines, 1024)], NVRTC)
    assert any("registers x 1024 threads" in p for p in problems), problems
