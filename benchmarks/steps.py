"""Where a training step's time goes: each execution step's forward and backward time, by step and by type.

``python -m benchmarks.steps --model resnet_fashion --threads 1`` trains a preset on random data with
``train_on_batch`` and times every step's ``apply`` and ``vjp`` (the steps of the model's own training
plan, ``model.plan(logits=..., fuse=True)``, wrapped on that model only). ``--clock cpu`` measures the
calling thread's CPU time, which a loaded machine inflates less than the wall clock (at more than one
thread it misses the worker threads' share: use ``--clock wall`` there).
"""
import argparse
import collections
import time

import numpy as np

CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet_fashion", help="preset (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    ap.add_argument("--steps", type=int, default=6, help="timed training steps (default 6, after 2 untimed)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS / glassnet threads (default 1)")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall", help="wall (default) or cpu (this thread)")
    ap.add_argument("--augment", action="store_true", help="keep the preset's augmentation layers")
    return ap.parse_args(argv)


def _timed(step, table, clock):
    """Wrap ``step``'s apply and vjp (on the instance) to add their times to ``table[(step, "fwd"|"bwd")]``."""
    apply, vjp = step.apply, step.vjp

    def timed_apply(*args, **kwargs):
        start = clock()
        result = apply(*args, **kwargs)
        table[(step, "fwd")] += clock() - start
        return result

    def timed_vjp(*args, **kwargs):
        start = clock()
        result = vjp(*args, **kwargs)
        table[(step, "bwd")] += clock() - start
        return result
    step.apply, step.vjp = timed_apply, timed_vjp


def profile(model_name, batch, steps, threads, clock="wall", augment=False):
    """``(per_step, total_ms)``: {step: (forward ms, backward ms)} per training step, and the mean step time."""
    from threadpoolctl import threadpool_limits

    import glassnet as gn
    clock = CLOCKS[clock]
    with threadpool_limits(limits=threads, user_api="blas"):
        model = gn.presets.get(model_name, seed=0, **gn.presets.augment_option(model_name, augment))
        model.compile(optimizer=gn.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch,) + tuple(model.input_shape[1:]), dtype=np.float32)
        y = rng.integers(0, model.output_shape[-1], batch)
        for _ in range(2):
            model.train_on_batch(x, y)
        table = collections.defaultdict(float)
        for plan in list(model._plans.values()):
            for step in plan.steps:
                _timed(step, table, clock)
        start = clock()
        for _ in range(steps):
            model.train_on_batch(x, y)
        total = (clock() - start) / steps * 1e3
    steps_seen = list(dict.fromkeys(step for step, _ in table))
    return {step: (table[(step, "fwd")] / steps * 1e3, table[(step, "bwd")] / steps * 1e3)
            for step in steps_seen}, total


def by_type(per_step):
    """{step type and first layer's type: [forward ms, backward ms, count]}."""
    kinds = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for step, (fwd, bwd) in per_step.items():
        entry = kinds[f"{type(step).__name__}:{type(step.layer).__name__}"]
        entry[0] += fwd
        entry[1] += bwd
        entry[2] += 1
    return dict(kinds)


def main(argv=None):
    a = parse_args(argv)
    per_step, total = profile(a.model, a.batch, a.steps, a.threads, a.clock, a.augment)
    inside = sum(f + b for f, b in per_step.values())
    print(f"{a.model}, batch {a.batch}, {a.threads} thread(s), {a.clock} clock: {total:.1f} ms per step, "
          f"{inside:.1f} in the steps ({a.batch / total * 1e3:.0f} img/s)")
    print(f"{'step type':40s} {'n':>3s} {'fwd ms':>8s} {'bwd ms':>8s} {'share':>6s}")
    for kind, (fwd, bwd, count) in sorted(by_type(per_step).items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        print(f"{kind:40s} {count:3d} {fwd:8.2f} {bwd:8.2f} {(fwd + bwd) / total:6.1%}")
    print("\nper step:")
    for step, (fwd, bwd) in per_step.items():
        shape = getattr(step.layer, "output_shape", "")
        print(f"  {step!r:60s} {str(shape):20s} {fwd:8.2f} {bwd:8.2f}")


if __name__ == "__main__":
    main()
