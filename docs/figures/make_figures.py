"""Regenerate the figures of walkthrough.md.

    python docs/figures/make_figures.py                 # the figures computed here (seconds)
    python docs/figures/make_figures.py --run RUN_DIR   # also curves.png and filters.png from a run

Figures made from the code alone (deterministic; run from anywhere):

    backprop.png   backpropagation by hand on a small graph (before Step 0)
    tape_linear.png the tape of a linear layer, drawn by tinyconvmixer.viz (Step 5)
    fd_error.png   error of the central difference against the step size h (Step 3)
    gelu.png       GELU exact and tanh, ReLU, and their difference (Step 6)
    im2col.png     the im2col view of a padded input and the column matrix (Step 7)
    col2im.png     overlapping windows adding their gradients into the input's (Step 7)
    bn_graph.png   BatchNorm's training forward as a graph of elementary ops (Step 9)
    tape_block.png the tape of one ConvMixer block (Step 11)
    schedule.png   the triangular learning-rate schedule (Step 12)
    augment.png    bundled sample images and three TrainTransform draws of each (Step 14)

Figures of a training run (Steps 14-15) need the run's folder, as written by
`python -m tinyconvmixer.train --out RUN_DIR ...`: its metrics.csv and its
last.npz checkpoint. They are drawn with the same functions the training
command uses (tinyconvmixer/train/report/plots.py):

    run_curves.png       loss, accuracy and learning rate per epoch
    run_filters.png      the patch-embedding filters and depthwise kernels before and after
                         training, and the change, each filter on one scale (the initial
                         model is rebuilt from the run's seed)
    run_diagnostics.png  per-layer statistics over training (a run with --diagnostics)
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import numpy as np                      # noqa: E402
from matplotlib.figure import Figure    # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from tinyconvmixer import Tensor, viz                   # noqa: E402
from tinyconvmixer import functional as F               # noqa: E402
from tinyconvmixer.optim import triangular_lr           # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DPI = 110


def save(fig, name):
    path = os.path.join(HERE, name)
    # metadata: no creation date, so unchanged figures stay byte-identical
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    print("wrote", os.path.relpath(path))


def backprop():
    """L = (a*b + a)^2 at a = 3, b = -2, with every value and gradient (before Step 0)."""
    a = Tensor(np.array(3.0), requires_grad=True)
    b = Tensor(np.array(-2.0), requires_grad=True)
    c = a * b
    d = c + a
    L = d * d
    notes = {a: "a = 3\ndL/da = dL/dd * 1 + dL/dc * b\n= -6 + 12 = 6", b: "b = -2\ndL/db = dL/dc * a = -18",
             c: "c = a * b = -6\ndL/dc = dL/dd * 1 = -6", d: "d = c + a = -3\ndL/dd = dL/dL * 2d = -6",
             L: "L = d * d = 9\ndL/dL = 1"}
    fig = Figure(figsize=(6.6, 5.6), layout="constrained")
    viz.draw(L, names={"c": c, "d": d, "L": L}, notes=notes, shapes=False, ax=fig.subplots(),
             title="forward: values, top to bottom.   backward: gradients dL/d(node), bottom to top")
    L.backward()                                # the picture must say what the tape computes
    assert (a.grad, b.grad) == (6.0, -18.0), (a.grad, b.grad)
    save(fig, "backprop.png")


def tape_linear():
    """The tape of F.linear (Step 5)."""
    import tinyconvmixer.functional as F
    rng = np.random.default_rng(1)
    X = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    W = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(2), requires_grad=True)
    fig = Figure(figsize=(5.6, 4.4), layout="constrained")
    viz.draw(F.linear(X, W, b), names={"X": X, "W": W, "b": b}, ax=fig.subplots(),
             title="viz.draw(F.linear(X, W, b)): blue leaves need gradients")
    save(fig, "tape_linear.png")


def col2im_figure():
    """Four overlapping 3x3 windows of a 4x4 input add their gradients into it (Step 7)."""
    from tinyconvmixer.functional.im2col import col2im
    dcols = np.zeros((1, 1, 3, 3, 2, 2))
    for p in range(2):
        for q in range(2):
            dcols[0, 0, :, :, p, q] = 1 + 2 * p + q        # window (p, q) sends 1, 2, 3 or 4 everywhere
    dx = col2im(dcols, (1, 1, 4, 4), (1, 1))[0, 0]
    colours = ["tab:red", "tab:blue", "tab:green", "tab:orange"]
    fig = Figure(figsize=(12.5, 3.2), layout="constrained")
    axes = fig.subplots(1, 5)
    for w, ax in enumerate(axes[:4]):
        p, q = divmod(w, 2)
        for r in range(4):
            for c in range(4):
                inside = p <= r < p + 3 and q <= c < q + 3
                ax.add_patch(Rectangle((c, 3 - r), 1, 1, facecolor=colours[w] if inside else "white",
                                       alpha=0.35 if inside else 1, edgecolor="0.6", lw=0.8))
                ax.text(c + 0.5, 3.5 - r, str(1 + w) if inside else "0", ha="center", va="center",
                        fontsize=11, color="black" if inside else "0.6")
        ax.set_title(f"window of output ({p}, {q}):\ndcols[..., {p}, {q}] = {1 + w}", fontsize=9,
                     color=colours[w])
        ax.text(4.45, 2, "+" if w < 3 else "=", fontsize=20, ha="center", va="center")
    ax = axes[4]
    for r in range(4):
        for c in range(4):
            parts = [str(1 + w) for w in range(4) if divmod(w, 2)[0] <= r < divmod(w, 2)[0] + 3
                     and divmod(w, 2)[1] <= c < divmod(w, 2)[1] + 3]
            ax.add_patch(Rectangle((c, 3 - r), 1, 1, facecolor=str(1 - 0.12 * len(parts)), edgecolor="0.5", lw=0.8))
            ax.text(c + 0.5, 3.72 - r, "+".join(parts), ha="center", va="center", fontsize=6, color="0.25")
            ax.text(c + 0.5, 3.35 - r, f"{dx[r, c]:g}", ha="center", va="center", fontsize=12)
            assert sum(int(v) for v in parts) == dx[r, c]       # the picture is what col2im does
    ax.set_title("dx = col2im(dcols): each pixel sums\nthe windows over it (darker: more)", fontsize=9)
    for ax in axes:
        ax.set_xlim(-0.1, 4.9)
        ax.set_ylim(-0.1, 4.1)
        ax.set_aspect("equal")
        ax.axis("off")
    save(fig, "col2im.png")


def bn_graph():
    """BatchNorm's training forward written with elementary Tensor ops (Step 9)."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3, 2, 2)), requires_grad=True)
    weight = Tensor(rng.standard_normal(3), requires_grad=True)
    bias = Tensor(rng.standard_normal(3), requires_grad=True)
    axes = (0, 2, 3)
    mu = x.mean(axis=axes, keepdims=True)           # the names of the walkthrough's six steps
    c = x - mu
    v = (c * c).mean(axis=axes, keepdims=True)
    s = (v + 1e-5) ** -0.5
    xhat = c * s
    y = xhat * weight.reshape(1, 3, 1, 1) + bias.reshape(1, 3, 1, 1)
    fig = Figure(figsize=(9.5, 9.0), layout="constrained")
    viz.draw(y, names={"x": x, "gamma (weight)": weight, "beta (bias)": bias, "mu": mu, "c": c, "v": v,
                       "s": s, "xhat": xhat, "y": y}, ax=fig.subplots(),
             title="BatchNorm (training) as elementary ops; a mean is Sum times the constant 1/M")
    save(fig, "bn_graph.png")


