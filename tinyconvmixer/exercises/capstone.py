"""The capstone: `python -m tinyconvmixer.exercises train` trains ConvMixer on the student's own functions.

Every one of the student's nine functions is plugged into the engine at once
(the same plugs as the checks: dispatch.stand_in), and the smoke training runs
twice from the same start: once on the engine's reference code, once on the
student's. Same initial weights, same batches, same augmentation, same
schedule: where every function is right the two runs compute the same numbers,
so their losses agree step by step (to 1e-6 for the first steps: float32 sums in
another order differ in the last bits, and training lets such differences grow
slowly), and the test accuracies at the end agree. A wrong function shows as the
step where the runs part. `--only NAMES` plugs some exercises alone, to find
which one it is.

Both runs are on the CPU with the reference ops: tinyconvmixer.fast is off for
both sides (a faster variant would step aside only where a student's function
is plugged in, and the two sides would then differ in rounding for that reason).
The settings are the training command's --smoke (train/args.py SMOKE): a tiny
ConvMixer on the bundled sample; by default one epoch of it (40 steps of 64
images, a few minutes on a laptop's CPU, two runs).
"""

import math
import sys
import time

import numpy as np

from .. import functional as F
from .. import nn
from ..data import TrainTransform, get_batch, iterate_batches, load_cifar10, num_batches
from ..engine import Tensor, dispatch
from ..gradcheck.text import wrap
from ..optim import AdamW, triangular_lr
from ..train.args import SMOKE
from ..train.loop import evaluate
from ..train.run import class_balanced_subset
from . import EXERCISES, ExerciseError, find, honesty
from .checker import NotWrittenYet, load

AGREE = 1e-6                   # the losses of the first steps agree to this
COMPARED = 10                  # ... for this many steps


def add_arguments(p):
    p.add_argument("--epochs", type=int, default=1, help="epochs of the smoke training (default: 1)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: all)")
    p.add_argument("--hdim", type=int, default=SMOKE["hdim"], help=f"channels (default: {SMOKE['hdim']})")
    p.add_argument("--depth", type=int, default=SMOKE["depth"], help=f"blocks (default: {SMOKE['depth']})")
    p.add_argument("--batch-size", type=int, default=SMOKE["batch_size"],
                   help=f"training batch size (default: {SMOKE['batch_size']})")
    p.add_argument("--train-subset", type=int, default=None, metavar="N", help="train on N images (default: all "
                   "2,500 of the sample)")
    p.add_argument("--test-subset", type=int, default=None, metavar="N", help="test on N images (default: all 500)")
    p.add_argument("--only", default=None, metavar="NAMES", help="plug in only these exercises, comma-separated "
                   "(default: all nine)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batches and augmentation (default: 0)")


class CapstoneError(ValueError):
    pass


