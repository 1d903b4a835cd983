"""A few training steps of the default recipe on the CPU: images per second and peak memory.

    python benchmarks/cpu_recipe_steps.py [--batch-size 512] [--steps 3]

ConvMixer-256/8 (k=5, p=2), AdamW, RandAugment(2, 12) on random uint8 images:
what `python -m tinyconvmixer.train` does per step with its defaults. Prints,
per step, the seconds of augmentation and of forward + backward + update, the
images per second and the process's peak resident memory (ru_maxrss). The
figures behind the CPU warning of the training command (tinyconvmixer/train/cpu_estimate.py)
come from this script.
"""

import argparse
import os
import platform
import resource
import time

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "8")   # before NumPy loads OpenBLAS (fast/cpu/tuning.py)

import numpy as np  # noqa: E402

import tinyconvmixer.fast  # noqa: E402,F401  (the faster variants, as the training command uses them)
from tinyconvmixer import Tensor, nn  # noqa: E402
from tinyconvmixer import functional as F  # noqa: E402
from tinyconvmixer.data import TrainTransform  # noqa: E402
from tinyconvmixer.fast.cpu import threads, tuning  # noqa: E402
from tinyconvmixer.optim import AdamW  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=512, help="images per step (default: %(default)s)")
    p.add_argument("--steps", type=int, default=3, help="steps to time (default: %(default)s)")
    args = p.parse_args(argv)
    tuning.keep_freed_memory()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.batch_size, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.batch_size)
    nn.init.manual_seed(0)
    model = nn.ConvMixer(256, 8, kernel_size=5, patch_size=2, n_classes=10)
    optimizer = AdamW(model.parameters(), lr=0.01, weight_decay=0.005)
    augment = TrainTransform(ra_n=2, ra_m=12)
    model.train()
    print(f"{platform.processor() or platform.machine()}, {threads.cpu_threads()} threads, "
          f"batch {args.batch_size}, {time.strftime('%Y-%m-%d')}")
    for step in range(args.steps):
        t0 = time.perf_counter()
        x = Tensor(augment(images, np.random.default_rng([0, 0, step])))
        t1 = time.perf_counter()
        model.zero_grad()
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()
        t2 = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # kB on Linux -> GB
        print(f"step {step}: augment {t1 - t0:.2f} s, forward+backward+update {t2 - t1:.2f} s, "
              f"{args.batch_size / (t2 - t0):.1f} images/s, peak memory {peak:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
