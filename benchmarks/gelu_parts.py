"""Where the CPU GELU's time goes: its kernel beside the NumPy calls it is made of.

    python benchmarks/gelu_parts.py [--batch-size 32] [--repeats 21]

Times, per element and on one thread, the float32 kernel of the exact GELU's
forward pass (fast/cpu/gelu.py: y and the slope, one chunk of the size it runs
on) beside single NumPy calls on the same chunk: np.exp, a multiply, a divide.
Then the whole forward pass at ConvMixer-256's shape, on one thread and on all
of them. The figures in README's CPU benchmark text about GELU (the exp's share
of the kernel, the gain from the second thread) come from this script.
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "8")   # before NumPy loads OpenBLAS (fast/cpu/tuning.py)

import numpy as np  # noqa: E402

from tinyconvmixer.engine import backend  # noqa: E402
from tinyconvmixer.fast.cpu import chunked, gelu, threads  # noqa: E402


def per_call(fn, repeats):
    """Median seconds of fn() over `repeats` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model():
    """lscpu's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def forward(x):
    return chunked.chunked_map(gelu._exact_value_slope, x, outputs=2, scratch=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n = chunked.chunk_elements(4, 5)        # GELU's forward pass: x, y, slope and 2 scratch
    x = rng.standard_normal(n).astype(np.float32)
    y, s, e, t = (np.empty_like(x) for _ in range(4))
    parts = [("kernel (y and slope)", lambda: gelu._exact_value_slope(y, s, x, e, t)),
             ("np.exp", lambda: np.exp(x, out=e)),
             ("np.multiply", lambda: np.multiply(x, x, out=e)),
             ("np.divide", lambda: np.divide(x, x, out=e))]
    ns = {name: per_call(fn, args.repeats) / n * 1e9 for name, fn in parts}
    print(f"{cpu_model()}, NumPy {np.__version__}")
    print(f"GELU's float32 kernel on one thread, {n:,}-element chunks:")
    kernel, exp, mul = ns["kernel (y and slope)"], ns["np.exp"], ns["np.multiply"]
    notes = {"np.exp": f"{exp / kernel:.0%} of the kernel, {exp / mul:.0f} multiplies"}
    for name, value in ns.items():
        print(f"  {name:24s} {value:5.2f} ns/element  {notes.get(name, '')}".rstrip())

    shape = (args.batch_size, 256, 16, 16)
    big = backend.channels_last(rng.standard_normal(shape).astype(np.float32))
    saved = os.environ.get("TINYCONVMIXER_THREADS")
    try:
        os.environ["TINYCONVMIXER_THREADS"] = "1"
        one = per_call(lambda: forward(big), args.repeats)
    finally:
        if saved is None:
            del os.environ["TINYCONVMIXER_THREADS"]
        else:
            os.environ["TINYCONVMIXER_THREADS"] = saved
    many = per_call(lambda: forward(big), args.repeats)
    n_threads = threads.cpu_threads()
    print(f"forward pass, batch {args.batch_size}: 1 thread {one * 1e3:.1f} ms, {n_threads} "
          f"thread{'s' if n_threads > 1 else ''} {many * 1e3:.1f} ms ({one / many:.2f}x)")


if __name__ == "__main__":
    main()
