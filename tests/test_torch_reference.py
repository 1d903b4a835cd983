"""benchmarks/torch_reference.py and benchmarks/compare_runs.py on tiny CPU runs. Skips without torch.

The central check: with the same settings, the PyTorch reference and
tinyconvmixer.train see the same first batch with the same weights, so their
first losses agree to float32 rounding, and whole tiny runs give the same
metrics: the engine is the only difference.
"""

import importlib.util
import json
import os
import shutil
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import compare_runs                                     # noqa: E402
import torch_reference as ref                           # noqa: E402
from trainkit import FastClock                          # noqa: E402
from tinyconvmixer import Tensor, train                 # noqa: E402
from tinyconvmixer.train import args as train_args, loop, run as run_module  # noqa: E402
from tinyconvmixer.data import get_batch, iterate_batches, load_cifar10  # noqa: E402
from tinyconvmixer.train.files.runlog import METRIC_FIELDS, read_metrics  # noqa: E402

TINY = ["--hdim", "16", "--depth", "1", "--epochs", "2", "--train-subset", "128", "--test-subset", "64",
        "--val-split", "60", "--batch-size", "64", "--data", "sample", "--device", "cpu"]
COMPARED = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr")   # all but timings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished tiny runs with the same settings: (tinyconvmixer folder, PyTorch folder)."""
    root = tmp_path_factory.mktemp("runs")
    ours, theirs = str(root / "ours"), str(root / "torch")
    assert train.main(TINY + ["--out", ours]) == 0
    assert ref.main(TINY + ["--out", theirs]) == 0
    return ours, theirs


def header(path):
    with open(path) as f:
        return f.readline().strip().split(",")


def test_defaults_are_train_py_defaults():
    """Run with no flags, both scripts train the same recipe; only the engine differs."""
    ours, _ = train_args.parse_args([])
    theirs, _ = ref.parse_args([])
    shared = set(vars(ours)) & set(vars(theirs)) - {"data", "out", "resume", "device"}
    assert {"hdim", "epochs", "lr_max", "wd", "clip_norm", "ra_n", "ra_m", "scale", "seed"} <= shared
    assert {k: getattr(theirs, k) for k in shared} == {k: getattr(ours, k) for k in shared}
    assert theirs.amp is False and theirs.tf32 is False and theirs.torchvision_transforms is False


@pytest.mark.parametrize("augment", [[], ["--scale", "0.7", "--jitter", "0.3", "--reprob", "0.5"]])
def test_first_batch_loss_equals_tinyconvmixer(augment, device, tmp_path):
    """On the GPU: CuPy augments for both, handed to torch through DLPack; TF32 off on both."""
    if device == "gpu" and not torch.cuda.is_available():
        pytest.skip("CuPy sees a GPU but this torch has no CUDA")
    argv = TINY + augment + ["--device", device]
    args, _ = train_args.parse_args(argv + ["--out", str(tmp_path)])
    run = run_module.Run(args, None)                    # the command's own data, subset, weights, transform
    idx = next(iterate_batches(len(run.train[1]), args.batch_size, np.random.default_rng([args.seed, 0])))
    x, y = get_batch(*run.train, idx, run.device)
    x = Tensor(run.augment(x, np.random.default_rng([args.seed, 0, 0])))
    ours = float(loop.forward_backward(run.model, x, y)[0])    # a 0-d array on the device
    theirs = ref.first_batch_loss(argv)
    assert abs(ours - theirs) < 1e-5, (ours, theirs)


def test_metrics_csv_and_summary(runs):
    ours, theirs = runs
    assert header(os.path.join(theirs, "metrics.csv")) == header(os.path.join(ours, "metrics.csv")) == METRIC_FIELDS
    rows = read_metrics(os.path.join(theirs, "metrics.csv"))
    assert [r["epoch"] for r in rows] == [1, 2]
    with open(os.path.join(theirs, "args.json")) as f:
        args = json.load(f)
    assert args["epochs"] == 2 and args["resolved_device"] == "cpu" and args["amp"] is False
    with open(os.path.join(theirs, "summary.json")) as f:
        summary = json.load(f)
    assert summary["engine"] == "pytorch"
    assert summary["final_test_acc"] == rows[-1]["test_acc"] and summary["val_images"] == 60
    best = max(rows, key=lambda r: (r["val_acc"], -r["epoch"]))            # chosen by validation accuracy
    assert summary["best"] == dict(chosen_by="val_acc", epoch=best["epoch"], val_acc=best["val_acc"],
                                   test_acc=best["test_acc"])
    assert summary["median_epoch_seconds"] > 0 and summary["median_images_per_s"] > 0 and summary["device_name"]
    assert all(r["seconds"] > 0 and r["images_per_s"] > 0 for r in rows)
    assert summary["versions"]["torch"] == torch.__version__