def tape_block():
    """The tape of one ConvMixer block, parameters named as in the model (Step 11)."""
    from tinyconvmixer import nn
    nn.init.manual_seed(0)
    block = nn.ConvMixer(16, 2, kernel_size=5, patch_size=4, n_classes=10)[3]
    h = Tensor(np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32))
    fig = Figure(figsize=(8.6, 9.4), layout="constrained")
    viz.draw(block(h), names={"h (block input)": h, **dict(block.named_parameters())}, ax=fig.subplots(),
             title="one ConvMixer block: the input h feeds the depthwise conv and the residual Add")
    save(fig, "tape_block.png")


def fd_error():
    """|central difference - exact| for f(x) = x^3 at x = 0.7, float32 and float64 (Step 3c)."""
    hs = np.logspace(-12, 0, 97)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for dtype, colour in ((np.float32, "tab:red"), (np.float64, "tab:blue")):
        x = dtype(0.7)
        exact = 3 * float(x) ** 2
        errors = []
        for h in hs:
            h = dtype(h)
            estimate = (x + h) * (x + h) * (x + h) - (x - h) * (x - h) * (x - h)
            errors.append(abs(float(estimate / (2 * h)) - exact))
        errors = np.maximum(errors, 1e-17)          # an exact hit would be log(0)
        ax.loglog(hs, errors, "o-", ms=2.5, lw=1, color=colour, label=dtype.__name__)
        eps = np.finfo(dtype).eps
        ax.loglog(hs, eps / hs, ":", color=colour, lw=1)
    ax.loglog(hs, hs ** 2, "k--", lw=1, label="truncation error $h^2$")
    ax.plot([], [], "k:", lw=1, label="rounding error eps / h")
    ax.axvline(1e-6, color="0.6", lw=0.8)
    ax.text(1.2e-6, 3e-16, "h = 1e-6\n(gradcheck)", fontsize=8, color="0.4")
    ax.set_ylim(1e-17, 10)
    ax.set_xlabel("step size h")
    ax.set_ylabel("|estimate - exact derivative|")
    ax.set_title("Central difference of $x^3$ at $x = 0.7$")
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=8, loc="lower left")
    save(fig, "fd_error.png")


