"""Interrupt a training run at random moments, resume it each time, and get the uninterrupted run bit for bit.

The chain test sends real signals (SIGINT, SIGTERM, sometimes a second one
while the checkpoint is being saved) to this process from a line tracer, at a
random line of tinyconvmixer's code inside one chosen phase of training:
the forward pass, the backward pass, the optimiser step, the augmentation, the
checkpoint write, the other file writes, the evaluation, or the loop's own
code. After each interrupt it resumes from last.npz; at the end the run must
equal an uninterrupted one: weights, BatchNorm buffers, AdamW's moments and
step counts, the progress record and metrics.csv, bit for bit.

The subprocess tests send signals from outside, as a shell or a scheduler would:
SIGTERM mid-epoch (saves and exits 143), SIGKILL (nothing can be saved: the last
checkpoint must still be whole and resumable).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinyconvmixer
from tinyconvmixer import Tensor, nn, train
from tinyconvmixer.data import TrainTransform
from tinyconvmixer.optim import AdamW
from tinyconvmixer.train import loop
from tinyconvmixer.train import cli as main_module
from tinyconvmixer.train import run as run_module
from tinyconvmixer.train.checkpoint import load_checkpoint

from trainkit import (BATCHES, TINY, process_env, resume, run, same_run, straight_run, train_command,
                      wait_for_file, without_plots)

PACKAGE = os.path.dirname(os.path.abspath(tinyconvmixer.__file__))
# phase -> the functions that make it (only counted inside fit(): start-up is not a phase)
PHASES = ("forward", "backward", "step", "augment", "checkpoint", "files", "eval", "loop")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return straight_run(tmp_path_factory)


@pytest.fixture(autouse=True)
def sigint_not_ignored():
    """A shell starts background jobs with SIGINT ignored, and interrupts.handled() keeps it so: make
    sure the SIGINTs these tests send are not ignored, however pytest was started."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


class Tracer:
    """Counts the lines run in tinyconvmixer's code per phase; fires a signal at the k-th line of one phase."""

    def __init__(self, monkeypatch):
        self.phase, self.target, self.counts, self.fired = None, None, {}, []
        self.lines, self.occurrences = 0, {}         # lines of the phase entered last; lines per occurrence
        wrap = self._wrap
        monkeypatch.setattr(main_module, "fit", wrap("loop", loop.fit, top=True))
        monkeypatch.setattr(nn.Module, "__call__", wrap("forward", nn.Module.__call__))
        monkeypatch.setattr(Tensor, "backward", wrap("backward", Tensor.backward))
        monkeypatch.setattr(AdamW, "step", wrap("step", AdamW.step))
        monkeypatch.setattr(TrainTransform, "__call__", wrap("augment", TrainTransform.__call__))
        monkeypatch.setattr(loop, "evaluate", wrap("eval", loop.evaluate))
        monkeypatch.setattr(run_module, "save_checkpoint", wrap("checkpoint", run_module.save_checkpoint))
        for module in (run_module, main_module):
            for name in ("write_metrics", "write_json"):
                monkeypatch.setattr(module, name, wrap("files", getattr(module, name)))
        without_plots(monkeypatch)                       # pictures only, and slow: left out here

    def _wrap(self, phase, fn, top=False):
        def wrapper(*args, **kwargs):
            outer = self.phase
            starts = top or outer == "loop"       # a phase starts only at the loop's level (eval's forward is eval)
            if starts:
                self.phase, self.lines = phase, 0
            try:
                return fn(*args, **kwargs)
            finally:
                if starts and not top:
                    self.occurrences.setdefault(phase, []).append(self.lines)
                self.phase = outer
        return wrapper

    def arm(self, phase, k, signum, second=None):
        """Fire `signum` at the k-th line of `phase`; then, if `second`, that signal during the save."""
        self.target, self.counts = (phase, k, signum, second), {}
        sys.settrace(self._global)

    def disarm(self):
        sys.settrace(None)

    def _global(self, frame, event, arg):
        return self._local if frame.f_code.co_filename.startswith(PACKAGE) else None

    def _local(self, frame, event, arg):
        if event != "line" or self.target is None or self.phase is None:
            return self._local
        phase, k, signum, second = self.target
        self.counts[self.phase] = self.counts.get(self.phase, 0) + 1
        self.lines += 1
        if self.phase == phase or phase == "save" and frame.f_code.co_name == "save":
            self.counts[phase] = self.counts.get(phase, 0) + (phase == "save")
            if self.counts[phase] == k:
                self.fired.append((phase, frame.f_code.co_name, signum))
                self.target = ("save", 3, second, None) if second else None
                os.kill(os.getpid(), signum)
        return self._local