def test_whole_tiny_runs_agree(runs):
    """Same data, order, augmentation, weights, optimiser and schedule: the same numbers."""
    ours, theirs = (read_metrics(os.path.join(d, "metrics.csv")) for d in runs)
    for a, b in zip(ours, theirs):
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (key, a, b)


def test_time_limit_then_resume_continues_exactly(runs, tmp_path, capsys):
    out = str(tmp_path / "split")
    assert ref.main(TINY + ["--out", out, "--time-limit", "0.001"]) == ref.EXIT_TIME_LIMIT
    assert len(read_metrics(os.path.join(out, "metrics.csv"))) == 1
    assert "--resume" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(out, "summary.json"))
    assert ref.main(["--resume", os.path.join(out, "last.pt"), "--device", "cpu"]) == 0   # settings from it
    split = read_metrics(os.path.join(out, "metrics.csv"))
    whole = read_metrics(os.path.join(runs[1], "metrics.csv"))
    assert len(split) == 2
    for a, b in zip(split, whole):
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], rel=1e-6), key


@pytest.mark.parametrize("argv,message", [(["--kernel-size", "4"], "--kernel-size must be odd"),
                                          (["--scale", "0"], "scale must be in (0, 1]"),
                                          (["--wd", "-1"], "--wd must be a finite number >= 0"),
                                          (["--clip-norm", "0"], "--clip-norm must be a finite number > 0"),
                                          (["--workers", "-1"], "--workers must be at least 0")])
