"""Activation maximization: synthesize the input a unit or a filter responds to most (Erhan et al., 2009)."""
import numpy as np

from glassnet.errors import describe, message
from glassnet.explain.backprop import backward_from, check_layer, forward_to
from glassnet.validation import as_generator, check_flag, check_int, check_name_choice, check_real


def _check_indices(index, units, kind, where):
    """Validate ``index`` (int or sequence of ints) against ``units``; returns (array, was_scalar)."""
    array = np.asarray(index)
    if array.dtype == object or array.dtype == bool or not np.issubdtype(array.dtype, np.integer) \
            or array.ndim > 1 or array.size == 0:
        raise TypeError(message(where, f"index as an int or a list of ints ({kind})", describe(index)))
    bad = (array < 0) | (array >= units)
    if bad.any():
        raise ValueError(message(where, f"{kind} indices in [0, {units - 1}]", f"{int(array[bad][0])}"))
    return array.reshape(-1).astype(np.int64), array.ndim == 0


def _check_bounds(bounds, where):
    """``(low, high)`` as floats: TypeError for anything but a pair of real numbers, ValueError unless
    ``low < high``."""
    expected = "bounds as (low, high) with low < high, or None"
    if not isinstance(bounds, (tuple, list, np.ndarray)) or len(bounds) != 2:
        raise TypeError(message(where, expected, describe(bounds), "For pixels in [0, 1]: bounds=(0, 1)."))
    low, high = (check_real(b, "each bound", where) for b in bounds)
    if not low < high:
        raise ValueError(message(where, expected, describe(bounds)))
    return low, high


class _GradientAscent:
    """Plain gradient ascent: ``x += lr * g``."""

    def __init__(self, lr):
        self.lr = lr

    def step(self, g):
        return self.lr * g


