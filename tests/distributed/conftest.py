"""A real dask.distributed cluster on loopback, shared by the distributed tests, and a small model."""
import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the distributed extra (dask.distributed) is not installed")


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread each, as the embedded default makes them; one per test module,
    so that none is left running (its threads allocating, its workers ticking) while other tests measure."""
    from glassnet.distributed.cluster import kept_environment, local_cluster
    with kept_environment(), local_cluster(2) as running:
        yield running


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as live:
        live.wait_for_workers(2, timeout=120)
        yield live


@pytest.fixture(scope="session")
def model():
    from glassnet import models
    net = models.get("lenet5", seed=0)
    net.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return net


@pytest.fixture(scope="session")
def images():
    return np.random.default_rng(0).random((100, 28, 28, 1)).astype("float32")


def kill_one_worker(live):
    """SIGKILL one worker process (its nanny starts a new one); returns the killed pid."""
    pids = live.run(os.getpid)
    pid = sorted(pids.values())[0]
    os.kill(pid, signal.SIGKILL)
    return pid
