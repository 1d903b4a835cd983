"""Shared fixtures: the device is a test parameter (GPU cases skip without CuPy + GPU).

Every test that runs on the GPU (a `device`, `where` or similar parameter equal to "gpu",
or an explicit @pytest.mark.gpu) carries the `gpu` marker, so `pytest -m gpu` selects
the GPU half of the suite. CI runs that half under the strict CuPy stand-in
(TINYCONVMIXER_SIMULATE_GPU=1, see tests/README.md); on a machine with a GPU it runs on
the real one.

The test machinery lives in tests/support/ (the stand-in, the CUDA emulator): this file
puts it on the path and, where TINYCONVMIXER_SIMULATE_GPU asks for it, puts the stand-in
in CuPy's place before anything imports CuPy. The faster variants of tinyconvmixer.fast
are registered for the whole suite, as the training command registers them; tests of a
reference alone say so (dispatch.reference_only()).
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

import simulate_gpu  # noqa: E402  (tests/support)

simulate_gpu.activate()                    # TINYCONVMIXER_SIMULATE_GPU: 1, 0 or a folder

import tinyconvmixer.fast  # noqa: E402,F401  (registers the faster variants)
from tinyconvmixer.engine import backend  # noqa: E402


@pytest.fixture(params=["cpu", "gpu"])
def device(request):
    if request.param == "gpu" and not backend.gpu_available():
        pytest.skip("no CuPy GPU on this machine")
    return request.param


@pytest.fixture
def xp(device):
    return backend.xp_for(device)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(isinstance(v, str) and v == "gpu" for v in params.values()):
            item.add_marker(pytest.mark.gpu)
