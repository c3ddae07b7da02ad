"""Loop-based reference implementations: the seeds' step-by-step CNN code, made correct.

This module is the readable twin of :mod:`glassnet.ops`. Every function here loops over
output pixels the way the teaching material does, so each line maps to one piece of math.
It is slow on purpose; the tests use it as an oracle for the vectorized fast path.

Three groups of functions, one per seed:

* **Seed 002** ("Convolution model - Step by Step"), under the seed's own names and
  argument conventions: :func:`zero_pad`, :func:`conv_single_step`, :func:`conv_forward`,
  :func:`conv_backward`, :func:`pool_forward`, :func:`create_mask_from_window`,
  :func:`distribute_value`, :func:`pool_backward`. Arrays are NHWC ``(m, n_H, n_W, n_C)``
  and kernels ``(f, f, n_C_prev, n_C)``, exactly glassnet's layout. They reproduce every
  number the seed prints; they also accept rectangular kernels, per-axis strides and
  explicit (even asymmetric) padding so that they can check every configuration of the
  layers.
* **Seed 001** (a hand-written ``ConvLayer`` and ``MaxPoolingLayer``): the same
  convolution taught the other way round, with *sensitivity maps*: the error map is
  expanded for the stride, zero padded and convolved with the 180-degree-rotated filter
  (:func:`conv_layer_forward`, :func:`expand_sensitivity_map`, :func:`conv_layer_backward`,
  :func:`max_pooling_layer_forward`, :func:`max_pooling_layer_backward`, :data:`ACTIVATORS`).
  The seed works on one CHW image; here the functions take NHWC batches and HWIO kernels.
* **Seed 003** (a tiny MNIST network written with loops: ``Conv3x3(8) -> MaxPool2 ->
  Softmax(13*13*8 -> 10)``, per-sample SGD): :func:`init_tiny_params`, :func:`tiny_forward`,
  :func:`tiny_gradients`, :func:`train_tiny_step`. The benchmark times these against the
  vectorized layers.

Where the seeds' printed code is wrong, the functions below are right and say so:

* Seed 002's ``conv_forward`` slices ``vert_end = vert_start + stride`` (and the same for
  ``horiz_end``); the window must be ``f`` wide. The seed's example uses ``f == stride == 2``,
  so its printed numbers are the same with either slice and the correct code reproduces them.
* Seed 002's ``conv_backward`` un-pads with ``da_prev_pad[pad:-pad, pad:-pad]``, which is
  empty when ``pad == 0``; we slice ``[top:top + n_H_prev]`` instead.
* Seed 002's ``create_mask_from_window`` is ``x >= max(x)``: on ties it marks every maximal
  entry, so the gradient of one output is counted several times. A max is a function of one
  winning element; we mark only the first maximum in row-major order (as :mod:`glassnet.ops`
  does). On the seed's random data there are no ties, so its printed mask is unchanged.
* Seed 001's ``MaxPoolingLayer.backward`` *assigns* the gradient (``=``); with overlapping
  windows an input can win several windows and the gradients must be *added*.
* Seed 001's ``bp_sensitivity_map`` pads the expanded map by ``(W + f - 1 - W_expanded) / 2``
  (= ``f - 1 - pad``), a shortcut for "full convolution, then crop the padding" that breaks
  when ``pad > f - 1``; we do the full convolution and crop.
* Seed 003's ``MaxPool2.backprop`` copies the gradient to *every* element equal to the
  window max. MNIST's flat background makes such ties common (four equal conv outputs in a
  window), so the seed's filters receive up to four times the true gradient there. We route
  each window's gradient to one element, which is the derivative of the forward pass.
* Seed 000's ``cnn_conv`` multiplies the window and the kernel with ``numpy.dot`` (a matrix
  product) where an element-wise product is meant; :func:`conv_forward` is the correct loop.

No function here prints, draws random numbers from NumPy's global state or changes its input.
"""
import numpy as np

