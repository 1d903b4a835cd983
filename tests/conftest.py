"""Shared fixtures: the device is a test parameter (GPU cases skip without CuPy + GPU).

Every test that runs on the GPU (a `device`, `where` or similar parameter equal to "gpu",
or an explicit @pytest.mark.gpu) carries the `gpu` marker, so `pytest -m gpu` selects
the GPU half of the suite. CI runs that half under the strict CuPy stand-in
(TINYCONVMIXER_SIMULATE_GPU=1, see tests/README.md); on a machine with a GPU it runs on
the real one.
"""

import numpy as np
import pytest

from tinyconvmixer import backend


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
