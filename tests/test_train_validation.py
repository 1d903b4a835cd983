"""--val-split N: a validation set held out of the training images chooses best.npz; the test set is
only reported. With N = 0 (the paper's recipe) nothing is chosen, and the run says why, once."""

import json

import numpy as np
import pytest

from tinyconvmixer import train
from tinyconvmixer.data import load_cifar10
from tinyconvmixer.train import args as train_args
from tinyconvmixer.train import run as run_module
from tinyconvmixer.train.checkpoint import load_checkpoint
from tinyconvmixer.train.files.runlog import read_metrics

from trainkit import TINY, resume, straight_run, without_plots


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return straight_run(tmp_path_factory)


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    without_plots(monkeypatch)


@pytest.fixture(scope="module")
def sample():
    return load_cifar10("sample", download=False)


def split(sample, *argv):
    args, _ = train_args.parse_args(["--data", "sample", *argv])
    return run_module.run_split(sample, args)


def test_the_validation_images_are_held_out_class_balanced_and_fixed(sample):
    train_idx, val, test = split(sample, "--val-split", "500", "--train-subset", "1000")
    assert len(val) == 500 and len(train_idx) == 1000 and len(test) == 500
    assert not set(train_idx) & set(val)                                  # disjoint
    assert np.bincount(sample.train_y[val], minlength=10).tolist() == [50] * 10
    assert np.bincount(sample.train_y[train_idx], minlength=10).tolist() == [100] * 10
    # a fixed draw: the seed of the run does not choose the validation images, nor the subset
    again = split(sample, "--val-split", "500", "--train-subset", "1000", "--seed", "7")
    np.testing.assert_array_equal(val, again[1])
    np.testing.assert_array_equal(train_idx, again[0])
    # all the rest when no subset is asked for
    rest, val2, _ = split(sample, "--val-split", "500")
    assert len(rest) == 2000 and not set(rest) & set(val2) and set(rest) | set(val2) == set(range(2500))


def test_no_validation_set_trains_on_what_it_always_did(sample):
    """--val-split 0: the same training images as before the flag existed (comparable runs)."""
    train_idx, val, _ = split(sample, "--train-subset", "240")
    assert len(val) == 0
    np.testing.assert_array_equal(train_idx, run_module.class_balanced_subset(sample.train_y, 240))


def test_a_validation_set_as_large_as_the_data_is_refused(tmp_path, capsys):
    assert train.main(TINY + ["--val-split", "2500", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--val-split 2500 would leave no training images: the data has 2,500" in err[0]
    assert not (tmp_path / "run").exists()


def test_best_is_chosen_by_validation_accuracy_and_said(straight):
    rows = read_metrics(straight / "metrics.csv")
    best = max(rows, key=lambda r: (r["val_acc"], -r["epoch"]))
    meta = load_checkpoint(str(straight / "best.npz"))["meta"]
    assert meta["progress"]["epoch"] == best["epoch"] and meta["progress"]["best_epoch"] == best["epoch"]
    assert all(r["val_loss"] is not None for r in rows)


def test_without_a_validation_set_there_is_no_best_checkpoint_and_the_run_says_why_once(tmp_path, capsys):
    argv = [a for a in TINY]
    argv[argv.index("--val-split") + 1] = "0"
    assert train.main(argv + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("no best.npz") == 1
    note = [line for line in out.splitlines() if "no best.npz" in line][0]
    assert "select the model on the test set" in note and "--val-split 5000" in note
    assert not (tmp_path / "best.npz").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best"] is None and summary["best_note"] == note.removeprefix("note: ")
    assert [r["val_acc"] for r in read_metrics(tmp_path / "metrics.csv")] == [None, None]
    assert ",,," not in (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1].split(",")[3:5] == ["", ""]
    assert "best" not in [line for line in out.splitlines() if line.startswith("done:")][0]


def test_the_console_shows_validation_and_what_best_npz_holds(tmp_path, capsys):
    assert train.main(TINY + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "240 train / 50 validation / 100 test images" in out
    assert all("| val loss " in line for line in out.splitlines() if line.startswith("epoch "))
    done = [line for line in out.splitlines() if line.startswith("done:")][0]
    best = json.loads((tmp_path / "summary.json").read_text())["best"]
    assert f"best.npz is epoch {best['epoch']} (validation accuracy {best['val_acc']:.2f}%" in done


def test_resuming_with_another_validation_split_is_refused(straight, tmp_path, capsys):
    assert resume(straight / "last.npz", "--val-split", "60", "--out", tmp_path / "x") == 2
    assert "settings that define the run: --val-split 50 -> 60" in capsys.readouterr().err


def test_the_curves_draw_the_validation_set(straight, monkeypatch):
    from tinyconvmixer.train.report import plots
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    plots.plot_curves(read_metrics(straight / "metrics.csv"), "c.png")
    labels = [line.get_label() for line in figures[0].axes[1].get_lines()]
    assert labels == ["train", "val", "test"]
    args, _ = train_args.parse_args(TINY)
    assert "240 train / 50 validation / 100 test images" in plots.run_title(args, "cpu", 240, 100, val_images=50)
