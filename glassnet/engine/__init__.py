"""The graph executor: one forward loop and one backward loop for training, the NaN replay and explain.

- :mod:`glassnet.engine.graph`: a layer graph as nodes over numbered tensor slots (a DAG: a node may
  take several inputs; a tensor may feed several nodes).
- :mod:`glassnet.engine.plan`: the build-time planning pass that turns the nodes into explicit
  execution steps (a fused Conv2D + MaxPooling2D step, a convolution that applies the ReLU gate of
  the convolution below it, a head that stops at the logits).
- :mod:`glassnet.engine.executor`: :func:`run` and :func:`backprop`, whose state lives in a
  :class:`Tape` owned by the call, so one model serves many threads.
"""
from glassnet.engine.executor import Tape, backprop, run
from glassnet.engine.graph import Graph, Node
from glassnet.engine.plan import Plan, make_plan

__all__ = ["Graph", "Node", "Plan", "make_plan", "Tape", "run", "backprop"]
