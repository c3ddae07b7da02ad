"""predict, evaluate and explain over a Dask cluster, a chunk of images per task.

How a job runs
--------------
1. On the client: the model is checked and turned into ``.npz`` bytes (:mod:`.shipping`); the
   input is measured (:mod:`.sources`); then the cluster is reached (:mod:`.cluster`).
2. The bytes become one task on the cluster (fetched by each worker from a peer, recomputed if lost
   with a worker); chunk tasks are submitted a window at a time (twice the cluster's threads), so
   that only that many chunks' inputs and results exist at once.
3. Each result is written where it belongs (memory, ``.npy`` or Zarr on the client's disk) as it
   arrives, counted once by chunk index. A worker that dies loses its running tasks; the scheduler
   reruns them elsewhere (``distributed.scheduler.allowed-failures`` times, 3 by default), and a
   chunk that comes back twice is written once.

Bit-for-bit equality
--------------------
float32 results depend in the last bits on the shape of each matrix product (BLAS picks kernels
and blocking by size) and on the number of BLAS threads, never on the worker, the order or a retry.
So the rule is: **same batches, same BLAS thread count**.

- ``predict``, ``evaluate`` and every explain method process their images in fixed batches of
  ``batch_size`` (predict/evaluate: 32, as in Keras; explain methods: 128, see
  :mod:`glassnet.explain.batching`), the last one ragged, and chunks here are cut at multiples of
  ``batch_size``: a chunk computes exactly the batches the single-process call computes.
- Workers run one BLAS thread each (Dask's nanny sets ``OMP_NUM_THREADS=1``), so the results equal
  the plain call run with one BLAS thread::

      with threadpoolctl.threadpool_limits(1):
          model.predict(x, batch_size=32)                    # == predict(model, x)
          model.evaluate(x, y, batch_size=32)                # == evaluate(model, x, y)
          explain.METHODS[method](model, x, **kwargs)        # == explain(model, x, method, **kwargs)

- SmoothGrad's int ``seed`` gives each image its own noise stream
  (``explain.batching.image_seeds(seed, N)[i]``), sent with the image's chunk: the same noise in
  one process, on any worker, and in a retried chunk. A Generator (or None) is replaced by one int
  drawn from it on the client, so such a job is reproducible from that int, not from the Generator.
"""
import contextlib
import inspect
import os
from collections import namedtuple

import numpy as np

from glassnet.distributed.cluster import CONNECT_TIMEOUT, connect, import_distributed, worker_threads
from glassnet.distributed.shipping import model_payload, worker_model
from glassnet.distributed.sources import Source, read_part
from glassnet.errors import describe, message
from glassnet.validation import check_int, check_seed

#: Default images per chunk, so that a chunk holds ~100 times its overhead of work: a chunk costs
#: scheduling, transfers and a result round trip (10 ms on an idle 2-core machine,
#: benchmarks/RESULTS-distributed.md; ~150 ms at load 12-18), while LeNet-5 predicts ~1,000 images
#: per second per core and runs integrated gradients (50 steps) on ~50. Rounded up to a multiple of
#: the batch size (explain methods: one batch of 128 by default).
DEFAULT_CHUNK = {"predict": 2048, "evaluate": 2048, "explain": 128}

Chunk = namedtuple("Chunk", "index start stop")


def plan_chunks(n, chunk_size):
    """Rows ``[start, stop)`` of every chunk of ``n`` examples."""
    return [Chunk(i, start, min(start + chunk_size, n)) for i, start in enumerate(range(0, n, chunk_size))]


# -- what a task computes (runs on a worker) --------------------------------------------------
def _model_bytes(payload):
    """The task holding the model's ``(digest, npz bytes)`` on the cluster (see :func:`run_job`)."""
    return payload


def _run_task(payload, job, index, *parts):
    model = worker_model(payload)
    arrays = [read_part(part, model.input_shape[1:]) for part in parts]
    return index, job(model, *arrays)


