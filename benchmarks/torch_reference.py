"""The PyTorch reference run: ConvMixer on CIFAR-10 trained by PyTorch, fed by tinyconvmixer's data.

    python benchmarks/torch_reference.py --device gpu --out runs/torch          # the recipe, 25 epochs
    python benchmarks/torch_reference.py --resume runs/torch/last.pt            # continue a stopped run
    python benchmarks/torch_reference.py --device gpu --torchvision-transforms --out runs/torch-tv

This is the recipe of locuslab/convmixer-cifar10 (ConvMixer-256/8, kernel 5,
patch 2, batch 512, AdamW lr 0.05 / weight decay 0.005, RandAugment(2, 12),
flips, a triangular learning rate set before every step, 25 epochs) written
here in PyTorch, with every default taken from `python -m tinyconvmixer.train`
so that, run with the same flags, the engine is the only difference:

* data: the same images (`load_cifar10(--data)`, the same class-balanced
  --train-subset/--test-subset and --val-split as train.py: with --val-split N
  the same N validation images, evaluated after every epoch, choose the best
  epoch; with 0, the default and the paper's recipe, nothing is chosen);
* order and augmentation: the seeding contract of tinyconvmixer/data/loader.py
  (epoch order from default_rng([seed, epoch]), batch b augmented by
  tinyconvmixer's own TrainTransform with default_rng([seed, epoch, b])), run
  with CuPy on the GPU (handed over with torch.from_dlpack, no copy) when CuPy
  is there, else with NumPy (torch.from_numpy);
* initial weights: tinyconvmixer's nn.ConvMixer built after
  nn.init.manual_seed(seed), exactly as train.py builds it, copied in with
  torch_convmixer.load_from_tinyconvmixer;
* the step: cross-entropy, AdamW, lr = triangular_lr(epoch + (i + 1) / batches)
  from tinyconvmixer.optim, optional gradient clipping; evaluation in eval mode;
* the outputs: metrics.csv (the same columns, via tinyconvmixer.train.files.runlog),
  args.json and summary.json in --out.

`first_batch_loss(argv)` gives the loss of the first training batch before
any update; tests/test_torch_reference.py checks that it equals train.py's.

Where the locuslab reference's train.py differs from these defaults (flags
restore it where it matters):

* mixed precision: the reference always trains and evaluates under
  torch.cuda.amp autocast with a GradScaler. tinyconvmixer computes in
  float32, so --no-amp is the default here; --amp is the reference's way.
* gradient clipping: the reference clips to norm 1.0 only when given its
  --clip-norm switch, which its published command leaves off; here
  --clip-norm MAX, off by default like train.py's.
* schedule: the reference puts the breakpoints at epochs*2//5 and epochs*4//5
  (integer division); triangular_lr at epochs*2/5 and epochs*4/5. The same
  for 25 epochs (any multiple of 5).
* TF32: the reference leaves PyTorch's defaults (TF32 convolutions on). Here
  TF32 is off for matmuls and convolutions, as CuPy computes float32;
  --tf32 turns it on.
* data: the reference shuffles with torch's RNG and augments PIL images with
  torchvision's transforms in DataLoader workers; --torchvision-transforms does
  that here (a second row; it needs torchvision), still in train.py's order,
  with torch's RNG seeded per batch from (seed, epoch, batch).
* evaluation runs in batches of 1000 (train.py's --eval-batch-size), not 512:
  in eval mode that changes nothing but rounding.

Runs longer than one sitting (the device machines stop a command after 10
minutes): --time-limit SECONDS ends the run cleanly after the last epoch that
fits (exit code 3), and --resume OUT/last.pt continues at the next epoch with
the saved settings. last.pt (model, optimizer, GradScaler, finished epochs,
metrics so far) is written atomically after every epoch.

Exit codes: 0 done, 1 the loss became NaN/inf, 2 bad input (data, device,
checkpoint, arguments, torchvision missing), 3 stopped by --time-limit (resume
to continue), 130 interrupted with Ctrl-C (the last finished epoch is saved).
"""