# 3 epochs of 3 batches: many epoch ends (evaluation, files) for few steps.
CHAIN = TINY + ["--train-subset", "120", "--test-subset", "50", "--epochs", "3"]
CHAIN_BATCHES, CHAIN_EPOCHS = 3, 3
STEP_PHASES = ("forward", "backward", "step", "augment", "loop")


def lines_per_phase(monkeypatch, out):
    """A traced run that never fires: for each phase, the most lines that surely fall in its next
    occurrence (the fewest of any occurrence; for the loop's own code, half a step's share)."""
    tracer = Tracer(monkeypatch)
    tracer.arm("none", 0, None)
    try:
        assert train.main(CHAIN + ["--out", str(out)]) == 0
    finally:
        tracer.disarm()
    lines = {phase: min(counts) for phase, counts in tracer.occurrences.items()}
    lines["loop"] = tracer.counts["loop"] // (2 * CHAIN_BATCHES * CHAIN_EPOCHS)
    return lines


@pytest.mark.slow
def test_random_interrupts_then_resume_equal_the_uninterrupted_run(tmp_path, monkeypatch, capsys):
    per_occurrence = lines_per_phase(monkeypatch, tmp_path / "straight")    # also the run to compare with
    assert set(per_occurrence) == set(PHASES) and min(per_occurrence.values()) > 1, per_occurrence
    rng = np.random.default_rng(2024)
    # Each epoch: interrupts in two step-level phases (a step is redone at most), then one at the epoch's
    # end; every phase at least once.
    steps = list(STEP_PHASES) + list(rng.choice(STEP_PHASES, size=1))
    rng.shuffle(steps)
    plan = []
    for epoch in range(CHAIN_EPOCHS):
        plan += steps[2 * epoch:2 * epoch + 2] + [("eval", "checkpoint", "files")[epoch]]
    plan += list(STEP_PHASES)                               # whatever is left of the run
    out, tracer, exits = tmp_path / "chain", Tracer(monkeypatch), []
    for phase in plan:
        k = int(rng.integers(1, per_occurrence[phase] + 1))            # a line of its next occurrence
        signum = signal.SIGINT if rng.random() < 0.5 else signal.SIGTERM
        second = signal.SIGINT if rng.random() < 0.25 else None        # a second signal during the save
        tracer.arm(phase, k, signum, second)
        try:
            code = resume(out / "last.npz") if exits else train.main(CHAIN + ["--out", str(out)])
        finally:
            tracer.disarm()
        exits.append(code)
        if code == 0:
            break                                           # the run got to its end before this interrupt
        assert code == 128 + signum, (phase, k, code, capsys.readouterr().err)
    if exits[-1] != 0:
        assert resume(out / "last.npz") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    fired = {phase for phase, _, _ in tracer.fired}
    assert len(tracer.fired) >= 9 and fired >= set(PHASES), (exits, tracer.fired)
    same_run(tmp_path / "straight", out)


def test_ctrl_c_between_forward_and_step_does_not_count_the_batch_twice(straight, tmp_path, monkeypatch):
    """The case that broke: BatchNorm's running statistics and num_batches_tracked change in the forward
    pass, so a checkpoint taken there held the unfinished batch and resume replayed it."""
    calls = {"n": 0}
    real = loop.forward_backward

    def interrupted_after_forward(model, x, y):
        out = real(model, x, y)
        calls["n"] += 1
        if calls["n"] == BATCHES + 3:
            os.kill(os.getpid(), signal.SIGINT)
        return out
    without_plots(monkeypatch)
    monkeypatch.setattr(loop, "forward_backward", interrupted_after_forward)
    assert run("--out", tmp_path) == 130
    monkeypatch.setattr(loop, "forward_backward", real)
    ckpt = load_checkpoint(str(tmp_path / "last.npz"))
    assert (ckpt["meta"]["progress"]["epoch"], ckpt["meta"]["progress"]["step"]) == (1, 2)
    tracked = [v for k, v in ckpt["model"].items() if k.endswith("num_batches_tracked")]
    steps = {s["step"] for s in ckpt["optimizer"]["state"].values()}
    assert steps == {BATCHES + 2} and all(int(t) == BATCHES + 2 for t in tracked)
    assert resume(tmp_path / "last.npz") == 0
    same_run(straight, tmp_path)


