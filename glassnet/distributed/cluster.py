"""Where the work runs: a given Dask client, the scheduler named by an address or by
``DASK_SCHEDULER_ADDRESS``, or an embedded :class:`distributed.LocalCluster`.

The embedded cluster has one worker process per core and one thread per worker: glassnet's own
threads and BLAS's follow BLAS's limit, which Dask's nanny sets to 1 in every worker it starts
(``OMP_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``), so N workers use N cores, not N * N.

A scheduler that does not answer is reported within ``timeout`` seconds as a ``ConnectionError``:
the address is first asked for its identity under a deadline (``distributed.Client`` alone waits
for ever on a port that accepts connections but never speaks), then the client connects.
"""
import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

from glassnet.errors import describe, message

#: Environment variable naming the scheduler of an existing cluster (Dask's own convention).
ADDRESS_VARIABLE = "DASK_SCHEDULER_ADDRESS"

#: Seconds to wait for a scheduler to answer before giving up.
CONNECT_TIMEOUT = 10.0


def import_distributed(where):
    """The ``distributed`` package, or an ImportError that says how to install the extra."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(message(where, "Dask's distributed scheduler", f"an import error ({error})",
                                  'Install the extra: pip install "glassnet[distributed]".')) from error
    return distributed


async def _identity(address, timeout):
    from distributed.core import rpc
    remote = rpc(address, timeout=timeout)
    try:
        return await remote.identity()
    finally:
        await remote.close_rpc()


def probe(address, timeout=CONNECT_TIMEOUT, where="glassnet.distributed"):
    """Ask the scheduler at ``address`` who it is; ConnectionError when it does not answer in time.

    Returns the scheduler's identity dict (``type``, ``id``, ``workers``, ...).
    """
    import_distributed(where)

    def unreachable(why):
        return ConnectionError(message(
            where, "a Dask scheduler that answers", f"no answer from {address!r} within {timeout:g} s ({why})",
            "Start one with 'dask scheduler' (port 8786) and workers with 'dask worker ADDRESS', check the "
            f"address and firewall, or unset {ADDRESS_VARIABLE} to use the embedded local cluster."))
    try:
        # on a thread of its own: asyncio.run refuses to run inside a running event loop (Jupyter)
        with ThreadPoolExecutor(1, thread_name_prefix="glassnet-probe") as runner:
            identity = runner.submit(asyncio.run, asyncio.wait_for(_identity(address, timeout), timeout)).result()
    except (asyncio.TimeoutError, TimeoutError):
        raise unreachable("timed out") from None
    except Exception as error:  # refused, unresolvable, or something that is not a Dask scheduler
        raise unreachable(f"{type(error).__name__}: {str(error)[:160]}") from None
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        raise unreachable("it answered, but it is not a Dask scheduler")
    return identity


@contextlib.contextmanager
def kept_environment():
    """Put ``os.environ`` back as it was on leaving the block: Dask's nanny writes the worker
    settings (``OMP_NUM_THREADS=1``, ...) into the parent process's environment and leaves them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in [name for name in os.environ if name not in saved]:
            del os.environ[name]
        os.environ.update(saved)


def local_cluster(n_workers=None, **kwargs):
    """An embedded LocalCluster: ``n_workers`` processes (default: one per core), one thread each.

    Its HTTP server takes a free port and the logging configuration is left as it is.

    Extra keyword arguments go to :class:`distributed.LocalCluster`.
    """
    distributed = import_distributed("glassnet.distributed.local_cluster")
    options = {"n_workers": n_workers or os.cpu_count() or 1, "threads_per_worker": 1, "processes": True,
               "dashboard_address": ":0", "silence_logs": False}
    options.update(kwargs)
    with kept_environment():                  # a restarted worker's nanny sets them again for its child
        return distributed.LocalCluster(**options)


@contextlib.contextmanager
def connect(client=None, timeout=CONNECT_TIMEOUT, where="glassnet.distributed"):
    """A ``distributed.Client`` for the ``with`` block.

    Parameters
    ----------
    client : None, distributed.Client or str
        A client is used as it is (and left open); an address (``"tcp://host:8786"``) is connected to;
        None connects to ``$DASK_SCHEDULER_ADDRESS`` when it is set, else starts an embedded
        :func:`local_cluster` that is closed on leaving the block.
    timeout : float
        Seconds a scheduler has to answer.

    Raises
    ------
    ConnectionError
        The scheduler did not answer within ``timeout``.
    TypeError
        ``client`` is none of the above.
    """
    distributed = import_distributed(where)
    if isinstance(client, distributed.Client):
        yield client
        return
    if client is not None and not isinstance(client, str):
        raise TypeError(message(where, "client as None, a distributed.Client or a scheduler address string",
                                describe(client), "For example client='tcp://127.0.0.1:8786'."))
    address = client or os.environ.get(ADDRESS_VARIABLE) or None
    if address is None:
        with kept_environment(), local_cluster() as cluster, distributed.Client(cluster) as own:
            yield own
        return
    probe(address, timeout, where)
    try:
        own = distributed.Client(address, timeout=timeout)
    except OSError as error:
        raise ConnectionError(message(where, "a Dask scheduler that answers", f"{address!r}: {error}",
                                      "Check the address, or start the scheduler.")) from None
    with own:
        yield own


def worker_threads(client):
    """Total worker threads on the cluster (at least 1): how many chunks can run at once."""
    return max(1, sum(client.nthreads().values()))


__all__ = ["connect", "probe", "local_cluster", "kept_environment", "worker_threads", "ADDRESS_VARIABLE", "CONNECT_TIMEOUT"]
