"""Bad input to `python -m tinyconvmixer.train`: a one-line error, exit code 2, nothing lost.

Run folders (a file, read-only, another run's, a full disk), checkpoints
(crafted, damaged, diverged, from other settings), and what resuming says.
"""

import errno
import json
import os
import zipfile

import numpy as np
import pytest

from tinyconvmixer.util import atomic
from tinyconvmixer import train
from tinyconvmixer.train import args as train_args, loop
from tinyconvmixer.train import cli as main_module
from tinyconvmixer.train.checkpoint import load_checkpoint
from tinyconvmixer.train.files.runfolder import RunFolder
from tinyconvmixer.train.files.runlog import read_metrics

from trainkit import TINY, interrupt_at_step, resume, rewrite_checkpoint, run, same_checkpoint, straight_run, without_plots


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return straight_run(tmp_path_factory)


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    without_plots(monkeypatch)


def one_line_error(capsys, *phrases):
    """stderr ends with one 'error: ...' line holding every phrase, and holds no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    for phrase in phrases:
        assert phrase in last, (phrase, last)
    return last


def copy_run(src, dst):
    dst.mkdir(parents=True)
    for name in os.listdir(src):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


# ----------------------------------------------------------------- the run folder

def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run("--out", tmp_path / "file") == 2
    one_line_error(capsys, f"the run folder '{tmp_path / 'file'}' is a file, not a folder")


def test_read_only_run_folder_keeps_its_run(straight, tmp_path, capsys):
    folder = copy_run(straight, tmp_path / "ro")
    before = (folder / "last.npz").read_bytes()
    os.chmod(folder, 0o555)
    try:
        assert resume(folder / "last.npz", "--epochs", "3") == 2
    finally:
        os.chmod(folder, 0o755)
    one_line_error(capsys, "is read-only", "--out NEW_FOLDER")
    assert (folder / "last.npz").read_bytes() == before


def test_a_folder_holding_another_run_is_refused_unless_overwritten(straight, tmp_path, capsys):
    folder = copy_run(straight, tmp_path / "taken")
    before = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    assert run("--out", folder, "--seed", "1") == 2
    one_line_error(capsys, f"the run folder '{folder}' already holds a run (last.npz: epoch 2 of 2 done)",
                   f"--resume '{folder / 'last.npz'}'", "choose another --out", "add --overwrite")
    assert {n: (folder / n).read_bytes() for n in os.listdir(folder)} == before     # untouched
    # files of a run that never saved a checkpoint
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "args.json").write_text("{}")
    assert run("--out", tmp_path / "started") == 2
    one_line_error(capsys, "another run's files (args.json)", "It has no checkpoint to continue from")
    # resuming an earlier checkpoint of the run into its folder would overwrite its last.npz
    assert resume(folder / "best.npz") == 2
    one_line_error(capsys, "already holds a run")
    # --overwrite: a new run in its place
    assert run("--out", folder, "--seed", "1", "--overwrite") == 0
    assert load_checkpoint(str(folder / "last.npz"))["meta"]["args"]["seed"] == 1


def test_a_run_folder_in_use_is_refused(tmp_path, capsys):
    other = RunFolder(str(tmp_path / "busy"))
    other.claim()                                      # another live run holds it
    try:
        assert run("--out", tmp_path / "busy") == 2
    finally:
        other.release()
    one_line_error(capsys, "is in use by another training run that is still going")


def test_full_disk_stops_with_the_last_good_checkpoint_intact(straight, tmp_path, monkeypatch, capsys):
    """Every file is written through atomic_write, which flushes with os.fsync: fail the 6th and later
    (args.json, then last.npz, best.npz, metrics.csv, summary.json of epoch 1, then last.npz of epoch 2)
    as a full disk would."""
    calls = {"n": 0}
    real = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] >= 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    assert run("--out", tmp_path) == 2
    one_line_error(capsys, "No space left on device", "stopping",
                   f"could not write '{tmp_path / 'last.npz'}'",
                   f"The last good checkpoint is '{tmp_path / 'last.npz'}' (after epoch 1), intact")
    monkeypatch.undo()
    without_plots(monkeypatch)
    assert load_checkpoint(str(tmp_path / "last.npz"))["meta"]["progress"]["epoch"] == 1
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    assert resume(tmp_path / "last.npz") == 0                    # and the run goes on from there
    same_checkpoint(straight / "last.npz", tmp_path / "last.npz")


# ------------------------------------------------------------------- checkpoints

def fake_npz(path, members):
    """A zip of raw members: {name: bytes}."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def npy_header(shape, dtype="<f4"):
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


