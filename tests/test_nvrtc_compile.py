"""Every kernel configuration compiles for every GPU generation, with the real NVRTC.

CuPy compiles each RawModule with NVRTC at its first launch, for the GPU it runs on;
a compile error, a register spill or a limit of that generation broken would show up
only there, on that GPU. NVRTC needs no GPU: CUDA 13's (the `nvidia-cuda-nvrtc` wheel)
compiles sm_75 to sm_120, CUDA 12's (`nvidia-cuda-nvrtc-cu12`) sm_70; both come with
the `nvrtc` extra (Linux x86-64). These tests skip, saying why, where one cannot be
loaded. Results are cached by source, options and NVRTC version (nvrtc.py), so the
suite compiles again only what changed since CI's `python -m tinyconvmixer.fast.cuda.nvrtc`.
"""

import numpy as np
import pytest

import cuda_emulator as emulate
from tinyconvmixer.fast.cuda import launch, nvrtc

NVRTCS, MISSING = nvrtc.compilers()
needs_13 = pytest.mark.skipif(13 not in NVRTCS, reason=f"NVRTC of CUDA 13 unavailable: {MISSING.get(13)}")
needs_12 = pytest.mark.skipif(12 not in NVRTCS, reason=f"NVRTC of CUDA 12 unavailable: {MISSING.get(12)}")
ARCH = {a.sm: a for a in nvrtc.ARCHITECTURES}
F32 = np.dtype(np.float32)


@needs_13
def test_nvrtc_13_refuses_sm_70_which_nvrtc_12_compiles():
    assert NVRTCS[13].version[0] == 13
    source = 'extern "C" __global__ void f(float* x) { x[0] = 1; }'
    ok, log, _ = NVRTCS[13].compile(source, ("-arch=sm_70",))
    assert not ok and "gpu-architecture" in log
    if 12 in NVRTCS:
        assert NVRTCS[12].version[0] == 12
        assert NVRTCS[12].compile(source, ("-arch=sm_70",))[0]


@needs_13
@needs_12
def test_every_kernel_configuration_compiles_for_every_architecture():
    configs = nvrtc.configurations()
    rows, problems = nvrtc.check(configs, NVRTCS)
    assert not problems, "\n".join(problems)
    assert {a.sm for a in nvrtc.ARCHITECTURES} == {70, 75, 80, 86, 89, 90, 100, 120}
    # every kernel of every configuration was compiled and reported on, for every architecture
    for name, dtype, defines, threads, dynamic in configs:
        kernels = set(emulate._parse_kernels(launch.source(name, dtype, **defines)))
        for arch in nvrtc.ARCHITECTURES:
            reported = {r["kernel"] for r in rows
                        if r["config"] == nvrtc.describe(name, dtype, defines) and r["arch"] == arch.sm}
            assert reported == kernels, (name, dtype, defines, arch.sm)
        assert threads > 0 and dynamic == 0
    # the ConvMixer-256/8 recipe's own kernels are among them (k = 5 and k = 9, float32)
    names = {r["config"] for r in rows}
    for k in (5, 9):
        assert nvrtc.describe("depthwise", F32, dict(KH=k, KW=k, TH=8, TW=8, CT=32)) in names


@needs_13
@needs_12
def test_the_table_fits_80_columns_and_names_every_architecture(capsys):
    assert nvrtc.main([]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    header = next(line for line in out.splitlines() if line.startswith("configuration"))
    assert header.split()[-8:] == ["70", "75", "80", "86", "89", "90", "100", "120"]
    assert "NVRTC 12." in out and "NVRTC 13." in out and "depthwise f32 9x9" in out


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
    # a warp reduction that only sm_80 and newer have: fine on an H100, an error on a T4 or a V100
    "sm80": r'''extern "C" __global__ void warp_sum(const unsigned* x, unsigned* y) {
        y[threadIdx.x] = __reduce_add_sync(0xffffffffu, x[threadIdx.x]);
    }''',
}


def planted(monkeypatch, kind):
    monkeypatch.setattr(launch, "source", lambda name, dtype, **defines: BROKEN[kind])


@needs_13
@pytest.mark.parametrize("kind,expected", [("error", "compile error"), ("spill", "spills"),
                                           ("shared", "bytes of static shared memory")])
def test_the_check_refuses_errors_spills_and_shared_memory(monkeypatch, kind, expected):
    planted(monkeypatch, kind)
    rows, problems = nvrtc.check([("planted", F32, {})], NVRTCS, [ARCH[90]])
    assert problems and all(p.startswith("sm_90 ") for p in problems)
    assert any(expected in p for p in problems), problems


@needs_13
def test_a_kernel_that_only_newer_gpus_compile_fails_the_older_architectures(monkeypatch):
    planted(monkeypatch, "sm80")
    archs = [a for a in nvrtc.ARCHITECTURES if a.cuda in NVRTCS]
    rows, problems = nvrtc.check([("planted", np.dtype(np.uint32), {}, 32)], NVRTCS, archs)
    failed = {int(p.split()[0][3:]) for p in problems}
    assert failed == {70, 75} & {a.sm for a in archs}, problems
    assert all("compile error" in p and "__reduce_add_sync" in p for p in problems)
    assert {r["arch"] for r in rows if r["ok"]} == {80, 86, 89, 90, 100, 120}


@needs_13
def test_a_block_over_one_architectures_shared_memory_fails_there_only():
    """80 KiB of shared memory a block (dynamic, opted in): an A100 or an H100 has room, an
    RTX 30/40/50 (99 KiB) too, a T4 (64 KiB) not."""
    config = next(c for c in nvrtc.configurations() if c[0] == "gelu")[:4] + (80 * 1024,)
    archs = [a for a in nvrtc.ARCHITECTURES if a.cuda in NVRTCS]
    rows, problems = nvrtc.check([config], NVRTCS, archs)
    assert problems and all(p.startswith("sm_75 gelu.cu float32 ") for p in problems)
    assert any(p.startswith("sm_75 gelu.cu float32 gelu_forward: ") for p in problems)
    assert all(f"over sm_75's {64 * 1024}" in p for p in problems)


@needs_13
def test_the_check_refuses_a_block_too_large_for_the_registers():
    """A real kernel, launched with blocks of 1024 threads: its registers would not fit."""
    name, dtype, defines, *_ = next(c for c in nvrtc.configurations() if c[0] == "depthwise" and c[2]["KH"] == 9)
    rows, problems = nvrtc.check([(name, dtype, defines, 1024)], NVRTCS, [ARCH[90]])
    assert any("registers x 1024 threads" in p and "the launch would fail" in p for p in problems), problems


def test_registers_are_allocated_per_warp_in_units_of_256():
    assert nvrtc.block_registers(64, 1024) == 64 * 1024                    # exactly the register file
    assert nvrtc.block_registers(65, 1024) == 72 * 1024                    # 65 x 32 -> 2304 a warp
    assert nvrtc.block_registers(40, 33) == 2 * 1280                       # two warps for 33 threads
    arch = ARCH[75]
    usage = dict(registers=65, shared=0)
    assert any("the launch would fail" in p for p in nvrtc.limits_broken(usage, 1024, 0, arch))
    assert not nvrtc.limits_broken(dict(registers=64, shared=48 * 1024), 1024, 0, arch)


def test_an_architecture_without_its_nvrtc_is_a_problem_not_a_pass():
    rows, problems = nvrtc.check([("gelu", F32, {}, 256)], {}, [ARCH[70]])
    assert rows == [] and problems == ["sm_70: no NVRTC of CUDA 12 to compile for it"]