import argparse
import dataclasses
import functools
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)                           # torch_convmixer
if REPO not in sys.path:
    sys.path.insert(1, REPO)                       # tinyconvmixer, also when not installed

import torch                                                         # noqa: E402
import torch.nn.functional as TF                                     # noqa: E402

import tinyconvmixer                                                 # noqa: E402
from tinyconvmixer import nn                                        # noqa: E402
from tinyconvmixer.engine import backend                             # noqa: E402
from tinyconvmixer.train import args as tiny_args, run as tiny_run   # noqa: E402
from tinyconvmixer.util.atomic import atomic_write                   # noqa: E402
from tinyconvmixer.data import (CIFAR10_MEAN, CIFAR10_STD, DataError, TestTransform,  # noqa: E402
                                get_batch, iterate_batches, load_cifar10)
from tinyconvmixer.optim import triangular_lr                        # noqa: E402
from tinyconvmixer.train.files.runlog import (ProgressBar, epoch_line, make_row, short_number,  # noqa: E402
                                              significant, write_json, write_metrics)
from torch_convmixer import load_from_tinyconvmixer, torch_convmixer  # noqa: E402

DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg.tar.gz"))
CHECKPOINT_FORMAT = "tinyconvmixer-torch-reference"
# Settings that --resume takes from the checkpoint unless given on the command line.
NOT_RESUMED = ("resume", "out", "device", "time_limit", "workers")
EXIT_TIME_LIMIT = 3
STARTED = time.perf_counter()                      # --time-limit counts from here


class UsageError(RuntimeError):
    """Bad input: a device, checkpoint or package this run cannot have (exit code 2)."""


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


# ----- command line -------------------------------------------------------------------------
def build_parser():
    """The options of tinyconvmixer.train that make sense here, with its defaults, and a few more."""
    ours = vars(tiny_args.build_parser().parse_args([]))   # train.py's defaults: the same recipe
    p = argparse.ArgumentParser(prog="python benchmarks/torch_reference.py",
                                description="Train the PyTorch ConvMixer on tinyconvmixer's data pipeline "
                                            "(the reference run beside python -m tinyconvmixer.train).")
    a = p.add_argument
    a("--hdim", type=int, default=ours["hdim"], help="channels (the ConvMixer 'dim')")
    a("--depth", type=int, default=ours["depth"], help="number of ConvMixer blocks")
    a("--kernel-size", type=int, default=ours["kernel_size"], help="depthwise kernel size")
    a("--patch-size", type=int, default=ours["patch_size"], help="patch size of the embedding")
    a("--epochs", type=int, default=ours["epochs"])
    a("--batch-size", type=int, default=ours["batch_size"])
    a("--eval-batch-size", type=int, default=ours["eval_batch_size"])
    a("--lr-max", type=float, default=ours["lr_max"], help="peak of the triangular schedule")
    a("--wd", type=float, default=ours["wd"], help="AdamW weight decay")
    a("--clip-norm", type=float, default=ours["clip_norm"], metavar="MAX",
      help="clip the gradient norm (off by default, as in tinyconvmixer.train; the reference's switch used 1.0)")
    a("--amp", action=argparse.BooleanOptionalAction, default=False,
      help="mixed precision: autocast + GradScaler as the reference does (default off: tinyconvmixer "
           "computes in float32)")
    a("--tf32", action="store_true", help="allow TF32 in matmuls and convolutions (default: full float32)")
    a("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms (the reference does not)")
    a("--ra-n", type=int, default=ours["ra_n"], help="RandAugment: operations per image")
    a("--ra-m", type=int, default=ours["ra_m"], help="RandAugment: magnitude")
    a("--scale", type=float, default=ours["scale"], help="random-resized-crop minimum scale (1.0: no crop)")
    a("--jitter", type=float, default=ours["jitter"], help="colour jitter strength")
    a("--reprob", type=float, default=ours["reprob"], help="random-erasing probability")
    a("--torchvision-transforms", action="store_true",
      help="augment with torchvision's transforms on PIL images instead of tinyconvmixer's (needs torchvision)")
    a("--workers", type=int, default=min(8, os.cpu_count() or 1),
      help="DataLoader worker processes for --torchvision-transforms")
    a("--device", default="auto", choices=["auto", "cpu", "gpu"], help="gpu means CUDA")
    a("--data", default=DEFAULT_DATA, metavar="PATH",
      help='CIFAR-10 folder or archive, or "sample" (default: ../shared/data/cifar10-jpeg.tar.gz '
           "beside the repository)")
    a("--no-download", action="store_true", help="never download CIFAR-10")
    a("--train-subset", type=int, default=None, metavar="N", help="train on a fixed class-balanced subset")
    a("--test-subset", type=int, default=None, metavar="N", help="test on a fixed class-balanced subset")
    a("--val-split", type=int, default=ours["val_split"], metavar="N",
      help="hold out N training images as a validation set, as tinyconvmixer.train does (the same images); "
           "the best epoch is chosen by it. 0: no validation set, nothing chosen (the paper's recipe)")
    a("--seed", type=int, default=ours["seed"])
    a("--out", default=None, metavar="DIR", help="run folder (default runs/torch-YYYYmmdd-HHMMSS)")
    a("--resume", default=None, metavar="CHECKPOINT", help="continue from a last.pt, at the next epoch")
    a("--time-limit", type=float, default=None, metavar="SECONDS",
      help="stop after the last epoch that fits in this many seconds from the start (exit code 3)")
    return p


