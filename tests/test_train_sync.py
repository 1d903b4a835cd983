"""The training loop never waits for the GPU at a step: losses and correct counts stay on the device
and are read only when the progress bar is redrawn (at most every CHECK_EVERY steps) and at the end
of an epoch (issue: four host synchronisations a step used to stall the GPU's queue).

Checked with cupyx.allow_synchronize(False) around every epoch, with reads allowed only inside
Run.read_meter: on the CuPy stand-in (TINYCONVMIXER_SIMULATE_GPU=1), which refuses every
synchronisation there, and on a real GPU, where CuPy refuses the ones it detects.
"""

import warnings

import pytest

from tinyconvmixer.engine import backend
from tinyconvmixer import train
from tinyconvmixer.train import loop
from tinyconvmixer.train import run as run_module
from tinyconvmixer.util.statusline import StatusLine
from trainkit import TINY, without_plots

pytestmark = pytest.mark.gpu


@pytest.fixture
def cupyx():
    if not backend.gpu_available():
        pytest.skip("no CuPy GPU on this machine")
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # the API is deprecated in CuPy
        yield cupyx


def test_no_host_synchronisation_inside_an_epoch(cupyx, monkeypatch, tmp_path):
    without_plots(monkeypatch)
    reads = []
    real_epoch, real_read = loop.train_one_epoch, run_module.Run.read_meter

    def strict_epoch(run, progress):
        with cupyx.allow_synchronize(False):
            real_epoch(run, progress)

    def read_meter(self):
        reads.append(self.progress.step)
        with cupyx.allow_synchronize(True):
            return real_read(self)
    monkeypatch.setattr(loop, "train_one_epoch", strict_epoch)
    monkeypatch.setattr(run_module.Run, "read_meter", read_meter)
    # The progress bar also reads when it redraws, every 30 s in a log: how often that happens
    # depends on the machine's speed (a slow one redraws more). Without redraws, the reads are
    # exactly every CHECK_EVERY steps and at the end, on any machine.
    monkeypatch.setattr(StatusLine, "due", lambda self: False)
    argv = [a if a != "cpu" else "gpu" for a in TINY]
    # 30 steps an epoch with RandAugment (Equalize included), gradient clipping and diagnostics.
    assert train.main(argv + ["--batch-size", "8", "--epochs", "1", "--ra-n", "2", "--ra-m", "12",
                              "--clip-norm", "1", "--diagnostics", "--out", str(tmp_path / "run")]) == 0
    steps = 240 // 8
    in_epoch = [s for s in reads if 0 < s < steps]
    assert in_epoch == list(range(loop.CHECK_EVERY, steps, loop.CHECK_EVERY)), reads   # every CHECK_EVERY steps
    assert steps in reads                                             # and at the epoch's end


def test_a_nan_is_still_caught_within_check_every_steps(cupyx, monkeypatch, tmp_path, capsys):
    """With the reads spread out, the NaN guard on the GPU still stops the run, names the first bad
    batch, and writes no checkpoint with NaN weights."""
    without_plots(monkeypatch)
    argv = [a if a != "cpu" else "gpu" for a in TINY]
    assert train.main(argv + ["--batch-size", "8", "--epochs", "1", "--lr-max", "1e30",
                              "--out", str(tmp_path / "nan")]) == 1
    err = capsys.readouterr().err
    assert "the training loss became nan at epoch 1, batch" in err and "no checkpoint" in err
    assert not (tmp_path / "nan" / "last.npz").exists()