class _Predict:
    def __init__(self, batch_size):
        self.batch_size = batch_size

    def __call__(self, model, images):
        return model.predict(images, batch_size=self.batch_size)


class _Evaluate:
    """Per batch of ``batch_size``: its ``[loss, *metrics]`` and its size, which the client sums
    in the order ``Sequential.evaluate`` does."""

    def __init__(self, batch_size):
        self.batch_size = batch_size

    def __call__(self, model, images, labels):
        if len(images) != len(labels):
            raise ValueError(message("glassnet.distributed.evaluate", "as many labels as images",
                                     f"{len(images)} images and {len(labels)} labels in one chunk"))
        batches = []
        for start in range(0, len(images), self.batch_size):
            stop = start + self.batch_size
            values = model.evaluate(images[start:stop], labels[start:stop], batch_size=self.batch_size)
            batches.append((values if isinstance(values, list) else [values], len(images[start:stop])))
        return batches


class _Explain:
    def __init__(self, method, kwargs):
        self.method, self.kwargs = method, kwargs

    def __call__(self, model, images, per_image):
        from glassnet import explain
        return np.asarray(explain.METHODS[self.method](model, images, **self.kwargs, **per_image))


# -- where the results go (on the client) ------------------------------------------------------
class _Output:
    """Rows of the result, filled chunk by chunk: in memory, in an ``.npy`` file or a Zarr store.

    The array is created when the first chunk arrives (its shape and dtype tell the rest). An
    ``.npy`` file is written under a temporary name and renamed when complete.
    """

    def __init__(self, out, length, chunk_size, where):
        self.out, self.length, self.chunk_size, self.array = out, length, chunk_size, None
        if out is not None:
            from glassnet.validation import check_path
            self.out = os.fspath(check_path(out, where))
            if not self.out.endswith((".npy", ".zarr")):
                raise ValueError(message(where, "out as a path ending in .npy or .zarr (or None)", repr(self.out),
                                         "For example out='maps.npy'."))

    def _create(self, rows):
        shape, dtype = (self.length,) + rows.shape[1:], rows.dtype
        if self.out is None:
            return np.empty(shape, dtype)
        folder = os.path.dirname(os.path.abspath(self.out))
        os.makedirs(folder, exist_ok=True)
        if self.out.endswith(".npy"):
            self.partial = os.path.join(folder, f".{os.path.basename(self.out)}.{os.getpid()}.partial")
            return np.lib.format.open_memmap(self.partial, mode="w+", dtype=dtype, shape=shape)
        import zarr
        return zarr.open_array(store=self.out, mode="w", shape=shape, dtype=dtype,
                               chunks=(self.chunk_size,) + rows.shape[1:])

    def put(self, chunk, rows):
        if self.array is None:
            self.array = self._create(rows)
        self.array[chunk.start:chunk.stop] = rows

    def finish(self):
        if self.out is None:
            return self.array
        if self.out.endswith(".zarr"):
            import dask.array
            return dask.array.from_zarr(self.out)
        self.array.flush()
        self.array = None
        os.replace(self.partial, self.out)
        return np.load(self.out, mmap_mode="r")

    def abandon(self):
        if self.out is not None and self.out.endswith(".npy") and self.array is not None:
            self.array = None
            with contextlib.suppress(OSError):
                os.unlink(self.partial)


# -- the runner ------------------------------------------------------------------------------
class _Progress:
    """A tqdm bar over images (``progress=True``), a callback ``progress(done, total)``, or nothing."""

    def __init__(self, progress, total, description):
        self.callback, self.bar, self.done, self.total = None, None, 0, total
        if callable(progress):
            self.callback = progress
        elif progress:
            from glassnet.progress import load_tqdm
            tqdm = load_tqdm()
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=description, unit="img")

    def update(self, count):
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _hold(client, payload):
    """The future of the task holding ``payload`` (see :func:`run_job`). Its bytes go in the task
    graph on purpose, once per job: Dask's warning about a large graph is raised past their size."""
    import dask
    from dask.utils import parse_bytes
    setting = "distributed.admin.large-graph-warning-threshold"
    threshold = max(parse_bytes(dask.config.get(setting)), 2 * len(payload[1]))
    with dask.config.set({setting: threshold}):
        return client.submit(_model_bytes, payload, pure=False)


