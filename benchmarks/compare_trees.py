"""glassnet against glassnet: the same training/inference measurement on two source trees, alternated.

Each round runs ``benchmarks.workers``' glassnet job once per tree, each in a fresh interpreter
with that tree first on ``PYTHONPATH``, the order of the trees swapped every round, so load from
other processes hits both; the per-round ratios (second tree / first, in images per second) are
what to read on a shared machine. Make the "before" tree with e.g.
``git archive main | tar -x -C /tmp/before``.

Example::

    python -m benchmarks.compare_trees /tmp/before . --models lenet5,seed003_tiny --rounds 10
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare_trees", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", help="source tree measured first in even rounds")
    ap.add_argument("after", help="source tree compared with it")
    ap.add_argument("--models", default="lenet5,seed003_tiny,keras_mnist", help="comma list of presets")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="BLAS / glassnet threads (default 2)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--epoch-images", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per process")
    return ap.parse_args(argv)


def measure(tree, spec):
    """One glassnet job of ``benchmarks.workers`` run from ``tree`` in a fresh interpreter."""
    tree = os.path.abspath(tree)
    done = subprocess.run([sys.executable, "-m", "benchmarks.workers", json.dumps(spec)], cwd=tree,
                          env=dict(os.environ, PYTHONPATH=tree), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"worker failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(a, model):
    """Per-round (before, after) results for one model."""
    spec = {"job": "glassnet", "model": model, "batch": a.batch, "threads": a.threads,
            "epoch_images": a.epoch_images, "epochs": a.epochs, "warmup": 1}
    rounds = []
    for r in range(a.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        results = {name: measure(getattr(a, name), spec) for name in order}
        rounds.append((results["before"], results["after"]))
    return rounds


def summary_lines(model, a, rounds):
    lines = []
    for phase in ("train", "infer"):
        for stat in ("ips_median", "ips_best"):
            before = [b[phase][stat] for b, _ in rounds]
            ratios = [after[phase][stat] / b[phase][stat] for b, after in rounds]
            lines.append(f"{model} batch {a.batch} {a.threads}T {phase} {stat}: before {statistics.median(before):.0f} "
                         f"img/s; after/before per round {min(ratios):.3f}-{max(ratios):.3f}, "
                         f"median {statistics.median(ratios):.3f}")
    foreign = max(r[phase]["foreign_cpu"] for pair in rounds for r in pair for phase in ("train", "infer"))
    lines.append(f"{model}: largest share of the CPU used by other processes {foreign:.2f}")
    return lines


def main(argv=None):
    a = parse_args(argv)
    for model in a.models.split(","):
        print("\n".join(summary_lines(model, a, compare(a, model))), flush=True)


if __name__ == "__main__":
    main()
