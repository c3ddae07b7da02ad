"""Fixtures shared by the test folders."""
import os
import pickle
import select
import signal
import time

import pytest


@pytest.fixture(params=["windows", "plain"])
def fused_method(request, monkeypatch):
    """Run a fused convolution + pooling test with each method: one im2col row per pooling window
    (glassnet.ops.conv_pool_windows, where it applies) or the convolution's own blocks with the
    pooling after each."""
    if request.param == "plain":
        monkeypatch.setattr("glassnet.ops.conv_pool_windows.MAX_FILTERS", 0)
    return request.param


def run_forked(fn, timeout=60):
    """``fn()`` in a child made by os.fork(), its result (through a pipe); fails on a hang."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child: never returns into pytest
        status = 0
        try:
            os.close(read_end)
            data = pickle.dumps(fn())
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as pipe:
        while time.monotonic() < deadline:
            if select.select([pipe], [], [], 0.1)[0]:
                chunk = os.read(pipe.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child hung for {timeout} s")
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the forked child failed"
    return pickle.loads(b"".join(chunks))


@pytest.fixture
def forked():
    """``forked(fn, timeout=60)``: ``fn()`` run in a child made by os.fork() (see run_forked)."""
    return run_forked