def _submit(client, model_future, job, chunk, parts):
    # A dask array slice becomes a future of its own computation, which the scheduler can redo
    # if its worker dies; arrays and file parts travel inside the task, so a rerun has them too.
    parts = [client.compute(part) if hasattr(part, "__dask_graph__") else part for part in parts]
    return client.submit(_run_task, model_future, job, chunk.index, *parts, pure=False)


def run_job(client, payload, job, chunks, parts_of, on_result, progress=False, description=None):
    """Run ``job`` on every chunk; ``on_result(chunk, value)`` once per chunk, in arrival order.

    Parameters
    ----------
    parts_of : callable(chunk) -> list
        The task arguments of a chunk (arrays, file parts, dask arrays, dicts).

    Returns
    -------
    int
        How many results arrived for chunks already counted (a retried chunk whose first result
        came back too); they are dropped.
    """
    distributed = import_distributed("glassnet.distributed")
    # The model bytes are a task, not scattered data: Dask's active memory manager keeps as few
    # replicas as the waiting tasks need (ReduceReplicas), so a broadcast soon lives on one worker,
    # and scattered data lost with its last worker cannot be recovered (its dependents are cancelled).
    # A task's spec stays on the scheduler: lost, it is computed again elsewhere. Each worker gets the
    # bytes once from a peer and keeps the loaded model (shipping.worker_model).
    model_future = _hold(client, payload)
    window = 2 * worker_threads(client)
    queue = iter(chunks)
    running = distributed.as_completed()
    submitted, counted, duplicates = [], set(), 0

    def submit_next():
        chunk = next(queue, None)
        if chunk is not None:
            future = _submit(client, model_future, job, chunk, parts_of(chunk))
            submitted.append(future)
            running.add(future)

    bar = _Progress(progress, chunks[-1].stop if chunks else 0, description)
    try:
        for _ in range(window):
            submit_next()
        for future in running:
            index, value = future.result()
            future.release()
            if index in counted:
                duplicates += 1
            else:
                counted.add(index)
                on_result(chunks[index], value)
                bar.update(chunks[index].stop - chunks[index].start)
            submit_next()
    except BaseException:
        client.cancel(submitted)
        raise
    finally:
        bar.close()
        model_future.release()
    return duplicates


