"""Scale-out on Dask: predict, evaluate, explain and hyperparameter sweeps across a cluster.

Needs the ``distributed`` extra (``pip install "glassnet[distributed]"``: dask and
dask.distributed); the rest of glassnet never imports Dask.

- :func:`predict`, :func:`evaluate`, :func:`explain`: large inputs (arrays, dask arrays, IDX files,
  folders of images read on the workers) cut into chunks, one task each; results in memory or
  written chunk by chunk to ``.npy`` / Zarr; bit for bit what the plain call computes in one process
  with one BLAS thread (chunks are cut at multiples of the batch size: see :mod:`.batch`).
- :func:`sweep`: trials of a training recipe over a grid or a random search; resumable.
- ``client=None`` everywhere: the scheduler at ``$DASK_SCHEDULER_ADDRESS`` when set, else an
  embedded LocalCluster (one single-threaded worker process per core) started and closed by the call.

The model travels as the bytes of its ``.npz`` file, checked on the client first; nothing live is pickled.
"""
from glassnet.distributed.batch import DEFAULT_CHUNK, evaluate, explain, predict
from glassnet.distributed.cluster import ADDRESS_VARIABLE, CONNECT_TIMEOUT, connect, local_cluster, probe
from glassnet.distributed.sweeps import load_spec, sweep

__all__ = ["predict", "evaluate", "explain", "sweep", "load_spec", "connect", "local_cluster", "probe",
           "DEFAULT_CHUNK", "ADDRESS_VARIABLE", "CONNECT_TIMEOUT"]
