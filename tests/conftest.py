"""Shared fixtures.  One parametrised ``backend`` fixture supplies the array backend, so an op
test is written once and runs on every backend:

* ``numpy``    — the CPU;
* ``fakecupy`` — tests/fakecupy.py, a strict NumPy-backed stand-in for CuPy (device "fakecuda")
  that refuses implicit host conversions and counts host<->device transfers, so the device
  code path runs in CI without a GPU;
* ``cupy``     — real CuPy on a GPU, marked ``gpu``; skipped, with the reason, where no GPU is usable.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import minitl
from minitl import backend as mt_backend

try:  # the GPU machine may have pytest without hypothesis: the gpu checks still run there
    from hypothesis import HealthCheck, settings
except ImportError:
    settings = None
else:
    settings.register_profile(
        "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
    )
    # benchmarks/gpu_check.sh: fewer examples, so every op test runs on the GPU within its time box
    settings.register_profile(
        "gpu", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
    )
    settings.load_profile(os.environ.get("MINITL_HYPOTHESIS_PROFILE", "ci"))

import fakecupy  # noqa: E402  (tests/ is on sys.path)

FAKE_BACKEND = mt_backend.Backend("fakecupy", "fakecuda", fakecupy, fakecupy.cupyx)
mt_backend.register(FAKE_BACKEND)


def _gpu_param():
    status = mt_backend.gpu_status()
    return pytest.param(
        "cupy", id="cupy",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not status["usable"], reason=f"no usable GPU: {status['reason']}")],
    )


BACKEND_PARAMS = [pytest.param("numpy", id="numpy"), pytest.param("fakecupy", id="fakecupy"), _gpu_param()]
DEVICE_BACKENDS = ("fakecupy", "cupy")  # backends whose arrays live off the host


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """The name of the array backend a test runs on; tensors created inside use it."""
    fakecupy.transfers.reset()
    with mt_backend.using(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _seed():
    minitl.manual_seed(0)
    np.random.seed(0)


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
