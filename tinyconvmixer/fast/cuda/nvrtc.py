"""Compile every kernel for every GPU generation, without a GPU: NVRTC, as CuPy 14 calls it.

    python -m tinyconvmixer.fast.cuda.nvrtc          # the table: registers a thread, per architecture
    python -m tinyconvmixer.fast.cuda.nvrtc --arch 75,90

CuPy compiles a RawModule with NVRTC, the CUDA run-time compiler, at its first launch,
and for the GPU it runs on only (`-arch=sm_XX` of that GPU). A kernel that compiles for
an H100 may fail on a class's T4 or V100: a newer intrinsic, more registers or shared
memory than that generation allows. NVRTC itself needs no GPU, so this module loads it
with ctypes and compiles each configuration that the ops can ask for (`configurations()`)
for each architecture of ARCHITECTURES, with CuPy 14's options for a RawModule:

    --std=c++17  -ftz=true  -arch=sm_XX  --device-as-default-execution-space

CUDA 13's NVRTC (the `nvidia-cuda-nvrtc` wheel) compiles sm_75 to sm_120; it refuses
sm_70 (V100), which CUDA 12's (the `nvidia-cuda-nvrtc-cu12` wheel, libnvrtc.so.12 in
nvidia/cuda_nvrtc/lib) still compiles. `-Xptxas=-v` makes the assembler report, per
kernel, the registers each thread uses, the bytes spilled to local memory and the static
shared memory. `check()` turns the reports into rows and into problems: a compile error,
any spill or other use of local memory (a stack frame: an array indexed in a way the
compiler could not unroll), both far slower than registers; and each of the
architecture's limits (CUDA C Programming Guide, "Technical Specifications per Compute
Capability") that the launch would break: registers a thread, the registers a block
takes (allocated per warp, in units of 256) against a block's and a multiprocessor's
register file, threads a block and a multiprocessor, static shared memory (48 KiB)
and all of a block's shared memory against the architecture's most.

Results are kept in a cache (~/.cache/tinyconvmixer/nvrtc, or $TINYCONVMIXER_NVRTC_CACHE;
"0" turns it off), keyed by the NVRTC version, the options and the source text, so a
second run compiles only what changed.
"""

import argparse
import collections
import ctypes
import glob
import hashlib
import json
import os
import re
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import adamw, batchnorm, depthwise, launch

CUPY_OPTIONS = ("--std=c++17", "-ftz=true", "--device-as-default-execution-space")
REPORT_OPTIONS = ("-Xptxas=-v",)

# The limits every architecture here shares, and those that differ.
THREADS_PER_BLOCK = 1024
REGISTERS_PER_THREAD = 255
REGISTER_FILE = 64 * 1024            # 32-bit registers of a block, and of a multiprocessor
REGISTER_UNIT = 256                  # registers are allocated per warp, in units of 256
STATIC_SHARED = 48 * 1024            # static shared memory of a block (more needs dynamic + opt-in)
Arch = collections.namedtuple("Arch", "sm cuda gpus threads_per_sm shared_per_block")
ARCHITECTURES = [                    # shared_per_block: the most a block may have, with opt-in
    Arch(70, 12, "V100", 2048, 96 * 1024),
    Arch(75, 13, "T4, RTX 20", 1024, 64 * 1024),
    Arch(80, 13, "A100", 2048, 163 * 1024),
    Arch(86, 13, "RTX 30, A10", 1536, 99 * 1024),
    Arch(89, 13, "L4, RTX 40", 1536, 99 * 1024),
    Arch(90, 13, "H100, H200", 2048, 227 * 1024),
    Arch(100, 13, "B200", 2048, 227 * 1024),
    Arch(120, 13, "RTX 50", 1536, 99 * 1024),
]
WHEELS = {13: ("nvidia-cuda-nvrtc>=13,<14", os.path.join("nvidia", "cu13", "lib")),
          12: ("nvidia-cuda-nvrtc-cu12>=12,<13", os.path.join("nvidia", "cuda_nvrtc", "lib"))}

_PTXAS_FUNCTION = re.compile(r"Compiling entry function '(\w+)'")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_KERNEL = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)")
_PTXAS_USAGE = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


class NVRTCUnavailable(RuntimeError):
    """No libnvrtc of the CUDA major asked for was found."""


