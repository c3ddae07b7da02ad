"""Gradient checking for layers and models: float64 central differences against ``backward``.

The scalar loss is a random projection ``L = sum(y * r)`` with a fixed random ``r``, so
``dL/dy = r`` and every output element contributes with a different weight (a plain
``sum(y)`` would hide errors that cancel, e.g. in softmax, whose outputs always sum to 1).

Each input and parameter element ``p`` is checked with
``dL/dp ~ (L(p + eps) - L(p - eps)) / (2 eps)``, whose truncation error is O(eps^2).
Errors are measured per array as ``||analytic - numeric|| / max(||analytic||, ||numeric||)``,
falling back to the absolute error when both gradients are essentially zero.

Example
-------
>>> import numpy as np
>>> from glassnet import layers
>>> from glassnet.testing import check_layer_gradients
>>> layer = layers.Conv2D(2, 3, strides=2, padding="same", dtype="float64")
>>> x = np.random.default_rng(0).standard_normal((2, 5, 5, 3))
>>> errors = check_layer_gradients(layer, x)      # raises AssertionError when too large
>>> sorted(errors)
['bias', 'kernel', 'x']
"""
import numpy as np

from glassnet.errors import describe, message


def relative_error(analytic, numeric, floor=1e-7):
    """``||a - n|| / max(||a||, ||n||)``; the absolute ``||a - n||`` when both norms are below ``floor``."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(message("relative_error", "two arrays of the same shape",
                                 f"{analytic.shape} and {numeric.shape}"))
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric))
    return float(np.linalg.norm(analytic - numeric) / (scale if scale >= floor else 1.0))


def numerical_gradient(f, array, eps=1e-6):
    """Central-difference gradient of a scalar function ``f()`` with respect to ``array``.

    Parameters
    ----------
    f : callable
        Takes no argument and returns a float; it must read ``array``, which is perturbed in place.
    array : ndarray, float64
        Restored exactly after each element is perturbed.
    eps : float

    Returns
    -------
    grad : ndarray, shape ``array.shape``
    """
    grad = np.zeros(array.shape, dtype=np.float64)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + eps
        plus = f()
        array[index] = old - eps
        minus = f()
        array[index] = old
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def _check_float64(array, where, name):
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        raise TypeError(message(where, f"{name} as a float64 array (float32 central differences are "
                                "too coarse for a 1e-6 check)", describe(array),
                                "Build the layer with dtype='float64' and pass x.astype('float64')."))


def _assert_small(errors, rtol, where):
    bad = {key: err for key, err in errors.items() if not err < rtol}
    if bad:
        detail = ", ".join(f"{key}: {err:.3g}" for key, err in bad.items())
        raise AssertionError(f"{where}: gradient check failed (relative error >= {rtol:g}) for {detail}; "
                             f"all errors: {errors}")


def check_layer_gradients(layer, x, training=False, seed=0, eps=1e-6, rtol=1e-6, prepare=None,
                          forward_kwargs=None, check_input=True):
    """Compare a layer's ``backward`` with central differences for ``x`` and every parameter.

    Parameters
    ----------
    layer : Layer
        Built or not; its ``dtype`` must be float64.
    x : ndarray, float64, shape (N, ...)
    training : bool
        Passed to ``forward`` (e.g. BatchNormalization's batch statistics, Dropout's mask).
    seed : int
        Seeds the projection ``r``.
    eps, rtol : float
        Step of the central differences and the largest relative error accepted.
    prepare : callable, optional
        ``prepare(layer)`` runs before every forward pass; use it to make random layers
        deterministic, e.g. ``lambda l: setattr(l, "rng", np.random.default_rng(0))`` for Dropout.
    forward_kwargs : dict, optional
        Extra keyword arguments for ``forward`` (e.g. ``{"logits": True}``).
    check_input : bool
        Also check dL/dx.

    Returns
    -------
    errors : dict
        ``{"x": err, <param name>: err, ...}``, each below ``rtol``.

    Raises
    ------
    AssertionError
        When any error reaches ``rtol`` (the message lists every error), or when ``backward``
        changed ``dy`` or returned a gradient of the wrong shape.
    """
    where = f"check_layer_gradients({type(layer).__name__} '{getattr(layer, 'name', '?')}')"
    _check_float64(x, where, "x")
    x = x.copy()
    kwargs = dict(forward_kwargs or {})

    def run():
        if prepare is not None:
            prepare(layer)
        return layer.forward(x, training=training, **kwargs)

    y = run()
    _check_float64(y, where, "the layer output")
    for key, value in layer.params.items():
        _check_float64(value, where, f"parameter '{key}'")
    r = np.random.default_rng(seed).standard_normal(y.shape)

    def loss():
        return float(np.sum(run() * r))

    dy = r.copy()
    dy.setflags(write=False)
    dx = layer.backward(dy)
    if not np.array_equal(dy, r):
        raise AssertionError(f"{where}: backward changed dy")
    analytic = {key: np.array(layer.grads[key], dtype=np.float64) for key in layer.params}
    errors = {}
    if check_input:
        if dx is None or np.shape(dx) != x.shape:
            raise AssertionError(f"{where}: backward returned dx of shape {np.shape(dx)}, expected {x.shape}")
        dx = np.array(dx, dtype=np.float64)
        errors["x"] = relative_error(dx, numerical_gradient(loss, x, eps))
    for key, grad in analytic.items():
        param = layer.params[key]
        if grad.shape != param.shape:
            raise AssertionError(f"{where}: grads['{key}'] has shape {grad.shape}, expected {param.shape}")
        errors[key] = relative_error(grad, numerical_gradient(loss, param, eps))
    _assert_small(errors, rtol, where)
    return errors


def check_model_gradients(model, x, training=False, seed=0, eps=1e-6, rtol=1e-6, logits=False,
                          prepare=None):
    """The model-level analogue of :func:`check_layer_gradients` for a float64 ``Sequential``.

    Checks dL/dx and every trainable parameter of every layer through ``model.forward`` /
    ``model.backward``. Returns ``{"x": err, "<layer name>/<param>": err, ...}``.
    """
    where = f"check_model_gradients({getattr(model, 'name', '?')})"
    _check_float64(x, where, "x")
    x = x.copy()

    def run():
        if prepare is not None:
            prepare(model)
        return model.forward(x, training=training, logits=logits)

    y = run()
    r = np.random.default_rng(seed).standard_normal(y.shape)

    def loss():
        return float(np.sum(run() * r))

    dy = r.copy()
    dy.setflags(write=False)
    dx = model.backward(dy, logits=logits, input_grad=True)
    layers = model.trainable_layers()
    analytic = {(layer.name, key): np.array(layer.grads[key], dtype=np.float64)
                for layer in layers for key in layer.params}
    errors = {"x": relative_error(np.asarray(dx, dtype=np.float64), numerical_gradient(loss, x, eps))}
    for layer in layers:
        for key, param in layer.params.items():
            _check_float64(param, where, f"{layer.name}/{key}")
            errors[f"{layer.name}/{key}"] = relative_error(analytic[layer.name, key],
                                                           numerical_gradient(loss, param, eps))
    _assert_small(errors, rtol, where)
    return errors
