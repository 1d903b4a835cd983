"""benchmarks/bench.py loses nothing it measured: its JSON is rewritten after every row, a row
that runs out of memory is recorded as that row's result and the next row runs, and the device
memory a row held is given back (CuPy's pools, torch's cache) before the next one starts.

The first test runs the benchmark for real on the CuPy stand-in, whose memory pool takes a
limit as CuPy's does (`--memory-limit`, set_limit): 8 MiB, which the depthwise k=5 and GELU
rows fit in at batch 2 (about 3-4 MiB each) and the k=9 rows do not (the depthwise op at
32x32 needs about 14 MiB, the k=9 training step far more).
"""

import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tinyconvmixer.fast.cuda import nvrtc

REPO = Path(__file__).resolve().parents[1]
ROWS = ["depthwise k=5 (16x16)", "depthwise k=9 (32x32)", "GELU (16x16)", "train step ConvMixer-256/8 k=9 p=1"]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        yield importlib.import_module("bench")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_on_the_standin_an_out_of_memory_row_is_recorded_and_the_next_rows_run(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "TINYCONVMIXER_SIMULATE_GPU"}
    env.update(TINYCONVMIXER_CUDA_KERNELS="0", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "tests/support/simulate_gpu.py", "benchmarks/bench.py", "--device", "gpu",
                           "--batch-size", "2", "--repeats", "1", "--warmup", "0", "--only",
                           "depthwise,GELU,k=9 p=1", "--memory-limit", "8MiB", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert [r["name"] for r in result["rows"]] == ROWS
    for name in ("depthwise k=5 (16x16)", "GELU (16x16)"):          # before and after the failures
        assert "error" not in rows[name] and rows[name]["ours_s"] > 0 and rows[name]["ours_bytes"] < 8 * 2**20
    for name in ("depthwise k=9 (32x32)", "train step ConvMixer-256/8 k=9 p=1"):
        assert rows[name]["error"].startswith("out of memory (Out of memory allocating"), rows[name]
    assert result["complete"] and result["peaks"] is None           # the peaks' 64 MiB arrays do not fit
    assert result["machine"]["memory_limit"] == 8 * 2**20
    assert "2 row(s) ran out of memory" in proc.stderr
    assert "out of memory (Out of memory" in proc.stdout            # the table shows them too


def test_the_json_is_written_after_every_row(bench, tmp_path, monkeypatch):
    """A run stopped after its first row (Ctrl-C, a command's time limit) keeps that row."""
    def rows(args, rng):
        yield "first", lambda: {"name": "first", "ours_s": 0.5, "ours_bytes": 1}
        yield "second", lambda: (_ for _ in ()).throw(KeyboardInterrupt())
    monkeypatch.setattr(bench, "planned_rows", rows)
    monkeypatch.setattr(bench, "torch", None)                        # (no thread settings for this process)
    monkeypatch.setattr(bench.tuning, "keep_freed_memory", lambda: None)     # (nor malloc's)
    out = tmp_path / "partial.json"
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--device", "cpu", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["rows"] == [{"name": "first", "ours_s": 0.5, "ours_bytes": 1}]
    assert result["complete"] is False and result["machine"]["cpus"] == os.cpu_count()


def test_memory_is_given_back_after_every_row_whatever_happened(bench, monkeypatch):
    freed = []
    pool = types.SimpleNamespace(free_all_blocks=lambda: freed.append("pool"))
    pinned = types.SimpleNamespace(free_all_blocks=lambda: freed.append("pinned"))
    cp = types.SimpleNamespace(get_default_memory_pool=lambda: pool, get_default_pinned_memory_pool=lambda: pinned)
    monkeypatch.setattr(bench.backend, "xp_for", lambda device: cp)
    monkeypatch.setattr(bench, "torch", None)
    assert bench.run_row("fits", lambda: {"name": "fits"}, "gpu") == {"name": "fits"}
    assert freed == ["pool", "pinned"]

    def oom():
        raise MemoryError("Out of memory allocating 1,024 bytes (allocated so far: 0 bytes).")
    assert bench.run_row("big", oom, "gpu") == {
        "name": "big", "error": "out of memory (Out of memory allocating 1,024 bytes (allocated so far: 0 bytes).)"}
    assert freed == ["pool", "pinned"] * 2
    with pytest.raises(ZeroDivisionError):                    # other errors are not hidden
        bench.run_row("bug", lambda: 1 / 0, "gpu")
    assert freed == ["pool", "pinned"] * 3


def test_torch_out_of_memory_counts_too(bench, monkeypatch):
    class TorchOOM(RuntimeError):
        pass
    monkeypatch.setattr(bench, "torch", types.SimpleNamespace(OutOfMemoryError=TorchOOM))
    assert bench.out_of_memory(TorchOOM("CUDA out of memory")) and bench.out_of_memory(MemoryError())
    assert not bench.out_of_memory(RuntimeError("something else"))


def test_memory_limits_read_as_bytes(bench):
    assert bench.parse_bytes("15GiB") == 15 * 2**30 and bench.parse_bytes("8MiB") == 8 * 2**20
    assert bench.parse_bytes("2e9") == 2 * 10**9 and bench.parse_bytes("512 kb") == 512_000


@pytest.mark.gpu
def test_the_compile_stages_warm_up_step_runs_with_the_kernels_on_and_off():
    """benchmarks/compile_kernels.py, as gpu_session.sh's compile stage runs it on a GPU (there at
    ConvMixer-256/8; here a tiny model, with the kernels in the emulator on the stand-in)."""
    from tinyconvmixer.engine import backend
    from tinyconvmixer.fast.cuda import launch
    if not backend.gpu_available():
        pytest.skip("no GPU (nor the CuPy stand-in)")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        compile_kernels = importlib.import_module("compile_kernels")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    before = launch.set_enabled(True)
    try:
        for kernels in (True, False):
            compile_kernels.warm_up_step(8, 1, 5, 2, 2, np.float32, kernels)
            assert launch.set_enabled(True) is True          # the step gave the setting back
        assert compile_kernels.compile_project_kernels() == sum(
            len(nvrtc.kernel_names(launch.source(n, d, **df))) for n, d, df, *_ in nvrtc.configurations())
    finally:
        launch.set_enabled(before)


def test_gelu_parts_prints_the_kernel_beside_its_numpy_calls_within_80_columns():
    env = dict(os.environ, PYTHONPATH=str(REPO), TINYCONVMIXER_THREADS="2")
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gelu_parts.py"),
                          "--batch-size", "1", "--repeats", "1"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 7 and all(len(line) <= 80 for line in lines), run.stdout
    for label in ("kernel (y and slope)", "np.exp", "np.multiply", "np.divide"):
        assert any(line.strip().startswith(label) for line in lines), label
    assert "% of the kernel" in run.stdout
    assert lines[-1].startswith("forward pass, batch 1: 1 thread")
    assert "2 threads" in lines[-1]
