"""Shared fixtures.  One parametrised ``backend`` fixture supplies the array backend, so an op
test is written once and runs on every backend available here (NumPy always; the strict
CuPy stand-in and real CuPy are added by the GPU work)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minitl
from minitl import backend as mt_backend

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci")

BACKEND_PARAMS = [pytest.param("numpy", id="numpy")]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """The name of the array backend a test runs on; tensors created inside use it."""
    with mt_backend.using(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _seed():
    minitl.manual_seed(0)
    np.random.seed(0)


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
