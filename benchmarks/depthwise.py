"""glassnet's depthwise convolution op against PyTorch's grouped convolution (``groups=C``), per op.

For every shape (batch 128 by default; "same" padding, multiplier 1, with a bias) and thread count it
times, in one process and alternated round by round (the order rotated so that load from other
processes hits both libraries alike):

- ``forward``: glassnet's :func:`glassnet.ops.depthwise.depthwise_conv2d_forward` (NHWC) against
  ``torch.nn.Conv2d(C, C, k, s, groups=C)`` under ``torch.no_grad()``, in PyTorch's default NCHW layout
  and in ``channels_last``;
- ``forward+backward``: the forward pass and every gradient (input, kernel, bias), against PyTorch's
  forward and ``backward`` of the same output gradient.

The ratio is PyTorch's time / glassnet's (> 1: glassnet faster), the median of the per-round ratios.
The first round also checks that both computed the same output. "Foreign" is the largest share of the
machine's CPU that other processes used during a shape's rounds (above ~0.1 the timings are disturbed).

Examples::

    python -m benchmarks.depthwise                                # 12 shapes, 1 and 2 threads, 5 rounds
    python -m benchmarks.depthwise --threads 1 --shapes 28x28x32 --kernels 3 --strides 1
    python -m benchmarks.depthwise --quick                        # one round, one repeat: a smoke test
"""
import argparse
import copy
import statistics
import time

import numpy as np

from benchmarks.common import ForeignCPU, load_average

SHAPES = ("28x28x32", "14x14x64", "7x7x128")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
PHASES = ("forward", "forward+backward")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.depthwise", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of HxWxC (default %(default)s)")
    ap.add_argument("--kernels", default="3,5", help="comma list of square kernel sizes (default 3,5)")
    ap.add_argument("--strides", default="1,2", help="comma list of strides (default 1,2)")
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    ap.add_argument("--batch", type=int, default=128, help="images per call (default 128)")
    ap.add_argument("--rounds", type=int, help="alternated rounds (default 5; --quick 1)")
    ap.add_argument("--repeats", type=int, help="timed calls per library and round; their median counts (default 5)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time, or this process's CPU time (all its threads: on a loaded machine the "
                         "1-thread CPU time is the steadier measure; default wall)")
    ap.add_argument("--quick", action="store_true", help="one round of one repeat")
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 5)
    a.repeats = a.repeats or (1 if a.quick else 5)
    a.shapes = [tuple(int(v) for v in shape.split("x")) for shape in a.shapes.split(",")]
    a.kernels, a.strides, a.threads = ([int(v) for v in arg.split(",")] for arg in (a.kernels, a.strides, a.threads))
    return a


def median_seconds(fn, repeats, clock=time.perf_counter):
    """Median time on ``clock`` of ``repeats`` calls of ``fn`` after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


class Case:
    """One shape's inputs and the calls to time: ``calls[(library, phase)]`` is a function of no argument."""

    def __init__(self, batch, shape, kernel, stride, seed=0):
        import torch

        from glassnet.ops import resolve_padding
        from glassnet.ops.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
        H, W, C = shape
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch, H, W, C), dtype=np.float32)
        weight = rng.standard_normal((kernel, kernel, C, 1), dtype=np.float32) / kernel
        bias = rng.standard_normal(C, dtype=np.float32)
        pads = resolve_padding("same", (kernel, kernel), (stride, stride), (H, W))
        y, _ = depthwise_conv2d_forward(x, weight, bias, (stride, stride), pads)
        dy = rng.standard_normal(y.shape, dtype=np.float32)

        def ours_forward():
            return depthwise_conv2d_forward(x, weight, bias, (stride, stride), pads)[0]

        def ours_training():
            out, cache = depthwise_conv2d_forward(x, weight, bias, (stride, stride), pads)
            return depthwise_conv2d_backward(dy, cache, weight)

        (top, bottom), (left, right) = pads
        # PyTorch pads symmetrically: an odd "same" total (stride 2, even size) is padded by hand first
        symmetric = top == bottom and left == right
        conv = torch.nn.Conv2d(C, C, kernel, stride, padding=(top, left) if symmetric else 0, groups=C)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight[:, :, :, 0].transpose(2, 0, 1)[:, None])))
            conv.bias.copy_(torch.from_numpy(bias))
        pad = (lambda t: t) if symmetric else (lambda t: torch.nn.functional.pad(t, (left, right, top, bottom)))
        self.expected = y
        self.calls = {("glassnet", "forward"): ours_forward, ("glassnet", "forward+backward"): ours_training}
        tdy = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))
        for layout, memory_format in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
            module = copy.deepcopy(conv).to(memory_format=memory_format)
            tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            tx, layout_dy = tx.contiguous(memory_format=memory_format), tdy.contiguous(memory_format=memory_format)
            self.calls[(f"torch_{layout}", "forward")] = _torch_forward(module, pad, tx)
            self.calls[(f"torch_{layout}", "forward+backward")] = _torch_training(module, pad, tx, layout_dy)

    def agreement(self, library):
        """Largest |difference| between ``library``'s forward output and glassnet's, relative to its peak."""
        out = self.calls[(library, "forward")]()
        out = out if isinstance(out, np.ndarray) else out.numpy().transpose(0, 2, 3, 1)
        return float(np.abs(out - self.expected).max() / np.abs(self.expected).max())