def parse_args(argv=None):
    """Parse the command line; returns (args, checkpoint or None). As train.py: with --resume the
    checkpoint's settings are the defaults, and anything given on the command line wins."""
    parser = build_parser()
    args = parser.parse_args(argv)
    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        saved = {k: v for k, v in checkpoint["args"].items() if k not in NOT_RESUMED}
        parser.set_defaults(**saved)
        args = parser.parse_args(argv)
    tiny_args.check_args(parser, args)             # the same checks as train.py, the same messages
    if args.workers < 0:
        parser.error(f"--workers must be at least 0, got {args.workers}")
    return args, checkpoint


# ----- devices --------------------------------------------------------------------------------
def resolve_device(name):
    """'cpu' or 'cuda' for torch; gpu means CUDA, auto takes it when there is one."""
    if name == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if name == "gpu":
        raise UsageError(f"--device gpu, but torch {torch.__version__} sees no CUDA GPU "
                         f"(built for CUDA {torch.version.cuda}); use --device cpu")
    return "cpu"


def set_precision(tf32, cudnn_benchmark):
    """TF32 off unless asked for (PyTorch's default allows it in convolutions)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def to_torch(array, device):
    """A NumPy or CuPy array as a torch tensor on `device` (CuPy via DLPack, without a copy)."""
    if backend.device_of(array) == "gpu":
        return torch.from_dlpack(array).to(device)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name(torch.cuda.current_device())
    return platform.processor() or platform.machine() or "CPU"


# ----- batches ---------------------------------------------------------------------------------
class TinyBatches:
    """tinyconvmixer's pipeline: train.py's order and TrainTransform, batches handed to torch.

    augment_device "gpu" gathers and augments each batch with CuPy (as train.py
    does on the GPU); "cpu" with NumPy.
    """

    def __init__(self, images, labels, args, device, augment_device):
        self.images, self.labels, self.args = images, labels, args
        self.device, self.augment_device = device, augment_device
        self.transform = tiny_args.train_transform(args)

    def __call__(self, epoch):
        """Yield (batch index, x float32 (N, 3, 32, 32), y int64 (N,)) as torch tensors on the device."""
        seed, n = self.args.seed, len(self.labels)
        order = iterate_batches(n, self.args.batch_size, np.random.default_rng([seed, epoch]))
        for i, idx in enumerate(order):
            x, y = get_batch(self.images, self.labels, idx, self.augment_device)
            x = self.transform(x, np.random.default_rng([seed, epoch, i]))
            yield i, to_torch(x, self.device), to_torch(y, self.device)


def import_torchvision_transforms():
    """torchvision.transforms, or a UsageError that says what to do."""
    try:
        import torchvision
        from torchvision import transforms
    except ImportError as exc:
        raise UsageError(
            f"--torchvision-transforms needs torchvision, which cannot be imported here ({exc}). "
            f"Install the torchvision release built for torch {torch.__version__}, or leave out "
            "--torchvision-transforms to augment with tinyconvmixer's own transforms (the main "
            "comparison row).") from exc
    return torchvision, transforms


def torchvision_transform(args, transforms):
    """The reference's training transform, in its order, with this run's settings."""
    return transforms.Compose([
        transforms.RandomResizedCrop(32, scale=(args.scale, 1.0), ratio=(1.0, 1.0)),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.RandAugment(num_ops=args.ra_n, magnitude=args.ra_m),
        transforms.ColorJitter(args.jitter, args.jitter, args.jitter),
        transforms.ToTensor(),
        transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        transforms.RandomErasing(p=args.reprob),
    ])


def batch_seed(seed, epoch, batch):
    """A torch seed for one batch, from the same (seed, epoch, batch) as tinyconvmixer's generator."""
    return int(np.random.default_rng([seed, epoch, batch]).integers(2 ** 62))


