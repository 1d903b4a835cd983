"""Pictures of a run: training curves and learned filters (PNG files).

We draw on a bare matplotlib Figure (rendered by the Agg backend) instead of
pyplot, so no window is opened and no global plotting state is touched.
The image files are written atomically (see atomic.py), so a run stopped while
saving never leaves a broken image behind. matplotlib is imported when the first
picture is drawn, not with the training command (it takes seconds to import).
"""

import functools
import math

import numpy as np

from ...engine import backend
from ...util.atomic import atomic_write


def run_title(args, device, train_images, test_images, val_images=0):
    """One line naming what a run is: model, data, schedule, augmentation, seed, device."""
    aug = [f"RandAugment({args.ra_n}, {args.ra_m})" if args.ra_n else "no RandAugment"]
    aug += [f"{name} {value:g}" for name, value, off in (("crop scale", args.scale, 1.0),
            ("jitter", args.jitter, 0.0), ("erasing", args.reprob, 0.0)) if value != off]
    clip = f", clip {args.clip_norm:g}" if args.clip_norm else ""
    return (f"ConvMixer-{args.hdim}/{args.depth} k={args.kernel_size} p={args.patch_size} | "
            f"{train_images:,} train / {f'{val_images:,} validation / ' if val_images else ''}"
            f"{test_images:,} test images | {args.epochs} epochs, batch "
            f"{args.batch_size}, AdamW lr_max {args.lr_max:g} wd {args.wd:g}{clip} | {', '.join(aug)} | "
            f"seed {args.seed}, {device}")


def plot_curves(history, path, lr_at=None, epochs=None, title=None):
    """Loss, accuracy and learning rate per epoch, saved to `path`.

    history: the rows of metrics.csv (dicts; accuracies in percent). lr_at(t) and
    epochs, if given, draw the whole learning-rate schedule as a line behind the
    per-epoch values. title: the run's settings (see run_title), drawn on top.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8 if title is None else 4.2), layout="constrained")
    if title:
        fig.suptitle(title, fontsize=9)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    ep = [r["epoch"] for r in history]
    for key, style in (("train", "o-"), ("val", "^-"), ("test", "s-")):
        if all(r.get(f"{key}_loss") is None for r in history):
            continue                                    # (no validation set)
        ax_loss.plot(ep, [r.get(f"{key}_loss") for r in history], style, ms=3, label=key)
        ax_acc.plot(ep, [r.get(f"{key}_acc") for r in history], style, ms=3, label=key)
    if lr_at is not None and epochs:
        t = np.linspace(0, epochs, 400)
        ax_lr.plot(t, [lr_at(x) for x in t], color="0.7", label="schedule")
    ax_lr.plot(ep, [r["lr"] for r in history], "o", ms=3, label="end of epoch")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy (%)"), (ax_lr, "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def save_figure(fig, path, dpi=110):
    """Render `fig` to `path` atomically (the format comes from the extension: .png, .svg, ...)."""
    atomic_write(path, functools.partial(fig.savefig, dpi=dpi))


def mosaic(tiles, pad=1, fill=np.nan):
    """Arrange tiles (n, h, w[, 3]) in a near-square grid with `pad` pixels between them."""
    n, h, w = tiles.shape[:3]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad) + tiles.shape[3:], fill)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = tile
    return grid


def depthwise_convs(model):
    """(name, Conv2d) of every depthwise convolution (groups == channels), in model order."""
    return [(name, m) for name, m in model.named_modules()
            if type(m).__name__ == "Conv2d" and m.groups > 1 and m.groups == m.in_channels == m.out_channels]


def picked_layers(n_layers, max_layers):
    """Up to max_layers indices spread evenly over n_layers (first and last included)."""
    return sorted({round(i * (n_layers - 1) / max(max_layers - 1, 1)) for i in range(max_layers)}) if n_layers else []


def patch_tiles(patch):
    """(dim, 3, p, p) patch filters as one RGB mosaic, each filter scaled to its own min..max."""
    lo = patch.min(axis=(1, 2, 3), keepdims=True)
    hi = patch.max(axis=(1, 2, 3), keepdims=True)
    rgb = ((patch - lo) / np.maximum(hi - lo, 1e-12)).transpose(0, 2, 3, 1)   # (dim, p, p, 3)
    return np.nan_to_num(mosaic(rgb), nan=1.0)


def kernel_tiles(k):
    """(n, kh, kw) kernels as one mosaic, each divided by its largest magnitude (to -1..1)."""
    return mosaic(k / np.maximum(np.abs(k).max(axis=(1, 2), keepdims=True), 1e-12))


def plot_filters(model, path, max_layers=4, max_kernels=64, title=None):
    """The patch-embedding filters as RGB tiles and depthwise kernels of a few layers.

    Like the figures in the ConvMixer paper's appendix. Each patch filter
    (3, p, p) is scaled to [0, 1] on its own (its smallest weight black, its
    largest white, its three input channels shown as red, green and blue); each
    depthwise kernel (k, k) is divided by its largest magnitude and drawn with a
    diverging colour map (red positive, blue negative, white zero). The figure
    says so under each panel. title: the run's settings (see run_title).
    """
    patch = backend.to_numpy(model[0].weight.data).astype(np.float64)     # (dim, 3, p, p)
    convs = depthwise_convs(model)
    picks = picked_layers(len(convs), max_layers)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * (1 + len(picks)) + 0.8, 4.9 if title else 4.5), layout="constrained")
    if title:
        fig.suptitle(title, fontsize=9)
    axes = np.atleast_1d(fig.subplots(1, 1 + len(picks)))
    axes[0].imshow(patch_tiles(patch), interpolation="nearest")
    axes[0].set_title(f"patch embedding {tuple(patch.shape[1:])}")
    axes[0].set_xlabel("input channels as R, G, B;\neach filter scaled to its own min..max", fontsize=8)
    image = None
    for ax, i in zip(axes[1:], picks):
        name, conv = convs[i]
        k = backend.to_numpy(conv.weight.data)[:max_kernels, 0].astype(np.float64)   # (n, kh, kw)
        image = ax.imshow(kernel_tiles(k), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"depthwise layer {i + 1}/{len(convs)}")
        ax.set_xlabel(f"first {len(k)} of {conv.weight.shape[0]} kernels;\neach divided by its largest |weight|",
                      fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes[1:]), shrink=0.7, ticks=[-1, 0, 1])
        bar.set_label("weight / largest |weight| of its kernel", fontsize=8)
    save_figure(fig, path)