# -- checks on the client ----------------------------------------------------------------------
def _chunk_size(chunk_size, default, multiple, where):
    """``chunk_size`` (default ``default``) rounded up to a multiple of ``multiple``."""
    size = default if chunk_size is None else check_int(chunk_size, "chunk_size", where, minimum=1)
    return -(-size // multiple) * multiple


def _check_length(source, where, name="images"):
    if len(source) == 0:
        raise ValueError(message(where, f"non-empty {name}", "0 examples"))


@contextlib.contextmanager
def _job(model, client, timeout, where):
    """Check the model (before any contact with a cluster), then connect: yields (client, model, payload)."""
    checked, payload = model_payload(model, where)
    with connect(client, timeout, where) as live:
        yield live, checked, payload


def _collect(out, length, chunk_size, where, run):
    output = _Output(out, length, chunk_size, where)
    try:
        run(output.put)
    except BaseException:
        output.abandon()
        raise
    return output.finish()


# -- public functions ----------------------------------------------------------------------------
def predict(model, images, client=None, chunk_size=None, batch_size=32, out=None, progress=False,
            timeout=CONNECT_TIMEOUT):
    """``model.predict`` over a Dask cluster, a chunk of images per task.

    Parameters
    ----------
    model : Sequential or str
        The model, or the path of a model file (checked on the client before anything is sent).
    images : array (N, H, W, C), dask array, IDX file path, or folder of images
        Files are read on the workers; IDX uint8 images and image files are scaled to [0, 1].
    client : None, distributed.Client or str
        See :func:`glassnet.distributed.connect`: None uses ``$DASK_SCHEDULER_ADDRESS`` or an
        embedded local cluster (started and closed here).
    chunk_size : int, optional
        Images per task, rounded up to a multiple of ``batch_size`` (default 2048).
    out : None or str
        None returns a NumPy array; a path ending in ``.npy`` (returned memory-mapped, read-only) or
        ``.zarr`` (returned as a dask array) is written chunk by chunk, so memory stays bounded.
    progress : bool or callable
        A progress bar (tqdm, on stderr), or ``progress(done_images, total_images)``.
    timeout : float
        Seconds a scheduler has to answer.

    Returns
    -------
    ndarray (N, K), memory-mapped ndarray or dask array
        Equal bit for bit to ``model.predict(images, batch_size)`` run with one BLAS thread.
    """
    where = "glassnet.distributed.predict"
    batch_size = check_int(batch_size, "batch_size", where, minimum=1)
    size = _chunk_size(chunk_size, DEFAULT_CHUNK["predict"], batch_size, where)
    with _job(model, client, timeout, where) as (live, _, payload):
        source = Source(images, live, where)
        _check_length(source, where)
        chunks = plan_chunks(len(source), size)
        return _collect(out, len(source), size, where, lambda put: run_job(
            live, payload, _Predict(batch_size), chunks, lambda c: [source.part(c.start, c.stop)], put,
            progress, "predict"))


def evaluate(model, images, labels, client=None, chunk_size=None, batch_size=32, progress=False,
             timeout=CONNECT_TIMEOUT):
    """``model.evaluate`` over a Dask cluster: ``[loss, *metrics]`` (or the loss alone).

    Parameters are those of :func:`predict`; ``labels`` is an array (N, ...), a dask array or an
    IDX file of labels. The model must be compiled (a saved compiled model is). Each task returns
    the values of its batches and the client adds them up in order, as ``Sequential.evaluate``
    does, so the result equals ``model.evaluate(images, labels, batch_size)`` run with one BLAS thread.
    """
    where = "glassnet.distributed.evaluate"
    batch_size = check_int(batch_size, "batch_size", where, minimum=1)
    size = _chunk_size(chunk_size, DEFAULT_CHUNK["evaluate"], batch_size, where)
    with _job(model, client, timeout, where) as (live, checked, payload):
        if not checked.compiled:
            raise RuntimeError(message(where, "a compiled model (its loss and metrics)", "an uncompiled one",
                                       "Call model.compile(...) first, or save the model after compiling it."))
        source, targets = Source(images, live, where), Source(labels, live, where, labels=True)
        _check_length(source, where)
        if len(targets) != len(source):
            raise ValueError(message(where, "one label per image", f"{len(source)} images and {len(targets)} labels"))
        chunks = plan_chunks(len(source), size)
        per_chunk = [None] * len(chunks)

        def keep(chunk, batches):
            per_chunk[chunk.index] = batches
        run_job(live, payload, _Evaluate(batch_size), chunks,
                lambda c: [source.part(c.start, c.stop), targets.part(c.start, c.stop)], keep, progress, "evaluate")
    totals, seen = [0.0] * len(per_chunk[0][0][0]), 0
    for batches in per_chunk:               # Sequential.evaluate's sum: batch by batch, in order
        for values, count in batches:
            for i, value in enumerate(values):
                totals[i] += value * count
            seen += count
    means = [total / seen for total in totals]
    return means if len(means) > 1 else means[0]


def _split_kwargs(method, kwargs, length, where):
    """(shared kwargs, per-image kwargs (arrays of ``length`` rows), the method's batch size).

    Per-image arguments (``explain.batching.PER_IMAGE``) go with their chunk: a ``target`` per image,
    a ``baseline`` per image, and for SmoothGrad the per-image noise seeds of ``seed``.
    """
    from glassnet import explain
    from glassnet.explain.batching import PER_IMAGE, image_seeds, noise_source
    function = explain.METHODS[method]
    parameters = inspect.signature(function).parameters
    try:
        inspect.signature(function).bind(None, None, **kwargs)
    except TypeError as error:
        raise TypeError(message(where, f"keyword arguments of explain.{method}", str(error),
                                f"See help(glassnet.explain.{method}).")) from None
    batch_size = check_int(kwargs.get("batch_size", parameters["batch_size"].default), "batch_size", where, minimum=1)
    shared, per_image = dict(kwargs), {}
    for name in PER_IMAGE:
        value = shared.get(name)
        if isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) >= 1 and len(value) == length \
                and not (name == "baseline" and np.ndim(value) < 4):
            per_image[name] = np.asarray(shared.pop(name))
    if "seed" in parameters and "seed" not in per_image:
        # an int as explain.smooth_grad reads it; a Generator or None: one int drawn here, so that a
        # retried chunk draws the same noise
        seed = shared.pop("seed", None)
        seed = check_seed(np.random.default_rng() if seed is None else seed, where)
        per_image["seed"] = image_seeds(seed, length)
    elif "seed" in per_image:
        per_image["seed"] = noise_source(per_image["seed"], length, where)
    return shared, per_image, batch_size