def _torch_forward(module, pad, tx):
    import torch

    def forward():
        with torch.no_grad():
            return module(pad(tx))
    return forward


def _torch_training(module, pad, tx, tdy):
    source = tx.clone().requires_grad_(True)

    def training():
        module.zero_grad(set_to_none=True)
        source.grad = None
        module(pad(source)).backward(tdy)
    return training


LIBRARIES = ("glassnet", "torch_nchw", "torch_channels_last")


def measure(case, rounds, repeats, clock=time.perf_counter):
    """Per phase: each library's median seconds and the per-round ratios torch / glassnet."""
    seconds = {key: [] for key in case.calls}
    for round_index in range(rounds):
        order = LIBRARIES[round_index % 3:] + LIBRARIES[:round_index % 3]
        for phase in PHASES:
            for library in order:
                seconds[(library, phase)].append(median_seconds(case.calls[(library, phase)], repeats, clock))
    return {phase: summarize({library: seconds[(library, phase)] for library in LIBRARIES}) for phase in PHASES}


def summarize(times):
    """``times[library]``: per-round seconds -> medians and median/min/max of torch / glassnet per round."""
    row = {f"{library}_ms": 1e3 * statistics.median(values) for library, values in times.items()}
    for library in LIBRARIES[1:]:
        ratios = [theirs / ours for theirs, ours in zip(times[library], times["glassnet"])]
        row[f"vs_{library}"] = (statistics.median(ratios), min(ratios), max(ratios))
    return row


def format_row(label, threads, phase, row, foreign):
    ratio = "{0:.2f}x ({1:.2f}-{2:.2f})".format
    return (f"| {label} | {threads} | {phase} | {row['glassnet_ms']:.2f} | {row['torch_nchw_ms']:.2f} | "
            f"{ratio(*row['vs_torch_nchw'])} | {row['torch_channels_last_ms']:.2f} | "
            f"{ratio(*row['vs_torch_channels_last'])} | {foreign:.2f} |")


HEADER = ("| shape, kernel, stride | threads | phase | glassnet ms | torch NCHW ms | ratio (range) | "
          "torch channels_last ms | ratio (range) | foreign |\n"
          "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")


def run_threads(a, threads):
    """All cases at ``threads`` threads (BLAS limit for glassnet's workers, torch.set_num_threads); markdown rows."""
    import torch
    from threadpoolctl import threadpool_limits
    rows = []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            for shape in a.shapes:
                for kernel in a.kernels:
                    for stride in a.strides:
                        rows += run_case(a, threads, shape, kernel, stride)
    finally:
        torch.set_num_threads(previous)
    return rows


def run_case(a, threads, shape, kernel, stride):
    case = Case(a.batch, shape, kernel, stride)
    agreement = max(case.agreement(library) for library in LIBRARIES[1:])
    if agreement > 1e-4:
        raise RuntimeError(f"glassnet and PyTorch disagree on {shape}, k{kernel}, s{stride}: {agreement:.1e}")
    meter = ForeignCPU().start()
    result = measure(case, a.rounds, a.repeats, CLOCKS[a.clock])
    foreign = meter.stop()
    label = "x".join(map(str, shape)) + f" k{kernel} s{stride}"
    rows = [format_row(label, threads, phase, result[phase], foreign) for phase in PHASES]
    for row in rows:
        print(row, flush=True)
    return rows


def main(argv=None):
    a = parse_args(argv)
    print(f"depthwise convolution, batch {a.batch}, {a.rounds} rounds x {a.repeats} repeats, {a.clock} clock, "
          f"load average {load_average()}")
    print("ratio: PyTorch time / glassnet time, > 1: glassnet faster")
    print(HEADER)
    for threads in a.threads:
        run_threads(a, threads)
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
