"""Checkpoints: round trip, atomic writes (and atomic.py itself), no pickle, clear errors."""

import json
import os
import zipfile

import numpy as np
import pytest

from tinyconvmixer import Tensor, nn
from tinyconvmixer import functional as F
from tinyconvmixer.util.atomic import atomic_write, temp_path
from tinyconvmixer.train.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
from tinyconvmixer.optim import AdamW


def trained_pair(seed=0, dim=8):
    """A tiny model and optimiser after one step (so the optimiser has state)."""
    nn.init.manual_seed(seed)
    model = nn.ConvMixer(dim, 1, kernel_size=3, patch_size=4, n_classes=10)
    opt = AdamW(model.parameters(), lr=0.01)
    x = Tensor(np.random.default_rng(seed).standard_normal((4, 3, 8, 8)).astype(np.float32))
    F.cross_entropy(model(x), np.array([1, 2, 3, 4])).backward()
    opt.step()
    return model, opt


def test_round_trip_restores_model_optimizer_and_meta(tmp_path):
    model, opt = trained_pair(0)
    path = tmp_path / "last.npz"
    save_checkpoint(path, model, opt, {"epoch": 3, "args": {"lr_max": 0.05, "data": None}})
    ckpt = load_checkpoint(str(path))
    assert ckpt["meta"]["epoch"] == 3 and ckpt["meta"]["args"] == {"lr_max": 0.05, "data": None}

    model2, opt2 = trained_pair(1)
    opt2.lr = 123.0
    meta = restore(ckpt, model2, opt2)
    assert meta["epoch"] == 3 and opt2.lr == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    for i, s in opt.state.items():
        assert opt2.state[i]["step"] == s["step"] == 1
        np.testing.assert_array_equal(opt2.state[i]["exp_avg_sq"], s["exp_avg_sq"])


def test_file_holds_plain_arrays_only(tmp_path):
    model, opt = trained_pair()
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt, {"note": "ünïcode"})
    with np.load(path, allow_pickle=False) as z:          # would raise on any object array
        assert all(z[name].dtype != object for name in z.files)
        assert "model/3.0.fn.0.weight" in z.files and "optim/0/exp_avg" in z.files
        assert json.loads(str(z["meta"]))["note"] == "ünïcode"


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, opt = trained_pair()
    path = tmp_path / "last.npz"
    save_checkpoint(path, model, opt, {"epoch": 1})
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, {"epoch": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.npz"]               # the temporary file is gone
    monkeypatch.undo()
    assert load_checkpoint(str(path))["meta"]["epoch"] == 1


def test_missing_corrupt_foreign_and_pickled_files(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.npz"):
        load_checkpoint(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a valid .npz"):
        load_checkpoint(str(bad))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tinyconvmixer checkpoint"):
        load_checkpoint(str(foreign))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(CheckpointError, match="holds pickled Python objects; they are never loaded"):
        load_checkpoint(str(pickled))
    truncated = tmp_path / "truncated.npz"
    model, opt = trained_pair()
    save_checkpoint(tmp_path / "good.npz", model, opt, {})
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(str(truncated))
    assert zipfile.is_zipfile(tmp_path / "good.npz")


def test_restoring_into_a_different_model_names_keys_and_shapes(tmp_path):
    model, opt = trained_pair(dim=8)
    save_checkpoint(tmp_path / "c.npz", model, opt, {})
    other, other_opt = trained_pair(dim=16)
    with pytest.raises(nn.StateDictError, match=r"0.weight: checkpoint \(8, 3, 4, 4\) vs model \(16, 3, 4, 4\)"):
        restore(load_checkpoint(str(tmp_path / "c.npz")), other, other_opt)


# ----- atomic.py ---------------------------------------------------------------------------
def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "notes.txt"
    seen = []

    def write(text):
        def writer(tmp):
            seen.append(tmp)
            with open(tmp, "w") as f:
                f.write(text)
        return writer

    assert atomic_write(path, write("one")) == path
    atomic_write(str(path), write("two"))
    assert path.read_text() == "two" and os.listdir(tmp_path) == ["notes.txt"]
    assert all(os.path.dirname(t) == str(tmp_path) for t in seen)            # same folder: os.replace is atomic
    assert seen[0] != seen[1]


@pytest.mark.parametrize("error", [OSError("disk full"), ValueError("bad data"), KeyboardInterrupt()])
def test_atomic_write_failure_keeps_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "metrics.csv"
    path.write_text("old contents\n")

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("half a fi")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old contents\n" and os.listdir(tmp_path) == ["metrics.csv"]
    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.csv", lambda tmp: None)          # write() made no file
    assert os.listdir(tmp_path) == ["metrics.csv"]


@pytest.mark.parametrize("name,suffix", [("curves.png", ".png"), ("last.npz", ".npz"),
                                         ("cifar-10-binary.tar.gz", ".tar.gz"), ("README", ""),
                                         (".hidden", "")])
def test_temporary_name_keeps_the_extension(tmp_path, name, suffix):
    tmp = temp_path(tmp_path / name)
    assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(suffix) and ".tmp-" in tmp
    assert os.path.basename(tmp) != name and temp_path(tmp_path / name) != tmp


def test_atomic_write_lets_writers_infer_the_format(tmp_path):
    atomic_write(tmp_path / "a.npz", lambda tmp: np.savez(tmp, x=np.arange(3)))   # no ".npz" appended
    with np.load(tmp_path / "a.npz") as z:
        assert z["x"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["a.npz"]
