"""A layer graph as the executor sees it: nodes over numbered tensor slots.

Slot numbers are the positions of tensors; the graph's inputs are slots no node produces. Nodes are
kept in a topological order (every node after the producers of its inputs).
"""
from typing import NamedTuple


class Node(NamedTuple):
    """One call of ``layer`` on the tensors in slots ``inputs`` (several for a merge layer), giving
    the tensor in slot ``output``."""
    layer: object
    inputs: tuple
    output: int

    @property
    def merges(self):
        """Whether the layer takes a list of inputs (a merge layer)."""
        return getattr(self.layer, "takes_list", False)


class Graph(NamedTuple):
    """Nodes in topological order, the input slots and the output slots."""
    nodes: tuple
    inputs: tuple
    outputs: tuple

    @classmethod
    def chain(cls, layers):
        """A Sequential's graph: layer ``i`` reads slot ``i`` and writes slot ``i + 1``."""
        return cls(tuple(Node(layer, (i,), i + 1) for i, layer in enumerate(layers)), (0,), (len(layers),))

    def producers(self):
        """{slot: index of the node that writes it}."""
        return {node.output: i for i, node in enumerate(self.nodes)}

    def consumers(self):
        """{slot: number of node inputs that read it} (a node reading a slot twice counts twice)."""
        counts = {}
        for node in self.nodes:
            for slot in node.inputs:
                counts[slot] = counts.get(slot, 0) + 1
        return counts
