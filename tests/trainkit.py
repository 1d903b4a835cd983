"""Shared by the tests of `python -m tinyconvmixer.train`: tiny settings and exact comparisons.

Every run here names its device (--device cpu): on a machine with a GPU,
`auto` would train the resumed half on the GPU and compare it with a CPU run.
"""

import numpy as np

from tinyconvmixer import train
from tinyconvmixer.train import run as run_module
from tinyconvmixer.train.checkpoint import load_checkpoint
from tinyconvmixer.train.files.runlog import read_metrics

# 240 training images in batches of 40: 6 batches per epoch; 50 validation images choose best.npz.
TINY = ["--data", "sample", "--train-subset", "240", "--test-subset", "100", "--val-split", "50", "--hdim", "8",
        "--depth", "1", "--kernel-size", "3", "--patch-size", "4", "--batch-size", "40", "--eval-batch-size", "64",
        "--epochs", "2", "--ra-n", "1", "--ra-m", "6", "--device", "cpu"]
BATCHES = 6
TIMING = ("seconds", "images_per_s")


def run(*argv):
    return train.main(TINY + [str(a) for a in argv])


def resume(path, *argv):
    return train.main(["--resume", str(path), "--device", "cpu"] + [str(a) for a in argv])


def same_metrics(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if k not in TIMING} == {k: v for k, v in y.items() if k not in TIMING}


def same_checkpoint(path_a, path_b):
    """Bit for bit: weights, buffers, AdamW's moments and step counts, settings, and the progress record."""
    a, b = load_checkpoint(str(path_a)), load_checkpoint(str(path_b))
    assert list(a["model"]) == list(b["model"])
    for key in a["model"]:                                   # parameters and buffers
        assert a["model"][key].dtype == b["model"][key].dtype, key
        np.testing.assert_array_equal(a["model"][key], b["model"][key], err_msg=key)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sorted(sa) == sorted(sb)
    for i in sa:
        assert sa[i]["step"] == sb[i]["step"]
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(sa[i][name], sb[i][name], err_msg=f"{i}/{name}")
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    pa, pb = dict(a["meta"]["progress"]), dict(b["meta"]["progress"])
    for p in (pa, pb):
        p.pop("train_seconds"), p.pop("total_seconds")
        p["history"] = [{k: v for k, v in row.items() if k not in TIMING} for row in p.pop("history")]
    assert pa == pb


def same_run(folder_a, folder_b):
    """The same metrics, last.npz and best.npz (or none in both), and summaries that agree."""
    import json

    same_metrics(read_metrics(folder_a / "metrics.csv"), read_metrics(folder_b / "metrics.csv"))
    same_checkpoint(folder_a / "last.npz", folder_b / "last.npz")
    assert (folder_a / "best.npz").exists() == (folder_b / "best.npz").exists()
    if (folder_a / "best.npz").exists():
        same_checkpoint(folder_a / "best.npz", folder_b / "best.npz")
    if (folder_a / "summary.json").exists() or (folder_b / "summary.json").exists():
        a, b = (json.loads((f / "summary.json").read_text()) for f in (folder_a, folder_b))
        for key in ("finished", "epochs", "final_test_acc", "final_val_acc", "best", "best_note"):
            assert a[key] == b[key], key


