"""The files of a run stay consistent whatever happens: kills between any two writes, runs that start
together, files a kill left behind (repaired on resume, and said), checkpoints of an older version.

The kill tests run the training command in another process (trainkit.FAULTS) that SIGKILLs itself
right after, or right before, the k-th file of the run is put in place, for every k: between every
pair of writes. Resuming must then say what it repaired and end exactly where an uninterrupted
run ends: the same last.npz and best.npz, and metrics.csv and summary.json that agree with them.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from tinyconvmixer import train
from tinyconvmixer.train.checkpoint import load_checkpoint, read_meta
from tinyconvmixer.train.files.runlog import read_metrics

from trainkit import interrupt_at_step, process_env, resume, rewrite_checkpoint, same_checkpoint, same_run, train_command

# 2 epochs of 2 batches, 20 validation images: every file of an epoch is written twice, quickly.
SMALL = ["--data", "sample", "--train-subset", "80", "--test-subset", "40", "--val-split", "20", "--hdim", "8",
         "--depth", "1", "--kernel-size", "3", "--patch-size", "4", "--batch-size", "40", "--eval-batch-size", "64",
         "--epochs", "2", "--ra-n", "1", "--ra-m", "6", "--device", "cpu"]
SET = ("last.npz", "best.npz", "metrics.csv", "summary.json")        # the checkpoint set of an epoch


def stub_plots(monkeypatch):
    """As FAULT_STUB_PLOTS: curves.png and filters.png are written (as empty files), quickly."""
    from tinyconvmixer.train import run as run_module
    from tinyconvmixer.util.atomic import atomic_write

    def stub(*args, **kwargs):
        atomic_write(args[1], lambda tmp: open(tmp, "wb").close())
    monkeypatch.setattr(run_module, "plot_curves", stub)
    monkeypatch.setattr(run_module, "plot_filters", stub)


def faulty_run(out, **faults):
    proc = subprocess.run(train_command(*SMALL, "--out", out), capture_output=True, text=True, timeout=600,
                          env=process_env(FAULT_STUB_PLOTS=1, **faults))
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, and the names of the files it wrote, in order."""
    root = tmp_path_factory.mktemp("reference")
    proc = faulty_run(root / "run", FAULT_LOG=root / "writes")
    assert proc.returncode == 0, proc.stderr
    return root / "run", (root / "writes").read_text().split()


