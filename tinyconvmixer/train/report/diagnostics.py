"""Training diagnostics: what happens inside each layer while the network trains.

`python -m tinyconvmixer.train --diagnostics ...` writes, beside metrics.csv,

    diagnostics.csv   one row per (sampled step, statistic, layer): step,epoch,stat,layer,value
    diagnostics.png   the statistics over training, one line per layer

Every `every` training steps (about 100 samples in a run) it records:

    act_mean, act_std   mean and standard deviation of each GELU's output (the
                        activations a layer hands on), in the forward pass
    act_grad_std        standard deviation of the gradient that arrives at that
                        output in the backward pass
    grad_data           std(weight.grad) / std(weight), for each weight matrix or
                        kernel (biases and BatchNorm's scales left out)
    update_ratio        |w_after - w_before| / |w_before| (Euclidean norms) over
                        the optimiser step: how far one step moves the weights,
                        relative to their size
    lr                  the learning rate of that step

What they are for: activations whose spread collapses towards 0 or blows up
with depth, gradients that shrink layer after layer, or a layer whose weights
hardly move (an update ratio far below the others, and far below the rule of
thumb of about 1e-3 per step) point at a problem long before the loss curve does.

How it works: at a sampled step, `before_step` wraps the forward of every GELU
module for that one step so that its output passes through `Probe`, an identity
Function whose forward and backward measure what passes through; it also keeps a
copy of each weight. `after_step` (after the optimiser) removes the probes and
measures the weights. All statistics stay 0-d arrays on the model's device until
`flush` stacks them and copies them to the host in one transfer (at the end of an
epoch), so a GPU run gains no synchronisation per step; the steps in between
cost nothing, and a run without --diagnostics never creates this object.
"""

import csv
import io
import os

from ...engine import Function, backend
from ...util.atomic import atomic_write

STATS = ("act_mean", "act_std", "act_grad_std", "grad_data", "update_ratio")
FIELDS = ("step", "epoch", "stat", "layer", "value")


class Probe(Function):
    """The identity, recording statistics of its input (forward) and of its gradient (backward)."""

    def forward(self, x):
        self.record("act_mean", self.layer, x.mean())
        self.record("act_std", self.layer, x.std())
        return x

    def backward(self, g):
        self.record("act_grad_std", self.layer, g.std())
        return g


def default_every(epochs, n_batches, samples=100):
    """Steps between samples so that a run of epochs * n_batches steps gets about `samples` of them."""
    return max(1, round(epochs * n_batches / samples))