def rewrite_checkpoint(src, dst, edit_meta=None, edit_arrays=None):
    """Copy the checkpoint `src` to `dst`, changing its meta record (a dict) and/or its arrays on the way."""
    import json

    with np.load(str(src), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    if edit_meta is not None:
        edit_meta(meta)
    if edit_arrays is not None:
        edit_arrays(arrays)
    np.savez(str(dst), meta=np.array(json.dumps(meta)), **arrays)
    return dst


def straight_run(tmp_path_factory):
    """An uninterrupted TINY run, made once per test session and shared by the modules that compare with it."""
    out = tmp_path_factory.getbasetemp() / "straight-tiny"
    if not (out / "summary.json").exists():
        assert run("--out", out) == 0
    return out


class FastClock:
    """time.perf_counter of a machine so fast that 0.1 ms passes between two reads of the clock."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        self.now += 1e-4
        return self.now


def interrupt_at_step(monkeypatch, n):
    """Ctrl-C (KeyboardInterrupt) as the n-th training step of this process begins."""
    from tinyconvmixer.train import loop
    calls, real = {"n": 0}, loop.forward_backward

    def step(*args):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(loop, "forward_backward", step)


def without_plots(monkeypatch):
    """Skip drawing curves.png and filters.png (a second or two each on a busy 2-core machine)."""
    for name in ("plot_curves", "plot_filters"):
        monkeypatch.setattr(run_module, name, lambda *args, **kwargs: None)


# ----- the training command in another process, with faults put in on purpose ---------------------
#
# `python -c FAULTS ARGS...` runs `python -m tinyconvmixer.train ARGS...` with these environment
# variables (all optional):
#   FAULT_KILL_AFTER_WRITE=k    SIGKILL itself right after the k-th file of the run is in place
#   FAULT_KILL_BEFORE_WRITE=k   ... or just before it (its temporary file written, not renamed)
#   FAULT_LOG=path              append the name of every file of the run written, in order
#   FAULT_STUB_PLOTS=1          curves.png and filters.png as empty files (drawing takes seconds)
#   FAULT_PAUSE_AT=step:N|epoch:E  hold still after N training steps, or after epoch E's files,
#                               until a signal comes (or the file FAULT_GO=path appears: then go on);
#                               FAULT_PAUSED=path is created when it stops
#   FAULT_START_AT=t            start training at time.time() == t (runs that race each other)
# Holding still at a known point, instead of sending a signal after a guessed delay, keeps the
# tests that signal a run from outside right on a fast machine (where a whole tiny run may end
# before a delayed signal arrives) and on a slow one.
FAULTS = r'''
import os, signal, sys, time
env = os.environ
from tinyconvmixer.util import atomic
from tinyconvmixer.train import loop, run as run_module
from tinyconvmixer.train.files.runfolder import RUN_FILES

if env.get("FAULT_STUB_PLOTS"):
    def stub(*args, **kwargs):
        atomic.atomic_write(args[1], lambda tmp: open(tmp, "wb").close())
    run_module.plot_curves = run_module.plot_filters = stub

writes, real_replace = [], os.replace
after, before = int(env.get("FAULT_KILL_AFTER_WRITE", 0)), int(env.get("FAULT_KILL_BEFORE_WRITE", 0))


def replace(src, dst, *args, **kwargs):
    counted = os.path.basename(dst) in RUN_FILES
    if counted and len(writes) + 1 == before:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst, *args, **kwargs)
    if counted:
        writes.append(os.path.basename(dst))
        if env.get("FAULT_LOG"):
            with open(env["FAULT_LOG"], "a") as f:
                f.write(writes[-1] + "\n")
        if len(writes) == after:
            os.kill(os.getpid(), signal.SIGKILL)


os.replace = replace


def hold():
    open(env["FAULT_PAUSED"], "w").close()
    while not (env.get("FAULT_GO") and os.path.exists(env["FAULT_GO"])):
        time.sleep(0.05)


kind, _, at = env.get("FAULT_PAUSE_AT", "").partition(":")
if kind == "step":
    steps, real_step = [0], loop.forward_backward

    def forward_backward(*args):
        if steps[0] == int(at):
            hold()
        steps[0] += 1
        return real_step(*args)
    loop.forward_backward = forward_backward
elif kind == "epoch":
    real_end = run_module.Run.end_epoch

    def end_epoch(self, row):
        real_end(self, row)
        if row["epoch"] == int(at):
            hold()
    run_module.Run.end_epoch = end_epoch

time.sleep(max(0.0, float(env.get("FAULT_START_AT", 0)) - time.time()))
from tinyconvmixer import train
sys.exit(train.main(sys.argv[1:]))
'''


def process_env(**extra):
    """The environment of a training process started by a test: this checkout's package first."""
    import os

    import tinyconvmixer
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(tinyconvmixer.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH"))
                                                      if p), PYTHONDONTWRITEBYTECODE="1")
    env.pop("COLUMNS", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def train_command(*argv):
    """The command line of a faulty training process (see FAULTS)."""
    import sys
    return [sys.executable, "-c", FAULTS, *[str(a) for a in argv]]


def wait_for_file(path, proc, timeout=300):
    """Wait until `path` exists (a run holding still); fails if the process ends first."""
    import os
    import time
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit code {proc.returncode}) before {path} appeared: "
                                 f"{proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)
