"""Faults on a real cluster: a worker SIGKILLed mid-run, a scheduler that does not answer, a model file
that fails its checks."""
import os
import signal
import socket
import time

import numpy as np
import pytest
from conftest import kill_one_worker
from threadpoolctl import threadpool_limits

from glassnet import distributed as gd
from glassnet import explain
from glassnet.distributed import batch


def test_a_worker_killed_mid_run_every_chunk_exactly_once(client, model, images, monkeypatch):
    written, killed = [], []
    original = batch._Output.put

    def spy(self, chunk, rows):
        written.append(chunk.index)
        original(self, chunk, rows)
    monkeypatch.setattr(batch._Output, "put", spy)

    def kill_while_busy(done, total):
        # at the first result, SIGKILL a worker that is running a chunk right now
        if not killed and any(client.processing().values()):
            busy = [address for address, keys in client.processing().items() if keys]
            pids = client.run(os.getpid, workers=busy[:1])
            if pids:        # empty when that worker finished (or left) in between: try at the next result
                os.kill(next(iter(pids.values())), signal.SIGKILL)
                killed.append(busy[0])
    x = images[:48]
    got = gd.explain(model, x, "integrated_gradients", client=client, chunk_size=4, steps=10, progress=kill_while_busy)
    assert killed, "no worker was busy when the first chunk came back"
    assert sorted(written) == list(range(12))                           # every chunk, each once
    with threadpool_limits(1):
        expected = np.concatenate([explain.integrated_gradients(model, x[i:i + 4], steps=10) for i in range(0, 48, 4)])
    assert np.array_equal(got, expected)


def test_the_job_goes_on_after_a_worker_was_replaced(client, model, images):
    kill_one_worker(client)
    client.wait_for_workers(2, timeout=120)
    with threadpool_limits(1):
        expected = model.predict(images, batch_size=32)
    assert np.array_equal(gd.predict(model, images, client=client, chunk_size=32), expected)


@pytest.fixture
def silent_address():
    """A port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def closed_address():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"tcp://127.0.0.1:{port}"


@pytest.mark.parametrize("kind", ["silent", "closed"])
def test_a_scheduler_that_does_not_answer_is_a_clear_error_within_the_timeout(model, images, silent_address, kind):
    address = silent_address if kind == "silent" else closed_address()
    started = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"no answer from 'tcp://127\.0\.0\.1:\d+' within 1\.5 s"):
        gd.predict(model, images, client=address, timeout=1.5)
    assert time.perf_counter() - started < 8


def test_the_environment_variable_names_the_scheduler(model, images, silent_address, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", silent_address)
    with pytest.raises(ConnectionError, match="DASK_SCHEDULER_ADDRESS"):
        gd.explain(model, images, "grad_cam", timeout=1.0)


def test_a_model_file_that_fails_its_checks_is_refused_before_anything_is_shipped(client, model, images, tmp_path,
                                                                                  silent_address, monkeypatch):
    path = tmp_path / "model.npz"
    model.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF                                         # one flipped byte inside a weight
    path.write_bytes(bytes(data))
    tasks_before = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    with pytest.raises(ValueError, match="model.npz"):
        gd.predict(str(path), images, client=client)
    assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == tasks_before == 0
    assert not any(client.has_what().values())
    # refused before any cluster is contacted: a silent scheduler would cost the timeout first
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", silent_address)
    started = time.perf_counter()
    with pytest.raises(ValueError, match="model.npz"):
        gd.explain(str(path), images, "grad_cam", timeout=30)
    assert time.perf_counter() - started < 10


def test_the_probe_works_inside_a_running_event_loop(silent_address):
    import asyncio

    async def inside_a_notebook():
        with pytest.raises(ConnectionError, match="within 0.5 s"):
            gd.probe(silent_address, timeout=0.5)
    asyncio.run(inside_a_notebook())


def test_the_embedded_cluster_by_default_leaves_nothing_behind(model, images, monkeypatch):
    import logging
    import threading
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    levels = {name: logging.getLogger(name).level for name in ("distributed", "distributed.nanny")}
    environment = dict(os.environ)
    with threadpool_limits(1):
        expected = model.predict(images[:8], batch_size=32)
    assert np.array_equal(gd.predict(model, images[:8]), expected)
    assert {name: logging.getLogger(name).level for name in levels} == levels
    assert dict(os.environ) == environment                                # no OMP_NUM_THREADS=1 left behind
    assert not [t for t in threading.enumerate() if t.name.startswith("glassnet-probe")]
