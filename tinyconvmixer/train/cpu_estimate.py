"""How long and how much memory a run would take on the CPU: a rough estimate, to warn before it starts.

The anchor is one measurement of the default recipe (ConvMixer-256/8, k=5, p=2,
batch 512, RandAugment(2, 12)) by benchmarks/cpu_recipe_steps.py: three steps on
the project's 2-core AMD EPYC machine (23 GB of RAM, NumPy 2.4 with OpenBLAS),
2026-11-30, while other jobs shared the cores: 9.5, 6.8 and 3.9 images/s, and
12.35 GB peak resident memory. We take 10 images/s (a quiet machine) and 12.4 GB.
Other settings are scaled from it: time by the multiply-adds per image, memory
by the activations a batch keeps for the backward pass (batch x depth x
channels x patches). Good to a factor of two or so; it is there to stop a
35-hour CPU run that someone started by accident, not to plan one.
"""

IMAGE = 32
ANCHOR = dict(hdim=256, depth=8, kernel_size=5, patch_size=2, batch_size=512,
              images_per_s=10.0, peak_gb=12.4, base_gb=0.4)
WARN_SECONDS = 3600          # warn when a run is expected to take longer than this


def work_per_image(hdim, depth, kernel_size, patch_size):
    """Multiply-adds of one forward pass (embedding + depth x (depthwise + pointwise))."""
    tokens = (IMAGE // patch_size) ** 2
    return tokens * (3 * patch_size ** 2 * hdim + depth * (hdim * kernel_size ** 2 + hdim * hdim))


def activations(hdim, depth, patch_size, batch_size):
    return batch_size * depth * hdim * (IMAGE // patch_size) ** 2


def estimate(args, train_images, test_images):
    """(seconds, gigabytes) expected for the whole run on the CPU."""
    a = ANCHOR
    shape = (args.hdim, args.depth, args.kernel_size, args.patch_size)
    rate = a["images_per_s"] * work_per_image(a["hdim"], a["depth"], a["kernel_size"], a["patch_size"]) \
        / work_per_image(*shape)
    seconds = args.epochs * (train_images + test_images / 3) / rate    # evaluation: forward only, ~1/3
    grow = activations(args.hdim, args.depth, args.patch_size, args.batch_size) \
        / activations(a["hdim"], a["depth"], a["patch_size"], a["batch_size"])
    memory = a["base_gb"] + (a["peak_gb"] - a["base_gb"]) * grow
    return seconds, memory


def warning(args, train_images, test_images):
    """The warning to print before a CPU run expected to take over an hour, or None.
    test_images: every image evaluated after each epoch (validation and test)."""
    try:
        seconds, memory = estimate(args, train_images, test_images)
    except (OverflowError, ZeroDivisionError):      # (args.py bounds every flag: not reached)
        seconds, memory = float("inf"), float("inf")
    if seconds < WARN_SECONDS:
        return None
    hours = seconds / 3600
    return (f"warning: on the CPU this run is expected to take about {hours:.0f} hours and about "
            f"{memory:.0f} GB of memory (scaled from the default recipe, measured at about "
            f"{ANCHOR['images_per_s']:.0f} images/s and {ANCHOR['peak_gb']:.0f} GB on a 2-core machine). "
            "It is meant for a GPU (--device gpu). To try things on the CPU: --smoke (a tiny model, about a "
            "minute), or the CPU-sized run in README.md (--train-subset 5000 --hdim 64 --depth 4 "
            "--patch-size 4 ..., a few minutes). Ctrl-C stops it (a checkpoint is saved).")