def gelu():
    """GELU exact and tanh, ReLU; and exact - tanh (Step 6)."""
    x = np.linspace(-4, 4, 801)
    exact = F.gelu(Tensor(x)).data
    approx = F.gelu(Tensor(x), approximate="tanh").data
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(x, np.maximum(x, 0), color="0.7", lw=3, label="ReLU")
    left.plot(x, exact, color="tab:blue", label="GELU (exact, erf)")
    left.plot(x, approx, "--", color="tab:orange", label="GELU (tanh)")
    left.set_title("GELU(x) = x * Phi(x)")
    right.plot(x, exact - approx, color="tab:purple")
    right.set_title("exact - tanh")
    for ax in (left, right):
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    save(fig, "gelu.png")


def im2col():
    """A padded 4x4 input, two of its 3x3 windows, and the 16 x 9 column matrix (Step 7)."""
    H = W = 4
    k, pad = 3, 1
    image = np.arange(H * W).reshape(H, W)
    padded = np.full((H + 2 * pad, W + 2 * pad), -1)
    padded[pad:pad + H, pad:pad + W] = image
    Ho, Wo = H, W
    # the real view, to make sure the picture shows what the code does
    from tinyconvmixer.functional.im2col import im2col_view
    windows = im2col_view(padded[None, None].astype(np.float64), (k, k), (1, 1))   # (1, 1, 3, 3, 4, 4)
    cols = windows[0, 0].transpose(2, 3, 0, 1).reshape(Ho * Wo, k * k)

    picks = {(0, 0): "tab:red", (1, 2): "tab:blue"}
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.35])

    n = padded.shape[0]
    for r in range(n):
        for c in range(n):
            v = padded[r, c]
            left.add_patch(Rectangle((c, n - 1 - r), 1, 1, facecolor="0.88" if v < 0 else "white",
                                     edgecolor="0.6", lw=0.8))
            left.text(c + 0.5, n - 0.5 - r, "0" if v < 0 else str(v), ha="center", va="center",
                      fontsize=10, color="0.55" if v < 0 else "black")
    for line, ((p, q), colour) in enumerate(picks.items()):
        left.add_patch(Rectangle((q + 0.06, n - p - k + 0.06), k - 0.12, k - 0.12, fill=False,
                                 edgecolor=colour, lw=2.5))
        left.text(0, n + 0.7 - 0.5 * line, f"window of output pixel ({p}, {q}): padded rows {p}..{p + k - 1}, "
                  f"columns {q}..{q + k - 1}", color=colour, ha="left", va="bottom", fontsize=8.5)
    left.set_xlim(-0.2, n + 0.2)
    left.set_ylim(-0.9, n + 1.3)
    left.set_aspect("equal")
    left.axis("off")
    left.set_title("input, padded by 1 (grey): (1, 1, 6, 6)", fontsize=10)
    left.text(n / 2, -0.5, "windows = im2col_view(x, (3, 3), (1, 1)): shape (1, 1, 3, 3, 4, 4),\n"
              "a strided view: windows[..., i, j, p, q] = x[..., p + i, q + j]",
              ha="center", va="top", fontsize=8.5, family="monospace")

    rows, ncols = cols.shape
    for r in range(rows):
        p, q = divmod(r, Wo)
        colour = picks.get((p, q))
        for c in range(ncols):
            v = int(cols[r, c])
            right.add_patch(Rectangle((c, rows - 1 - r), 1, 1,
                                      facecolor="0.88" if v < 0 else "white", edgecolor="0.75", lw=0.5))
            right.text(c + 0.5, rows - 0.5 - r, "0" if v < 0 else str(v), ha="center", va="center",
                       fontsize=7.5, color="0.55" if v < 0 else "black")
        right.text(-0.3, rows - 0.5 - r, f"({p},{q})", ha="right", va="center", fontsize=7.5,
                   color=colour or "0.3")
        if colour:
            right.add_patch(Rectangle((0.03, rows - 1 - r + 0.05), ncols - 0.06, 0.9, fill=False,
                                      edgecolor=colour, lw=2))
    for c in range(ncols):
        i, j = divmod(c, k)
        right.text(c + 0.5, rows + 0.2, f"{i},{j}", ha="center", va="bottom", fontsize=7.5, color="0.3")
    right.text(ncols / 2, rows + 1.0, "columns: window entry (i, j)", ha="center", fontsize=8.5)
    right.text(-2.2, rows / 2, "rows: output pixel (p, q)", rotation=90, ha="center", va="center", fontsize=8.5)
    right.set_xlim(-2.6, ncols + 0.2)
    right.set_ylim(-0.9, rows + 1.9)
    right.set_aspect("equal")
    right.axis("off")
    right.set_title("cols = windows reshaped to (N*Ho*Wo, C*kh*kw) = (16, 9): the copy", fontsize=10)
    right.text(ncols / 2, -0.5, "9 values per output pixel: the column array is kh*kw = 9 times the input",
               ha="center", va="top", fontsize=8.5)
    save(fig, "im2col.png")