class TorchvisionBatchSet(torch.utils.data.Dataset):
    """Whole batches: item (epoch, batch, indices) -> (x, y), each image through `transform` as PIL.

    torch's RNG (which torchvision's transforms draw from) is seeded per batch,
    so the batches do not depend on which worker makes them, or on resuming.
    """

    def __init__(self, images, labels, transform, seed):
        self.images, self.labels, self.transform, self.seed = images, labels, transform, seed

    def __getitem__(self, key):
        from PIL import Image
        epoch, batch, idx = key
        torch.manual_seed(batch_seed(self.seed, epoch, batch))
        x = torch.stack([self.transform(Image.fromarray(self.images[j])) for j in idx])
        return x, torch.from_numpy(self.labels[idx])


class TorchvisionBatches:
    """The reference's augmentation (torchvision on PIL images, in DataLoader workers), train.py's order."""

    def __init__(self, images, labels, args, device, transforms):
        self.args, self.device, self.n = args, device, len(labels)
        self.dataset = TorchvisionBatchSet(images, labels, torchvision_transform(args, transforms), args.seed)

    def __call__(self, epoch):
        order = iterate_batches(self.n, self.args.batch_size, np.random.default_rng([self.args.seed, epoch]))
        keys = [(epoch, i, idx) for i, idx in enumerate(order)]
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=None, sampler=keys,
                                             num_workers=self.args.workers,
                                             pin_memory=self.device == "cuda")
        for i, (x, y) in enumerate(loader):
            yield i, x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


# ----- the run ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Progress:
    """Where a run stands, at epoch granularity; saved in last.pt."""
    epoch: int = 0                 # epochs finished
    best_val_acc: float = -1.0     # as train.py: the best epoch by validation accuracy (none without one)
    best_epoch: int = 0
    total_seconds: float = 0.0
    history: list = dataclasses.field(default_factory=list)   # the metrics.csv rows

    def finish_epoch(self, row):
        self.history.append(row)
        self.total_seconds += row["seconds"]
        if row.get("val_acc") is not None and row["val_acc"] > self.best_val_acc:
            self.best_val_acc, self.best_epoch = row["val_acc"], row["epoch"]
        self.epoch += 1


