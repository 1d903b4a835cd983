"""Compile every kernel for the GPU without a GPU: NVRTC, as CuPy 14 calls it, for sm_90.

    python -m tinyconvmixer.fast.cuda.nvrtc          # one row per configuration: registers, spills, shared memory

CuPy compiles a RawModule with NVRTC, the CUDA run-time compiler, at the first launch.
A compile error there would be the first thing a GPU session sees. NVRTC itself needs
no GPU: CUDA 13's is the `nvidia-cuda-nvrtc` wheel (a test dependency; Linux x86-64).
This module loads it with ctypes and compiles each configuration that the ops can ask
for (`configurations()`) with CuPy 14's options for a RawModule on an H100/H200:

    --std=c++17  -ftz=true  -arch=sm_90  --device-as-default-execution-space

plus `-Xptxas=-v`, which makes the assembler report, per kernel, the registers each
thread uses, the bytes spilled to local memory and the static shared memory.
`check()` turns that report into rows and into problems: a compile error, any spill
or any other use of local memory (a stack frame: an array indexed in a way the compiler
could not unroll), both far slower than registers; static shared memory over 48 KiB (the
most a block may have without opting in), over 255 registers a thread, or more
registers a block (registers x the block's threads) than a multiprocessor has.
"""

import ctypes
import glob
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import adamw, batchnorm, depthwise, launch

CUPY_OPTIONS = ("--std=c++17", "-ftz=true", "-arch=sm_90", "--device-as-default-execution-space")
REPORT_OPTIONS = ("-Xptxas=-v",)
SHARED_LIMIT = 48 * 1024
REGISTER_LIMIT = 255
REGISTER_FILE = 64 * 1024         # registers of one multiprocessor: a block must fit in them

_PTXAS_FUNCTION = re.compile(r"Compiling entry function '(\w+)'")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_USAGE = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


class NVRTCUnavailable(RuntimeError):
    """No libnvrtc for CUDA 13 was found (install the nvidia-cuda-nvrtc wheel)."""


def library_path():
    """libnvrtc.so.13: $TINYCONVMIXER_NVRTC, else the nvidia-cuda-nvrtc wheel's, else a CUDA 13
    toolkit's ($CUDA_PATH, /usr/local/cuda)."""
    if os.environ.get("TINYCONVMIXER_NVRTC"):
        return os.environ["TINYCONVMIXER_NVRTC"]
    folders = [os.path.join(p, "nvidia", "cu13", "lib") for p in sys.path]
    folders += [os.path.join(root, lib) for root in (os.environ.get("CUDA_PATH", ""), "/usr/local/cuda")
                if root for lib in ("lib64", "lib")]
    for folder in folders:
        found = sorted(glob.glob(os.path.join(folder, "libnvrtc.so.13*")))
        if found:
            return found[0]
    raise NVRTCUnavailable("no libnvrtc.so.13 found: `pip install 'nvidia-cuda-nvrtc>=13,<14'` "
                           "(Linux x86-64), or set TINYCONVMIXER_NVRTC to the library's path")


