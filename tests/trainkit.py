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


def without_plots(monkeypatch):
    """Skip drawing curves.png and filters.png (a second or two each on a busy 2-core machine)."""
    for name in ("plot_curves", "plot_filters"):
        monkeypatch.setattr(run_module, name, lambda *args, **kwargs: None)
