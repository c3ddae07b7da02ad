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


def model_holders(live):
    """Workers holding the job's model bytes (the key of batch._model_bytes's task)."""
    return {worker for key, workers in live.who_has().items() if key.startswith("_model_bytes") for worker in workers}


def kill_pids(live, workers):
    """SIGKILL the processes of ``workers`` that are still there; returns the addresses killed."""
    pids = live.run(os.getpid, workers=list(workers), on_error="ignore")
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    return sorted(pids)


def explain_with_kills(live, model, images, choose, monkeypatch):
    """Integrated gradients on 48 images in 12 chunks; at each result until a kill happened,
    ``choose(busy workers)`` names the workers to SIGKILL. Returns (maps, chunks written, killed)."""
    written, killed = [], []
    original = batch._Output.put

    def spy(self, chunk, rows):
        written.append(chunk.index)
        original(self, chunk, rows)
    monkeypatch.setattr(batch._Output, "put", spy)

    def kill_while_busy(done, total):
        if killed or done == total:
            return
        # one snapshot: a worker running a chunk now (none busy: try again at the next result)
        busy = [address for address, keys in live.processing().items() if keys]
        if busy:
            killed.extend(kill_pids(live, choose(busy)))
    maps = gd.explain(model, images[:48], "integrated_gradients", client=live, chunk_size=4, batch_size=4, steps=10,
                      progress=kill_while_busy)
    return maps, written, killed


def test_a_worker_killed_mid_run_every_chunk_exactly_once(client, model, images, monkeypatch):
    def busy_model_holder_first(busy):
        holders = model_holders(client)
        return [next((worker for worker in busy if worker in holders), busy[0])]
    got, written, killed = explain_with_kills(client, model, images, busy_model_holder_first, monkeypatch)
    assert len(killed) == 1, "no worker was running a chunk at any result but the last"
    assert sorted(written) == list(range(12))                           # every chunk, each once
    with threadpool_limits(1):
        expected = explain.integrated_gradients(model, images[:48], steps=10, batch_size=4)
    assert np.array_equal(got, expected)


def test_the_job_survives_losing_every_copy_of_the_model_bytes(client, model, images, monkeypatch):
    """Dask's memory manager keeps one replica of data no waiting task needs: were the model bytes
    scattered data, killing the workers that hold them would cancel every chunk still to run."""
    client.wait_for_workers(2, timeout=120)
    got, written, killed = explain_with_kills(client, model, images, lambda busy: model_holders(client), monkeypatch)
    assert killed and sorted(written) == list(range(12))
    with threadpool_limits(1):
        expected = explain.integrated_gradients(model, images[:48], steps=10, batch_size=4)
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