def test_bad_argument_values_are_argparse_errors_as_in_train_py(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        ref.parse_args(TINY + argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ref.save_checkpoint(str(path), {"format": ref.CHECKPOINT_FORMAT, "epoch": 1})
    before = path.read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as out:
            out.write(b"half a file")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ref.save_checkpoint(str(path), {"format": ref.CHECKPOINT_FORMAT, "epoch": 2})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.pt"]
    assert ref.load_checkpoint(str(path))["epoch"] == 1


def test_default_run_folder_comes_from_train_py(monkeypatch):
    prefixes = []
    monkeypatch.setattr(ref.tiny_run, "new_run_folder", lambda root="runs", prefix="": prefixes.append(prefix) or "x")
    args, _ = ref.parse_args(TINY)
    assert ref.Run(args).out == "x" and prefixes == ["torch-"]


def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    assert ref.main(["--resume", str(bad), "--device", "cpu"]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err


# ----- compare_runs ------------------------------------------------------------------------------
def test_compare_runs_writes_figure_and_summary(runs, tmp_path, capsys):
    ours, theirs = runs
    out = str(tmp_path / "results")
    assert compare_runs.main([ours, theirs, "--out", out]) == 0
    for name in ("comparison.png", "filters.png", "summary.json", "table.md", "tinyconvmixer_metrics.csv",
                 "tinyconvmixer_args.json", "pytorch_metrics.csv", "pytorch_args.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    o, t = (read_metrics(os.path.join(d, "metrics.csv")) for d in runs)
    assert summary["final_test_acc"] == {"tinyconvmixer": o[-1]["test_acc"], "pytorch": t[-1]["test_acc"]}
    assert summary["best_by_validation"]["pytorch"]["epoch"] == max(t, key=lambda r: (r["val_acc"], -r["epoch"]))["epoch"]
    medians = summary["median_epoch_seconds"]
    assert summary["epoch_time_ratio"] == pytest.approx(medians["tinyconvmixer"] / medians["pytorch"])
    assert summary["gpu"] and summary["versions"]["pytorch"]["torch"] == torch.__version__
    printed = capsys.readouterr().out
    assert "| tinyconvmixer |" in printed and "| pytorch |" in printed


def copy_run(src, dst, **args_changes):
    shutil.copytree(src, dst)
    path = os.path.join(dst, "args.json")
    with open(path) as f:
        args = json.load(f)
    args.update(args_changes)
    with open(path, "w") as f:
        json.dump(args, f)
    return str(dst)


@pytest.mark.parametrize("what", ["more epochs asked for", "no summary", "swapped", "other recipe"])
def test_compare_runs_refuses(what, runs, tmp_path, capsys):
    ours, theirs = runs
    if what == "more epochs asked for":
        argv, message = [ours, copy_run(theirs, tmp_path / "t", epochs=3)], "not finished: 2 of 3 epochs"
    elif what == "no summary":
        bad = copy_run(theirs, tmp_path / "t")
        os.remove(os.path.join(bad, "summary.json"))
        argv, message = [ours, bad], "no summary.json"
    elif what == "swapped":
        argv, message = [theirs, ours], "not a tinyconvmixer run"
    else:
        argv, message = [ours, copy_run(theirs, tmp_path / "t", ra_m=9)], "ra_m"
    out = str(tmp_path / "results")
    assert compare_runs.main(argv + ["--out", out]) == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(out)


# ----- the --torchvision-transforms row ------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_torchvision_missing_is_a_clear_error(capsys):
    assert ref.main(TINY + ["--torchvision-transforms"]) == 2
    err = capsys.readouterr().err
    assert "--torchvision-transforms needs torchvision" in err and "leave out" in err


class _Same:
    """Stands in for a torchvision transform that leaves the image alone."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, img):
        return img


class _Flip(_Same):
    def __call__(self, img):
        from PIL import Image
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if torch.rand(1).item() < 0.5 else img


class _ToTensor(_Same):
    def __call__(self, img):
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)


class _Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

    def __call__(self, x):
        return (x - self.mean) / self.std


class _Compose:
    def __init__(self, steps):
        self.steps = steps

    def __call__(self, img):
        for step in self.steps:
            img = step(img)
        return img


STUB_TRANSFORMS = types.SimpleNamespace(
    Compose=_Compose, RandomResizedCrop=_Same, RandomHorizontalFlip=_Flip, RandAugment=_Same,
    ColorJitter=_Same, ToTensor=_ToTensor, Normalize=_Normalize, RandomErasing=_Same)


def test_torchvision_batches_are_seeded_per_batch(monkeypatch, tmp_path):
    """The plumbing of --torchvision-transforms, with stand-in transforms (torchvision may be missing):
    batches come in the training command's order and do not depend on the number of workers."""
    monkeypatch.setattr(ref, "import_torchvision_transforms",
                        lambda: (types.SimpleNamespace(__version__="stub"), STUB_TRANSFORMS))
    data = load_cifar10("sample")
    images, labels = data.train_x[:96], data.train_y[:96]

    def batches(workers):
        args, _ = ref.parse_args(TINY + ["--batch-size", "40", "--workers", str(workers)])
        return [(i, x.numpy(), y.numpy()) for i, x, y in ref.TorchvisionBatches(
            images, labels, args, "cpu", STUB_TRANSFORMS)(epoch=1)]

    single, parallel = batches(0), batches(2)
    order = list(iterate_batches(96, 40, np.random.default_rng([0, 1])))
    assert [i for i, _, _ in single] == [0, 1, 2] and [len(y) for _, _, y in single] == [40, 40, 16]
    for (_, x, y), idx, (_, x2, y2) in zip(single, order, parallel):
        np.testing.assert_array_equal(y, labels[idx])
        np.testing.assert_array_equal(x, x2)
        assert x.shape == (len(idx), 3, 32, 32) and x.dtype == np.float32
    flipped = np.concatenate([x for _, x, _ in single]) != np.concatenate(
        [ref.TestTransform()(images[idx]) for idx in order])
    assert flipped.any()                              # some images went through the (stand-in) flip

    out = str(tmp_path / "tv")
    assert ref.main(TINY + ["--epochs", "1", "--torchvision-transforms", "--workers", "0", "--out", out]) == 0
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["transforms"] == "torchvision" and summary["versions"]["torchvision"] == "stub"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here")
def test_gpu_without_cuda_is_a_clear_error(capsys):
    assert ref.main(TINY + ["--device", "gpu"]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err


def test_compare_runs_wants_the_float32_row_first(runs, tmp_path, capsys):
    ours, theirs = runs
    amp = copy_run(theirs, tmp_path / "amp", amp=True)
    assert compare_runs.main([ours, amp, "--out", str(tmp_path / "r1")]) == 2
    assert "the main PyTorch row" in capsys.readouterr().err
    assert compare_runs.main([ours, theirs, amp, "--out", str(tmp_path / "r2")]) == 0
    with open(tmp_path / "r2" / "summary.json") as f:
        assert set(json.load(f)["final_test_acc"]) == {"tinyconvmixer", "pytorch", "pytorch-amp"}


def test_the_validation_split_holds_out_the_same_images_as_train_py():
    argv = TINY + ["--val-split", "90", "--train-subset", "100"]
    ours, _ = train_args.parse_args(argv)
    theirs, _ = ref.parse_args(argv)
    a, b = run_module.Run(ours, None), ref.Run(theirs)
    for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    assert len(a.val[1]) == 90


def test_fast_epochs_are_never_written_as_zero(tmp_path, monkeypatch):
    """The issue: on a fast machine the tiny runs' epochs take under 0.05 s, and the summary rounded
    them to one decimal, 0.0. With a clock on which they take a few milliseconds: times and rates
    keep their significant digits."""
    monkeypatch.setattr(ref.time, "perf_counter", FastClock())
    out = str(tmp_path / "fast")
    assert ref.main(TINY + ["--epochs", "1", "--out", out]) == 0
    rows = read_metrics(os.path.join(out, "metrics.csv"))
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert 0 < rows[0]["seconds"] < 0.05 and rows[0]["images_per_s"] > 0
    assert 0 < summary["median_epoch_seconds"] < 0.05 and 0 < summary["total_seconds"] < 0.05
    assert summary["median_images_per_s"] > 0