class Run:
    """Data, batches, the torch model with tinyconvmixer's initial weights, optimizer, scaler."""

    def __init__(self, args, checkpoint=None):
        self.args = args
        self.device = resolve_device(args.device)
        set_precision(args.tf32, args.cudnn_benchmark)
        self.torchvision = transforms = None
        if args.torchvision_transforms:                 # fail before the data is loaded
            self.torchvision, transforms = import_torchvision_transforms()
        if args.data == DEFAULT_DATA and not os.path.exists(DEFAULT_DATA):
            raise UsageError(f"the default data {DEFAULT_DATA} (../shared/data/cifar10-jpeg.tar.gz beside the "
                             "repository) is not there: give --data PATH, the same as the tinyconvmixer run's")
        data = load_cifar10(args.data, download=not args.no_download)
        try:
            tr, va, te = tiny_run.run_split(data, args)      # train.py's images, validation set included
        except tiny_run.SettingsError as exc:
            raise UsageError(str(exc)) from exc
        self.train, self.test = (data.train_x[tr], data.train_y[tr]), (data.test_x[te], data.test_y[te])
        self.val = (data.train_x[va], data.train_y[va]) if len(va) else None
        self.data_source, self.n_classes = data.source, len(data.classes)
        self.n_batches = math.ceil(len(tr) / args.batch_size)
        # Augment where tinyconvmixer would: with CuPy when training on the GPU and CuPy works.
        self.augment_device = "gpu" if self.device == "cuda" and backend.gpu_available() else "cpu"
        if args.torchvision_transforms:
            self.batches = TorchvisionBatches(*self.train, args, self.device, transforms)
            self.augment_device = "cpu"
        else:
            self.batches = TinyBatches(*self.train, args, self.device, self.augment_device)

        # The initial weights: tinyconvmixer's, drawn exactly as train.py draws them.
        nn.init.manual_seed(args.seed)
        ours = nn.ConvMixer(args.hdim, args.depth, kernel_size=args.kernel_size,
                            patch_size=args.patch_size, n_classes=self.n_classes)
        self.config = ours.config
        self.model = torch_convmixer(args.hdim, args.depth, kernel_size=args.kernel_size,
                                     patch_size=args.patch_size, n_classes=self.n_classes)
        load_from_tinyconvmixer(self.model, ours.state_dict())
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr_max, weight_decay=args.wd)
        # float16 + loss scaling on CUDA as the reference; bfloat16 (no scaling needed) on the CPU.
        self.amp_dtype = torch.float16 if self.device == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=args.amp and self.device == "cuda")
        self.progress = Progress()
        if checkpoint is not None:
            self.restore(checkpoint)
        self.out = args.out or (os.path.dirname(os.path.abspath(args.resume)) if args.resume
                                else tiny_run.new_run_folder(prefix="torch-"))

    def path(self, name):
        return os.path.join(self.out, name)

    def autocast(self):
        return torch.autocast(self.device, dtype=self.amp_dtype, enabled=self.args.amp)

    def forward(self, x, y):
        """(logits, mean cross-entropy) of one batch, under autocast with --amp."""
        with self.autocast():
            logits = self.model(x)
            loss = TF.cross_entropy(logits, y)
        return logits, loss

    def step(self, x, y, lr):
        """One training step at learning rate lr; returns (loss, number correct). Raises on NaN/inf."""
        self.optimizer.zero_grad(set_to_none=True)
        logits, loss = self.forward(x, y)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(f"the training loss became {value}")
        self.scaler.scale(loss).backward()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.args.clip_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value, int((logits.argmax(dim=1) == y).sum().item())

    def train_one_epoch(self, epoch):
        """Train on all batches of `epoch`; returns (mean loss, accuracy, images, seconds)."""
        self.model.train()
        bar = ProgressBar(f"epoch {epoch + 1}/{self.args.epochs}", self.n_batches)
        loss_sum, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        for i, x, y in self.batches(epoch):
            loss, right = self.step(x, y, triangular_lr(epoch + (i + 1) / self.n_batches,
                                                        self.args.epochs, self.args.lr_max))
            loss_sum, correct, seen = loss_sum + loss * len(y), correct + right, seen + len(y)
            seconds = time.perf_counter() - start
            bar.update(i + 1, loss_sum / seen, 100 * correct / seen, seen / seconds, force=i + 1 == self.n_batches)
        synchronize(self.device)
        bar.close()
        return loss_sum / seen, correct / seen, seen, time.perf_counter() - start

    def evaluate(self, images=None, labels=None):
        """Mean loss and accuracy on the test set (or the images given) in eval mode, normalised as
        train.py does."""
        if images is None:
            images, labels = self.test
        bs, transform = self.args.eval_batch_size, TestTransform()
        self.model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(labels), bs):
                x = to_torch(transform(backend.to_device(images[start:start + bs], self.augment_device)),
                             self.device)
                y = torch.from_numpy(labels[start:start + bs]).to(self.device)
                logits, loss = self.forward(x, y)
                value = loss.item()
                if not math.isfinite(value):
                    raise NonFiniteLoss(f"the test loss became {value}")
                loss_sum += value * len(y)
                correct += int((logits.argmax(dim=1) == y).sum().item())
        return loss_sum / len(labels), correct / len(labels)

    @property
    def lr(self):
        return self.optimizer.param_groups[0]["lr"]

    # checkpoints
    def save(self, name="last.pt"):
        save_checkpoint(self.path(name), dict(
            format=CHECKPOINT_FORMAT, model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(), progress=dataclasses.asdict(self.progress),
            args=vars(self.args), config=self.config))

    def restore(self, checkpoint):
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            if checkpoint.get("scaler"):
                self.scaler.load_state_dict(checkpoint["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UsageError(f"cannot resume from {self.args.resume}: it does not fit this model "
                             f"({self.config}):\n{exc}") from exc
        saved = dict(checkpoint["progress"])
        if "best_acc" in saved:                   # a last.pt from before the validation split: none chosen
            saved.pop("best_acc")
            for row in saved.get("history", []):
                row.setdefault("val_loss", None)
                row.setdefault("val_acc", None)
        self.progress = Progress(**saved)


def save_checkpoint(path, state):
    """torch.save, atomically (tinyconvmixer/atomic.py): never half a file."""
    atomic_write(path, functools.partial(torch.save, state))


def load_checkpoint(path):
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # unpickling errors of many kinds
        raise UsageError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path} is not a checkpoint of benchmarks/torch_reference.py "
                         "(tinyconvmixer's own last.npz resumes with python -m tinyconvmixer.train)")
    return state


