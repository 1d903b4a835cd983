"""Checkpoints: round trip, atomic writes, no pickle, clear errors."""

import json
import os
import zipfile

import numpy as np
import pytest

from tinyconvmixer import Tensor, nn
from tinyconvmixer import functional as F
from tinyconvmixer.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
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
