"""Fixtures shared by the test folders.

The real MNIST test digits the suite uses ship in ``tests/fixtures/mnist-t10k`` (the t10k IDX
files, 1.7 MB), so a clone of the repository alone runs every test; the suite points
``$GLASSNET_MNIST_T10K`` at them for its whole run (subprocesses included) and restores it after.
"""
import os
import pickle
import select
import signal
import time
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


@pytest.fixture(scope="session")
def keras():
    """Real Keras 3 on the torch backend, a dev-only oracle (skips with the reason when not installed)."""
    saved = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "torch"           # read once, at Keras's import
    try:
        pytest.importorskip("torch", reason="torch (Keras's backend here, a dev-only oracle) is not installed")
        module = pytest.importorskip("keras", reason="Keras 3 (a dev-only oracle) is not installed")
    finally:
        if saved is None:
            os.environ.pop("KERAS_BACKEND", None)
        else:
            os.environ["KERAS_BACKEND"] = saved
    if module.backend.backend() != "torch":
        pytest.skip(f"Keras was imported earlier with the {module.backend.backend()!r} backend")
    return module