def library_path(cuda=13):
    """libnvrtc.so.<cuda>: $TINYCONVMIXER_NVRTC<cuda> (or $TINYCONVMIXER_NVRTC for 13), else the
    wheel's (WHEELS), else a CUDA toolkit's ($CUDA_PATH, /usr/local/cuda, /usr/local/cuda-<cuda>*)."""
    given = os.environ.get(f"TINYCONVMIXER_NVRTC{cuda}") or (cuda == 13 and os.environ.get("TINYCONVMIXER_NVRTC"))
    if given:
        return given
    folders = [os.path.join(p, WHEELS[cuda][1]) for p in sys.path if p]
    roots = [os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"] + sorted(glob.glob(f"/usr/local/cuda-{cuda}*"))
    folders += [os.path.join(root, lib) for root in roots if root for lib in ("lib64", "lib")]
    for folder in folders:
        found = sorted(glob.glob(os.path.join(folder, f"libnvrtc.so.{cuda}*")))
        if found:
            return found[0]
    raise NVRTCUnavailable(f"no libnvrtc.so.{cuda} (CUDA {cuda}'s NVRTC) found: `pip install "
                           f"'{WHEELS[cuda][0]}'` (Linux x86-64; `pip install -e \".[nvrtc]\"` brings "
                           f"both), or set TINYCONVMIXER_NVRTC{cuda} to the library's path")


class NVRTC:
    """The few NVRTC calls needed: create a program, compile it, read its log and cubin size."""

    def __init__(self, path=None, cuda=13):
        try:
            self.lib = ctypes.CDLL(path or library_path(cuda))
        except OSError as exc:
            raise NVRTCUnavailable(f"cannot load CUDA {cuda}'s NVRTC: {exc}") from exc
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


def compilers(cudas=(13, 12)):
    """{CUDA major: NVRTC} for those that load, and {CUDA major: why not} for the others."""
    found, missing = {}, {}
    for cuda in cudas:
        try:
            found[cuda] = NVRTC(cuda=cuda)
        except NVRTCUnavailable as exc:
            missing[cuda] = str(exc)
    return found, missing


def _cache_folder():
    folder = os.environ.get("TINYCONVMIXER_NVRTC_CACHE")
    if folder == "0":
        return None
    return folder or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                  "tinyconvmixer", "nvrtc")


def compile_cached(nvrtc, source, options, name):
    """nvrtc.compile(...), or its result from an earlier run with the same NVRTC, options and source."""
    folder = _cache_folder()
    key = hashlib.sha256(json.dumps([nvrtc.version, list(options), source]).encode()).hexdigest()
    path = folder and os.path.join(folder, key + ".json")
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                return tuple(json.load(f))
        except (OSError, ValueError):
            pass                                    # unreadable: compile again
    result = nvrtc.compile(source, options, name)
    if path:
        try:
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(result, f)
            os.replace(tmp, path)
        except OSError:
            pass                                    # a read-only home: no cache, same results
    return result


def kernel_names(source):
    """The names of the kernels (extern "C" __global__ functions) that a .cu source defines."""
    return sorted(set(_KERNEL.findall(source)))


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
    """Every (file, dtype, defines, threads a block, dynamic shared bytes) that the ops can ask
    module() for and launch: the list that `python -m tinyconvmixer.fast.cuda.nvrtc` compiles for
    every architecture (tests/test_nvrtc_compile.py). No kernel here uses dynamic shared memory."""
    configs = []
    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        configs += [("gelu", dtype, {}, launch.grid_stride(1)[1][0], 0),
                    ("batchnorm", dtype, batchnorm.defines(), batchnorm.THREADS, 0),
                    ("adamw", dtype, adamw.defines(), adamw.THREADS, 0)]
        configs += [("depthwise", dtype, depthwise.defines(dtype, k, k), depthwise.threads(dtype), 0)
                    for k in depthwise.KERNEL_SIZES]
    return configs


