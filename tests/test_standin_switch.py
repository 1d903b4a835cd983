"""TINYCONVMIXER_SIMULATE_GPU, the switch that puts the CuPy stand-in (tests/support/standin) in
CuPy's place: 1 turns it on, a folder names another stand-in, anything else is a clear error,
never a quiet CPU run. The package knows nothing of it: tests/support/simulate_gpu.py does the
switching, for conftest.py and for commands run through it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent / "support" / "simulate_gpu.py"
PROBE = ("from tinyconvmixer.engine import backend\n"
         "print(backend.resolve_device('auto'), backend.xp_for('gpu').__name__)\n")


def probe(value, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {**os.environ, "TINYCONVMIXER_SIMULATE_GPU": value}
    return subprocess.run([sys.executable, str(RUNNER), str(script)], env=env, capture_output=True,
                          text=True, timeout=60)


def test_one_loads_the_stand_in(tmp_path):
    proc = probe("1", tmp_path)
    assert proc.returncode == 0 and proc.stdout.split() == ["gpu", "cupy"], proc.stderr


@pytest.mark.parametrize("value", ["false", "yes", "/no/such/folder"])
def test_anything_else_is_a_clear_error(value, tmp_path):
    proc = probe(value, tmp_path)
    assert proc.returncode != 0 and "TINYCONVMIXER_SIMULATE_GPU must be 1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_folder_without_a_stand_in_is_an_error_not_the_cpu(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = probe(str(empty), tmp_path)
    assert proc.returncode != 0 and "holds no CuPy stand-in" in proc.stderr


def test_the_commands_it_starts_see_the_stand_in_too(tmp_path):
    """activate() puts the stand-in on PYTHONPATH: a command started from a simulated one (as the
    tests start the training command) gets it as well."""
    script = tmp_path / "parent.py"
    script.write_text(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {PROBE!r}], check=True)\n")
    env = {**os.environ, "TINYCONVMIXER_SIMULATE_GPU": "1"}
    proc = subprocess.run([sys.executable, str(RUNNER), str(script)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["gpu", "cupy"], proc.stderr


def test_the_package_knows_nothing_of_the_tests():
    """No switch, no stand-in and no path to the tests in the package's code (its docstrings may
    point at the tests that check it)."""
    package = Path(__file__).resolve().parents[1] / "tinyconvmixer"
    for path in package.rglob("*.py"):
        text = path.read_text()
        assert "SIMULATE_GPU" not in text and "__standin__" not in text and "sys.path.insert" not in text, path