def test_crafted_checkpoints(straight, tmp_path, capsys):
    import tracemalloc
    with zipfile.ZipFile(straight / "last.npz") as z:
        meta = z.read("meta.npy")
    huge = fake_npz(tmp_path / "huge.npz", {"meta.npy": meta, "model/0.weight.npy": npy_header((10 ** 12,))
                                            + b"\0" * 16})
    tracemalloc.start()
    assert resume(huge) == 2
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    one_line_error(capsys, "declares shape (1000000000000,) of float32 (4,000,000,000,000 bytes), but holds 16")
    assert peak < 50e6                                             # nothing near 4 TB was asked for
    assert resume(fake_npz(tmp_path / "txt.npz", {"meta.npy": meta, "evil.txt": b"hi"})) == 2
    one_line_error(capsys, "member 'evil.txt' is not a .npy array")
    assert resume(fake_npz(tmp_path / "obj.npz", {"meta.npy": meta, "x.npy": npy_header((1,), "|O")
                                                  + b"\0" * 8})) == 2
    one_line_error(capsys, "holds pickled Python objects; they are never loaded")
    assert resume(fake_npz(tmp_path / "str.npz", {"meta.npy": meta, "model/a.npy": npy_header((1,), "<U2")
                                                  + b"\0" * 8})) == 2
    one_line_error(capsys, "unexpected array 'model/a'")


@pytest.mark.parametrize("edit,phrases", [
    (lambda m: m.pop("progress"), ["missing metadata key(s) progress"]),
    (lambda m: m.pop("data"), ["missing metadata key(s) data"]),
    (lambda m: m.pop("optimizer"), ["missing metadata key 'optimizer'"]),
    (lambda m: m["optimizer"].pop("steps"), ["missing metadata key 'optimizer'"]),
    (lambda m: m["progress"].update(bogus=1), ["unknown progress key(s): bogus; missing: none"]),
    (lambda m: m["progress"].pop("seen"), ["unknown progress key(s): none; missing: seen"]),
    (lambda m: m["progress"].update(step=-1), ["step must be a whole number >= 0, got -1"]),
    (lambda m: m["progress"].update(step=99), ["stopped at batch 99"]),
    (lambda m: m["progress"].update(loss_sum=float("nan")), ["loss_sum must be a finite number"]),
    (lambda m: m["progress"]["history"].pop(), ["history must be a list of one row per finished epoch"]),
    (lambda m: m["args"].update(hdim="8"), ["its setting --hdim has an impossible value '8'"]),
    (lambda m: m["args"].update(colour="red"), ["unknown name(s) colour"]),
    (lambda m: m["args"].pop("seed"), ["lack seed"]),
    (lambda m: m.update(version=1), ["is not a tinyconvmixer checkpoint of version 2 or 3"]),
    (lambda m: m["optimizer"]["param_groups"][0].update(lr="fast"), ["an optimizer parameter group"]),
])
def test_damaged_meta_records(straight, tmp_path, capsys, edit, phrases):
    rewrite_checkpoint(straight / "last.npz", tmp_path / "bad.npz", edit_meta=edit)
    assert resume(tmp_path / "bad.npz", "--out", tmp_path / "out") == 2
    one_line_error(capsys, *phrases)
    assert not (tmp_path / "out").exists()


def test_a_non_finite_checkpoint_is_never_resumed_nor_written(straight, tmp_path, capsys):
    def poison(arrays):
        arrays["model/0.weight"][0, 0, 0, 0] = np.nan
    rewrite_checkpoint(straight / "last.npz", tmp_path / "nan.npz", edit_arrays=poison)
    assert resume(tmp_path / "nan.npz", "--out", tmp_path / "out") == 2
    one_line_error(capsys, "model/0.weight holds NaN or infinite values (the run had diverged)")

    def negative(arrays):
        arrays["optim/0/exp_avg_sq"][...] = -1.0
    rewrite_checkpoint(straight / "last.npz", tmp_path / "neg.npz", edit_arrays=negative)
    assert resume(tmp_path / "neg.npz", "--out", tmp_path / "out") == 2
    one_line_error(capsys, "optim/0/exp_avg_sq holds negative values")
    from tinyconvmixer import nn
    from tinyconvmixer.train.checkpoint import NonFiniteCheckpoint, save_checkpoint
    from tinyconvmixer.optim import AdamW
    model = nn.ConvMixer(8, 1, kernel_size=3, patch_size=4)
    model[0].weight.data[0, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteCheckpoint, match="0.weight holds NaN or infinite"):
        save_checkpoint(tmp_path / "x.npz", model, AdamW(model.parameters()), {})
    assert not list(tmp_path.glob("x*"))


