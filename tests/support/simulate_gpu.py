"""Run Python with the strict CuPy stand-in in CuPy's place: the GPU code paths without a GPU.

    TINYCONVMIXER_SIMULATE_GPU=1 python -m pytest -q -m gpu          (conftest.py calls activate())
    python tests/support/simulate_gpu.py -m tinyconvmixer.gradcheck --device gpu
    python tests/support/simulate_gpu.py benchmarks/bench.py --device gpu --batch-size 2

The package itself knows nothing of this: it imports `cupy`, and here `cupy` is
found first in standin/ (tests/README.md says what the stand-in checks and what it
cannot). TINYCONVMIXER_SIMULATE_GPU picks the stand-in: 1 (or unset, for this script)
this folder's standin/; a folder that holds another stand-in package `cupy`; 0 none.
Anything else is an error, never a quiet run on the CPU. activate() also puts the
folders on PYTHONPATH, so the commands that the tests start see the stand-in too.
"""

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "standin")
VARIABLE = "TINYCONVMIXER_SIMULATE_GPU"


class SimulateError(RuntimeError):
    """TINYCONVMIXER_SIMULATE_GPU names no stand-in."""


def stand_in_folder(value):
    """The folder holding the stand-in package `cupy` that `value` names; None for '' and '0'."""
    if value in ("", "0"):
        return None
    folder = STANDIN if value == "1" else value
    if value != "1" and not os.path.isdir(value):
        raise SimulateError(f"{VARIABLE} must be 1 (the CuPy stand-in of tests/support/standin), 0, "
                            f"or a folder holding a stand-in package 'cupy'; got {value!r}")
    if not os.path.isdir(os.path.join(folder, "cupy")):
        raise SimulateError(f"{VARIABLE} is set, but {folder} holds no CuPy stand-in "
                            "(a package 'cupy'; the project's is in tests/support/standin)")
    return folder


def activate(value=None):
    """Put the stand-in first on sys.path and PYTHONPATH (and this folder, for the CUDA emulator
    it runs kernels with). Returns the stand-in's folder, or None when simulation is off."""
    value = os.environ.get(VARIABLE, "") if value is None else value
    folder = stand_in_folder(value)
    if folder is None:
        return None
    if "cupy" in sys.modules and not getattr(sys.modules["cupy"], "__standin__", False):
        raise SimulateError(f"{VARIABLE} is set, but the real CuPy was imported before the stand-in")
    for path in (HERE, folder):
        if path not in sys.path:
            sys.path.insert(0, path)
    paths = [folder, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ[VARIABLE] = value
    return folder


def main(argv):
    """`simulate_gpu.py -m MODULE ARGS` or `simulate_gpu.py SCRIPT ARGS`, as python runs them."""
    try:
        activate(os.environ.get(VARIABLE) or "1")
    except SimulateError as exc:
        sys.exit(f"error: {exc}")
    if len(argv) >= 2 and argv[0] == "-m":
        sys.argv = [argv[1]] + argv[2:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    else:
        sys.exit("usage: simulate_gpu.py -m MODULE [ARGS] | SCRIPT [ARGS]")


if __name__ == "__main__":
    main(sys.argv[1:])
