"""Fixtures shared by the test folders.

The real MNIST test digits the suite uses ship in ``tests/fixtures/mnist-t10k`` (the t10k IDX
files, 1.7 MB), so a clone of the repository alone runs every test; the suite points
``$GLASSNET_MNIST_T10K`` at them for its whole run (subprocesses included) and restores it after.
"""
import os
from pathlib import Path

import pytest

T10K_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mnist-t10k"
_T10K_ENV = "GLASSNET_MNIST_T10K"
_saved_t10k_env = []


def pytest_configure(config):
    _saved_t10k_env.append(os.environ.get(_T10K_ENV))
    os.environ[_T10K_ENV] = str(T10K_FIXTURE)


def pytest_unconfigure(config):
    previous = _saved_t10k_env.pop() if _saved_t10k_env else None
    if previous is None:
        os.environ.pop(_T10K_ENV, None)
    else:
        os.environ[_T10K_ENV] = previous


@pytest.fixture(params=["windows", "plain"])
def fused_method(request, monkeypatch):
    """Run a fused convolution + pooling test with each method: one im2col row per pooling window
    (glassnet.ops.conv.pool_windows, where it applies) or the convolution's own blocks with the
    pooling after each."""
    if request.param == "plain":
        monkeypatch.setattr("glassnet.ops.conv.plan.POOL_WINDOWS_MAX_FILTERS", 0)
    return request.param
