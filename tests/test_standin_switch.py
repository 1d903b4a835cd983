"""TINYCONVMIXER_SIMULATE_GPU, the switch that puts the CuPy stand-in (tests/standin) in CuPy's place:
1 turns it on, a folder names another stand-in, anything else is a clear error, never a quiet CPU run."""

import os
import subprocess
import sys

import pytest

PROBE = "from tinyconvmixer import backend; print(backend.resolve_device('auto'), backend.xp_for('gpu').__name__)"


def probe(value):
    env = {**os.environ, "TINYCONVMIXER_SIMULATE_GPU": value}
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)


def test_one_loads_the_stand_in():
    proc = probe("1")
    assert proc.returncode == 0 and proc.stdout.split() == ["gpu", "cupy"], proc.stderr


@pytest.mark.parametrize("value", ["false", "yes", "/no/such/folder"])
def test_anything_else_is_a_clear_error(value):
    proc = probe(value)
    assert proc.returncode != 0 and "TINYCONVMIXER_SIMULATE_GPU must be 1" in proc.stderr


def test_a_folder_without_a_stand_in_is_an_error_not_the_cpu(tmp_path):
    proc = probe(str(tmp_path))
    assert proc.returncode != 0 and "holds no CuPy stand-in" in proc.stderr