# ------------------------------------------------------------------------ resuming

def test_resume_with_settings_that_define_the_run_is_refused(straight, tmp_path, capsys):
    folder = copy_run(straight, tmp_path / "run")
    assert resume(folder / "last.npz", "--batch-size", "60", "--seed", "3", "--ra-m", "7", "--epochs", "3") == 2
    one_line_error(capsys, "cannot resume from", "settings that define the run: --batch-size 40 -> 60; "
                   "--ra-m 6 -> 7; --seed 0 -> 3", "Leave them out")
    assert resume(folder / "last.npz", "--train-subset", "200") == 2
    one_line_error(capsys, "--train-subset 240 -> 200")


def test_resume_with_other_data_is_refused(straight, tmp_path, capsys):
    def other_data(meta):
        meta["data"]["fingerprint"] = "0123456789abcdef"
    rewrite_checkpoint(straight / "last.npz", tmp_path / "other.npz", edit_meta=other_data)
    assert resume(tmp_path / "other.npz", "--out", tmp_path / "out") == 2
    one_line_error(capsys, "the data is not the run's (fingerprint 0123456789abcdef", "--data PATH")


def test_resume_prints_where_it_continues_and_what_changed(straight, tmp_path, capsys):
    assert run("--out", tmp_path, "--epochs", "1") == 0
    capsys.readouterr()
    assert resume(tmp_path / "last.npz", "--epochs", "2", "--eval-batch-size", "50") == 0
    out = capsys.readouterr().out
    assert "overridden on resume: --epochs 1 -> 2; --eval-batch-size 64 -> 50" in out
    assert "resuming at epoch 2, batch 0/6" in out
    # a finished run: says so, and how to train further
    assert resume(tmp_path / "last.npz") == 0
    out = capsys.readouterr().out
    assert "this run has finished: all 2 epochs are done" in out and "--epochs 7" in out
    assert len(read_metrics(tmp_path / "metrics.csv")) == 2


def test_resume_mid_epoch_says_which_batch(straight, tmp_path, capsys, monkeypatch):
    real = loop.forward_backward
    interrupt_at_step(monkeypatch, 4)              # after 3 whole steps
    assert run("--out", tmp_path) == 130
    assert "interrupted (Ctrl-C) at epoch 1, batch 3/6" in capsys.readouterr().err
    monkeypatch.setattr(loop, "forward_backward", real)
    assert resume(tmp_path / "last.npz") == 0
    assert "resuming at epoch 1, batch 3/6" in capsys.readouterr().out


# --------------------------------------------------------------- BatchNorm, NaN, CPU

