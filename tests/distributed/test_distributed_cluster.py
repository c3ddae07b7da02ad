"""Where the work runs (glassnet.distributed.cluster): the embedded cluster's shape, and an existing
cluster named by DASK_SCHEDULER_ADDRESS."""
import os

import numpy as np
from threadpoolctl import threadpool_limits

from glassnet import distributed as gd


def _blas_threads():
    from threadpoolctl import threadpool_info
    return sorted({pool["num_threads"] for pool in threadpool_info()})


def test_the_embedded_cluster_is_one_single_threaded_worker_per_core_with_one_blas_thread(monkeypatch):
    """The condition of bit-for-bit equality on the workers' side: one BLAS thread each."""
    monkeypatch.delenv(gd.ADDRESS_VARIABLE, raising=False)
    with gd.connect() as live:
        live.wait_for_workers(os.cpu_count(), timeout=120)
        assert sorted(live.nthreads().values()) == [1] * os.cpu_count()
        assert set(map(tuple, live.run(_blas_threads).values())) == {(1,)}


def test_the_environment_variable_sends_the_job_to_that_cluster(client, model, images, monkeypatch):
    from distributed import get_task_stream
    monkeypatch.setenv(gd.ADDRESS_VARIABLE, client.scheduler.address)
    with get_task_stream(client=client) as stream:
        got = gd.predict(model, images, chunk_size=64)                   # client=None
    with threadpool_limits(1):
        expected = model.predict(images, batch_size=32)
    assert np.array_equal(got, expected)
    ran = [task["key"] for task in stream.data if str(task["key"]).startswith("_run_task")]
    assert len(ran) == 2                                                 # 100 images: chunks of 64 and 36