def consistent(folder):
    """last.npz is the commit point; best.npz, metrics.csv and summary.json agree with it."""
    meta = load_checkpoint(str(folder / "last.npz"))["meta"]
    p = meta["progress"]
    assert read_metrics(folder / "metrics.csv") == p["history"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["epochs"] == p["epoch"] == len(p["history"])
    assert summary["final_test_acc"] == p["history"][-1]["test_acc"]
    assert (summary["best"] or {}).get("epoch", 0) == p["best_epoch"]
    if p["best_epoch"]:
        best = read_meta(str(folder / "best.npz"))["progress"]
        assert best["epoch"] == p["best_epoch"] and best["history"] == p["history"][:p["best_epoch"]]


def test_the_reference_run_writes_the_set_in_its_order(reference):
    folder, writes = reference
    assert writes[0] == "args.json" and writes[-2:] == ["filters.png", "summary.json"]
    firsts = [i for i, name in enumerate(writes) if name == "last.npz"]
    assert len(firsts) == 2
    for i in firsts:                                   # last.npz first, then what is derived from it
        epoch_files = writes[i:writes.index("curves.png", i)]
        assert epoch_files in (["last.npz", "best.npz", "metrics.csv", "summary.json"],
                               ["last.npz", "metrics.csv", "summary.json"]), writes
    assert "best.npz" in writes[firsts[0]:firsts[1]]   # epoch 1 is always the best so far
    consistent(folder)


def lagging(writes, k):
    """Whether a kill after the k-th write leaves a file behind last.npz: a derived file of the epoch,
    or, after the last epoch, the final filters.png and summary.json."""
    done = writes[:k]
    if "last.npz" not in done:
        return False
    newest = len(done) - 1 - done[::-1].index("last.npz")
    final = newest == len(writes) - 1 - writes[::-1].index("last.npz")
    return "summary.json" not in done[newest:] or (final and k < len(writes))


def killed_runs(root, cases, at_once=4):
    """Start a faulty run per (name, faults) case, a few at a time; returns {name: CompletedProcess}."""
    done, running, queue = {}, {}, list(cases)
    while queue or running:
        while queue and len(running) < at_once:
            name, faults = queue.pop(0)
            running[name] = subprocess.Popen(train_command(*SMALL, "--out", root / name), stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True,
                                             env=process_env(FAULT_STUB_PLOTS=1, **faults))
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                done[name] = (proc.returncode, *proc.communicate())
                del running[name]
        time.sleep(0.05)
    return done


@pytest.mark.slow
def test_a_kill_between_any_two_writes_is_repaired_on_resume(reference, tmp_path, monkeypatch, capsys):
    """SIGKILL right after, or right before, each write of the run, then resume: the files that were
    behind are repaired (and said to be), and the run ends exactly as the uninterrupted one."""
    folder, writes = reference
    stub_plots(monkeypatch)
    # after every write; before each write of the checkpoint set (its temporary file written in full)
    cases = [(f"after-{k}", {"FAULT_KILL_AFTER_WRITE": k}) for k in range(1, len(writes) + 1)]
    cases += [(f"before-{k}", {"FAULT_KILL_BEFORE_WRITE": k}) for k in range(1, len(writes) + 1)
              if writes[k - 1] in SET]
    killed = killed_runs(tmp_path, cases)
    for name, _ in cases:
        when, k = name.split("-")[0], int(name.split("-")[1])
        code, _, err = killed[name]
        assert code == -signal.SIGKILL, (name, err)
        out, written = tmp_path / name, k if when == "after" else k - 1
        if "last.npz" not in writes[:written]:         # killed before the first checkpoint: nothing to resume
            assert not (out / "last.npz").exists()
            capsys.readouterr()
            assert train.main(SMALL + ["--out", str(out), "--overwrite"]) == 0, name
        else:
            assert resume(out / "last.npz") == 0, (name, capsys.readouterr())
            said = capsys.readouterr().out
            assert ("repaired after an interrupted write" in said) == lagging(writes, written), \
                (name, writes[:written], said)
        assert "Traceback" not in capsys.readouterr().err
        same_run(folder, out)
        consistent(out)
        assert not [n for n in os.listdir(out) if ".tmp-" in n]


def test_resume_repairs_and_says_what(tmp_path, monkeypatch, capsys):
    """The files a kill (or a user) left behind: best.npz an epoch behind, metrics.csv and summary.json
    missing or stale, filters.png missing. Each is rebuilt from last.npz and named."""
    stub_plots(monkeypatch)
    out = tmp_path / "run"
    assert train.main(SMALL + ["--epochs", "1", "--out", str(out)]) == 0
    first = {name: (out / name).read_bytes() for name in SET}
    assert resume(out / "last.npz", "--epochs", "2") == 0
    whole = {name: (out / name).read_bytes() for name in SET}
    best_epoch = json.loads(whole["summary.json"])["best"]["epoch"]
    capsys.readouterr()
    # the state of a kill right after epoch 2's last.npz: every derived file at epoch 1
    for name in ("best.npz", "metrics.csv", "summary.json"):
        (out / name).write_bytes(first[name])
    assert resume(out / "last.npz") == 0
    said = capsys.readouterr().out
    stale = ["best.npz"] if best_epoch == 2 else []
    assert f"repaired after an interrupted write: {', '.join(stale + ['metrics.csv', 'summary.json'])}" in said
    assert "this run has finished" in said
    assert {name: (out / name).read_bytes() for name in ("last.npz", "best.npz", "metrics.csv")} == \
        {name: whole[name] for name in ("last.npz", "best.npz", "metrics.csv")}
    consistent(out)
    # filters.png gone, summary.json damaged: the final files again
    (out / "filters.png").unlink()
    (out / "summary.json").write_text("{not json")
    assert resume(out / "last.npz") == 0
    assert "repaired after an interrupted write: filters.png, summary.json" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["finished"] is True and (out / "filters.png").exists()
    # nothing to repair: nothing said
    assert resume(out / "last.npz") == 0
    assert "repaired" not in capsys.readouterr().out


def test_a_best_checkpoint_that_cannot_be_rebuilt_is_said(tmp_path, monkeypatch, capsys):
    """best.npz deleted while the best epoch is an earlier one than last.npz's: said, not hidden."""
    stub_plots(monkeypatch)
    out = tmp_path / "run"
    assert train.main(SMALL + ["--out", str(out)]) == 0

    def best_is_epoch_1(meta):
        p = meta["progress"]
        p["best_epoch"], p["best_val_acc"] = 1, p["history"][0]["val_acc"]
    rewrite_checkpoint(out / "last.npz", out / "last.npz", edit_meta=best_is_epoch_1)
    (out / "best.npz").unlink()
    capsys.readouterr()
    assert resume(out / "last.npz", "--epochs", "3") == 0
    err = capsys.readouterr().err
    assert err.count("best.npz' does not hold epoch 1, the best so far, and cannot be rebuilt") == 1


def test_resuming_into_another_folder_carries_the_best_checkpoint(tmp_path, monkeypatch, capsys):
    stub_plots(monkeypatch)
    src = tmp_path / "run"
    assert train.main(SMALL + ["--epochs", "1", "--out", str(src)]) == 0
    assert resume(src / "last.npz", "--epochs", "2", "--out", tmp_path / "more") == 0
    assert "repaired" not in capsys.readouterr().out             # a new folder: written, not repaired
    consistent(tmp_path / "more")
    assert json.loads((src / "summary.json").read_text())["epochs"] == 1      # the source folder untouched


# ------------------------------------------------------------------- runs that start together

def start_together(out, n, root):
    """n runs that begin at the same moment (each waits for it after its imports)."""
    start = time.time() + 8
    argv = SMALL + ["--epochs", "1", "--train-subset", "40", "--val-split", "0"] + (["--out", out] if out else [])
    procs = [subprocess.Popen(train_command(*argv), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=process_env(FAULT_START_AT=start, FAULT_STUB_PLOTS=1))
             for _ in range(n)]
    return [(p.wait(timeout=600), *p.communicate()) for p in procs]


@pytest.mark.slow
def test_eight_runs_into_one_folder_one_trains_the_others_say_one_line(tmp_path):
    results = start_together(tmp_path / "shared", 8, tmp_path)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0] + [2] * 7, results
    for code, out, err in results:
        assert "Traceback" not in err
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: the run folder"), err
            assert "is in use by another training run" in lines[0] or "already holds a run" in lines[0]
    assert (tmp_path / "shared" / "summary.json").exists()
    assert json.loads((tmp_path / "shared" / "summary.json").read_text())["finished"] is True