__all__ = [
    # seed 002
    "zero_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
    "create_mask_from_window", "distribute_value", "pool_backward", "same_padding",
    # seed 001
    "ACTIVATORS", "conv_layer_forward", "expand_sensitivity_map", "conv_layer_backward",
    "max_pooling_layer_forward", "max_pooling_layer_backward",
    # seed 003
    "init_tiny_params", "tiny_forward", "tiny_gradients", "train_tiny_step",
]


# ----------------------------------------------------------------------------------------
# small helpers: hyperparameters may be an int or one value per axis
# ----------------------------------------------------------------------------------------
def _pair(value):
    """``3 -> (3, 3)``; ``(2, 3)`` stays ``(2, 3)``."""
    if np.ndim(value) == 0:
        return (int(value), int(value))
    first, second = value
    return (int(first), int(second))


def _pads(pad):
    """Padding as ``((top, bottom), (left, right))`` from an int, ``(ph, pw)`` or that form."""
    if np.ndim(pad) == 0:
        return ((int(pad),) * 2, (int(pad),) * 2)
    ph, pw = pad
    return (_pair(ph), _pair(pw))


def same_padding(input_hw, kernel_size, strides):
    """Keras's "same" padding as explicit ``((top, bottom), (left, right))`` amounts.

    The output has ``ceil(n / s)`` positions per axis; the padding that needs is
    ``total = max((out - 1) * s + k - n, 0)``, split with the odd pixel at the bottom/right.

    Parameters
    ----------
    input_hw, kernel_size, strides : int or (int, int)

    Returns
    -------
    ((int, int), (int, int))
    """
    pads = []
    for n, k, s in zip(_pair(input_hw), _pair(kernel_size), _pair(strides)):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


# ----------------------------------------------------------------------------------------
# seed 002: the step-by-step functions
# ----------------------------------------------------------------------------------------
def zero_pad(X, pad):
    """Pad the height and width of every image in a batch with zeros.

    Parameters
    ----------
    X : ndarray, shape (m, n_H, n_W, n_C)
    pad : int or (int, int) or ((int, int), (int, int))
        The same amount on all four sides, ``(ph, pw)`` per axis, or
        ``((top, bottom), (left, right))``.

    Returns
    -------
    X_pad : ndarray, shape (m, n_H + top + bottom, n_W + left + right, n_C)
    """
    (top, bottom), (left, right) = _pads(pad)
    return np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="constant")


def conv_single_step(a_slice_prev, W, b):
    """One filter applied to one window: ``Z = sum(a_slice_prev * W) + b``.

    Parameters
    ----------
    a_slice_prev : ndarray, shape (f, f, n_C_prev)
        The window of the (padded) input.
    W : ndarray, shape (f, f, n_C_prev)
        One filter.
    b : ndarray of size 1, e.g. shape (1, 1, 1)
        Its bias.

    Returns
    -------
    Z : float
    """
    s = np.multiply(a_slice_prev, W)        # element-wise product, no bias yet
    Z = np.sum(s)                           # sum over the whole window volume
    return Z + np.asarray(b).item()         # one scalar bias per filter


