"""One version of glassnet against another: the training step of the benchmark presets, alternated.

The "before" version is a git ref of this repository, exported to a temporary folder; "after" is
the working tree, or another ref with ``--after``. Every measurement runs in a fresh process
(``PYTHONPATH`` set to one of the two trees), and each round runs the two versions in turn, the
order rotated from round to round, so
that load from other processes hits both alike. A measurement is the median time of
``--steps`` training steps (``train_on_batch``, after ``--warmup`` untimed ones) on random data;
the result per (model, threads) is the ratio before / after of each round (> 1: after is faster)
and their median and range, for the wall time and for the process's CPU time (all its threads):
on a machine loaded by other processes the CPU time varies far less than the wall time.

Examples::

    python -m benchmarks.ab --before main                      # all three presets, 1 and 2 threads
    python -m benchmarks.ab --before HEAD~3 --models lenet5 --threads 2 --rounds 8
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("keras_mnist", "lenet5", "seed003_tiny")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="git ref of the version to compare against")
    ap.add_argument("--after", help="git ref of the version to measure (default: the working tree)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of presets (default: %(default)s)")
    ap.add_argument("--threads", default="1,2", help="comma list of BLAS thread counts (default 1,2)")
    ap.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per process (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--rounds", type=int, default=5, help="alternated rounds per setting (default 5)")
    ap.add_argument("--json", help="also write every measurement to this JSON file")
    return ap.parse_args(argv)


def step_seconds(spec):
    """Median wall and CPU seconds of one training step of ``spec["model"]`` (runs in the child process)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    import glassnet as gn
    with threadpool_limits(limits=spec["threads"], user_api="blas"):
        model = gn.models.PRESETS[spec["model"]](seed=0)
        model.compile(optimizer=gn.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((spec["batch"],) + tuple(model.input_shape[1:]), dtype=np.float32)
        y = rng.integers(0, 10, spec["batch"])
        wall, cpu = [], []
        for step in range(spec["warmup"] + spec["steps"]):
            start, start_cpu = time.perf_counter(), time.process_time()
            model.train_on_batch(x, y)
            if step >= spec["warmup"]:
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def measure(tree, spec):
    """Run :func:`step_seconds` in a fresh interpreter on the glassnet of ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"measurement failed ({spec}, {tree}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(ref, folder):
    """The tree of git ``ref`` written into ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    Path(folder).mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return Path(folder)


def compare(a, before_tree, after_tree):
    """Alternate the two trees for every (model, threads); returns one record per setting."""
    records = []
    for model in a.models.split(","):
        for threads in (int(t) for t in a.threads.split(",")):
            spec = {"model": model, "threads": threads, "batch": a.batch, "steps": a.steps, "warmup": a.warmup}
            rounds = []
            for r in range(a.rounds):
                order = [("before", before_tree), ("after", after_tree)]
                timed = {name: measure(tree, spec) for name, tree in (order if r % 2 == 0 else order[::-1])}
                rounds.append(timed)
            record = {"model": model, "threads": threads, "rounds": rounds}
            summary = []
            for clock in ("wall", "cpu"):
                ratios = [t["before"][clock] / t["after"][clock] for t in rounds]
                ms = [statistics.median(t[name][clock] for t in rounds) * 1e3 for name in ("before", "after")]
                record[clock + "_ratios"] = ratios
                summary.append(f"{clock} {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}; "
                               f"{ms[0]:.1f} -> {ms[1]:.1f} ms)")
            records.append(record)
            print(f"{model:14s} {threads} thread(s), before/after: " + ", ".join(summary), flush=True)
    return records


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(step_seconds(json.loads(argv[1]))))
        return
    a = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="glassnet-ab-") as folder:
        before = export(a.before, Path(folder) / "before")
        after = ROOT if a.after is None else export(a.after, Path(folder) / "after")
        records = compare(a, before, after)
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