def block_registers(registers, threads):
    """Registers a block of `threads` takes: whole warps, each given registers in units of 256."""
    per_warp = -(-registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
    return -(-threads // 32) * per_warp


def limits_broken(usage, threads, dynamic, arch):
    """What a launch of this kernel, with this block, would break on `arch` (empty: nothing)."""
    out, taken = [], block_registers(usage["registers"], threads)
    if usage["registers"] > REGISTERS_PER_THREAD:
        out.append(f"{usage['registers']} registers a thread (at most {REGISTERS_PER_THREAD})")
    if taken > REGISTER_FILE:
        out.append(f"{usage['registers']} registers x {threads} threads take {taken} registers, more "
                   f"than a block's and a multiprocessor's {REGISTER_FILE}: the launch would fail")
    if threads > min(THREADS_PER_BLOCK, arch.threads_per_sm):
        out.append(f"{threads} threads a block (at most {min(THREADS_PER_BLOCK, arch.threads_per_sm)})")
    if usage["shared"] > STATIC_SHARED:
        out.append(f"{usage['shared']} bytes of static shared memory (at most {STATIC_SHARED})")
    if usage["shared"] + dynamic > arch.shared_per_block:
        out.append(f"{usage['shared'] + dynamic} bytes of shared memory a block, over sm_{arch.sm}'s "
                   f"{arch.shared_per_block}")
    return out


def check(configs=None, nvrtcs=None, archs=None, workers=2):
    """Compile each configuration for each architecture; returns (rows, problems): one row per
    kernel and architecture, and one line per compile error, spill or limit broken (none means
    every kernel is fit to run on every GPU generation of `archs`).

    nvrtcs: {CUDA major: NVRTC} (default: compilers()); an architecture whose CUDA has none is a
    problem. configs: 3- to 5-tuples as configurations() gives (threads default to 0: unchecked)."""
    if nvrtcs is None:
        nvrtcs, missing = compilers()
    configs = configurations() if configs is None else configs
    archs = ARCHITECTURES if archs is None else archs
    jobs = [(config, arch) for arch in archs if arch.cuda in nvrtcs for config in configs]

    def one(job):
        (name, dtype, defines, *_), arch = job
        options = CUPY_OPTIONS[:2] + (f"-arch=sm_{arch.sm}",) + CUPY_OPTIONS[2:] + REPORT_OPTIONS
        source = launch.source(name, dtype, **defines)
        return compile_cached(nvrtcs[arch.cuda], source, options, name + ".cu"), source

    rows, problems = [], [f"sm_{a.sm}: no NVRTC of CUDA {a.cuda} to compile for it" for a in archs
                          if a.cuda not in nvrtcs]
    with ThreadPoolExecutor(max_workers=workers) as pool:      # NVRTC programs compile independently
        results = list(pool.map(one, jobs))
    for (config, arch), ((ok, log, cubin), source) in zip(jobs, results):
        (name, dtype, defines), (threads, dynamic) = config[:3], (tuple(config[3:]) + (0, 0))[:2]
        where = f"sm_{arch.sm} {describe(name, dtype, defines)}"
        report = parse_report(log)
        if not ok:        # (the assembler's report may still say why: read on)
            problems.append(f"{where}: NVRTC compile error:\n{log.strip()}")
            for kernel in set(kernel_names(source)) - set(report):      # a row each, marked
                rows.append(dict(config=describe(name, dtype, defines), arch=arch.sm, kernel=kernel,
                                 threads=threads, cubin_bytes=0, ok=False, registers=None, stack=0,
                                 spill_stores=0, spill_loads=0, shared=0))
        for kernel, usage in sorted(report.items()):
            found = []
            if usage["spill_stores"] or usage["spill_loads"]:
                found.append(f"spills {usage['spill_stores']} bytes to local memory (stores) and reads "
                             f"{usage['spill_loads']} back")
            elif usage["stack"]:
                found.append(f"keeps {usage['stack']} bytes a thread in local memory (an array the "
                             "compiler could not put in registers)")
            found += limits_broken(usage, threads, dynamic, arch)
            problems += [f"{where} {kernel}: {p}" for p in found]
            rows.append(dict(config=describe(name, dtype, defines), arch=arch.sm, kernel=kernel,
                             threads=threads, cubin_bytes=cubin, ok=ok and not found, **usage))
    return rows, problems


def varying(config, configs):
    """The defines of a configuration that differ between the configurations of its file and type."""
    name, dtype, defines = config[:3]
    same = [c[2] for c in configs if c[0] == name and c[1] == dtype]
    return [k for k in sorted(defines) if any(d.get(k) != defines[k] for d in same)]


def table(rows, configs, archs):
    """The compact table (80 columns): a row per kernel and configuration, a column per
    architecture holding registers a thread ('!' where a problem was found, 'err' a compile error,
    '-' not compiled),
    after a line per file and type with the defines that do not vary."""
    lines, labels, fixed = [], {}, {}
    for c in configs:
        name, dtype, defines = c[:3]
        keys, head = varying(c, configs), f"{name} f{8 * dtype.itemsize}"
        labels[describe(*c[:3])] = head + (" " + "x".join(str(defines[k]) for k in keys) if keys else "")
        settings = " ".join(f"{k}={v}" for k, v in sorted(defines.items()) if k not in keys)
        fixed[head] = settings + (f", {'x'.join(keys)} in the table" if keys else "")
    lines += textwrap.wrap("defines: " + "; ".join(f"{k} {v}" for k, v in fixed.items() if v), 80)
    lines.append(f"{'configuration':<20} {'kernel':<13} {'block':>5} {'smem':>5} "
                 + "".join(f"{a.sm:>4}" for a in archs))
    by_kernel, order = {}, {describe(*c[:3]): i for i, c in enumerate(configs)}
    for r in sorted(rows, key=lambda r: (order.get(r["config"], len(order)), r["kernel"])):
        by_kernel.setdefault((r["config"], r["kernel"]), {})[r["arch"]] = r

    def cell(r):
        if r is None:
            return "   -"
        if r["registers"] is None:
            return " err"
        return f"{r['registers']:>3}" + (" " if r["ok"] else "!")
    for (config, kernel), per_arch in by_kernel.items():
        cells = "".join(cell(per_arch.get(a.sm)) for a in archs)
        shared = max(r["shared"] for r in per_arch.values())
        threads = max(r["threads"] for r in per_arch.values())
        lines.append(f"{labels.get(config, config)[:20]:<20} {kernel[:13]:<13} {threads:>5} {shared:>5} "
                     f"{cells}".rstrip())
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description="Compile every kernel configuration for each GPU "
                                                 "architecture with NVRTC (no GPU needed).")
    parser.add_argument("--arch", help="comma-separated compute capabilities, e.g. 75,90 (default: all)")
    args = parser.parse_args(argv)
    archs = ARCHITECTURES
    if args.arch:
        wanted = {int(a) for a in args.arch.replace("sm_", "").split(",")}
        archs = [a for a in ARCHITECTURES if a.sm in wanted]
        if len(archs) != len(wanted):
            print(f"error: --arch {args.arch}: known are {', '.join(str(a.sm) for a in ARCHITECTURES)}",
                  file=sys.stderr)
            return 2
    nvrtcs, missing = compilers(sorted({a.cuda for a in archs}, reverse=True))
    if missing:
        for why in missing.values():
            print(f"error: {why}", file=sys.stderr)
        return 2
    configs = configurations()
    rows, problems = check(configs, nvrtcs, archs)
    for cuda, nvrtc in nvrtcs.items():
        print(f"NVRTC {nvrtc.version[0]}.{nvrtc.version[1]}: "
              + " ".join(f"sm_{a.sm}" for a in archs if a.cuda == cuda))
    print(f"options: {' '.join(CUPY_OPTIONS[:2])} -arch=sm_XX {' '.join(CUPY_OPTIONS[2:])}")
    text = ("Registers a thread, per architecture ('!': a problem, listed below; err: a compile "
            "error); block: threads; "
            "smem: static shared bytes. GPUs: " + "; ".join(f"{a.sm} {a.gpus}" for a in archs) + ".")
    for line in textwrap.wrap(text, 80) + table(rows, configs, archs):
        print(line)
    for p in problems:
        for i, line in enumerate(p.splitlines()):
            print("\n".join(textwrap.wrap(("PROBLEM: " if i == 0 else "  ") + line, 80,
                                           subsequent_indent="  ")))
    kernels = len({(r["config"], r["kernel"]) for r in rows})
    print("\n" + textwrap.fill(f"{kernels} kernels in {len(configs)} configurations for {len(archs)} "
                               "architectures: " + ("each compiles, without spills, within every limit"
                                                    if not problems else f"{len(problems)} problem(s)"), 80))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
