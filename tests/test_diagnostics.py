"""Training diagnostics: correct numbers, no effect on training, no host copies during a step."""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor, nn
from tinyconvmixer.engine import backend
from tinyconvmixer.train.report import diagnostics
from tinyconvmixer.optim import AdamW


def _train(steps, diag=None, xp=np):
    nn.init.manual_seed(0)
    model = nn.ConvMixer(8, 2, kernel_size=3, patch_size=4, n_classes=10)
    if xp is not np:
        model.to("gpu")
    rng = np.random.default_rng(0)
    x = Tensor(xp.asarray(rng.standard_normal((4, 3, 16, 16)).astype(np.float32)))
    y = xp.asarray(rng.integers(0, 10, 4))
    opt = AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    d = diag(model) if diag else None
    for i in range(steps):
        if d:
            d.before_step(0, i)
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if d:
            d.after_step(opt.lr)
    return model, d


def test_statistics_are_right_and_training_is_unchanged(monkeypatch):
    plain, _ = _train(3)
    copies = []
    real = backend.to_numpy
    monkeypatch.setattr(backend, "to_numpy", lambda a: copies.append(a) or real(a))
    model, d = _train(3, lambda m: diagnostics.Diagnostics(m, n_batches=3, every=2))
    assert copies == []                                          # nothing left the device during the steps
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert np.array_equal(p.data, q.data), name              # the probes change nothing
    assert all("forward" not in m.__dict__ for m in model.modules())   # probes removed after the step
    rows = d.flush()
    assert len(copies) == 1                                      # one transfer for everything
    assert sorted({r[0] for r in rows}) == [0, 2]                # every second step
    gelus = [name for name, m in model.named_modules() if type(m).__name__ == "GELU"]
    weights = [name for name, p in model.named_parameters() if p.ndim >= 2]
    for stat, layers in (("act_mean", gelus), ("act_std", gelus), ("act_grad_std", gelus),
                         ("grad_data", weights), ("update_ratio", weights)):
        assert list(diagnostics.series(rows, stat)) == layers, stat     # model order
    assert diagnostics.summary(rows, "lr") == {"": 0.01}


def test_values_match_a_direct_computation():
    nn.init.manual_seed(0)
    model = nn.ConvMixer(8, 1, kernel_size=3, patch_size=4, n_classes=10)
    x = Tensor(np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32))
    y = np.arange(4)
    opt = AdamW(model.parameters(), lr=0.01)
    d = diagnostics.Diagnostics(model, n_batches=1)
    w = model[0].weight
    w0 = w.data.copy()
    d.before_step(0, 0)
    model.zero_grad()
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    grad = w.grad.copy()
    opt.step()
    d.after_step()
    rows = d.flush()
    update = diagnostics.summary(rows, "update_ratio")["0.weight"]
    assert update == pytest.approx(np.linalg.norm(w.data - w0) / np.linalg.norm(w0), rel=1e-5)
    assert diagnostics.summary(rows, "grad_data")["0.weight"] == pytest.approx(grad.std() / w0.std(), rel=1e-5)
    with_probe = diagnostics.summary(rows, "act_std")["1"]
    nn.init.manual_seed(0)
    again = nn.ConvMixer(8, 1, kernel_size=3, patch_size=4, n_classes=10)
    assert with_probe == pytest.approx(float(again[1](again[0](x)).data.std()), rel=1e-5)


def test_csv_round_trip_and_resume(tmp_path):
    """(The picture is drawn by the walkthrough's training run with --diagnostics, Step 14.)"""
    model, d = _train(2, lambda m: diagnostics.Diagnostics(m, n_batches=2))
    diagnostics.write_csv(tmp_path / "diagnostics.csv", d.flush())
    rows = diagnostics.read_csv(tmp_path / "diagnostics.csv")
    assert [r[:4] for r in rows] == [r[:4] for r in d.rows]
    assert np.allclose([r[4] for r in rows], [r[4] for r in d.rows], rtol=1e-5)
    resumed = diagnostics.Diagnostics.for_run(model, n_batches=2, epochs=1, folder=tmp_path, resume_step=1)
    assert {r[0] for r in resumed.rows} == {0}                   # the rows before the resumed step
    (tmp_path / "diagnostics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a diagnostics file"):
        diagnostics.read_csv(tmp_path / "diagnostics.csv")


def test_labels_and_sampling_interval():
    labels = diagnostics.layer_labels(nn.ConvMixer(8, 2, kernel_size=3, patch_size=4, n_classes=10))
    assert labels["4.0.fn.1"] == "block 2 depthwise" and labels["3.1.weight"] == "block 1 pointwise"
    assert labels["7.weight"] == "classifier"
    assert diagnostics.default_every(25, 98) == 24 and diagnostics.default_every(2, 10) == 1


@pytest.mark.skipif(not backend.gpu_available(), reason="no CuPy GPU on this machine")
def test_on_the_gpu():
    _, d = _train(2, lambda m: diagnostics.Diagnostics(m, n_batches=2), xp=backend.xp_for("gpu"))
    assert len(d.flush()) > 0 and all(np.isfinite(r[4]) for r in d.rows)