def conv_forward(A_prev, W, b, hparameters):
    """Forward pass of a convolution (cross-correlation, as in every DL library).

    ``Z[i, h, w, c] = sum_{p, q, k} A_pad[i, h*sh + p, w*sw + q, k] * W[p, q, k, c] + b[c]``

    Output size per axis: ``n_H = floor((n_H_prev + top + bottom - f) / stride) + 1``.

    Parameters
    ----------
    A_prev : ndarray, shape (m, n_H_prev, n_W_prev, n_C_prev)
    W : ndarray, shape (f_H, f_W, n_C_prev, n_C)
    b : ndarray with n_C entries, e.g. shape (1, 1, 1, n_C) as in the seed, or (n_C,)
    hparameters : dict
        ``"stride"``: int or (sh, sw); ``"pad"``: int, (ph, pw) or ((top, bottom), (left, right)).

    Returns
    -------
    Z : ndarray, shape (m, n_H, n_W, n_C)
    cache : tuple (A_prev, W, b, hparameters) for :func:`conv_backward`
    """
    m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
    f_H, f_W, _, n_C = W.shape
    s_H, s_W = _pair(hparameters["stride"])
    (top, bottom), (left, right) = _pads(hparameters["pad"])
    bias = np.reshape(b, (n_C,))

    n_H = (n_H_prev + top + bottom - f_H) // s_H + 1
    n_W = (n_W_prev + left + right - f_W) // s_W + 1
    Z = np.zeros((m, n_H, n_W, n_C))
    A_prev_pad = zero_pad(A_prev, hparameters["pad"])

    for i in range(m):                                  # every example
        a_prev_pad = A_prev_pad[i]
        for h in range(n_H):                            # every output row
            vert_start = h * s_H
            vert_end = vert_start + f_H                 # the window is f tall (the seed wrote + stride)
            for w in range(n_W):                        # every output column
                horiz_start = w * s_W
                horiz_end = horiz_start + f_W
                a_slice_prev = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]
                for c in range(n_C):                    # every filter
                    Z[i, h, w, c] = conv_single_step(a_slice_prev, W[:, :, :, c], bias[c])

    cache = (A_prev, W, b, hparameters)
    return Z, cache


def conv_backward(dZ, cache):
    """Backward pass of :func:`conv_forward`.

    Each output ``Z[i, h, w, c]`` used one window and one filter, so its gradient flows back
    to both: ``dA_window += W_c * dZ[i, h, w, c]``, ``dW_c += a_window * dZ[i, h, w, c]``,
    ``db_c += dZ[i, h, w, c]``. Overlapping windows add up.

    Parameters
    ----------
    dZ : ndarray, shape (m, n_H, n_W, n_C)
        Gradient of the cost with respect to the output ``Z``.
    cache : tuple from :func:`conv_forward`

    Returns
    -------
    dA_prev : ndarray, shape (m, n_H_prev, n_W_prev, n_C_prev)
    dW : ndarray, shape (f_H, f_W, n_C_prev, n_C)
    db : ndarray, same shape as ``b``
    """
    A_prev, W, b, hparameters = cache
    m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
    f_H, f_W, _, n_C = W.shape
    s_H, s_W = _pair(hparameters["stride"])
    (top, _), (left, _) = _pads(hparameters["pad"])
    _, n_H, n_W, _ = dZ.shape

    dW = np.zeros(W.shape)
    db = np.zeros(n_C)
    A_prev_pad = zero_pad(A_prev, hparameters["pad"])
    dA_prev_pad = np.zeros(A_prev_pad.shape)

    for i in range(m):
        a_prev_pad = A_prev_pad[i]
        da_prev_pad = dA_prev_pad[i]                    # a view: writes land in dA_prev_pad
        for h in range(n_H):
            vert_start = h * s_H
            vert_end = vert_start + f_H
            for w in range(n_W):
                horiz_start = w * s_W
                horiz_end = horiz_start + f_W
                a_slice = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]
                for c in range(n_C):
                    da_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += a_slice * dZ[i, h, w, c]
                    db[c] += dZ[i, h, w, c]

    # Drop the gradient of the padding (the seed's [pad:-pad] is empty when pad == 0).
    dA_prev = dA_prev_pad[:, top:top + n_H_prev, left:left + n_W_prev, :]
    return dA_prev, dW, db.reshape(np.shape(b))


