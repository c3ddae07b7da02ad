"""Shared pieces of the benchmark: models, FLOP counts, timers, the foreign-CPU meter, the GEMM peak.

FLOP accounting follows ``shared/bench/torch_ref.py``: forward FLOPs are 2 x the multiply-adds
of the Conv2D and Dense layers (pooling, activations, softmax ignored); a training step counts
3 x forward (forward, input gradient, weight gradient). The first layer never needs its input
gradient, so the exact training count is ``3 x forward - 2 x MACs(first layer)``; we report
throughput against the 3 x convention, as the reference does.
"""
import os
import resource
import statistics
import time

#: The benchmarked presets (``glassnet.presets``), with their parameter counts as a sanity check.
MODELS = {"seed003_tiny": 13_602, "keras_mnist": 1_199_882, "lenet5": 61_706, "resnet8": 78_426,
          "resnet_fashion": 874_282}

#: Per-model limits that keep ``python -m benchmarks.run`` short: the batch sizes a model runs at (the
#: largest asked for when none of its own is) and the most images per timed epoch. The ResNets are
#: measured at the issue's batch 128 on 512 images per epoch (4 steps: ~1-2 s an epoch at 1 thread).
MODEL_LIMITS = {name: {"batch_sizes": (128,), "epoch_images": 512} for name in ("resnet8", "resnet_fashion")}

#: Short names accepted on the command line.
ALIASES = {"tiny": "seed003_tiny"}

#: Training setup shared by both libraries (as in shared/bench/torch_ref.py).
LEARNING_RATE, MOMENTUM = 0.01, 0.9

#: BLAS variables that this machine sets for OpenBLAS; the benchmark runs with and without them.
BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def model_batches(model, batch_sizes):
    """The batch sizes ``model`` is measured at among ``batch_sizes`` (see :data:`MODEL_LIMITS`)."""
    allowed = MODEL_LIMITS.get(model, {}).get("batch_sizes")
    if allowed is None:
        return list(batch_sizes)
    return [b for b in batch_sizes if b in allowed] or [max(batch_sizes)]


def model_epoch_images(model, epoch_images):
    """Images per timed epoch for ``model`` (at most its :data:`MODEL_LIMITS` entry)."""
    return min(epoch_images, MODEL_LIMITS.get(model, {}).get("epoch_images", epoch_images))


def layer_macs(model):
    """Multiply-adds per image of every Conv2D and Dense layer of a built glassnet model, in order."""
    from glassnet.layers import Conv2D, Dense
    macs = []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            KH, KW, C, F = layer.params["kernel"].shape
            OH, OW = layer.output_shape[1:3]
            macs.append(OH * OW * F * KH * KW * C)
        elif isinstance(layer, Dense):
            D, units = layer.params["kernel"].shape
            macs.append(D * units)
    return macs


def flops(model):
    """``(forward FLOPs per image, training FLOPs per image (3x), exact training FLOPs)``."""
    macs = layer_macs(model)
    forward = 2 * sum(macs)
    return forward, 3 * forward, 3 * forward - 2 * macs[0]


class ForeignCPU:
    """Share of the machine's CPU time that *other* processes used between start() and stop().

    0 means the machine was ours; above ~0.1 the measured figure is probably depressed.
    """

    @staticmethod
    def _snapshot():
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        busy = sum(ticks) - ticks[3] - ticks[4]            # all but idle and iowait
        own = os.times()
        return busy, own.user + own.system + own.children_user + own.children_system, time.perf_counter()

    def start(self):
        self._start = self._snapshot()
        return self

    def stop(self):
        busy0, own0, wall0 = self._start
        busy1, own1, wall1 = self._snapshot()
        foreign = (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - (own1 - own0)
        return max(0.0, foreign / ((wall1 - wall0) * os.cpu_count()))


def load_average():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def peak_rss_mib():
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summarize(times, images):
    """Images/s from per-epoch times: median epoch and best epoch."""
    return {"ips_median": images / statistics.median(times), "ips_best": images / min(times),
            "epoch_s": [round(t, 4) for t in times]}


def gemm_peak(threads, size=2048, repeats=5):
    """Best float32 GFLOP/s of a square NumPy matmul with ``threads`` BLAS threads."""
    import numpy as np
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def blas_info():
    """The BLAS NumPy uses, as threadpoolctl sees it (library, version, kernel architecture)."""
    from threadpoolctl import threadpool_info
    for entry in threadpool_info():
        if entry.get("user_api") == "blas":
            return {k: entry.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                                "threading_layer")}
    return {}
