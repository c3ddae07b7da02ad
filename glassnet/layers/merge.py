"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Concatenate, as Keras names them.

Each takes a list of tensors (``apply(xs)`` with ``xs`` a list) and returns one; ``vjp`` returns
one input gradient per input. The elementwise merges need inputs of one per-example shape.
"""
import numpy as np

from glassnet.errors import describe, message
from glassnet.layers.base import Layer, register
from glassnet.ops.parallel import over_rows
from glassnet.ops.workspace import recycled_array
from glassnet.validation import check_int


class _Merge(Layer):
    """Shared shape handling: a list of inputs, built from a list of shapes."""

    takes_list = True
    #: how many inputs the layer takes at least (and, when ``exact``, exactly)
    min_inputs, exact = 2, False

    def _shapes(self, input_shapes):
        """Per-example shapes from a list of shapes (a leading None batch entry is dropped)."""
        where = f"{type(self).__name__} '{self.name}'"
        count = f"exactly {self.min_inputs}" if self.exact else f"at least {self.min_inputs}"
        if not isinstance(input_shapes, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in input_shapes):
            raise TypeError(message(where, f"a list of {count} input shapes", repr(input_shapes),
                                     "A merge layer is called on a list of tensors, e.g. layers.Add()([a, b])."))
        if len(input_shapes) < self.min_inputs or (self.exact and len(input_shapes) != self.min_inputs):
            raise ValueError(message(where, f"{count} inputs", f"{len(input_shapes)}",
                                     "Pass a list of tensors, e.g. layers.Add()([a, b])."))
        return [tuple(int(d) for d in (s[1:] if s and s[0] is None else s)) for s in input_shapes]

    def check_input_shapes(self, shapes):
        """Elementwise merges: one per-example shape for every input."""
        if any(shape != shapes[0] for shape in shapes):
            raise ValueError(message(f"{type(self).__name__} '{self.name}'", "inputs of one per-example shape",
                                     f"shapes {[(None,) + s for s in shapes]}",
                                     "Make the branches agree, e.g. with a 1x1 Conv2D (a projection shortcut) "
                                     "or strides that shrink both alike."))

    def compute_output_shape(self, shapes):
        return shapes[0]

    def build(self, input_shapes):
        shapes = self._shapes(input_shapes)
        self.check_input_shapes(shapes)
        output_shape = (None,) + tuple(self.compute_output_shape(shapes))    # may raise: nothing set yet
        self.input_shape = [(None,) + s for s in shapes]
        self.output_shape = output_shape
        self.built = True
        return self

    def ensure_built(self, xs):
        if not isinstance(xs, (list, tuple)) or not all(isinstance(x, np.ndarray) and x.dtype.kind == "f"
                                                         for x in xs):
            raise TypeError(message(f"{type(self).__name__} '{self.name}'", "a list of float NumPy arrays",
                                    describe(xs), "Call a merge layer on a list: layers.Add()([a, b])."))
        shapes = [x.shape[1:] for x in xs]
        if self.built and shapes == [s[1:] for s in self.input_shape]:
            return
        if len({x.shape[0] for x in xs}) != 1:
            raise ValueError(message(f"{type(self).__name__} '{self.name}'", "inputs with one batch size",
                                     f"batch sizes {[x.shape[0] for x in xs]}"))
        self.build([(None,) + s for s in shapes])


def _sum(xs):
    """A new array holding the elementwise sum of two or more same-shape arrays (summed left to right),
    in a recycled array (:func:`glassnet.ops.workspace.recycled_array`: no fresh pages per call)."""
    y = recycled_array("sum", np.broadcast_shapes(*(x.shape for x in xs)), np.result_type(*xs))
    if any(x.shape != y.shape for x in xs) or y.ndim == 0:
        np.add(xs[0], xs[1], out=y)
        for x in xs[2:]:
            y += x
        return y

    def add_rows(rows):
        np.add(xs[0][rows], xs[1][rows], out=y[rows])
        for x in xs[2:]:
            y[rows] += x[rows]
    over_rows(add_rows, len(y), (len(xs) + 1) * y.nbytes)
    return y


@register
class Add(_Merge):
    """Elementwise sum of the inputs."""

    def apply(self, xs, training=False):
        self.ensure_built(xs)
        return _sum(xs), len(xs)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        # d(sum)/dx_i = 1: every input receives dy itself (read-only use downstream; never written)
        return ([dy] * cache if need_dx else None), {}


@register
class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two inputs)."""

    exact = True

    def apply(self, xs, training=False):
        self.ensure_built(xs)
        return xs[0] - xs[1], None

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return ([dy, -dy] if need_dx else None), {}


@register
class Multiply(_Merge):
    """Elementwise product of the inputs; dL/dx_i = dy * prod of the others."""

    def apply(self, xs, training=False):
        self.ensure_built(xs)
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y *= x
        return y, list(xs)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        grads = []
        for i in range(len(cache)):
            grad = dy.copy()
            for j, x in enumerate(cache):
                if j != i:
                    grad *= x
            grads.append(grad)
        return grads, {}


@register
class Average(_Merge):
    """Elementwise mean of the inputs."""

    def apply(self, xs, training=False):
        self.ensure_built(xs)
        y = _sum(xs)
        y *= y.dtype.type(1.0 / len(xs))
        return y, len(xs)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        share = dy * dy.dtype.type(1.0 / cache)
        return [share] * cache, {}


@register
class Maximum(_Merge):
    """Elementwise maximum; the gradient goes to the first input holding it (ties: the first, as
    max pooling routes it)."""

    def apply(self, xs, training=False):
        self.ensure_built(xs)
        winner = np.argmax(np.stack(xs), axis=0)
        return np.maximum.reduce(xs), (winner, len(xs))

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        winner, count = cache
        return [np.where(winner == i, dy, 0).astype(dy.dtype, copy=False) for i in range(count)], {}


@register
class Concatenate(_Merge):
    """Join the inputs along ``axis`` (default -1, the channels); the other axes must agree."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        fix = "Keras's default is axis=-1, the channels."
        self.axis = check_int(axis, "axis (a non-zero int: 0 is the batch axis)", "Concatenate", fix=fix)
        if self.axis == 0:
            raise ValueError(message("Concatenate", "axis as a non-zero int (0 is the batch axis)", "0", fix))

    def _axis(self, rank):
        """The axis as a non-negative index into a per-example shape of ``rank`` axes."""
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise ValueError(message(f"Concatenate '{self.name}'", f"an axis within the inputs' {rank + 1} axes",
                                     f"axis={self.axis}"))
        return axis

    def check_input_shapes(self, shapes):
        ranks = {len(s) for s in shapes}
        axis = self._axis(len(shapes[0])) if len(ranks) == 1 else None
        if len(ranks) != 1 or any(s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
            raise ValueError(message(f"Concatenate '{self.name}'", f"inputs whose shapes agree except on axis "
                                     f"{self.axis}", f"shapes {[(None,) + s for s in shapes]}",
                                     "Resize or crop the branches to one height and width first."))

    def compute_output_shape(self, shapes):
        axis = self._axis(len(shapes[0]))
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return tuple(out)

    def apply(self, xs, training=False):
        self.ensure_built(xs)
        axis = self._axis(xs[0].ndim - 1) + 1
        return np.concatenate(xs, axis=axis), (axis, np.cumsum([x.shape[axis] for x in xs])[:-1])

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        axis, splits = cache
        return [np.ascontiguousarray(part) for part in np.split(dy, splits, axis=axis)], {}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
