import pytest

from glassnet import ops


@pytest.fixture
def blocks_of_one_image(monkeypatch):
    """``setup(threads, image_bytes)``: convolutions run one image per block, on ``threads`` workers,
    however little work a block holds (``image_bytes``: one padded image's row-window matrix)."""
    def setup(threads, image_bytes):
        monkeypatch.setattr(ops, "NUM_THREADS", threads)
        monkeypatch.setattr("glassnet.ops.conv.plan.BLOCK_BYTES", image_bytes)
        monkeypatch.setattr("glassnet.ops.conv.plan.MIN_BLOCK_FLOPS", 0)
        monkeypatch.setattr("glassnet.ops.conv.plan.MIN_THREAD_FLOPS", 0)
        monkeypatch.setattr("glassnet.ops.parallel.MIN_PARALLEL_BYTES", 0)
    return setup



@pytest.fixture
def row_windows_on_small_images(monkeypatch):
    """The row-window strategy also for the small test images (8x8, 9x8), whose frame of padded rows
    the planner would otherwise judge too tall (``ROW_WINDOWS_MAX_FRAME_RATIO``)."""
    monkeypatch.setattr("glassnet.ops.conv.plan.ROW_WINDOWS_MAX_FRAME_RATIO", float("inf"))
