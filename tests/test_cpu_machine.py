"""fast/cpu/machine.py (cores and caches), blas.py (OpenBLAS kept off the cores, whatever the
import order) and conv.py (the matrix products in blocks of rows on our threads)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.engine import backend, dispatch
from tinyconvmixer.fast.cpu import blas, conv, machine, threads
from tinyconvmixer.functional.conv import Conv2dIm2col


# ----- machine.py -------------------------------------------------------------------------------
def test_cache_sizes_are_read_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                                 (2, "Unified", "2048K"), (3, "Unified", "105M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    assert machine._sysfs_caches(str(tmp_path)) == {1: 48 * 1024, 2: 2 * 1024 ** 2, 3: 105 * 1024 ** 2}
    assert machine._sysfs_caches(str(tmp_path / "missing")) == {}


def test_cache_sizes_fall_back_level_by_level(monkeypatch):
    monkeypatch.setattr(machine, "_sysfs_caches", lambda: {2: 1 << 20})
    monkeypatch.setattr(machine.os, "sysconf", lambda name: 0)          # glibc knows nothing either
    machine.cache_sizes.cache_clear()
    try:
        assert machine.cache_sizes() == {1: machine.FALLBACK[1], 2: 1 << 20, 3: machine.FALLBACK[3]}
    finally:
        machine.cache_sizes.cache_clear()


def test_this_machine_reports_sensible_caches():
    sizes = machine.cache_sizes()
    assert 8 * 1024 <= sizes[1] <= sizes[2] <= sizes[3] + sizes[2]
    assert machine.core_cache_bytes() >= sizes[2]


def test_a_cgroup_quota_limits_the_cores(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert machine._cgroup_cpus(str(quota)) == 1
    quota.write_text("max 100000\n")
    assert machine._cgroup_cpus(str(quota)) is None
    assert machine._cgroup_cpus(str(tmp_path / "none")) is None


def test_threads_follow_the_environment(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "3")
    assert threads.cpu_threads() == 3
    monkeypatch.delenv("TINYCONVMIXER_THREADS")
    assert threads.cpu_threads() == machine.cores() >= 1


def test_the_calling_thread_works_too_and_slow_threads_leave_blocks_to_others(monkeypatch):
    import threading
    import time
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "2")
    main, who = threading.get_ident(), []

    def fn(a, b):
        if threading.get_ident() != main:
            time.sleep(0.2)                       # the helper is held back
        who.append(threading.get_ident() == main)
        return a
    assert threads.run_blocks(fn, 8, 1, np) == list(range(8))   # results in block order
    assert who.count(True) >= 6                   # the calling thread took most blocks meanwhile


# ----- conv.py ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["1x1 channels-last", "1x1 C order", "patch 2x2", "3x3 padded"])
def test_conv_rows_matches_the_reference_over_many_blocks(case, dtype, rng, monkeypatch):
    monkeypatch.setattr(conv.machine, "core_cache_bytes", lambda: 4096)   # 256-row blocks
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "2")
    x = rng.standard_normal((5, 6, 16, 12)).astype(dtype)
    if case == "1x1 channels-last":
        x = backend.channels_last(x)
    k, stride, padding = {"patch 2x2": (2, 2, 0), "3x3 padded": (3, 1, 1)}.get(case, (1, 1, 0))
    w = rng.standard_normal((7, 6, k, k)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)

    def run():
        X, W, B = (Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(X, W, B, stride=stride, padding=padding)
        y.backward(Tensor(np.random.default_rng(5).standard_normal(y.shape).astype(dtype)))
        return y, [y.data, X.grad, W.grad, B.grad]
    assert dispatch.pick(Conv2dIm2col, x, w, b, groups=1) is conv.Conv2dRows
    y, fast = run()
    assert type(y._fn) is conv.Conv2dRows
    with dispatch.reference_only():
        _, ref = run()
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for a, r in zip(fast, ref):
        assert a.shape == r.shape and a.dtype == r.dtype
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)
    assert fast[0].transpose(0, 2, 3, 1).flags.c_contiguous          # channels-last output


def test_conv_rows_skips_the_gradient_of_images_and_keeps_grouped_convs_on_the_reference(rng):
    x = Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))  # images: no gradient wanted
    w = Tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, stride=2)
    assert y._fn.backward(np.ones(y.shape, np.float32))[0] is None
    wg = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    xg = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    assert dispatch.pick(Conv2dIm2col, xg, wg, groups=2) is Conv2dIm2col


# ----- blas.py ----------------------------------------------------------------------------------
def test_single_threaded_restores_openblas_and_nests():
    if not blas.available():
        pytest.skip("NumPy's OpenBLAS was not found here")
    before = blas.threads()
    with blas.single_threaded():
        with blas.single_threaded():
            assert blas.threads() == 1
        assert blas.threads() == 1
    assert blas.threads() == before


PROBE = textwrap.dedent("""
    import os, sys, threading
    if sys.argv[1] == "numpy first":
        import numpy as np
    import tinyconvmixer.fast
    import numpy as np
    import tinyconvmixer.functional as F
    from tinyconvmixer import Tensor
    from tinyconvmixer.engine import backend
    from tinyconvmixer.fast.cpu import blas, threads

    def ticks():
        out = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[11]) + int(fields[12])     # utime + stime
        return out
    ours = {threading.get_native_id()}
    threads.run_blocks(lambda a, b: ours.add(threading.get_native_id()), 8, 1, np)
    rng = np.random.default_rng(0)
    x = Tensor(backend.channels_last(rng.standard_normal((16, 256, 16, 16)).astype(np.float32)),
               requires_grad=True)
    w = Tensor(rng.standard_normal((256, 256, 1, 1)).astype(np.float32), requires_grad=True)
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    a @ a                                                 # OpenBLAS's workers exist from here on
    import time
    time.sleep(0.5)                                       # (and have stopped spinning after it)
    before, threads_before = ticks(), blas.threads()
    for _ in range(6):
        F.conv2d(x, w).sum().backward()
    during = ticks()
    for _ in range(6):
        a @ a                                             # the control: OpenBLAS's own threads
    after = ticks()
    theirs = [t for t in after if t not in ours]
    print(sum(during.get(t, 0) - before.get(t, 0) for t in theirs),
          sum(after[t] - during.get(t, 0) for t in theirs), threads_before, blas.threads())
""")


@pytest.mark.parametrize("order", ["numpy first", "tinyconvmixer first"])
def test_openblas_threads_stay_idle_during_our_products_whatever_the_import_order(order):
    """OpenBLAS's worker threads (every thread of the process but ours) use no CPU time while the
    1x1 convolutions run, however NumPy and tinyconvmixer were imported; a plain NumPy product
    afterwards does wake them (the control: this probe sees OpenBLAS's threads)."""
    if not (blas.available() and os.path.isdir("/proc/self/task")):
        pytest.skip("needs NumPy's OpenBLAS and Linux's /proc")
    if machine.cores() < 2 or blas.threads() < 2:
        pytest.skip("OpenBLAS runs on one thread here: it has no workers to keep idle")
    env = {**os.environ, "TINYCONVMIXER_THREADS": "2"}
    env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    env.pop("OPENBLAS_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", PROBE, order], env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    during, control, threads_before, threads_after = map(int, out.stdout.split())
    assert threads_before == threads_after >= 2          # OpenBLAS's own setting is given back
    assert control > 0, "the control: NumPy's own products should run on OpenBLAS's threads"
    assert during <= 1, f"OpenBLAS's threads used {during} ticks during our convolutions"
