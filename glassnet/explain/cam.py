"""Class activation maps: CAM, Grad-CAM, Guided Grad-CAM and Grad-CAM++.

Each weighs the feature maps ``A`` (N, h, w, K) of one layer by a per-channel weight and sums
over the channels; maps are ReLU'd (``relu=True``) and resized to the input with bilinear
interpolation (``upsample=True``), never normalized, so values keep their units and signs.
"""
import numpy as np

from glassnet.errors import message
from glassnet.explain.backprop import (backprop, check_images, check_layer, check_modifier, check_score,
                                       check_target, chunk_size, chunks, forward_pass, last_spatial_layer)
from glassnet.layers import Activation, Dense, Dropout, GlobalAveragePooling2D, Softmax
from glassnet.ops import resolve_padding


def _interpolation_matrix(size_in, size_out, dtype, grid=None):
    """(size_out, size_in) matrix of linear interpolation along one axis.

    By default output pixel i samples the input at ``(i + 0.5) * size_in / size_out - 0.5`` (half-pixel
    centres: ``cv2.resize(INTER_LINEAR)``, PyTorch's ``align_corners=False``). With
    ``grid = (offset, step)``, input cell j sits at pixel ``offset + step * j`` and pixel i samples
    it at ``(i - offset) / step``. Positions are clamped to the edges.
    """
    if grid is None:
        src = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    else:
        offset, step = grid
        src = (np.arange(size_out) - offset) / step
    src = np.clip(src, 0, size_in - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix.astype(dtype)


def upsample_bilinear(maps, size, grid=None):
    """Resize maps (N, h, w) to (N, H, W) by bilinear interpolation.

    Parameters
    ----------
    maps : ndarray (N, h, w)
    size : (H, W)
    grid : ((offset_y, step_y), (offset_x, step_x)), optional
        Where each map cell sits in output pixels (see :func:`receptive_field_grid`); default
        half-pixel centres, as ``cv2.resize`` and PyTorch's ``interpolate(align_corners=False)``.

    Returns
    -------
    ndarray (N, H, W), same dtype
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(message("explain.upsample_bilinear", "maps of shape (N, h, w)", f"shape {maps.shape}"))
    H, W = (int(s) for s in size)
    dtype = maps.dtype if np.issubdtype(maps.dtype, np.floating) else np.float64
    grid = (None, None) if grid is None else grid
    rows = _interpolation_matrix(maps.shape[1], H, dtype, grid[0])
    cols = _interpolation_matrix(maps.shape[2], W, dtype, grid[1])
    # separable: out = Ry @ m @ Rx^T for every map
    return (rows @ maps.astype(dtype, copy=False) @ cols.T).astype(dtype, copy=False)


def _window(layer):
    """(kernel, strides, padding) of a windowed layer, or None."""
    for size_name in ("kernel_size", "pool_size"):
        if hasattr(layer, size_name) and hasattr(layer, "strides") and hasattr(layer, "padding"):
            return getattr(layer, size_name), layer.strides, layer.padding
    return None


def receptive_field_grid(model, index):
    """Where the cells of layer ``index``'s (N, h, w, C) output are centred in the input.

    Returns ``((offset_y, step_y), (offset_x, step_x))``: cell (i, j) is centred on input pixel
    ``(offset_y + step_y * i, offset_x + step_x * j)``. A window layer with kernel k, stride s and
    leading padding p maps its output cell j to ``s * j - p + (k - 1) / 2`` of its input; layers
    that keep the spatial size map j to j. Returns None when a layer's geometry is unknown.
    """
    grid = [(0.0, 1.0), (0.0, 1.0)]
    for layer in model.layers[:index + 1]:
        in_hw = layer.input_shape[1:3]
        window = _window(layer)
        if window is not None:
            kernel, strides, padding = window
            pads = resolve_padding(padding, kernel, strides, in_hw)
            maps = [(-pads[a][0] + (kernel[a] - 1) / 2, strides[a]) for a in range(2)]
        elif getattr(layer, "pads", None) is not None and len(layer.output_shape) == 4:     # ZeroPadding2D
            maps = [(-layer.pads[a][0], 1) for a in range(2)]
        elif len(layer.output_shape) == 4 and layer.output_shape[1:3] == layer.input_shape[1:3]:
            continue
        else:
            return None
        # compose: input = offset + step * u with u = a + b * j
        grid = [(offset + step * a, step * b) for (offset, step), (a, b) in zip(grid, maps)]
    return tuple(grid)


def _check_upsample(upsample, where):
    if upsample is True or upsample is False or upsample == "aligned":
        return upsample
    raise ValueError(message(where, "upsample True (bilinear, half-pixel centres), 'aligned' (bilinear, "
                             "each cell at the centre of its receptive field) or False", repr(upsample)))


def _finish(maps, x, relu, upsample, model=None, index=None):
    if relu:
        maps = np.maximum(maps, 0)
    if upsample:
        grid = receptive_field_grid(model, index) if upsample == "aligned" else None
        maps = upsample_bilinear(maps, x.shape[1:3], grid)
    return maps


def _layer_gradients(model, images, target, layer, score, modifier, upsample, where, reduce):
    """Validated inputs, then ``reduce(A, dS/dA)`` of the activations A and gradients dS/dA at
    ``layer`` (default: last 4-D), chunk by chunk (only the reductions are kept).

    Returns (x, Backprop with ``reduced``, index of the layer).
    """
    x = check_images(model, images, where)
    score = check_score(score, where)
    target = check_target(model, target, len(x), where)
    check_modifier(modifier, where)
    _check_upsample(upsample, where)
    index = last_spatial_layer(model, where) if layer is None else check_layer(model, layer, where, rank=4)
    result = backprop(model, x, target, score, modifier, layer=index, input_grads=False,
                      reduce=lambda chunk: reduce(chunk.activations, chunk.layer_grads))
    return x, result, index


def _grad_cam_maps(A, G):
    """Grad-CAM's weighted sum of the maps: ``sum_k mean_ij(G_k) A_k``, (n, h, w)."""
    return np.einsum("nhwk,nk->nhw", A, G.mean(axis=(1, 2)))


def grad_cam(model, images, target=None, layer=None, relu=True, upsample=True, score="logits", modifier=None):
    """Grad-CAM (Selvaraju et al., 2017).

    ``L = ReLU(sum_k alpha_k A_k)`` with ``alpha_k = mean_ij dS/dA_k[i, j]``, where A (N, h, w, K)
    is the output of ``layer`` and S the target's score.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    target : None, int or array_like (N,)
        Class to explain; None takes the predicted class.
    layer : str, int or Layer, optional
        A layer with a 4-D output; default the last such layer.
    relu : bool
        Keep only positive evidence (the paper's ReLU). False returns the signed map.
    upsample : {True, "aligned", False}
        Resize to (H, W) bilinearly: True with half-pixel centres (``cv2.resize``, PyTorch's
        ``align_corners=False``); "aligned" puts each cell at the centre of its receptive field in
        the input (exact for "valid" convolutions, which shift the map by (k - 1) / 2 per layer);
        False returns the layer's (h, w) resolution.
    score : {"logits", "probability"}
    modifier : {None, "guided", "rectified"}
        Backward rule for the gradient above ``layer`` (keras-vis's ``backprop_modifier``).

    Returns
    -------
    ndarray (N, H, W), or (N, h, w) when ``upsample=False``
    """
    x, r, index = _layer_gradients(model, images, target, layer, score, modifier, upsample, "explain.grad_cam",
                                   _grad_cam_maps)
    return _finish(r.reduced, x, relu, upsample, model, index)


def grad_cam_plus_plus(model, images, target=None, layer=None, relu=True, upsample=True, score="logits"):
    """Grad-CAM++ (Chattopadhyay et al., 2018).

    With G = dS/dA: ``a_kij = G^2 / (2 G^2 + sum_ab A_kab * G^3)`` (0 where G = 0),
    ``w_k = sum_ij a_kij * ReLU(G_kij)`` and ``L = ReLU(sum_k w_k A_k)`` (the closed form of
    the paper's higher derivatives, taken for an exponential of the score, as in
    pytorch-grad-cam). Parameters and result as :func:`grad_cam`.
    """
    x, r, index = _layer_gradients(model, images, target, layer, score, None, upsample,
                                   "explain.grad_cam_plus_plus", _grad_cam_plus_plus_maps)
    return _finish(r.reduced, x, relu, upsample, model, index)


def _grad_cam_plus_plus_maps(A, G):
    """Grad-CAM++'s weighted sum of the maps (n, h, w) from activations A and gradients G."""
    G2 = G * G
    denominator = 2 * G2 + A.sum(axis=(1, 2), keepdims=True) * G2 * G
    safe = np.where(denominator != 0, denominator, 1)
    alpha = np.where((G != 0) & (denominator != 0), G2 / safe, 0)
    weights = (alpha * np.maximum(G, 0)).sum(axis=(1, 2))
    return np.einsum("nhwk,nk->nhw", A, weights)


def guided_grad_cam(model, images, target=None, layer=None, score="logits", upsample=True):
    """Guided Grad-CAM: guided-backprop input gradients times the upsampled Grad-CAM.

    Parameters as :func:`grad_cam`; ``upsample`` is True or "aligned" (the map must reach the
    input's resolution).

    Returns
    -------
    ndarray (N, H, W, C)
        Signed, per channel like :func:`~glassnet.explain.input_gradients`
        (``saliency``-style maps: ``np.abs(m).max(axis=-1)``).
    """
    where = "explain.guided_grad_cam"
    if upsample is False:
        raise ValueError(message(where, "upsample True or 'aligned'", "False",
                                 "Guided Grad-CAM multiplies input-resolution gradients by the map."))
    x, r, index = _layer_gradients(model, images, target, layer, score, None, upsample, where, _grad_cam_maps)
    maps = _finish(r.reduced, x, True, upsample, model, index)
    # the same targets for both passes, so a predicted class is resolved only once
    guided = backprop(model, x, r.targets, score, "guided").input_grads
    return guided * maps[..., None]


def _cam_layers(model, where):
    """Index of the GlobalAveragePooling2D and of the Dense whose kernel weighs its channels."""
    layers = model.layers
    for g, layer in enumerate(layers):
        if isinstance(layer, GlobalAveragePooling2D):
            rest = [l for l in layers[g + 1:] if not isinstance(l, Dropout)]
            if rest and isinstance(rest[0], Dense) and rest[0].activation in ("linear", "softmax", "sigmoid"):
                tail = rest[1:]
                if all(isinstance(l, Softmax) or (isinstance(l, Activation) and l.activation in
                                                  ("softmax", "sigmoid", "linear")) for l in tail):
                    return g, layers.index(rest[0])
    raise ValueError(message(where, "a model ending in GlobalAveragePooling2D -> Dense (optionally with "
                             "Dropout between and a softmax after), the architecture CAM is defined for",
                             f"layers {[type(l).__name__ for l in layers]}",
                             "Use grad_cam, which works for any architecture (on such a model it equals "
                             "CAM / (h * w))."))


def cam(model, images, target=None, relu=True, upsample=True):
    """Class activation map (Zhou et al., 2016): ``M_c = sum_k W[k, c] A_k``.

    A (N, h, w, K) is the input of the model's GlobalAveragePooling2D and W (K, classes) the kernel
    of the Dense after it (the bias is left out, as in the paper).

    Parameters
    ----------
    model : Sequential
        Must end in GlobalAveragePooling2D -> Dense (Dropout allowed between, softmax after).
    images, target, relu, upsample
        As in :func:`grad_cam`.

    Returns
    -------
    ndarray (N, H, W), or (N, h, w) when ``upsample=False``
    """
    where = "explain.cam"
    x = check_images(model, images, where)
    _check_upsample(upsample, where)
    g, d = _cam_layers(model, where)
    target = check_target(model, target, len(x), where)
    kernel = model.layers[d].params["kernel"]
    maps = []
    for part in chunks(len(x), chunk_size(model)):
        if g == 0:
            scores, A = forward_pass(model, x[part], logits=True)[0], x[part]
        else:
            scores, A = forward_pass(model, x[part], logits=True, capture=g - 1)
        chosen = scores.argmax(axis=1) if target is None else target[part]
        # contract channels with each image's own class column of W
        maps.append(np.einsum("nhwk,kn->nhw", A, kernel[:, chosen]))
    return _finish(np.concatenate(maps), x, relu, upsample, model, g - 1)
