"""Shared fixtures: the device is a test parameter (GPU cases skip without CuPy + GPU)."""

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
