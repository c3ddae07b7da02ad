"""Shipping a model to the workers as the bytes of its ``.npz`` file, never as a pickle of live objects.

On the client the model (an object, or a file in any format ``gn.load_model`` opens) is loaded
and checked by :func:`glassnet.saving.load_model`: a damaged, tampered or pickled file is refused
there, before a cluster is contacted. What travels is ``(digest, npz bytes)``, held by one task of
the job (``batch.run_job``) that every worker fetches; each worker thread rebuilds the model from the bytes with ``gn.load_model`` the first
time a task needs it and keeps it, keyed by the SHA-256 digest, for the tasks that follow.
"""
import hashlib
import os
import tempfile
import threading

from glassnet.errors import describe, message

_CACHE = threading.local()

#: Models a worker thread keeps loaded (the most recent ones; a sweep or several jobs share workers).
KEPT_MODELS = 4


def _save_bytes(model):
    """The bytes of ``model.save(path)`` for a ``.npz`` path."""
    with tempfile.TemporaryDirectory(prefix="glassnet-ship-") as folder:
        path = os.path.join(folder, "model.npz")
        model.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def _load_bytes(payload):
    """``gn.load_model`` on ``payload`` (npz bytes) through a private temporary file."""
    from glassnet.saving import load_model
    with tempfile.TemporaryDirectory(prefix="glassnet-ship-") as folder:
        path = os.path.join(folder, "model.npz")
        with open(path, "wb") as handle:
            handle.write(payload)
        return load_model(path)


def model_payload(model, where):
    """Check ``model`` on the client and return ``(model, (digest, npz bytes))``.

    Parameters
    ----------
    model : Sequential (or any glassnet model with ``save``), str or os.PathLike
        A path is opened with ``gn.load_model``, which runs every check of the file format.

    Returns
    -------
    checked : the model as the workers will rebuild it (loaded back from the bytes)
    payload : tuple (str, bytes)
    """
    from glassnet.saving import load_model
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    elif not (hasattr(model, "save") and hasattr(model, "predict")):
        raise TypeError(message(where, "a glassnet model or the path of a model file", describe(model),
                                "For example gn.load_model('model.npz') or the path itself."))
    data = _save_bytes(model)
    checked = _load_bytes(data)           # what every worker will get: the file passes its checks
    return checked, (hashlib.sha256(data).hexdigest(), data)


def worker_model(payload):
    """On a worker: the model of ``payload``, loaded once per thread and kept by digest."""
    digest, data = payload
    models = getattr(_CACHE, "models", None)
    if models is None:
        models = _CACHE.models = {}
    if digest not in models:
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(message("glassnet.distributed", "model bytes matching their SHA-256 digest",
                                     "bytes altered in transit", "Rerun the job."))
        while len(models) >= KEPT_MODELS:
            models.pop(next(iter(models)))
        models[digest] = _load_bytes(data)
    return models[digest]


__all__ = ["model_payload", "worker_model"]
