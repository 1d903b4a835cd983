"""`python -m tinyconvmixer.train` end to end on tiny settings (CPU, a few seconds each)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyconvmixer.engine import backend
from tinyconvmixer import is_grad_enabled, nn, train
from tinyconvmixer.train import args as train_args, run as run_module
from tinyconvmixer import functional as F
from tinyconvmixer.train.checkpoint import load_checkpoint
from tinyconvmixer.optim import triangular_lr
from tinyconvmixer.train.report.plots import plot_curves, plot_filters
from tinyconvmixer.train.files.runlog import read_metrics, write_json, write_metrics

from trainkit import BATCHES, TINY, resume, rewrite_checkpoint, run, straight_run, without_plots  # noqa: F401


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 2-epoch run, shared by the tests that compare against it."""
    return straight_run(tmp_path_factory)


def test_run_writes_every_file(straight, capsys):
    for name in ("args.json", "metrics.csv", "last.npz", "best.npz", "curves.png", "filters.png", "summary.json"):
        assert (straight / name).is_file(), name
    rows = read_metrics(straight / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                             "lr", "seconds", "images_per_s"]
    assert rows[0]["lr"] == float(f"{triangular_lr(1, 2, 0.05):.6g}") and rows[1]["lr"] == 0.0   # end of epoch
    assert all(0 <= r[k] <= 100 for r in rows for k in ("train_acc", "val_acc", "test_acc"))     # percent
    assert all(r[k] == round(r[k], 4) for r in rows for k in ("train_loss", "val_loss", "test_loss"))
    assert all(r["seconds"] > 0 and r["images_per_s"] > 0 for r in rows)
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["params"] == 682 and summary["device"] == "cpu"
    assert summary["finished"] is True and summary["accuracy_unit"] == "percent"
    assert (summary["train_images"], summary["val_images"], summary["test_images"]) == (240, 50, 100)
    # best.npz: the epoch of the best validation accuracy (the first of equals), with its test accuracy
    best = max(rows, key=lambda r: (r["val_acc"], -r["epoch"]))
    assert summary["best"] == dict(checkpoint="best.npz", chosen_by="val_acc", epoch=best["epoch"],
                                   val_acc=best["val_acc"], test_acc=best["test_acc"])
    assert load_checkpoint(str(straight / "best.npz"))["meta"]["progress"]["epoch"] == best["epoch"]
    assert summary["final_test_acc"] == rows[-1]["test_acc"] and summary["best_note"] is None
    assert json.loads((straight / "args.json").read_text())["hdim"] == 8
    meta = load_checkpoint(str(straight / "last.npz"))["meta"]
    assert meta["progress"]["epoch"] == 2 and meta["config"]["dim"] == 8


def half_written_figure(fig, target, **kwargs):
    """Stands in for Figure.savefig: writes part of the image, then the disk is full."""
    with open(target, "wb") as f:
        f.write(b"half a png")
    raise OSError("disk full")


BROKEN_WRITES = {   # each fails after part of the file has been written
    "metrics.csv": lambda path, history: write_metrics(path, history + [dict(history[0], lr="oops")]),
    "summary.json": lambda path, history: write_json(path, {"epochs": 2, "config": object()}),
    "curves.png": lambda path, history: plot_curves(history, path),
    "filters.png": lambda path, history: plot_filters(nn.ConvMixer(8, 1, kernel_size=3, patch_size=4), path),
}


