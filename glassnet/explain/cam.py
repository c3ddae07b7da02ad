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


def _interpolation_matrix(size_in, size_out, dtype):
    """(size_out, size_in) matrix of linear interpolation with half-pixel centres.

    Output pixel i samples the input at ``(i + 0.5) * size_in / size_out - 0.5``, clamped to the
    edges; this is ``cv2.resize(INTER_LINEAR)`` and PyTorch's ``align_corners=False``.
    """
    src = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    src = np.clip(src, 0, size_in - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix.astype(dtype)


def upsample_bilinear(maps, size):
    """Resize maps (N, h, w) to (N, H, W) by bilinear interpolation (half-pixel centres).

    Parameters
    ----------
    maps : ndarray (N, h, w)
    size : (H, W)

    Returns
    -------
    ndarray (N, H, W), same dtype
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(message("explain.upsample_bilinear", "maps of shape (N, h, w)", f"shape {maps.shape}"))
    H, W = (int(s) for s in size)
    dtype = maps.dtype if np.issubdtype(maps.dtype, np.floating) else np.float64
    rows = _interpolation_matrix(maps.shape[1], H, dtype)
    cols = _interpolation_matrix(maps.shape[2], W, dtype)
    # separable: out = Ry @ m @ Rx^T for every map
    return (rows @ maps.astype(dtype, copy=False) @ cols.T).astype(dtype, copy=False)


def _finish(maps, x, relu, upsample):
    if relu:
        maps = np.maximum(maps, 0)
    if upsample:
        maps = upsample_bilinear(maps, x.shape[1:3])
    return maps


def _layer_gradients(model, images, target, layer, score, modifier, where):
    """Validated inputs, then activations A and gradients dS/dA at ``layer`` (default: last 4-D)."""
    x = check_images(model, images, where)
    score = check_score(score, where)
    target = check_target(model, target, len(x), where)
    check_modifier(modifier, where)
    index = last_spatial_layer(model, where) if layer is None else check_layer(model, layer, where, rank=4)
    result = backprop(model, x, target, score, modifier, layer=index, input_grads=False)
    return x, result


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
    upsample : bool
        Resize to (H, W) bilinearly; False returns the layer's (h, w) resolution.
    score : {"logits", "probability"}
    modifier : {None, "guided", "rectified"}
        Backward rule for the gradient above ``layer`` (keras-vis's ``backprop_modifier``).

    Returns
    -------
    ndarray (N, H, W), or (N, h, w) when ``upsample=False``
    """
    x, r = _layer_gradients(model, images, target, layer, score, modifier, "explain.grad_cam")
    weights = r.layer_grads.mean(axis=(1, 2))
    maps = np.einsum("nhwk,nk->nhw", r.activations, weights)
    return _finish(maps, x, relu, upsample)


def grad_cam_plus_plus(model, images, target=None, layer=None, relu=True, upsample=True, score="logits"):
    """Grad-CAM++ (Chattopadhyay et al., 2018).

    With G = dS/dA: ``a_kij = G^2 / (2 G^2 + sum_ab A_kab * G^3)`` (0 where G = 0),
    ``w_k = sum_ij a_kij * ReLU(G_kij)`` and ``L = ReLU(sum_k w_k A_k)`` (the closed form of
    the paper's higher derivatives, taken for an exponential of the score, as in
    pytorch-grad-cam). Parameters and result as :func:`grad_cam`.
    """
    x, r = _layer_gradients(model, images, target, layer, score, None, "explain.grad_cam_plus_plus")
    A, G = r.activations, r.layer_grads
    G2 = G * G
    denominator = 2 * G2 + A.sum(axis=(1, 2), keepdims=True) * G2 * G
    safe = np.where(denominator != 0, denominator, 1)
    alpha = np.where((G != 0) & (denominator != 0), G2 / safe, 0)
    weights = (alpha * np.maximum(G, 0)).sum(axis=(1, 2))
    maps = np.einsum("nhwk,nk->nhw", A, weights)
    return _finish(maps, x, relu, upsample)


def guided_grad_cam(model, images, target=None, layer=None, score="logits"):
    """Guided Grad-CAM: guided-backprop input gradients times the upsampled Grad-CAM.

    Returns
    -------
    ndarray (N, H, W, C)
        Signed, per channel like :func:`~glassnet.explain.input_gradients`
        (``saliency``-style maps: ``np.abs(m).max(axis=-1)``).
    """
    where = "explain.guided_grad_cam"
    x, r = _layer_gradients(model, images, target, layer, score, None, where)
    maps = _finish(np.einsum("nhwk,nk->nhw", r.activations, r.layer_grads.mean(axis=(1, 2))), x, True, True)
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
    return _finish(np.concatenate(maps), x, relu, upsample)