def pool_forward(A_prev, hparameters, mode="max"):
    """Forward pass of max or average pooling (no padding), channel by channel.

    ``A[i, h, w, c] = max`` (or ``mean``) of ``A_prev[i, h*sh : h*sh + f_H, w*sw : w*sw + f_W, c]``.

    Parameters
    ----------
    A_prev : ndarray, shape (m, n_H_prev, n_W_prev, n_C)
    hparameters : dict
        ``"f"``: window size, int or (f_H, f_W); ``"stride"``: int or (sh, sw).
    mode : {"max", "average"}

    Returns
    -------
    A : ndarray, shape (m, n_H, n_W, n_C) with ``n_H = floor((n_H_prev - f_H) / sh) + 1``
    cache : tuple (A_prev, hparameters) for :func:`pool_backward`
    """
    if mode not in ("max", "average"):
        raise ValueError(f"pool_forward expects mode 'max' or 'average'; got {mode!r}.")
    m, n_H_prev, n_W_prev, n_C = A_prev.shape
    f_H, f_W = _pair(hparameters["f"])
    s_H, s_W = _pair(hparameters["stride"])
    n_H = (n_H_prev - f_H) // s_H + 1
    n_W = (n_W_prev - f_W) // s_W + 1
    A = np.zeros((m, n_H, n_W, n_C))

    for i in range(m):
        for h in range(n_H):
            vert_start = h * s_H
            for w in range(n_W):
                horiz_start = w * s_W
                for c in range(n_C):
                    a_prev_slice = A_prev[i, vert_start:vert_start + f_H, horiz_start:horiz_start + f_W, c]
                    A[i, h, w, c] = np.max(a_prev_slice) if mode == "max" else np.mean(a_prev_slice)

    return A, (A_prev, hparameters)


def create_mask_from_window(x):
    """Mark the element of a window that its max came from.

    ``d max(x) / d x`` is 1 at the winning element and 0 elsewhere. On ties we pick the
    first maximum in row-major order (the seed's ``x >= max(x)`` would mark all of them and
    multiply the gradient).

    Parameters
    ----------
    x : ndarray, shape (f_H, f_W)

    Returns
    -------
    mask : ndarray of bool, shape (f_H, f_W), exactly one True
    """
    mask = np.zeros(x.shape, dtype=bool)
    mask[np.unravel_index(np.argmax(x), x.shape)] = True
    return mask


def distribute_value(dz, shape):
    """Spread a gradient evenly over a window: the derivative of the average.

    ``mean(x) = sum(x) / (n_H * n_W)``, so every element receives ``dz / (n_H * n_W)``.

    Parameters
    ----------
    dz : float
    shape : (int, int)
        ``(n_H, n_W)`` of the window.

    Returns
    -------
    a : ndarray, shape (n_H, n_W)
    """
    n_H, n_W = shape
    average = dz / (n_H * n_W)
    return average * np.ones((n_H, n_W))


def pool_backward(dA, cache, mode="max"):
    """Backward pass of :func:`pool_forward`.

    Max: each output's gradient goes to the element that won its window
    (:func:`create_mask_from_window`). Average: it is shared equally
    (:func:`distribute_value`). Overlapping windows add up.

    Parameters
    ----------
    dA : ndarray, shape (m, n_H, n_W, n_C)
        Gradient of the cost with respect to the pooling output.
    cache : tuple from :func:`pool_forward`
    mode : {"max", "average"}

    Returns
    -------
    dA_prev : ndarray, shape of ``A_prev``
    """
    if mode not in ("max", "average"):
        raise ValueError(f"pool_backward expects mode 'max' or 'average'; got {mode!r}.")
    A_prev, hparameters = cache
    f_H, f_W = _pair(hparameters["f"])
    s_H, s_W = _pair(hparameters["stride"])
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros(A_prev.shape)

    for i in range(m):
        for h in range(n_H):
            vert = slice(h * s_H, h * s_H + f_H)
            for w in range(n_W):
                horiz = slice(w * s_W, w * s_W + f_W)
                for c in range(n_C):
                    if mode == "max":
                        mask = create_mask_from_window(A_prev[i, vert, horiz, c])
                        dA_prev[i, vert, horiz, c] += mask * dA[i, h, w, c]
                    else:
                        dA_prev[i, vert, horiz, c] += distribute_value(dA[i, h, w, c], (f_H, f_W))
    return dA_prev