@pytest.mark.parametrize("name", sorted(BROKEN_WRITES))
def test_run_files_are_written_atomically(straight, tmp_path, monkeypatch, name):
    """A failure while (re)writing a run file keeps its previous version and leaves no temporary file."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", half_written_figure)
    path = tmp_path / name
    path.write_bytes((straight / name).read_bytes())
    with pytest.raises((OSError, ValueError, TypeError)):
        BROKEN_WRITES[name](str(path), read_metrics(straight / "metrics.csv"))
    assert path.read_bytes() == (straight / name).read_bytes()
    assert os.listdir(tmp_path) == [name]


def test_console_output(tmp_path, capsys, monkeypatch):
    without_plots(monkeypatch)
    monkeypatch.delenv("COLUMNS", raising=False)           # a log: 80 columns, whatever the terminal
    assert run("--epochs", "1", "--out", tmp_path) == 0
    out, err = capsys.readouterr()
    assert "epoch 1/1 | train loss" in out and "test loss" in out and "img/s)" in out
    assert "epoch 1/1 [" in err and "img/s" in err and "\r" not in err   # not a terminal: plain lines
    assert "ETA epoch" in err                                           # elapsed time and ETA


def test_progress_bar_redraws_in_place_on_a_terminal(monkeypatch):
    import io
    monkeypatch.setenv("COLUMNS", "100")                   # (the width decides what the line holds)
    from tinyconvmixer.train.files.runlog import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    term = Terminal()
    bar = ProgressBar("epoch 1/2", 10, stream=term, min_interval=0, later_epochs=1, epoch_seconds=100.0)
    bar.update(3, 2.0, 25.0, 100.0)
    bar.update(10, 1.5, 50.0, 120.0)
    bar.close()
    text = term.getvalue()
    assert text.count("\r") >= 3 and "\n" not in text and "10/10 loss 1.5000 acc 50.0%" in text
    assert "ETA epoch 0:00, run 1:40" in text                          # 0 s left + one more epoch of 100 s


def test_progress_bar_eta_is_measured_from_the_batches_done_here(monkeypatch):
    import io
    from tinyconvmixer.train.files import runlog

    clock = iter([0.0, 10.0])
    monkeypatch.setattr(runlog.time, "perf_counter", lambda: next(clock))
    bar = runlog.ProgressBar("e", 10, stream=io.StringIO(), start_done=4, elapsed_before=40.0, later_epochs=2)
    elapsed, epoch_left, run_left = bar.eta(6)           # 2 batches in 10 s here; 4 left
    assert (elapsed, epoch_left, run_left) == (50.0, 20.0, 20.0 + 2 * 70.0)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    without_plots(monkeypatch)
    calls = {"n": 0}
    real = F.cross_entropy

    def poisoned(logits, y):
        calls["n"] += is_grad_enabled()               # count training batches only
        loss = real(logits, y)
        return loss * float("nan") if calls["n"] == BATCHES + 2 and is_grad_enabled() else loss
    monkeypatch.setattr(F, "cross_entropy", poisoned)
    assert run("--out", tmp_path) == 1
    err = capsys.readouterr().err
    assert "the training loss became nan at epoch 2, batch 2" in err
    assert f"the last good checkpoint is '{tmp_path / 'last.npz'}' (after epoch 1)" in err
    assert load_checkpoint(str(tmp_path / "last.npz"))["meta"]["progress"]["epoch"] == 1
    assert len(read_metrics(tmp_path / "metrics.csv")) == 1


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # on the way to inf: expected
def test_absurd_learning_rate_diverges_cleanly(tmp_path, capsys, monkeypatch):
    without_plots(monkeypatch)
    with np.errstate(all="ignore"):
        assert run("--lr-max", "1e30", "--out", tmp_path) == 1
    assert "the training loss became" in capsys.readouterr().err


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU")
def test_gpu_without_cupy_is_a_one_line_error_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tinyconvmixer.train", "--smoke", "--device", "gpu",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: device 'gpu'") and "--device cpu" in lines[0]


def test_bad_checkpoints(straight, tmp_path, capsys):
    assert resume(tmp_path / "missing.npz") == 2
    assert "checkpoint not found: " in capsys.readouterr().err
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert resume(tmp_path / "junk.npz") == 2
    assert "not a valid .npz archive" in capsys.readouterr().err
    # settings saying one model, arrays of another: the message names the config, the keys and the shapes
    rewrite_checkpoint(straight / "last.npz", tmp_path / "wide.npz", lambda m: m["args"].update(hdim=16))
    assert resume(tmp_path / "wide.npz", "--out", tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "does not fit this model" in err and "'dim': 16" in err and len(err.strip().splitlines()) == 1
    assert "0.weight: checkpoint (8, 3, 4, 4) vs model (16, 3, 4, 4)" in err
    rewrite_checkpoint(straight / "last.npz", tmp_path / "deep.npz", lambda m: m["args"].update(depth=2))
    assert resume(tmp_path / "deep.npz", "--out", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert "missing key(s): 4.0.fn.0.weight" in err and "unexpected key(s): 6.weight, 6.bias" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()   # nothing left of refused runs


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert train.main(["--data", str(tmp_path / "nowhere"), "--no-download", "--device", "cpu",
                       "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err


def test_layered_defaults(straight):
    args, _ = train_args.parse_args([])
    assert (args.hdim, args.depth, args.kernel_size, args.patch_size, args.epochs, args.batch_size) == \
        (256, 8, 5, 2, 25, 512)
    assert (args.lr_max, args.wd, args.ra_n, args.ra_m, args.scale, args.jitter, args.reprob) == \
        (0.05, 0.005, 2, 12, 1.0, 0.0, 0.0)
    assert args.clip_norm is None and args.device == "auto" and args.seed == 0
    smoke, _ = train_args.parse_args(["--smoke", "--epochs", "3"])
    assert smoke.data == "sample" and smoke.hdim == train_args.SMOKE["hdim"] and smoke.epochs == 3
    resumed, ckpt = train_args.parse_args(["--resume", str(straight / "last.npz"), "--epochs", "4"])
    assert resumed.hdim == 8 and resumed.train_subset == 240 and resumed.epochs == 4 and ckpt is not None
    with pytest.raises(SystemExit):
        train_args.parse_args(["--batch-size", "0"])


@pytest.mark.parametrize("argv,message", [
    (["--scale", "0"], "scale must be in (0, 1], got 0.0"),
    (["--ra-m", "31"], "--ra-m must be at most 30, got 31"),
    (["--reprob", "1.5"], "reprob in [0, 1]"),
    (["--jitter", "-0.1"], "need jitter >= 0"),
    (["--jitter", "inf"], "need jitter >= 0 (finite)"),
    (["--val-split", "-1"], "--val-split must be at least 0, got -1"),
    (["--lr-max", "-0.01"], "--lr-max must be a finite number >= 0, got -0.01"),
    (["--wd", "nan"], "--wd must be a finite number >= 0, got nan"),
    (["--clip-norm", "0"], "--clip-norm must be a finite number > 0"),
    (["--clip-norm", "inf"], "--clip-norm must be a finite number > 0"),
    (["--batch-size", "1", "--patch-size", "32"], "gives BatchNorm one value per channel"),
    (["--train-subset", "1", "--patch-size", "20"], "gives BatchNorm one value per channel"),
    (["--hdim", "0"], "--hdim must be at least 1, got 0"),
    (["--depth", "-1"], "--depth must be at least 1, got -1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--patch-size", "0"], "--patch-size must be at least 1"),
    (["--kernel-size", "4"], "--kernel-size must be odd"),
    (["--patch-size", "33"], "--patch-size must be at most 32"),
])
def test_bad_argument_values_are_argparse_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        train.main(TINY + argv + ["--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "run").exists()                 # refused before anything was started


def test_bad_augmentation_is_a_one_line_error_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tinyconvmixer.train", "--smoke", "--scale", "0", "--device", "cpu",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: bad augmentation setting (--ra-n, --ra-m, --scale, --jitter, --reprob): scale must be in "
        "(0, 1], got 0.0 (see python -m tinyconvmixer.train --help)"]


def test_allowed_edge_values(tmp_path):
    args, _ = train_args.parse_args(["--lr-max", "0", "--wd", "0", "--clip-norm", "0.5", "--kernel-size", "1",
                                "--patch-size", "32", "--scale", "1", "--ra-n", "0", "--reprob", "1"])
    assert (args.lr_max, args.wd, args.clip_norm, args.kernel_size, args.patch_size) == (0, 0, 0.5, 1, 32)


def test_new_run_folder_prefix_and_uniqueness(tmp_path):
    """The folder is made by the call (os.mkdir): calls in the same second never get the same one."""
    made = [run_module.new_run_folder(str(tmp_path / "runs"), prefix="torch-") for _ in range(5)]
    assert all(os.path.basename(m).startswith("torch-") and os.path.isdir(m) for m in made)
    assert len(set(made)) == 5 and sorted(os.listdir(tmp_path / "runs")) == sorted(map(os.path.basename, made))


def test_class_balanced_subset():
    labels = np.repeat(np.arange(10), 50)
    idx = run_module.class_balanced_subset(labels, 95)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 95 and len(set(idx)) == 95 and counts.min() == 9 and counts.max() == 10
    np.testing.assert_array_equal(idx, run_module.class_balanced_subset(labels, 95))
    assert len(run_module.class_balanced_subset(labels, None)) == 500


def test_plots_carry_the_runs_settings_and_say_what_the_colours_mean(straight, monkeypatch):
    from tinyconvmixer.train.report import plots
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    args, _ = train_args.parse_args(TINY + ["--jitter", "0.2"])
    title = plots.run_title(args, "cpu", 240, 100)
    assert title == ("ConvMixer-8/1 k=3 p=4 | 240 train / 100 test images | 2 epochs, batch 40, AdamW lr_max "
                     "0.05 wd 0.005 | RandAugment(1, 6), jitter 0.2 | seed 0, cpu")
    plots.plot_curves(read_metrics(straight / "metrics.csv"), "c.png", title=title)
    plots.plot_filters(nn.ConvMixer(8, 1, kernel_size=3, patch_size=4), "f.png", title=title)
    curves, filters = figures
    assert curves.get_suptitle() == title == filters.get_suptitle()
    assert curves.axes[1].get_title() == "accuracy (%)"
    labels = " ".join(ax.get_xlabel() + " " + ax.get_ylabel() for ax in filters.axes)
    assert "input channels as R, G, B" in labels and "scaled to its own min..max" in labels
    assert "divided by its largest |weight|" in labels and "weight / largest |weight| of its kernel" in labels