def explain(model, images, method, client=None, chunk_size=None, out=None, progress=False,
            timeout=CONNECT_TIMEOUT, **method_kwargs):
    """An explanation method of :mod:`glassnet.explain` over a Dask cluster, a chunk of images per task.

    Parameters
    ----------
    model, images, client, out, progress, timeout
        As in :func:`predict`.
    method : str
        A name from ``glassnet.explain.METHODS`` (``"integrated_gradients"``, ``"grad_cam"``, ...).
    chunk_size : int, optional
        Images per task, rounded up to a multiple of the method's ``batch_size`` (default 128, one batch).
    **method_kwargs
        The method's own arguments, ``batch_size`` included. ``target`` (one per image), ``baseline``
        (N, H, W, C) and SmoothGrad's per-image noise seeds are cut with the chunks.

    Returns
    -------
    ndarray (N, ...), memory-mapped ndarray or dask array
        Equal bit for bit to ``explain.METHODS[method](model, images, **method_kwargs)`` run with one
        BLAS thread (see the module notes; a SmoothGrad ``seed`` given as a Generator or None excepted).
    """
    from glassnet import explain as explain_module
    where = "glassnet.distributed.explain"
    if not isinstance(method, str) or method not in explain_module.METHODS:
        raise ValueError(message(where, f"method as one of {sorted(explain_module.METHODS)}", describe(method)))
    with _job(model, client, timeout, where) as (live, _, payload):
        source = Source(images, live, where)
        _check_length(source, where)
        shared, per_image, batch_size = _split_kwargs(method, method_kwargs, len(source), where)
        size = _chunk_size(chunk_size, DEFAULT_CHUNK["explain"], batch_size, where)
        chunks = plan_chunks(len(source), size)

        def parts_of(chunk):
            return [source.part(chunk.start, chunk.stop),
                    {name: value[chunk.start:chunk.stop] for name, value in per_image.items()}]
        return _collect(out, len(source), size, where, lambda put: run_job(
            live, payload, _Explain(method, shared), chunks, parts_of, put, progress, method))


__all__ = ["predict", "evaluate", "explain", "plan_chunks", "run_job", "DEFAULT_CHUNK"]