# ----------------------------------------------------------------------------------------
# seed 001: ConvLayer / MaxPoolingLayer with sensitivity maps
# ----------------------------------------------------------------------------------------
def _sigmoid(net):
    # exp of a non-positive number only: finite for any input
    e = np.exp(-np.abs(net))
    return np.where(net >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


#: The seed's activators: ``name -> (forward(net), derivative expressed through the output)``.
#: As in seed 001, ``backward(out)`` is ``f'(net)`` written in terms of ``out = f(net)``.
ACTIVATORS = {
    "linear": (lambda net: net, lambda out: np.ones_like(out)),            # IdentityActivator
    "relu": (lambda net: np.maximum(net, 0.0), lambda out: (out > 0).astype(float)),
    "sigmoid": (_sigmoid, lambda out: out * (1.0 - out)),                 # s' = s (1 - s)
    "tanh": (np.tanh, lambda out: 1.0 - out ** 2),                        # tanh' = 1 - tanh^2
}


def _activator(name):
    if name not in ACTIVATORS:
        raise ValueError(f"reference activators are {sorted(ACTIVATORS)}; got {name!r}.")
    return ACTIVATORS[name]


def _correlate_valid(image, kernel, stride=(1, 1)):
    """The seed's ``conv``: slide ``kernel`` over a 2-D ``image`` and sum the products.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    kernel : ndarray, shape (KH, KW)
    stride : (int, int)

    Returns
    -------
    out : ndarray, shape ((H - KH) // sh + 1, (W - KW) // sw + 1)
    """
    KH, KW = kernel.shape
    sh, sw = stride
    OH = (image.shape[0] - KH) // sh + 1
    OW = (image.shape[1] - KW) // sw + 1
    out = np.zeros((OH, OW))
    for i in range(OH):
        for j in range(OW):
            patch = image[i * sh:i * sh + KH, j * sw:j * sw + KW]       # the seed's get_patch
            out[i, j] = np.sum(patch * kernel)
    return out


def conv_layer_forward(x, kernel, bias, stride=1, pad=0, activation="linear"):
    """Seed 001's ``ConvLayer.forward``: pad, correlate every filter, add its bias, activate.

    ``net[n, :, :, f] = sum_c correlate(x_pad[n, :, :, c], kernel[:, :, c, f]) + bias[f]``,
    ``out = activator(net)``.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, F)
        The seed's ``filters[f].weights`` (C, KH, KW) become ``kernel[:, :, :, f]``.
    bias : ndarray, shape (F,)
    stride : int or (int, int)
    pad : int or (int, int) or ((int, int), (int, int))
    activation : {"linear", "relu", "sigmoid", "tanh"}

    Returns
    -------
    out : ndarray, shape (N, OH, OW, F)
    cache : dict for :func:`conv_layer_backward`
    """
    N, H, W, C = x.shape
    KH, KW, _, F = kernel.shape
    stride = _pair(stride)
    x_pad = zero_pad(x, pad)
    OH = (x_pad.shape[1] - KH) // stride[0] + 1
    OW = (x_pad.shape[2] - KW) // stride[1] + 1
    net = np.zeros((N, OH, OW, F))
    for n in range(N):
        for f in range(F):
            for c in range(C):
                net[n, :, :, f] += _correlate_valid(x_pad[n, :, :, c], kernel[:, :, c, f], stride)
            net[n, :, :, f] += bias[f]
    out = _activator(activation)[0](net)
    cache = {"x": x, "x_pad": x_pad, "kernel": kernel, "stride": stride, "pads": _pads(pad), "out": out}
    return out, cache


def expand_sensitivity_map(delta, stride, expanded_hw):
    """Undo the stride: put each error back where a stride-1 convolution would have it.

    An output ``(i, j)`` of a stride-``s`` convolution is output ``(i*s, j*s)`` of the same
    convolution with stride 1; the positions it skipped get zero error.

    Parameters
    ----------
    delta : ndarray, shape (N, OH, OW, F)
        Sensitivity map ``dE/dnet`` of the strided layer.
    stride : int or (int, int)
    expanded_hw : (int, int)
        Output size of the stride-1 convolution: ``H_pad - KH + 1, W_pad - KW + 1``.

    Returns
    -------
    expanded : ndarray, shape (N, expanded_hw[0], expanded_hw[1], F)
    """
    sh, sw = _pair(stride)
    N, OH, OW, F = delta.shape
    expanded = np.zeros((N,) + tuple(expanded_hw) + (F,))
    for i in range(OH):
        for j in range(OW):
            expanded[:, i * sh, j * sw, :] = delta[:, i, j, :]
    return expanded


def conv_layer_backward(delta, cache, prev_activation="linear"):
    """Seed 001's ``bp_sensitivity_map`` and ``bp_gradient``.

    With ``delta`` expanded to stride 1 (:func:`expand_sensitivity_map`):

    * error of the (padded) input = *full* convolution of the expanded map with the
      kernel rotated by 180 degrees, summed over filters; then crop the padding and
      multiply by the previous layer's ``f'`` (seed: ``activator.backward(input_array)``);
    * ``dkernel[:, :, c, f]`` = valid correlation of the padded input channel ``c`` with
      the expanded map of filter ``f``;
    * ``dbias[f]`` = sum of the map of filter ``f``.

    Parameters
    ----------
    delta : ndarray, shape (N, OH, OW, F)
        Sensitivity map ``dE/dnet`` of this layer (for a "linear" layer, ``dE/dout``).
    cache : dict from :func:`conv_layer_forward`
    prev_activation : str
        Activation that produced this layer's input; ``"linear"`` returns ``dE/dx``.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
        Sensitivity map of the previous layer.
    dkernel : ndarray, shape (KH, KW, C, F)
    dbias : ndarray, shape (F,)
    """
    x, x_pad, kernel = cache["x"], cache["x_pad"], cache["kernel"]
    (top, _), (left, _) = cache["pads"]
    N, H, W, C = x.shape
    KH, KW, _, F = kernel.shape
    expanded_hw = (x_pad.shape[1] - KH + 1, x_pad.shape[2] - KW + 1)
    expanded = expand_sensitivity_map(delta, cache["stride"], expanded_hw)

    # Full convolution = zero-pad the map by (kernel - 1) on every side, then correlate
    # with the rotated kernel; the result has the padded input's size.
    full = zero_pad(expanded, (KH - 1, KW - 1))
    dx_pad = np.zeros(x_pad.shape)
    for n in range(N):
        for f in range(F):
            for c in range(C):
                flipped = np.rot90(kernel[:, :, c, f], 2)
                dx_pad[n, :, :, c] += _correlate_valid(full[n, :, :, f], flipped)
    dx = dx_pad[:, top:top + H, left:left + W, :] * _activator(prev_activation)[1](x)

    dkernel = np.zeros(kernel.shape)
    for n in range(N):
        for f in range(F):
            for c in range(C):
                dkernel[:, :, c, f] += _correlate_valid(x_pad[n, :, :, c], expanded[n, :, :, f])
    dbias = expanded.sum(axis=(0, 1, 2))
    return dx, dkernel, dbias


def max_pooling_layer_forward(x, pool_size, stride):
    """Seed 001's ``MaxPoolingLayer.forward``: the max of each window, channel by channel.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    pool_size, stride : int or (int, int)

    Returns
    -------
    out : ndarray, shape (N, (H - PH) // sh + 1, (W - PW) // sw + 1, C)
    """
    out, _ = pool_forward(x, {"f": pool_size, "stride": stride}, mode="max")
    return out


def max_pooling_layer_backward(x, delta, pool_size, stride):
    """Seed 001's ``MaxPoolingLayer.backward``: send each error to its window's max.

    ``get_max_index`` returns the first maximum of the patch; its position in the input is
    ``(i * stride + k, j * stride + l)``. Unlike the seed we *add* (``+=``) so that an input
    that wins several overlapping windows collects all their errors.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
        The layer's input.
    delta : ndarray, shape (N, OH, OW, C)
        Sensitivity map of the pooling output.
    pool_size, stride : int or (int, int)

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
    """
    PH, PW = _pair(pool_size)
    sh, sw = _pair(stride)
    N, OH, OW, C = delta.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for d in range(C):
            for i in range(OH):
                for j in range(OW):
                    patch = x[n, i * sh:i * sh + PH, j * sw:j * sw + PW, d]
                    k, l = np.unravel_index(np.argmax(patch), patch.shape)     # get_max_index
                    dx[n, i * sh + k, j * sw + l, d] += delta[n, i, j, d]
    return dx


# ----------------------------------------------------------------------------------------
# seed 003: Conv3x3(8) -> MaxPool2 -> Softmax(13*13*8 -> 10), trained one image at a time
# ----------------------------------------------------------------------------------------
def init_tiny_params(seed=0, num_filters=8, input_hw=(28, 28), num_classes=10):
    """Seed 003's initialization, with an explicit random generator.

    Conv filters ``~ N(0, 1) / 9`` (no conv bias, as in the seed and its Keras twin
    ``Conv2D(8, 3, use_bias=False)``); softmax weights ``~ N(0, 1) / input_len``; biases 0.

    Parameters
    ----------
    seed : int or numpy.random.Generator
    num_filters : int
    input_hw : (int, int)
        Image size; the dense layer takes ``((H - 2) // 2) * ((W - 2) // 2) * num_filters`` inputs.
    num_classes : int

    Returns
    -------
    params : dict
        ``"conv_kernel"`` (3, 3, 1, F) in glassnet's HWIO layout (the seed's (F, 3, 3)
        transposed), ``"dense_kernel"`` (input_len, num_classes), ``"dense_bias"`` (num_classes,).
    """
    rng = np.random.default_rng(seed)
    H, W = input_hw
    input_len = ((H - 2) // 2) * ((W - 2) // 2) * num_filters
    return {
        "conv_kernel": rng.standard_normal((3, 3, 1, num_filters)) / 9,
        "dense_kernel": rng.standard_normal((input_len, num_classes)) / input_len,
        "dense_bias": np.zeros(num_classes),
    }


def _tiny_regions(image, size, step):
    """Seed 003's ``iterate_regions``: yield every ``size x size`` window with its position."""
    rows = (image.shape[0] - size) // step + 1
    cols = (image.shape[1] - size) // step + 1
    for i in range(rows):
        for j in range(cols):
            yield image[i * step:i * step + size, j * step:j * step + size], i, j


def tiny_forward(params, image):
    """Forward pass of seed 003's network for one image.

    Parameters
    ----------
    params : dict from :func:`init_tiny_params`
    image : ndarray, shape (H, W) or (H, W, 1)
        Already scaled (the seed uses ``image / 255 - 0.5``).

    Returns
    -------
    probs : ndarray, shape (num_classes,)
    cache : dict of the intermediate values :func:`tiny_gradients` needs
    """
    image = np.asarray(image, dtype=float).reshape(np.shape(image)[:2])
    kernel = params["conv_kernel"][:, :, 0, :]                       # (3, 3, F)
    F = kernel.shape[-1]
    H, W = image.shape

    # Conv3x3, valid padding: conv[i, j, f] = sum(region * kernel[:, :, f])
    conv = np.zeros((H - 2, W - 2, F))
    for region, i, j in _tiny_regions(image, 3, 1):
        conv[i, j] = np.sum(region[:, :, None] * kernel, axis=(0, 1))

    # MaxPool2: the max of each non-overlapping 2x2 block (an odd last row/column is dropped)
    pooled = np.zeros(((H - 2) // 2, (W - 2) // 2, F))
    for region, i, j in _tiny_regions(conv, 2, 2):
        pooled[i, j] = np.amax(region, axis=(0, 1))

    # Softmax layer: totals = flat @ W + b, probs = exp(totals) / sum(exp(totals)).
    # Subtracting max(totals) first changes nothing mathematically and keeps exp finite.
    flat = pooled.reshape(-1)
    totals = flat @ params["dense_kernel"] + params["dense_bias"]
    exp = np.exp(totals - totals.max())
    probs = exp / exp.sum()
    return probs, {"image": image, "conv": conv, "pooled": pooled, "flat": flat, "probs": probs}


def tiny_gradients(params, image, label):
    """Loss and gradients of seed 003's network for one image (cross-entropy loss).

    Backward, layer by layer, as the seed does:

    * softmax + cross-entropy: ``L = -log p[label]`` gives ``dL/dtotals = p - onehot(label)``
      (the seed's ``gradient * d_out_d_t``), so ``dW = outer(flat, dtotals)``,
      ``db = dtotals``, ``dflat = W @ dtotals``;
    * max pool: each 2x2 window's gradient goes to the element that was its max;
    * conv: ``dkernel[:, :, f] += dconv[i, j, f] * region(i, j)`` over all positions.

    Parameters
    ----------
    params : dict from :func:`init_tiny_params`
    image : ndarray, shape (H, W) or (H, W, 1)
    label : int

    Returns
    -------
    loss : float
    correct : int
        1 when the predicted class is ``label``, else 0.
    grads : dict
        Same keys and shapes as ``params``.
    """
    probs, cache = tiny_forward(params, image)
    loss = -np.log(probs[label])
    correct = int(np.argmax(probs) == label)

    # Softmax layer.
    d_totals = probs.copy()
    d_totals[label] -= 1.0
    d_dense_kernel = np.outer(cache["flat"], d_totals)
    d_flat = params["dense_kernel"] @ d_totals
    d_pooled = d_flat.reshape(cache["pooled"].shape)

    # MaxPool2: copy each output gradient to the first element equal to its window's max.
    conv = cache["conv"]
    d_conv = np.zeros(conv.shape)
    for region, i, j in _tiny_regions(conv, 2, 2):
        h, w, f = region.shape
        amax = np.amax(region, axis=(0, 1))
        routed = np.zeros(f, dtype=bool)            # one winner per window and filter
        for i2 in range(h):
            for j2 in range(w):
                for f2 in range(f):
                    if not routed[f2] and region[i2, j2, f2] == amax[f2]:
                        d_conv[i * 2 + i2, j * 2 + j2, f2] = d_pooled[i, j, f2]
                        routed[f2] = True

    # Conv3x3: every output pixel used one 3x3 region of the image with every filter.
    d_kernel = np.zeros(params["conv_kernel"].shape[:2] + (params["conv_kernel"].shape[3],))
    for region, i, j in _tiny_regions(cache["image"], 3, 1):
        for f in range(d_kernel.shape[-1]):
            d_kernel[:, :, f] += d_conv[i, j, f] * region

    grads = {"conv_kernel": d_kernel[:, :, None, :], "dense_kernel": d_dense_kernel, "dense_bias": d_totals}
    return loss, correct, grads


def train_tiny_step(params, image, label, learning_rate=0.005):
    """One per-sample SGD step of seed 003's ``train``: forward, backward, update in place.

    Parameters
    ----------
    params : dict from :func:`init_tiny_params`
        Updated in place: ``param -= learning_rate * grad``.
    image : ndarray, shape (H, W) or (H, W, 1)
        Already scaled (the seed uses ``image / 255 - 0.5``).
    label : int
    learning_rate : float
        The seed's ``lr=.005``.

    Returns
    -------
    loss : float
    correct : int
    """
    loss, correct, grads = tiny_gradients(params, image, label)
    for key, grad in grads.items():
        params[key] -= learning_rate * grad
    return loss, correct