class _Counted:
    """A student's function that counts its calls (which functions the training really uses)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def load_all(folder, names):
    """[(exercise, module with counted functions)] for the exercises to plug in."""
    modules = []
    for exercise in names:
        path = folder / exercise.file
        if not path.is_file():
            raise CapstoneError(f"{path} is missing: the capstone plugs in {exercise.name} (leave it out with --only)")
        try:
            honesty.check_source(path)
            module = load(path, exercise)
            honesty.check_module(module, path)
        except honesty.Refused as exc:
            raise CapstoneError(str(exc)) from None
        except Exception as exc:                    # noqa: BLE001  (the student's file may raise anything)
            raise CapstoneError(f"{path.name} does not load: {type(exc).__name__}: {exc}") from None
        for name in exercise.functions:
            setattr(module, name, _Counted(getattr(module, name)))
        modules.append((exercise, module))
    return modules


def _settings(args):
    for name in ("epochs", "hdim", "depth", "batch_size"):
        if getattr(args, name) < 1:
            raise CapstoneError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("steps", "train_subset", "test_subset"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CapstoneError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return dict(hdim=args.hdim, depth=args.depth, kernel_size=SMOKE["kernel_size"], patch_size=SMOKE["patch_size"],
                epochs=args.epochs, batch_size=args.batch_size, lr_max=SMOKE["lr_max"], wd=0.005,
                ra_n=SMOKE["ra_n"], ra_m=SMOKE["ra_m"], seed=args.seed)


def train(data, s, steps, plugs=()):
    """One run: (the loss of every step, the test accuracy in %). plugs: dispatch.stand_in pairs."""
    (train_x, train_y), (test_x, test_y) = data
    nn.init.manual_seed(s["seed"])
    model = nn.ConvMixer(s["hdim"], s["depth"], kernel_size=s["kernel_size"], patch_size=s["patch_size"],
                         n_classes=10)
    optimizer = AdamW(model.parameters(), lr=s["lr_max"], weight_decay=s["wd"])
    augment = TrainTransform(ra_n=s["ra_n"], ra_m=s["ra_m"])
    n_batches = num_batches(len(train_y), s["batch_size"])
    losses = []
    with dispatch.reference_only(), dispatch.stand_in(*plugs):
        for epoch in range(s["epochs"]):
            model.train()
            order = iterate_batches(len(train_y), s["batch_size"], np.random.default_rng([s["seed"], epoch]))
            for i, idx in enumerate(order):
                if len(losses) == steps:
                    break
                x, y = get_batch(train_x, train_y, idx, "cpu")
                x = Tensor(augment(x, np.random.default_rng([s["seed"], epoch, i])))
                model.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.lr = triangular_lr(epoch + (i + 1) / n_batches, s["epochs"], s["lr_max"])
                optimizer.step()
                losses.append(float(loss.item()))
                if not math.isfinite(losses[-1]):
                    return losses, math.nan
        _, accuracy = evaluate(model, test_x, test_y, 500, "cpu")
    return losses, 100 * accuracy


def parting(reference, yours, compared=COMPARED):
    """The first step (1-based) where the losses differ by more than AGREE within the first
    `compared` steps, or where either is not finite; None if they agree."""
    for k, (a, b) in enumerate(zip(reference, yours)):
        if not (math.isfinite(a) and math.isfinite(b)):
            return k + 1
        if k < compared and abs(a - b) > AGREE:
            return k + 1
    return None


def _loss(x):
    return f"{x:.7f}" if math.isfinite(x) else str(x)


def main(folder, args):
    """The command: returns 0 when the two runs agree, 1 when they part, 2 on bad input."""
    try:
        chosen = EXERCISES
        if args.only:
            chosen = []
            for name in args.only.split(","):
                exercise = find(name.strip())
                if exercise is None:
                    raise CapstoneError(f"unknown exercise {name.strip()!r} in --only: choose from "
                                        f"{', '.join(e.name for e in EXERCISES)}")
                chosen.append(exercise)
        s = _settings(args)
        modules = load_all(folder, chosen)
    except CapstoneError as exc:
        print("\n".join(wrap(str(exc), indent="       ", first="error: ")), file=sys.stderr)
        return 2
    data = load_cifar10("sample", progress=False)
    tr, te = class_balanced_subset(data.train_y, args.train_subset), class_balanced_subset(data.test_y,
                                                                                          args.test_subset)
    data = ((data.train_x[tr], data.train_y[tr]), (data.test_x[te], data.test_y[te]))
    steps = min(args.steps or 10 ** 9, s["epochs"] * num_batches(len(tr), s["batch_size"]))
    for line in wrap(f"the smoke training: ConvMixer {s['hdim']}/{s['depth']}, kernel {s['kernel_size']}, patch "
                     f"{s['patch_size']}, {len(tr):,} training and {len(te):,} test images of the bundled sample, "
                     f"{steps} steps of {s['batch_size']}, twice: on the reference code, then on yours; on the "
                     "CPU, reference ops on both sides (tinyconvmixer.fast off)", indent="  ", first=""):
        print(line)
    which = "all nine of your functions" if len(chosen) == len(EXERCISES) else \
        "your " + ", ".join(e.name for e in chosen)
    print("\n".join(wrap(f"plugged in: {which} ({folder})", indent="  ", first="")))
    start = time.perf_counter()
    reference, ref_acc = train(data, s, steps)
    plugs = [pair for exercise, module in modules for pair in exercise.plug(module)]
    try:
        yours, your_acc = train(data, s, steps, plugs)
    except NotImplementedError as exc:
        if "not written yet" not in str(exc):
            raise
        print("\n".join(wrap(f"{exc}: the capstone needs every function plugged in written (or leave "
                             "that exercise out with --only)", indent="  ", first="stopped: ")))
        return 1
    except (ExerciseError, NotWrittenYet) as exc:
        print("\n".join(wrap(str(exc), indent="  ", first="stopped: your code broke a rule: ")))
        return 1
    seconds = time.perf_counter() - start
    print(f"\n{'step':>5}  {'reference loss':>15}  {'your loss':>15}  {'difference':>11}")
    part = parting(reference, yours)
    shown = sorted(set(range(min(COMPARED, steps))) | set(range(steps - 1, -1, -max(1, steps // 4)))
                   | ({part - 1} if part else set()))
    previous = -1
    for k in shown:
        if k >= len(reference) or k >= len(yours):
            break
        if k > previous + 1:
            print(f"{'...':>5}")
        diff = abs(reference[k] - yours[k])
        mark = "  <- the runs part here" if part == k + 1 else ""
        print(f"{k + 1:>5}  {_loss(reference[k]):>15}  {_loss(yours[k]):>15}  {diff:>11.1e}{mark}")
        previous = k
    largest = max(abs(a - b) for a, b in zip(reference[:COMPARED], yours[:COMPARED]))
    print()
    if part is None:
        print(f"the first {min(COMPARED, steps)} steps agree to {AGREE:.0e} (largest difference {largest:.1e})")
    else:
        print("\n".join(wrap(f"the runs part at step {part}: a function you wrote computes something else than "
                             "the engine's; `exercises check` says which, and --only NAMES plugs in some alone",
                             indent="  ", first="")))
    print(f"test accuracy after {steps} steps: reference {ref_acc:.2f}%, yours {your_acc:.2f}%")
    used = [f"{name} {fn.calls:,}" for _, module in modules
            for name, fn in vars(module).items() if isinstance(fn, _Counted)]
    print("\n".join(wrap("calls of your functions in your run: " + ", ".join(used), indent="  ", first="")))
    print(f"({seconds:.0f} s for the two runs)")
    return 0 if part is None else 1