def train_process(out, pause_at, marker):
    """A TINY run in another process that holds still at `pause_at` (trainkit.FAULTS) and creates
    `marker` then: the signal below lands there whatever the machine's speed (a fast machine ends a
    tiny run before a signal sent after a guessed delay, or after the first progress line, arrives)."""
    return subprocess.Popen(train_command(*TINY, "--out", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=process_env(FAULT_PAUSE_AT=pause_at, FAULT_PAUSED=marker))


@pytest.mark.slow
def test_sigterm_from_outside_saves_and_resumes_exactly_and_the_folder_is_locked(straight, tmp_path, capsys,
                                                                                 monkeypatch):
    proc = train_process(tmp_path / "run", "step:3", tmp_path / "paused")
    try:
        wait_for_file(tmp_path / "paused", proc)           # it is training: 3 steps done
        # A second run into the same folder is refused while the first one lives.
        assert run("--out", tmp_path / "run") == 2
        assert "is in use by another training run" in capsys.readouterr().err
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM) at epoch 1, batch 3/6" in err and "Traceback" not in err
    without_plots(monkeypatch)
    assert resume(tmp_path / "run" / "last.npz") == 0
    same_run(straight, tmp_path / "run")


@pytest.mark.slow
def test_sigkill_leaves_the_last_checkpoint_whole_and_its_temporary_files_are_cleaned(straight, tmp_path,
                                                                                      monkeypatch):
    proc = train_process(tmp_path / "run", "epoch:1", tmp_path / "paused")
    try:
        wait_for_file(tmp_path / "paused", proc)           # epoch 1's files are written
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(str(tmp_path / "run" / "last.npz"))["meta"]["progress"]["epoch"] == 1
    # What a kill in the middle of a write leaves behind (its process is gone): cleaned at the next start.
    for name in ("last.tmp-999999999-0.npz", "metrics.tmp-999999999-3.csv"):
        (tmp_path / "run" / name).write_bytes(b"half a file")
    without_plots(monkeypatch)
    assert resume(tmp_path / "run" / "last.npz") == 0      # the lock died with the process
    assert not [n for n in os.listdir(tmp_path / "run") if ".tmp-" in n]
    same_run(straight, tmp_path / "run")


def test_deferred_holds_signals_back_until_the_outermost_block_ends():
    from tinyconvmixer.train.files import interrupts
    reached = []
    with interrupts.handled():
        with pytest.raises(interrupts.Interrupted) as caught:
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                with interrupts.deferred():
                    os.kill(os.getpid(), signal.SIGINT)
                reached.append("inner end")                 # the inner block did not raise
                reached.append("outer end")
        with pytest.raises(interrupts.Interrupted):             # outside a deferred block: at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert reached == ["inner end", "outer end"]
    assert caught.value.signum == signal.SIGTERM and caught.value.exit_code == 143


def test_ignored_signals_stay_ignored_and_handlers_come_back():
    from tinyconvmixer.train.files import interrupts
    before = signal.getsignal(signal.SIGTERM)
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)      # as `nohup` leaves it
    try:
        with interrupts.handled():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not before
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGHUP, old)


def test_a_second_signal_while_the_first_is_handled_is_still_a_clean_exit(tmp_path, monkeypatch, capsys):
    without_plots(monkeypatch)
    monkeypatch.setattr(main_module, "fit", lambda run: os.kill(os.getpid(), signal.SIGTERM) or time.sleep(5))

    def again(run, exc):
        raise KeyboardInterrupt
    monkeypatch.setattr(main_module, "interrupted", again)
    assert run("--out", tmp_path) == 130
    err = capsys.readouterr().err
    assert "interrupted again" in err and "Traceback" not in err
