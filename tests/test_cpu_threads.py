"""fast/cpu/threads.py's run_blocks (the CPU's thread pool) and fast/cpu/tuning.py's settings."""

import os
import platform

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.engine import dispatch
from tinyconvmixer.fast.cpu import depthwise, threads, tuning
from tinyconvmixer.functional.depthwise import DepthwiseConv2d
from tinyconvmixer.gradcheck import gradcheck


def test_blocks_cover_the_range_once_and_every_thread_gets_one(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "3")
    seen = []
    threads.run_blocks(lambda a, b: seen.append((a, b)), 10, 100, np)   # block 100: cut to ceil(10/3)
    assert sorted(seen) == [(0, 4), (4, 8), (8, 10)]
    assert threads.run_blocks(lambda a, b: a, 10, 100, np) == [0, 4, 8]       # results in block order


def test_errors_in_a_block_reach_the_caller(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "2")

    def fail(a, b):
        if a > 0:
            raise ValueError("block failed")
    with pytest.raises(ValueError, match="block failed"):
        threads.run_blocks(fail, 8, 2, np)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_the_pool_works_in_a_forked_child(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "2")
    threads.run_blocks(lambda a, b: None, 8, 2, np)          # the parent's pool exists now
    pid = os.fork()
    if pid == 0:                                             # the child: its pool must not hang
        out = []
        threads.run_blocks(lambda a, b: out.append(a), 8, 2, np)
        os._exit(0 if sorted(out) == [0, 2, 4, 6] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_depthwise_with_many_blocks_matches_one_block(monkeypatch, rng):
    """The threaded path: bands of rows of one image, partial weight gradients added in order."""
    x = rng.standard_normal((5, 3, 6, 7))
    w, b = rng.standard_normal((3, 1, 3, 3)), rng.standard_normal(3)
    g = rng.standard_normal((5, 3, 6, 7))

    def run():
        X, W, B = (Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(X, W, B, padding=1, groups=3)
        y.backward(Tensor(g))
        return y.data, X.grad, W.grad, B.grad
    assert dispatch.pick(DepthwiseConv2d, x, w, b, stride=(1, 1), padding=(1, 1)) is depthwise.DepthwiseBlocked
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")
    monkeypatch.setattr(depthwise.machine, "core_cache_bytes", lambda: 2 ** 30)
    assert depthwise.tiles(5, 6, 7, 3, (3, 3), 8) == [(0, 3, 0, 6), (3, 5, 0, 6)]   # whole images
    one = run()
    monkeypatch.setattr(depthwise.machine, "core_cache_bytes", lambda: 1800)
    assert depthwise.tiles(5, 6, 7, 3, (3, 3), 8)[:3] == [(0, 1, 0, 2), (0, 1, 2, 4), (0, 1, 4, 6)]
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "2")
    many = run()                                       # bands of 2 rows of one image each
    for a, c in zip(one, many):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    X, W = Tensor(x[:2], requires_grad=True), Tensor(w, requires_grad=True)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=1, groups=3), [X, W]).passed


def test_keep_freed_memory_reports_what_it_did():
    done = tuning.keep_freed_memory()
    assert isinstance(done, bool)
    if platform.libc_ver()[0] == "glibc":
        assert done                                       # glibc: both settings were accepted


RELAUNCH = ("import os, sys; from tinyconvmixer.fast.cpu import tuning; "
            "print('start', os.getpid(), flush=True); tuning.relaunch_with_blas_timeout(); "
            "print('after', os.getpid(), os.environ.get('OPENBLAS_THREAD_TIMEOUT'))")


def run_relaunch(env_value):
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = env_value
    out = subprocess.run([sys.executable, "-c", RELAUNCH], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines()]


@pytest.mark.skipif(os.name != "posix", reason="a process replaces itself only on POSIX")
def test_the_training_command_starts_again_once_with_openblas_setting():
    """NumPy has loaded OpenBLAS before a command's code runs, so the command replaces its own
    process, once, with the setting in the environment: same process id, same arguments."""
    lines = run_relaunch(None)
    assert [line[0] for line in lines] == ["start", "start", "after"]      # one relaunch, no loop
    assert lines[0][1] == lines[1][1] == lines[2][1]                         # the same process
    assert lines[2][2] == tuning.BLAS_TIMEOUT


def test_a_setting_of_the_users_own_is_kept_and_nothing_restarts():
    lines = run_relaunch("100")
    assert [line[0] for line in lines] == ["start", "after"] and lines[1][2] == "100"