class _Adam:
    """Adam (Kingma & Ba) steps for ascent: each pixel moves about ``lr`` per step whatever the
    scale of the gradient, which is what makes one ``lr`` work across models and layers."""

    def __init__(self, lr, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.lr, self.beta1, self.beta2, self.epsilon = lr, beta1, beta2, epsilon
        self.m = self.v = None
        self.t = 0

    def step(self, g):
        if self.m is None:
            self.m, self.v = np.zeros_like(g), np.zeros_like(g)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g * g
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        return (self.lr * m_hat / (np.sqrt(v_hat) + self.epsilon)).astype(g.dtype, copy=False)


OPTIMIZERS = {"adam": _Adam, "sgd": _GradientAscent}


def _tv_gradient(x):
    """Gradient of TV(x) = sum of squared differences between vertical and horizontal neighbours."""
    grad = np.zeros_like(x)
    for axis in (1, 2):
        d = np.diff(x, axis=axis)
        head = [slice(None)] * x.ndim
        tail = [slice(None)] * x.ndim
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        grad[tuple(head)] += 2 * d
        grad[tuple(tail)] -= 2 * d
    return grad


def activation_maximization(model, layer, index, steps=200, seed=None, l2=0.05, tv=0.05, jitter=1, lr=0.05,
                            image=None, bounds=None, optimizer="adam", return_trajectory=False):
    """Gradient ascent on the input to maximize one unit's activation.

    Maximizes ``J(x) = a(x) - l2 * sum(x^2) - tv * TV(x)`` by gradient ascent on ``x`` with Adam
    steps (``optimizer="adam"``: about ``lr`` per pixel per step) or plain steps
    ``x += lr * dJ/dx`` (``optimizer="sgd"``), where ``a`` is

    - for a layer with a vector output (Dense, ...): unit ``index`` of it; on the final layer (or a
      separate final Softmax) the class *logit*, since a softmax output is maximized by lowering
      the other classes;
    - for a layer with a (N, h, w, F) output (Conv2D, pooling, ...): the mean of channel ``index``.

    and ``TV(x)`` is the sum of squared differences between neighbouring pixels. With ``jitter``
    the image is rolled by a random shift of up to ``jitter`` pixels before each step (and the
    gradient rolled back), which discourages high-frequency patterns.

    For a linear unit ``a = w . x + b`` with ``tv=0`` and no jitter the optimum is
    ``x* = w / (2 l2)``: plain steps reach it exactly (geometrically, for ``0 < lr < 1 / l2``),
    Adam steps to about 1e-4 once ``lr * steps`` covers the distance.

    Jitter and the TV penalty apply to image inputs (N, H, W, C) only.

    Parameters
    ----------
    model : Sequential
    layer : str, int or Layer
    index : int or sequence of int
        Unit or filter; a sequence optimizes one image per index at once.
    steps : int
        Gradient-ascent steps.
    seed : int, numpy.random.Generator or None
        Source of the starting noise and the jitter.
    l2, tv : float
        Penalty weights (>= 0).
    jitter : int
        Largest random shift in pixels (0 for none).
    lr : float
        Step size (for Adam, roughly the change of a pixel per step).
    image : array (H, W, C), optional
        Starting image (default: Gaussian noise with standard deviation 0.1).
    bounds : (low, high), optional
        Clip the image to this range after every step (e.g. ``(0, 1)``, keras-vis's ``input_range``).
    optimizer : {"adam", "sgd"}
    return_trajectory : bool
        Also return the activation at every step (to check that the ascent converged).

    Returns
    -------
    image : ndarray (H, W, C), or (K, H, W, C) for K indices
    trajectory : ndarray (steps + 1,), or (K, steps + 1); only with ``return_trajectory``
        ``a`` at each step (on the jittered image fed forward) and, last, on the final image.
    """
    where = "explain.activation_maximization"
    if not getattr(model, "built", False):
        raise RuntimeError(message(where, "a built model", "an unbuilt one",
                                   "Give the first layer input_shape=... or call model.build(input_shape)."))
    k = check_layer(model, layer, where)
    steps = check_int(steps, "steps", where, minimum=0)
    l2, tv = check_real(l2, "l2", where, low=0), check_real(tv, "tv", where, low=0)
    jitter = check_int(jitter, "jitter", where, minimum=0)
    lr = check_real(lr, "lr", where, low=0)
    rng = as_generator(seed, where)
    return_trajectory = check_flag(return_trajectory, "return_trajectory", where)
    optimizer = check_name_choice(optimizer, sorted(OPTIMIZERS), "optimizer", where)
    stepper = OPTIMIZERS[optimizer](lr)
    shape = model.input_shape[1:]
    out_shape = model.layers[k].output_shape
    if len(out_shape) not in (2, 4):
        raise ValueError(message(where, "a layer with a (N, units) or (N, h, w, F) output",
                                 f"layer {model.layers[k].name!r} with output shape {out_shape}"))
    spatial = len(out_shape) == 4
    indices, scalar = _check_indices(index, out_shape[-1], "filter" if spatial else "unit", where)
    K = len(indices)
    if image is None:
        x = (0.1 * rng.standard_normal((K,) + shape)).astype(model.dtype)
    else:
        start = model.check_x(np.asarray(image)[None], where)[0]
        x = np.repeat(start[None], K, axis=0)
    if bounds is not None:
        low, high = _check_bounds(bounds, where)
        x = np.clip(x, low, high)
    images = len(shape) == 3
    jitter, tv = (jitter, tv) if images else (0, 0.0)
    trajectory = np.empty((K, steps + 1))
    rows = np.arange(K)

    def activation_and_gradient(inputs):
        out, tape, slot = forward_to(model, inputs, k)
        seed_grad = np.zeros_like(out)
        if spatial:
            h, w = out.shape[1:3]
            value = out[rows, :, :, indices].mean(axis=(1, 2))
            seed_grad[rows, :, :, indices] = 1.0 / (h * w)
        else:
            value = out[rows, indices]
            seed_grad[rows, indices] = 1.0
        return value, backward_from(model, tape, slot, seed_grad)

    for step in range(steps):
        shift = tuple(rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        value, grad = activation_and_gradient(np.roll(x, shift, axis=(1, 2)) if jitter else x)
        trajectory[:, step] = value
        if jitter:
            grad = np.roll(grad, (-shift[0], -shift[1]), axis=(1, 2))
        ascent = grad - 2 * l2 * x
        if tv:
            ascent -= tv * _tv_gradient(x)
        x = x + stepper.step(ascent)
        if bounds is not None:
            x = np.clip(x, low, high)
    out = forward_to(model, x, k)[0]
    trajectory[:, steps] = out[rows, :, :, indices].mean(axis=(1, 2)) if spatial else out[rows, indices]
    if scalar:
        x, trajectory = x[0], trajectory[0]
    return (x, trajectory) if return_trajectory else x