@pytest.mark.slow
def test_eight_runs_without_out_in_the_same_second_each_get_a_folder(tmp_path):
    results = start_together(None, 8, tmp_path)
    assert [code for code, _, _ in results] == [0] * 8, results
    folders = sorted(os.listdir(tmp_path / "runs"))
    assert len(folders) == 8
    for name in folders:
        assert json.loads((tmp_path / "runs" / name / "summary.json").read_text())["finished"] is True


def test_the_loser_of_a_race_leaves_the_winners_folder_alone(tmp_path, monkeypatch, capsys):
    """The race that broke: both runs find the folder missing; the one that does not get the lock
    used to remove the folder it thought it had made, which was the winner's."""
    from tinyconvmixer.train.files import runfolder

    winner, raced = runfolder.RunFolder(str(tmp_path / "out")), []
    real_mkdir = os.mkdir

    def mkdir_after_the_winner(path, *args, **kwargs):
        if os.fspath(path) == str(tmp_path / "out") and not raced:
            raced.append(path)
            winner.claim()                           # the other run makes the folder first, and locks it
        return real_mkdir(path, *args, **kwargs)
    monkeypatch.setattr(runfolder.os, "mkdir", mkdir_after_the_winner)
    try:
        assert train.main(SMALL + ["--out", str(tmp_path / "out")]) == 2
        assert (tmp_path / "out").is_dir()             # still there: the winner's
    finally:
        winner.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by another training run" in err[0]


# ------------------------------------------------------------------- checkpoints of version 2

