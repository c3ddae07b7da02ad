"""glassnet's speed benchmarks against PyTorch on the CPU (``make bench`` / ``python -m benchmarks.run``).

- :mod:`benchmarks.common`: the models, FLOP accounting, timing and the foreign-CPU meter.
- :mod:`benchmarks.workers`: one measurement per fresh subprocess (glassnet, PyTorch, the seed's
  loop code, the GEMM peak, scaling points), so each has its own thread limits and peak RSS.
- :mod:`benchmarks.run`: the command line; runs the workers alternately and writes ``RESULTS.md``.
"""