class Diagnostics:
    """Per-layer statistics of a model over training (see the module docstring).

    Call before_step(epoch, batch) before the forward pass and after_step(lr)
    after the optimiser step, then flush() or save(folder) whenever a host copy
    is wanted. `every` steps apart are sampled, counted over the whole run.
    """

    def __init__(self, model, n_batches, every=1):
        self.model, self.n_batches, self.every = model, n_batches, every
        self.activations = [(name, m) for name, m in model.named_modules() if type(m).__name__ == "GELU"]
        self.weights = [(name, p) for name, p in model.named_parameters() if p.ndim >= 2]
        self.rows = []            # on the host: (step, epoch, stat, layer, value)
        self._pending = []        # (step, epoch, stat, layer, 0-d device array), not yet copied
        self._active = None       # (step, epoch, weight copies) during a sampled step

    @classmethod
    def for_run(cls, model, n_batches, epochs, folder, resume_step=0):
        """The diagnostics of a training run: about 100 samples, and the rows of an earlier part
        of the run (diagnostics.csv in `folder`, steps before `resume_step`) when it resumes."""
        diagnostics = cls(model, n_batches, every=default_every(epochs, n_batches))
        if resume_step:
            diagnostics.load(folder, resume_step)
        return diagnostics

    # ----- one training step ---------------------------------------------------------------
    def before_step(self, epoch, batch):
        """Start a step; at a sampled one, probe the activations and copy the weights."""
        step = epoch * self.n_batches + batch
        if step % self.every:
            return
        t = epoch + batch / self.n_batches
        self._active = (step, t, [p.data.copy() for _, p in self.weights])

        def record(stat, layer, value):
            self._pending.append((step, t, stat, layer, value))

        for name, module in self.activations:
            module.forward = _probed(module.forward, record, name)   # an instance attribute, for one step

    def after_step(self, lr=None):
        """End a step (after optimizer.step()); at a sampled one, measure the weights."""
        if self._active is None:
            return
        step, t, before = self._active
        self._active = None
        for _, module in self.activations:
            module.__dict__.pop("forward", None)                       # back to the class's forward
        for (name, p), w0 in zip(self.weights, before):
            xp = backend.get_array_module(w0)
            size = xp.sqrt((w0 * w0).sum())
            if p.grad is not None:
                self._pending.append((step, t, "grad_data", name, p.grad.std() / w0.std()))
            moved = p.data - w0
            self._pending.append((step, t, "update_ratio", name, xp.sqrt((moved * moved).sum()) / size))
        if lr is not None:
            self.rows.append((step, t, "lr", "", float(lr)))            # a host number already

    # ----- reading the numbers -------------------------------------------------------------------
    def flush(self):
        """Copy the pending statistics to the host (one transfer) and return all rows."""
        if self._pending:
            xp = backend.get_array_module(self._pending[0][4])
            values = backend.to_numpy(xp.stack([v.astype(xp.float64) for *_, v in self._pending]))
            self.rows += [(s, t, stat, layer, float(v))
                          for (s, t, stat, layer, _), v in zip(self._pending, values)]
            self._pending = []
        rank = {name: i for i, (name, _) in enumerate(self.activations + self.weights)}
        self.rows.sort(key=lambda r: (r[0], r[2], rank.get(r[3], -1)))   # layers in model order
        return self.rows

    def save(self, folder, title=None):
        """Write diagnostics.csv and diagnostics.png into `folder` (both atomically)."""
        rows = self.flush()
        write_csv(os.path.join(folder, "diagnostics.csv"), rows)
        plot_diagnostics(rows, os.path.join(folder, "diagnostics.png"), labels=layer_labels(self.model),
                         title=title)

    def load(self, folder, before_step):
        """Take the rows of an earlier part of this run (for --resume): those before `before_step`."""
        path = os.path.join(folder, "diagnostics.csv")
        if os.path.exists(path):
            self.rows = [r for r in read_csv(path) if r[0] < before_step]


def _probed(forward, record, layer):
    def probed_forward(x):
        return Probe.apply(forward(x), record=record, layer=layer)
    return probed_forward


# ----- files ---------------------------------------------------------------------------------------
def write_csv(path, rows):
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(FIELDS)
    for step, t, stat, layer, value in rows:
        w.writerow((step, f"{t:.4f}", stat, layer, f"{value:.6g}"))

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text.getvalue())
    atomic_write(path, write)


def read_csv(path):
    """The rows of a diagnostics.csv as (step, epoch, stat, layer, value) tuples."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(f"{path}: not a diagnostics file (columns {reader.fieldnames}, expected {FIELDS})")
        return [(int(r["step"]), float(r["epoch"]), r["stat"], r["layer"], float(r["value"])) for r in reader]


def series(rows, stat):
    """{layer: (epochs, values)} of one statistic, in the order the layers first appear."""
    out = {}
    for _, t, s, layer, value in rows:
        if s == stat:
            ts, vs = out.setdefault(layer, ([], []))
            ts.append(t)
            vs.append(value)
    return out


# ----- layer names ---------------------------------------------------------------------------------
def layer_labels(model):
    """Readable names for ConvMixer's layers: module or parameter name -> 'block 2 depthwise'."""
    labels = {}
    depth = getattr(model, "config", {}).get("depth")
    if depth is None:
        return labels
    labels.update({"1": "patch embedding", "0.weight": "patch embedding",
                   f"{depth + 5}.weight": "classifier"})
    for b in range(depth):
        i = 3 + b
        labels.update({f"{i}.0.fn.1": f"block {b + 1} depthwise", f"{i}.0.fn.0.weight": f"block {b + 1} depthwise",
                       f"{i}.2": f"block {b + 1} pointwise", f"{i}.1.weight": f"block {b + 1} pointwise"})
    return labels


# ----- the picture ---------------------------------------------------------------------------------
PANELS = (("act_std", "activations: std of each GELU output", False),
          ("act_grad_std", "gradient at each GELU output: std", True),
          ("grad_data", "weight gradient / weight: std(grad) / std(w)", True),
          ("update_ratio", "update / weight per step: |w' - w| / |w|", True))