def as_version_2(meta):
    """What the previous version wrote: best chosen by test accuracy, no validation columns."""
    meta["version"] = 2
    meta["args"].pop("val_split")
    meta["data"].pop("val_images")
    p = meta["progress"]
    p.pop("best_val_acc")
    p["best_acc"], p["best_epoch"] = max((r["test_acc"], r["epoch"]) for r in p["history"])
    for row in p["history"]:
        row.pop("val_loss"), row.pop("val_acc")


def test_a_version_2_checkpoint_resumes_as_a_run_without_validation(tmp_path, monkeypatch, capsys):
    stub_plots(monkeypatch)
    argv = [a for a in SMALL]
    argv[argv.index("--val-split") + 1] = "0"
    assert train.main(argv + ["--epochs", "1", "--out", str(tmp_path / "new")]) == 0
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    rewrite_checkpoint(tmp_path / "new" / "last.npz", tmp_path / "old" / "last.npz", edit_meta=as_version_2)
    lines = (tmp_path / "new" / "metrics.csv").read_text().splitlines()      # the columns of version 2
    (tmp_path / "old" / "metrics.csv").write_text("\n".join(
        ",".join(c for i, c in enumerate(line.split(",")) if i not in (3, 4)) for line in lines) + "\n")
    summary = json.loads((tmp_path / "new" / "summary.json").read_text())
    (tmp_path / "old" / "summary.json").write_text(json.dumps(
        dict(final_test_acc=summary["final_test_acc"], best_test_acc=summary["final_test_acc"], best_epoch=1,
             epochs=1)))
    capsys.readouterr()
    assert resume(tmp_path / "old" / "last.npz", "--epochs", "2") == 0
    said = capsys.readouterr()
    assert "written again in this version's format" in said.out and "repaired" not in said.out
    assert resume(tmp_path / "new" / "last.npz", "--epochs", "2") == 0
    assert "Traceback" not in capsys.readouterr().err + said.err
    same_checkpoint(tmp_path / "new" / "last.npz", tmp_path / "old" / "last.npz")
    summary = json.loads((tmp_path / "old" / "summary.json").read_text())
    assert summary["best"] is None and "--val-split" in summary["best_note"]
    rows = read_metrics(tmp_path / "old" / "metrics.csv")
    assert [r["val_acc"] for r in rows] == [None, None]


def test_more_epochs_after_a_finished_run(tmp_path, monkeypatch, capsys):
    """A finished run given more epochs: summary.json says it is not finished while it trains on."""
    stub_plots(monkeypatch)
    out = tmp_path / "run"
    assert train.main(SMALL + ["--epochs", "1", "--out", str(out)]) == 0
    seen = []
    from tinyconvmixer.train import loop
    real = loop.train_one_epoch

    def look(run, progress):
        seen.append(json.loads((out / "summary.json").read_text())["finished"])
        return real(run, progress)
    monkeypatch.setattr(loop, "train_one_epoch", look)
    assert resume(out / "last.npz", "--epochs", "2") == 0
    assert seen == [False] and json.loads((out / "summary.json").read_text())["finished"] is True
    assert "repaired" not in capsys.readouterr().out
    np.testing.assert_array_equal([r["epoch"] for r in read_metrics(out / "metrics.csv")], [1, 2])


def test_diagnostics_survive_an_interrupt(tmp_path, monkeypatch):
    """diagnostics.csv is written before last.npz, so a run stopped mid-epoch keeps the rows it sampled."""
    stub_plots(monkeypatch)
    monkeypatch.setattr("tinyconvmixer.train.report.diagnostics.plot_diagnostics", lambda *a, **k: None)
    from tinyconvmixer.train import loop
    real = loop.forward_backward
    interrupt_at_step(monkeypatch, 4)              # after 3 whole steps
    argv = SMALL + ["--batch-size", "10", "--diagnostics", "--epochs", "1"]
    assert train.main(argv + ["--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(loop, "forward_backward", real)
    assert (tmp_path / "cut" / "diagnostics.csv").exists()
    assert resume(tmp_path / "cut" / "last.npz") == 0
    assert train.main(argv + ["--out", str(tmp_path / "whole")]) == 0
    assert (tmp_path / "cut" / "diagnostics.csv").read_text() == (tmp_path / "whole" / "diagnostics.csv").read_text()
