"""Compile every kernel that a GPU session launches, before anything is timed.

    python benchmarks/compile_kernels.py           # on a GPU: gpu_session.sh's `compile` stage
    python benchmarks/compile_kernels.py --tiny    # on the CuPy stand-in (CI): tiny models

CuPy compiles a kernel at its first launch and keeps it in its disk cache
(~/.cupy/kernel_cache), so that the later stages of benchmarks/gpu_session.sh
(gradcheck, tests, bench, train), each a process of its own, find it compiled and
neither their timings nor their time limits pay for compiling. Two kinds:

1. The project's CUDA C kernels (fast/cuda/*.cu): every configuration that
   fast/cuda/nvrtc.py lists (float32 and float64, every kernel size), compiled
   through launch.kernel as the ops compile them.
2. CuPy's own elementwise and reduction kernels, one per operation, type and
   memory layout: compiled by running what the stages run, one training step
   (forward, backward, AdamW) and one evaluation forward of ConvMixer-256/8 for
   each recipe shape the benchmark times (k=5 p=2, k=9 p=1), in float32 with the
   kernels on and off, and one of a small model in float64 (gradcheck's type).

Each part is timed; a table goes to stdout. With --tiny, the models are tiny and the
steps take the plain paths only: the stand-in runs kernels in a CPU emulator.
"""

import argparse
import os
import sys
import time

import numpy as np

import tinyconvmixer.fast                                   # noqa: F401  (the fast variants, as the stages)
import tinyconvmixer.functional as F
from tinyconvmixer import Tensor, nn, no_grad, optim
from tinyconvmixer.engine import backend
from tinyconvmixer.fast.cuda import launch, nvrtc


def compile_project_kernels():
    """Every kernel of every configuration that the ops can launch; returns how many."""
    count = 0
    for name, dtype, defines, *_ in nvrtc.configurations():
        for function in nvrtc.kernel_names(launch.source(name, dtype, **defines)):
            launch.kernel(name, function, dtype, **defines)
            count += 1
    return count


def warm_up_step(hdim, depth, k, p, batch, dtype, kernels):
    """One AdamW training step and one evaluation forward: every CuPy kernel they use is compiled."""
    old = launch.set_enabled(kernels)
    try:
        xp = backend.xp_for("gpu")
        nn.init.manual_seed(0)
        model = nn.ConvMixer(hdim, depth, kernel_size=k, patch_size=p, n_classes=10).to("gpu", dtype=dtype)
        opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-3)
        rng = np.random.default_rng(0)
        x = Tensor(xp.asarray(rng.standard_normal((batch, 3, 32, 32)).astype(dtype)))
        y = xp.asarray(rng.integers(0, 10, batch))
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        model.eval()
        with no_grad():
            model(x)
        xp.cuda.Device().synchronize()
    finally:
        launch.set_enabled(old)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models, plain paths (the CuPy stand-in)")
    args = parser.parse_args(argv)
    try:
        backend.check_device("gpu")
    except backend.DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.tiny:        # hdim, depth, batch; the stand-in runs the kernels in its CPU emulator: plain paths
        shape, batch, kernel_modes = (8, 1), 2, (False,)
    else:
        shape, batch, kernel_modes = (256, 8), 8, (True, False)
    parts = [("CUDA C kernels of fast/cuda (every configuration)", compile_project_kernels)]
    for k, p in ((5, 2), (9, 1)):
        for kernels in kernel_modes:
            parts.append((f"step ConvMixer-{shape[0]}/{shape[1]} k={k} p={p} float32, kernels "
                          f"{'on' if kernels else 'off'}",
                          lambda k=k, p=p, kernels=kernels: warm_up_step(*shape, k, p, batch, np.float32, kernels)))
    for kernels in kernel_modes:
        parts.append((f"step ConvMixer-8/1 k=5 p=2 float64, kernels {'on' if kernels else 'off'}",
                      lambda kernels=kernels: warm_up_step(8, 1, 5, 2, 2, np.float64, kernels)))
    total = time.perf_counter()
    print(f"{'compiled':<66} {'seconds':>8}")
    for what, run in parts:
        start = time.perf_counter()
        result = run()
        note = f" ({result} kernels)" if isinstance(result, int) else ""
        print(f"{(what + note)[:66]:<66} {time.perf_counter() - start:8.1f}")
    print(f"{'all':<66} {time.perf_counter() - total:8.1f}")
    print(f"CuPy's kernel cache: {os.environ.get('CUPY_CACHE_DIR', '~/.cupy/kernel_cache')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