# ----- what the tests and the script share ------------------------------------------------------
def first_batch_loss(argv):
    """The loss of the first training batch (epoch 0, batch 0) before any update, as a float.

    Built exactly as `main` builds the run: same data, weights and batch, same
    forward (in train mode, under autocast with --amp).
    """
    args, _ = parse_args(argv)
    run = Run(args)
    _, x, y = next(iter(run.batches(0)))
    run.model.train()
    with torch.no_grad():
        return run.forward(x, y)[1].item()


# ----- the epoch loop ------------------------------------------------------------------------------
def fit(run):
    """Train, evaluate, log and checkpoint epoch by epoch. Returns the exit code."""
    args, p = run.args, run.progress
    this_process = []                                    # epoch seconds measured in this process
    while p.epoch < args.epochs:
        if args.time_limit and this_process:
            elapsed = time.perf_counter() - STARTED
            if elapsed + 1.1 * max(this_process) > args.time_limit:
                longest = short_number(max(this_process))
                print(f"stopping after epoch {p.epoch}/{args.epochs}: another epoch (~{longest} s) "
                      f"would pass --time-limit {args.time_limit:g} s ({elapsed:.0f} s used). Continue with: "
                      f"python benchmarks/torch_reference.py --resume {run.path('last.pt')}", flush=True)
                return EXIT_TIME_LIMIT
        epoch_start = time.perf_counter()
        train_loss, train_acc, seen, train_seconds = run.train_one_epoch(p.epoch)
        val_loss, val_acc = run.evaluate(*run.val) if run.val is not None else (None, None)
        test_loss, test_acc = run.evaluate()
        synchronize(run.device)
        row = make_row(p.epoch + 1, train_loss, train_acc, test_loss, test_acc, run.lr,
                       time.perf_counter() - epoch_start, seen / train_seconds,   # accuracy in percent
                       val_loss=val_loss, val_acc=val_acc)
        p.finish_epoch(row)
        this_process.append(row["seconds"])
        print(epoch_line(row, args.epochs), flush=True)
        write_metrics(run.path("metrics.csv"), p.history)
        run.save("last.pt")
    return finish(run)


