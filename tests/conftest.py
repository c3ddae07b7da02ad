"""Fixtures shared by the test folders."""
import pytest


@pytest.fixture(params=["windows", "plain"])
def fused_method(request, monkeypatch):
    """Run a fused convolution + pooling test with each method: one im2col row per pooling window
    (glassnet.ops.conv.pool_windows, where it applies) or the convolution's own blocks with the
    pooling after each."""
    if request.param == "plain":
        monkeypatch.setattr("glassnet.ops.conv.plan.POOL_WINDOWS_MAX_FILTERS", 0)
    return request.param