def test_a_last_batch_of_one_value_per_channel_is_dropped_and_said(tmp_path, capsys):
    assert train.main(TINY + ["--train-subset", "41", "--patch-size", "32", "--epochs", "1",
                              "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the last batch of every epoch would hold 1 image of 1x1 patches" in out and "40 of 41" in out
    assert load_checkpoint(str(tmp_path / "last.npz"))["meta"]["progress"]["history"][0]["epoch"] == 1
    tracked = [v for k, v in load_checkpoint(str(tmp_path / "last.npz"))["model"].items()
               if k.endswith("num_batches_tracked")]
    assert all(int(t) == 1 for t in tracked)                        # one batch of 40, not two


def test_the_nan_guard_stops_within_a_few_steps(tmp_path, monkeypatch, capsys):
    """Losses are read from the device every CHECK_EVERY steps at most, not every step. (The progress
    bar reads them too when it redraws, every 30 s in a log: on a slow enough machine at step 3 itself;
    no redraws here, so the test holds at any speed.)"""
    from tinyconvmixer import functional as F, is_grad_enabled
    from tinyconvmixer.util.statusline import StatusLine
    monkeypatch.setattr(StatusLine, "due", lambda self: False)
    steps = {"n": 0}
    real = F.cross_entropy

    def poisoned(logits, y):
        steps["n"] += is_grad_enabled()
        loss = real(logits, y)
        return loss * float("nan") if steps["n"] == 3 and is_grad_enabled() else loss
    monkeypatch.setattr(F, "cross_entropy", poisoned)
    assert train.main(TINY + ["--batch-size", "8", "--out", str(tmp_path)]) == 1     # 30 batches an epoch
    err = capsys.readouterr().err
    assert "the training loss became nan at epoch 1, batch 3" in err
    assert steps["n"] == loop.CHECK_EVERY                          # stopped at the first read after it
    assert "no checkpoint had been written yet" in err and not (tmp_path / "last.npz").exists()


def test_default_recipe_on_a_cpu_warns_before_it_starts(tmp_path, monkeypatch, capsys):
    def stop(run):
        raise KeyboardInterrupt
    monkeypatch.setattr(main_module, "fit", stop)
    assert train.main(["--data", "sample", "--device", "cpu", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "warning: on the CPU this run is expected to take about" in err and "--smoke" in err
    assert "GB of memory" in err and "README" in err
    assert train.main(["--smoke", "--device", "cpu", "--out", str(tmp_path / "smoke")]) == 130
    assert "warning" not in capsys.readouterr().err


def test_cpu_estimate_of_the_default_recipe():
    from tinyconvmixer.train import cpu_estimate
    args, _ = train_args.parse_args(["--device", "cpu"])
    seconds, memory = cpu_estimate.estimate(args, 50000, 10000)
    assert 30 < seconds / 3600 < 45 and 11 < memory < 14             # the measured anchor: 10 img/s, 12 GB


# ------------------------------------------------------------------------ --help

def test_help_describes_every_flag_with_its_default(capsys):
    parser = train_args.build_parser()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help and "default" in action.help, action.dest
    with pytest.raises(SystemExit) as exit_:
        train.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "auto: the GPU when CuPy finds one, else the CPU" in text and "(default: auto)" in text
    assert "(default: 256)" in text and "--overwrite" in text and "Exit codes" in text


def test_args_json_and_summary_name_the_units(straight):
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["accuracy_unit"] == "percent" and summary["final_test_acc"] > 1
    assert summary["best"]["chosen_by"] == "val_acc" and summary["best"]["val_acc"] > 1
    assert len(summary["data_fingerprint"]) == 16


def test_resume_past_the_end_of_a_shortened_run_is_refused(straight, tmp_path, capsys):
    def mid_epoch_two(meta):
        p = meta["progress"]
        p.update(epoch=1, step=3, seen=120, correct=10, loss_sum=250.0, history=p["history"][:1], best_epoch=1,
                 best_val_acc=p["history"][0]["val_acc"])
    rewrite_checkpoint(straight / "last.npz", tmp_path / "mid.npz", edit_meta=mid_epoch_two)
    assert resume(tmp_path / "mid.npz", "--epochs", "1", "--out", tmp_path / "out") == 2
    one_line_error(capsys, "is at epoch 2, batch 3, past --epochs 1; give --epochs 2 or more")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--batch-size", "-5"], ["--batch-size", "abc"], ["--epochs", "0"],
                                  ["--lr-max", "-1"], ["--no-such-flag"]])
def test_bad_settings_are_exactly_one_line(argv, capsys):
    """Not argparse's usage block and then the message: one line, the problem named, exit code 2."""
    with pytest.raises(SystemExit) as stop:
        train_args.parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--help" in err[0], err


# ------------------------------------------------------------------------ paths that are not what they seem

@pytest.mark.parametrize("flag", ["--out", "--data", "--resume"])
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(flag, capsys, tmp_path, monkeypatch):
    """--data "" would have looked for (and downloaded) CIFAR-10 into the current folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        train.main(TINY + [flag, ""])
    assert stop.value.code == 2 and not os.listdir(tmp_path)
    assert f"{flag} must not be empty" in capsys.readouterr().err


def test_run_folders_and_checkpoints_that_are_not_files_or_folders(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert run("--out", tmp_path / "afile" / "run") == 2
    one_line_error(capsys, f"cannot create the run folder '{tmp_path / 'afile' / 'run'}' ('{tmp_path / 'afile'}' "
                   "is a file)")
    assert run("--out", "/dev/null") == 2
    one_line_error(capsys, "the run folder '/dev/null' is a character device, not a folder")
    assert resume("/dev/zero") == 2
    one_line_error(capsys, "the checkpoint '/dev/zero' is a character device, not a checkpoint file")
    assert resume(tmp_path) == 2
    one_line_error(capsys, f"the checkpoint '{tmp_path}' is a folder, not a checkpoint file")
    os.mkfifo(tmp_path / "pipe.npz")
    assert resume(tmp_path / "pipe.npz") == 2                      # refused, not waited on
    one_line_error(capsys, "is a named pipe, not a checkpoint file")