def versions(run):
    v = dict(torch=torch.__version__, cuda=torch.version.cuda,
             cudnn=torch.backends.cudnn.version() if run.device == "cuda" else None,
             tinyconvmixer=tinyconvmixer.__version__, python=platform.python_version(), numpy=np.__version__)
    if run.augment_device == "gpu":
        v["cupy"] = backend.xp_for("gpu").__version__
    if run.torchvision is not None:
        v["torchvision"] = run.torchvision.__version__
    return v


def finish(run):
    """summary.json once all epochs are done."""
    p, args = run.progress, run.args
    best = None
    if p.best_epoch:                                     # (only with a validation set, as in train.py)
        row = p.history[p.best_epoch - 1]
        best = dict(chosen_by="val_acc", epoch=p.best_epoch, val_acc=row["val_acc"], test_acc=row["test_acc"])
    summary = dict(
        engine="pytorch", final_test_acc=p.history[-1]["test_acc"], final_val_acc=p.history[-1]["val_acc"],
        best=best, epochs=args.epochs, total_seconds=significant(p.total_seconds),
        median_epoch_seconds=significant(statistics.median(r["seconds"] for r in p.history)),
        median_images_per_s=significant(statistics.median(r["images_per_s"] for r in p.history)),
        params=sum(t.numel() for t in run.model.parameters()), config=run.config,
        device=run.device, device_name=device_name(run.device), augment_device=run.augment_device,
        transforms="torchvision" if args.torchvision_transforms else "tinyconvmixer",
        amp=args.amp, tf32=args.tf32, clip_norm=args.clip_norm,
        train_images=len(run.train[1]), val_images=0 if run.val is None else len(run.val[1]),
        test_images=len(run.test[1]), val_split=args.val_split, data=run.data_source,
        versions=versions(run))
    write_json(run.path("summary.json"), summary)
    chosen = (f"; best epoch {p.best_epoch} by validation accuracy ({best['val_acc']:.2f}%, test "
              f"{best['test_acc']:.2f}%)" if best else "")
    print(f"done: final test accuracy {summary['final_test_acc']:.2f}%{chosen}, median epoch "
          f"{short_number(summary['median_epoch_seconds'])} s; files in {run.out}", flush=True)
    return 0


def main(argv=None):
    try:
        args, checkpoint = parse_args(argv)
        run = Run(args, checkpoint)
        os.makedirs(run.out, exist_ok=True)
    except (UsageError, DataError, backend.DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(run.path("args.json"), dict(vars(args), resolved_device=run.device,
                                           augment_device=run.augment_device))
    print(f"PyTorch ConvMixer {run.config} on {run.device} ({device_name(run.device)}), augmenting with "
          f"{'torchvision' if args.torchvision_transforms else 'tinyconvmixer'} on {run.augment_device}; "
          f"amp {args.amp}, tf32 {args.tf32}; {len(run.train[1])} train / "
          f"{'' if run.val is None else f'{len(run.val[1])} validation / '}{len(run.test[1])} test images; "
          f"{'resuming after epoch %d; ' % run.progress.epoch if checkpoint else ''}writing to {run.out}",
          flush=True)
    try:
        return fit(run)
    except NonFiniteLoss as exc:
        kept = (f"the last finished epoch is in {run.path('last.pt')}" if run.progress.epoch
                else "no epoch had finished")
        print(f"\nerror: {exc} at epoch {run.progress.epoch + 1} (lr {run.lr:.3g}); stopping ({kept}). "
              "Try a lower --lr-max or --clip-norm.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if run.progress.epoch:
            kept = (f"the last finished epoch ({run.progress.epoch}) is in {run.path('last.pt')}. Continue "
                    f"with: python benchmarks/torch_reference.py --resume {run.path('last.pt')}")
        else:
            kept = "no epoch had finished, so there is no checkpoint yet"
        print(f"\ninterrupted during epoch {run.progress.epoch + 1}; {kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