def plot_diagnostics(rows, path, labels=None, title=None):
    """Four panels of statistics against training time (epochs), one line per layer, to `path`."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from .plots import save_figure

    labels = labels or {}
    names = {}                                       # one colour per layer name, the same in every panel
    for _, _, stat, layer, _ in rows:
        if stat != "lr":
            names.setdefault(labels.get(layer, layer), len(names))
    colours = colormaps["viridis"]
    fig = Figure(figsize=(12, 7.4), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (stat, heading, log) in zip(axes, PANELS):
        lines = series(rows, stat)
        for layer, (ts, vs) in lines.items():
            name = labels.get(layer, layer)
            colour = colours(0.9 * names[name] / max(len(names) - 1, 1))
            ax.plot(ts, vs, "-", lw=1.2, color=colour, label=name)
        if log and lines:
            ax.set_yscale("log")
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both", lw=0.4)
    update_ax = axes[3]
    update_ax.axhline(1e-3, color="0.4", ls=":", lw=1)
    update_ax.text(0.01, 1e-3, " 1e-3: a common rule of thumb", transform=update_ax.get_yaxis_transform(),
                   va="bottom", fontsize=8, color="0.35")
    lr = series(rows, "lr").get("")
    if lr:
        twin = update_ax.twinx()
        twin.plot(*lr, color="0.75", lw=1, zorder=0)
        twin.set_ylabel("learning rate (grey)", color="0.5", fontsize=8)
        twin.tick_params(labelsize=7, colors="0.5")
    for ax in axes:
        handles, names = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, names, fontsize=7, ncol=2 if len(handles) > 6 else 1)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def summary(rows, stat, at=None):
    """{layer: value} of one statistic at the last sampled step at or before epoch `at` (default: the last)."""
    out = {}
    for layer, (ts, vs) in series(rows, stat).items():
        picks = [v for t, v in zip(ts, vs) if at is None or t <= at + 1e-9]
        if picks:
            out[layer] = picks[-1]
    return out



# ----- filters before and after ----------------------------------------------------------------------
def plot_filters_before_after(before, after, path, max_layers=4, max_kernels=64, title=None):
    """The patch-embedding filters and a few depthwise layers' kernels of two models, one row each.

    `before` is the model as initialised (rebuild it from the run's seed), `after`
    the trained one. Each patch filter is scaled to [0, 1] on its own and each
    kernel divided by its largest magnitude (red positive, blue negative), as in
    filters.png, and the figure says so; side by side, the pictures show what
    training changed. title: the run's settings (plots.run_title).
    """
    import numpy as np
    from matplotlib.figure import Figure

    from .plots import depthwise_convs, kernel_tiles, patch_tiles, picked_layers, save_figure

    convs = depthwise_convs(after)
    picks = picked_layers(len(convs), max_layers)
    fig = Figure(figsize=(3.0 * (1 + len(picks)) + 0.8, 7.0 if title else 6.7), layout="constrained")
    if title:
        fig.suptitle(title, fontsize=9)
    axes = np.atleast_2d(fig.subplots(2, 1 + len(picks)))
    image = None
    for row, (model, when) in enumerate(((before, "before training"), (after, "after training"))):
        patch = backend.to_numpy(model[0].weight.data).astype(np.float64)      # (dim, 3, p, p)
        axes[row, 0].imshow(patch_tiles(patch), interpolation="nearest")
        axes[row, 0].set_title(f"{when}: patch embedding", fontsize=9)
        modules = dict(model.named_modules())
        for ax, i in zip(axes[row, 1:], picks):
            name = convs[i][0]
            k = backend.to_numpy(modules[name].weight.data)[:max_kernels, 0].astype(np.float64)
            image = ax.imshow(kernel_tiles(k), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_title(f"{when}: depthwise {i + 1}/{len(convs)}", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("input channels as R, G, B;\neach filter scaled to its own min..max", fontsize=8)
    for ax in axes[-1, 1:]:
        ax.set_xlabel(f"first {max_kernels} kernels;\neach divided by its largest |weight|", fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes[:, 1:].ravel()), shrink=0.6, ticks=[-1, 0, 1])
        bar.set_label("weight / largest |weight| of its kernel", fontsize=8)
    save_figure(fig, path)
