"""glassnet.distributed: integrated gradients over Fashion-MNIST test images with 1 and 2 local
worker processes, and the overhead of one chunk.

Throughput: ``explain.integrated_gradients`` (``--steps`` 50) on the first ``--images`` (2,000)
Fashion-MNIST test images, chunks of ``--chunk-size`` images (each one batch of the method), on an
embedded LocalCluster of each worker count in ``--workers`` (one thread per worker). The clock
starts after the cluster is up and every worker has imported glassnet (one warm-up task each) and
stops when the last map is on the client: it includes shipping the model, scheduling and moving
the results.

Per-chunk overhead: ``predict`` on ``--overhead-images`` images in chunks of one image on one
worker, minus the same per-image predictions computed in this process with one BLAS thread,
divided by the number of chunks. A chunk should hold much more work than this.

The model is the ``--model`` preset with seeded random weights (the cost of integrated gradients
does not depend on the weights). Run on an idle machine for clean numbers::

    python -m benchmarks.distributed                         # writes benchmarks/RESULTS-distributed.md
    python -m benchmarks.distributed --images 200 --quick    # a short check; prints only
"""
import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import load_average

RESULTS = Path(__file__).resolve().parent / "RESULTS-distributed.md"


def fashion_test_images(count):
    """The first ``count`` Fashion-MNIST test images as float32 (N, 28, 28, 1) in [0, 1]."""
    from glassnet import datasets
    _, (x_test, _) = datasets.fashion_mnist.load_data()
    return x_test[:count, ..., None].astype(np.float32) / np.float32(255)


def time_explain(model, images, workers, steps, chunk_size):
    """Seconds for distributed integrated gradients on ``workers`` local worker processes."""
    from distributed import Client

    from glassnet import distributed as gd
    with gd.local_cluster(workers) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers, timeout=300)
        gd.explain(model, images[:workers], "integrated_gradients", client=client, chunk_size=1, steps=1, batch_size=1)
        start = time.perf_counter()
        # one batch per chunk (a chunk is a multiple of the method's batch_size): chunks of exactly chunk_size
        maps = gd.explain(model, images, "integrated_gradients", client=client, chunk_size=chunk_size, steps=steps,
                          batch_size=chunk_size)
        seconds = time.perf_counter() - start
    assert maps.shape == images.shape and np.isfinite(maps).all()
    return seconds


def chunk_overhead(model, images):
    """Seconds each one-image chunk costs beyond its own computation (predict, one worker)."""
    from distributed import Client
    from threadpoolctl import threadpool_limits

    from glassnet import distributed as gd
    with threadpool_limits(1):
        start = time.perf_counter()
        for i in range(len(images)):
            model.predict(images[i:i + 1], batch_size=1)
        compute = time.perf_counter() - start
    with gd.local_cluster(1) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=300)
        gd.predict(model, images[:2], client=client, chunk_size=1, batch_size=1)
        start = time.perf_counter()
        gd.predict(model, images, client=client, chunk_size=1, batch_size=1)
        wall = time.perf_counter() - start
    return {"chunks": len(images), "wall_s": wall, "compute_s": compute, "per_chunk_ms": 1e3 * (wall - compute) / len(images)}


def measure(args):
    from glassnet import models
    images = fashion_test_images(args.images)
    model = models.get(args.model, seed=0)
    result = {"model": args.model, "images": len(images), "steps": args.steps, "chunk_size": args.chunk_size,
              "cpus": os.cpu_count(), "load_before": load_average(), "runs": {}}
    for workers in args.workers:
        seconds = time_explain(model, images, workers, args.steps, args.chunk_size)
        result["runs"][workers] = {"seconds": seconds, "images_per_s": len(images) / seconds}
    result["overhead"] = chunk_overhead(model, images[:args.overhead_images])
    result["load_after"] = load_average()
    counts = sorted(result["runs"])
    if len(counts) >= 2:
        result["speedup"] = result["runs"][counts[0]]["seconds"] / result["runs"][counts[-1]]["seconds"]
    return result


def markdown(result, command):
    lines = [f"# glassnet.distributed: integrated gradients on a local Dask cluster",
             "", f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{platform.node() or 'this machine'} ({result['cpus']} cores); rerun with `{command}`.", "",
             f"`explain.integrated_gradients`, {result['steps']} steps, on the first {result['images']} Fashion-MNIST "
             f"test images, `{result['model']}` preset, chunks of {result['chunk_size']} images; one thread per worker.",
             "", "| worker processes | seconds | images/s |", "| ---: | ---: | ---: |"]
    for workers, run in sorted(result["runs"].items()):
        lines.append(f"| {workers} | {run['seconds']:.1f} | {run['images_per_s']:.1f} |")
    if "speedup" in result:
        lines += ["", f"Speed-up from {min(result['runs'])} to {max(result['runs'])} workers: **{result['speedup']:.2f}x**."]
    overhead = result["overhead"]
    one = result["runs"][min(result["runs"])]
    per_image_ms = 1e3 * one["seconds"] / result["images"] * min(result["runs"])
    share = overhead["per_chunk_ms"] / (result["chunk_size"] * per_image_ms)
    lines += ["", f"Per-chunk overhead: **{overhead['per_chunk_ms']:.1f} ms** ({overhead['chunks']} one-image predict "
              f"chunks on one worker: {overhead['wall_s']:.2f} s wall against {overhead['compute_s']:.2f} s of "
              f"computation in one process). One image of integrated gradients cost {per_image_ms:.0f} ms of a "
              f"worker here, so a chunk of {result['chunk_size']} images pays {100 * share:.2f}% overhead; pick chunks "
              "holding at least ~100 times the overhead of work.", "",
              f"Load average (1, 5, 15 min) before: {result['load_before']}, after: {result['load_after']}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--overhead-images", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="print only; do not write RESULTS-distributed.md")
    parser.add_argument("--note", default="", help="a line added to the results (e.g. the machine's load)")
    args = parser.parse_args(argv)
    result = measure(args)
    print(json.dumps(result, indent=2))
    if not args.quick:
        RESULTS.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        text = markdown(result, "python -m benchmarks.distributed")
        RESULTS.write_text(text + (f"\n{args.note}\n" if args.note else ""))
        print(f"wrote {RESULTS}")
    return result


if __name__ == "__main__":
    main()