class NVRTC:
    """The few NVRTC calls needed: create a program, compile it, read its log and cubin size."""

    def __init__(self, path=None):
        try:
            self.lib = ctypes.CDLL(path or library_path())
        except OSError as exc:
            raise NVRTCUnavailable(f"cannot load NVRTC: {exc}") from exc
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = (major.value, minor.value)

    def _check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.nvrtcGetErrorString(status).decode()}")

    def compile(self, source, options, name="kern.cu"):
        """(ok, log, cubin bytes) for `source` compiled with `options`."""
        program = ctypes.c_void_p()
        self._check(self.lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(),
                                                0, None, None), "nvrtcCreateProgram")
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            status = self.lib.nvrtcCompileProgram(program, len(options), opts)
            size = ctypes.c_size_t()
            self._check(self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            log = ctypes.create_string_buffer(size.value)
            self._check(self.lib.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
            cubin = 0
            if status == 0:
                self._check(self.lib.nvrtcGetCUBINSize(program, ctypes.byref(size)), "nvrtcGetCUBINSize")
                cubin = size.value
            return status == 0, log.value.decode(errors="replace"), cubin
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(program))


def parse_report(log):
    """{kernel: dict(registers=, stack=, spill_stores=, spill_loads=, shared=)} from ptxas's -v report."""
    kernels, current = {}, None
    for line in log.splitlines():
        m = _PTXAS_FUNCTION.search(line)
        if m:
            current = kernels.setdefault(m[1], dict(registers=0, stack=0, spill_stores=0, spill_loads=0,
                                                    shared=0))
            continue
        if current is None:
            continue
        m = _PTXAS_SPILLS.search(line)
        if m:
            current["stack"], current["spill_stores"], current["spill_loads"] = int(m[1]), int(m[2]), int(m[3])
        m = _PTXAS_USAGE.search(line)
        if m:
            current["registers"], current["shared"] = int(m[1]), int(m[2] or 0)
    return kernels


def describe(name, dtype, defines):
    settings = " ".join(f"{k}={v}" for k, v in sorted(defines.items()))
    return f"{name}.cu {dtype.name}" + (f" {settings}" if settings else "")


def configurations():
    """Every (file, dtype, defines, threads a block) that the ops can ask module() for and launch:
    the list that `python -m tinyconvmixer.fast.cuda.nvrtc` compiles for the GPU
    (tests/test_nvrtc_compile.py)."""
    configs = []
    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        configs += [("gelu", dtype, {}, launch.grid_stride(1)[1][0]),
                    ("batchnorm", dtype, batchnorm.defines(), batchnorm.THREADS),
                    ("adamw", dtype, adamw.defines(), adamw.THREADS)]
        configs += [("depthwise", dtype, depthwise.defines(dtype, k, k), depthwise.threads(dtype))
                    for k in depthwise.KERNEL_SIZES]
    return configs


def check(configs=None, nvrtc=None, workers=2):
    """Compile each configuration; returns (rows, problems): one row per kernel, and one
    line per compile error, spill or limit exceeded (none means every kernel is fit to run)."""
    nvrtc = nvrtc or NVRTC()
    configs = configurations() if configs is None else configs

    def one(config):
        name, dtype, defines = config[:3]
        return config, nvrtc.compile(launch.source(name, dtype, **defines),
                                     CUPY_OPTIONS + REPORT_OPTIONS, name + ".cu")

    rows, problems = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:      # NVRTC programs compile independently
        results = list(pool.map(one, configs))
    for config, (ok, log, cubin) in results:
        (name, dtype, defines), threads = config[:3], (config[3] if len(config) > 3 else 0)
        where = describe(name, dtype, defines)
        if not ok:        # (the assembler's report may still say why: read on)
            problems.append(f"{where}: NVRTC compile error:\n{log.strip()}")
        for kernel, usage in sorted(parse_report(log).items()):
            rows.append(dict(config=where, kernel=kernel, cubin_bytes=cubin, **usage))
            if usage["spill_stores"] or usage["spill_loads"]:
                problems.append(f"{where} {kernel}: spills {usage['spill_stores']} bytes to local memory "
                                f"(stores) and reads {usage['spill_loads']} back")
            elif usage["stack"]:
                problems.append(f"{where} {kernel}: keeps {usage['stack']} bytes a thread in local memory "
                                "(an array the compiler could not put in registers)")
            if usage["shared"] > SHARED_LIMIT:
                problems.append(f"{where} {kernel}: {usage['shared']} bytes of static shared memory "
                                f"(over {SHARED_LIMIT})")
            if usage["registers"] > REGISTER_LIMIT:
                problems.append(f"{where} {kernel}: {usage['registers']} registers a thread")
            if usage["registers"] * threads > REGISTER_FILE:
                problems.append(f"{where} {kernel}: {usage['registers']} registers x {threads} threads a "
                                f"block is more than a multiprocessor's {REGISTER_FILE}: the launch would fail")
    return rows, problems


def main():
    try:
        nvrtc = NVRTC()
    except NVRTCUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, problems = check(nvrtc=nvrtc)
    print(f"NVRTC {nvrtc.version[0]}.{nvrtc.version[1]}, options: {' '.join(CUPY_OPTIONS)}")
    print(f"{'configuration':<46} {'kernel':<15} {'registers':>9} {'local':>6} {'spilled':>8} {'shared':>8}")
    for r in rows:
        print(f"{r['config']:<46} {r['kernel']:<15} {r['registers']:>9} {r['stack']:>6} "
              f"{r['spill_stores'] + r['spill_loads']:>8} {r['shared']:>8}")
    for p in problems:
        print(f"PROBLEM: {p}")
    print(f"\n{len(rows)} kernels in {len({r['config'] for r in rows})} configurations: "
          + ("all compile without spills or oversized shared memory" if not problems
             else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