def schedule(epochs=25, lr_max=0.05):
    """triangular_lr over the reference recipe's 25 epochs (Step 12)."""
    t = np.linspace(0, epochs, 1001)
    lr = [triangular_lr(x, epochs, lr_max) for x in t]
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, lr, color="tab:blue")
    knots = [0, epochs * 2 / 5, epochs * 4 / 5, epochs]
    values = [0, lr_max, lr_max / 20, 0]
    ax.plot(knots, values, "o", color="tab:blue", ms=4)
    for x, y, label in zip(knots, values, ["0", "lr_max", "lr_max / 20", "0"]):
        ax.annotate(f"{label}\n(epoch {x:g})", (x, y), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)
    ax.set_ylim(-0.002, lr_max * 1.25)
    ax.set_xlim(-1.5, epochs + 1.5)
    ax.set_xlabel("epoch (fractional: the rate changes every step)")
    ax.set_ylabel("learning rate")
    ax.set_title(f"triangular_lr(t, epochs={epochs}, lr_max={lr_max})")
    ax.grid(alpha=0.3)
    save(fig, "schedule.png")


def augment(n_images=8, n_draws=3):
    """A few images of the bundled sample and their augmented versions (Step 14)."""
    from tinyconvmixer.data import CIFAR10_MEAN, CIFAR10_STD, TrainTransform, load_cifar10

    data = load_cifar10("sample", cache=False)
    pick = np.random.default_rng(3).choice(len(data.train_y), n_images, replace=False)
    images = data.train_x[pick]
    transform = TrainTransform(ra_n=2, ra_m=12)
    mean, std = np.array(CIFAR10_MEAN), np.array(CIFAR10_STD)
    rows = [images / 255.0]
    for draw in range(n_draws):
        x = transform(images, np.random.default_rng([0, 0, draw]))          # float32 (N, 3, 32, 32)
        rows.append(np.clip(x.transpose(0, 2, 3, 1) * std + mean, 0, 1))   # undo the normalisation
    fig = Figure(figsize=(1.1 * n_images, 1.15 * (n_draws + 1) + 0.3), layout="constrained")
    axes = fig.subplots(n_draws + 1, n_images)
    for r, row in enumerate(rows):
        for c in range(n_images):
            ax = axes[r, c]
            ax.imshow(row[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel("original" if r == 0 else f"draw {r}", fontsize=8)
            if r == 0:
                ax.set_title(data.classes[data.train_y[pick[c]]], fontsize=8)
    fig.suptitle("TrainTransform(ra_n=2, ra_m=12): flip, then 2 RandAugment ops per image", fontsize=9)
    save(fig, "augment.png")


def run_filters(initial, trained, title, n_filters=16):
    """run_filters.png: filters before training, after it, and the change, on one scale per filter.

    filters.png (plots.plot_filters) scales every kernel to its own largest weight, which is
    right for one model but makes a random kernel and a trained one look alike. Here each
    filter keeps ONE scale for its three pictures (its largest magnitude before or after
    training), so a tap that grew shows darker after training, one that shrank paler, and
    the third row shows the difference itself: white where nothing changed.
    """
    from tinyconvmixer.engine import backend
    from tinyconvmixer.train.report.plots import depthwise_convs, mosaic

    def weights(model, name):
        return backend.to_numpy(dict(model.named_modules())[name].weight.data).astype(np.float64)

    layers = [("0", "patch embedding")] + [(name, f"depthwise {i + 1}/{len(depthwise_convs(trained))}")
                                           for i, (name, _) in enumerate(depthwise_convs(trained))]
    fig = Figure(figsize=(2.5 * len(layers) + 1.2, 8.4), layout="constrained")
    fig.suptitle(f"{title}\nthe first {n_filters} filters of each layer; each filter on one scale in all "
                 f"three rows: its largest |weight| before or after training", fontsize=9)
    axes = fig.subplots(3, len(layers))
    image = None
    for col, (name, label) in enumerate(layers):
        whole0, whole1 = weights(initial, name), weights(trained, name)
        moved = np.linalg.norm(whole1 - whole0) / np.linalg.norm(whole0)     # the whole layer, as Step 15 says
        w0, w1 = whole0[:n_filters], whole1[:n_filters]
        if name == "0":                                   # (n, 3, p, p): RGB, grey = 0
            scale = np.maximum(np.abs(w0).max(axis=(1, 2, 3), keepdims=True),
                               np.abs(w1).max(axis=(1, 2, 3), keepdims=True))
            rgb = [np.clip(0.5 + 0.5 * w / scale, 0, 1).transpose(0, 2, 3, 1) for w in (w0, w1, w1 - w0)]
            pictures = [np.nan_to_num(mosaic(t), nan=1.0) for t in rgb]
            for ax, picture in zip(axes[:, col], pictures):
                ax.imshow(picture, interpolation="nearest")
        else:                                             # (n, 1, k, k): red positive, blue negative
            k0, k1 = w0[:, 0], w1[:, 0]
            scale = np.maximum(np.abs(k0).max(axis=(1, 2), keepdims=True), np.abs(k1).max(axis=(1, 2), keepdims=True))
            for ax, k in zip(axes[:, col], (k0, k1, k1 - k0)):
                image = ax.imshow(mosaic(k / scale), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        axes[0, col].set_title(f"{label}\nbefore training", fontsize=9)
        axes[1, col].set_title("after training", fontsize=9)
        axes[2, col].set_title(f"after - before (layer: |change| / |before| = {moved:.2f})", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("R, G, B of each 2 x 2 filter;\ngrey = 0", fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes[:, 1:].ravel()), shrink=0.5, ticks=[-1, 0, 1])
        bar.set_label("weight / the filter's scale", fontsize=8)
    save(fig, "run_filters.png")


def run_figures(run_dir):
    """run_curves.png and run_filters.png from a training run's folder (Steps 14-15)."""
    from tinyconvmixer import nn
    from tinyconvmixer.train.checkpoint import load_checkpoint
    from tinyconvmixer.train.report.diagnostics import layer_labels, plot_diagnostics, read_csv
    from tinyconvmixer.train.report.plots import plot_curves, run_title
    from tinyconvmixer.train.files.runlog import read_metrics

    history = read_metrics(os.path.join(run_dir, "metrics.csv"))
    checkpoint = load_checkpoint(os.path.join(run_dir, "last.npz"))
    args = checkpoint["meta"]["args"]
    config = checkpoint["meta"]["config"]

    def lr_at(t):
        return triangular_lr(t, args["epochs"], args["lr_max"])

    data = checkpoint["meta"]["data"]
    title = run_title(argparse.Namespace(**args), checkpoint["meta"]["device"], data["train_images"],
                      data["test_images"])
    path = os.path.join(HERE, "run_curves.png")
    plot_curves(history, path, lr_at, args["epochs"], title=title)
    print("wrote", os.path.relpath(path))
    model = nn.ConvMixer(**config)
    model.load_state_dict(checkpoint["model"])
    nn.init.manual_seed(args["seed"])                  # the model as the run initialised it
    initial = nn.ConvMixer(**config)
    run_filters(initial, model, title)
    csv_path = os.path.join(run_dir, "diagnostics.csv")
    if os.path.exists(csv_path):
        path = os.path.join(HERE, "run_diagnostics.png")
        plot_diagnostics(read_csv(csv_path), path, labels=layer_labels(model),
                         title=f"ConvMixer-{config['dim']}/{config['depth']}, {len(history)} epochs: "
                               f"python -m tinyconvmixer.train --diagnostics")
        print("wrote", os.path.relpath(path))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", metavar="RUN_DIR", help="also draw the run figures from this run folder")
    args = parser.parse_args(argv)
    backprop()
    tape_linear()
    fd_error()
    gelu()
    im2col()
    col2im_figure()
    bn_graph()
    tape_block()
    schedule()
    augment()
    if args.run:
        run_figures(args.run)
    else:
        print("run_curves.png, run_filters.png and run_diagnostics.png unchanged (they need --run RUN_DIR)")


if __name__ == "__main__":
    main()
