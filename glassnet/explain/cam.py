"""Class activation maps: CAM, Grad-CAM, Guided Grad-CAM and Grad-CAM++.

Each weighs the feature maps ``A`` (N, h, w, K) of one layer by a per-channel weight and sums
over the channels; maps are ReLU'd (``relu=True``) and resized to the input with bilinear
interpolation (``upsample=True``), never normalized, so values keep their units and signs.

Placement of the resized map. ``upsample=True`` puts each cell of the map at the centre of its
receptive field in the input whenever the model's geometry is known (every layer up to the
map's is a convolution, a pooling, a padding or keeps the spatial size), and falls back to
half-pixel centres (``cv2.resize``, PyTorch's ``interpolate(align_corners=False)``,
pytorch-grad-cam) otherwise. Until December 2026 ``True`` always meant half-pixel centres (now
``upsample="half_pixel"``). Why: a "valid" convolution shifts its output by (k - 1) / 2 pixels,
which half-pixel centres ignore, and a map drawn half a cell off points beside the object.
Measured on ``datasets.shapes`` (planted objects with pixel masks; 9 models: three architectures
with "valid" convolutions, LeNet-5 among them, x three seeds, 3,000 training and 300 test images
each; ``tests/explain/test_explain_pointing.py``), receptive-field centres raised the pointing
game from 0.61 to 0.69 on average at a tolerance of 2 pixels (better on 9 of 9 models) and from
0.35 to 0.44 at 0 pixels (8 of 9), and the share of the map's mass inside the object's mask from
0.27 to 0.30 (9 of 9). For "same"-padded models the two placements coincide.
"""
import numpy as np

from glassnet.errors import message
from glassnet.explain.backprop import (backprop, check_images, check_layer, check_modifier, check_score,
                                       check_target, chunk_size, chunks, forward_pass, last_spatial_layer)
from glassnet.explain.batching import in_batches
from glassnet.layers import Activation, Dense, Dropout, GlobalAveragePooling2D, Softmax
from glassnet.ops.parallel import held_blas


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
    # separable: out = Ry @ m @ Rx^T for every map; BLAS held at one thread as in glassnet's own
    # products, so the bits do not depend on whether another thread is running glassnet
    with held_blas():
        return (rows @ maps.astype(dtype, copy=False) @ cols.T).astype(dtype, copy=False)


def receptive_field_grid(model, index):
    """Where the cells of layer ``index``'s (N, h, w, C) output are centred in the input.

    Returns ``((offset_y, step_y), (offset_x, step_x))``: cell (i, j) is centred on input pixel
    ``(offset_y + step_y * i, offset_x + step_x * j)``. A window layer with kernel k, stride s and
    leading padding p maps its output cell j to ``s * j - p + (k - 1) / 2`` of its input; layers
    that keep the spatial size map j to j. Returns None when a layer's geometry is unknown.
    """
    graph = model._graph()
    target = model.layer_slot(index)
    grids = {slot: ((0.0, 1.0), (0.0, 1.0)) for slot in graph.inputs}
    shapes = model._slot_shapes()
    for node in graph.nodes:                 # topological: each node's first input has its grid already
        grid, shape_in, shape_out = grids.get(node.inputs[0]), shapes[node.inputs[0]], shapes[node.output]
        if grid is None or len(shape_out) != 4 or len(shape_in) != 4:
            continue
        geometry = node.layer.geometry(shape_in[1:3])
        if geometry is not None:
            kernel, strides, pads = geometry
            maps = [(-pads[a][0] + (kernel[a] - 1) / 2, strides[a]) for a in range(2)]
            # compose: input = offset + step * u with u = a + b * j
            grids[node.output] = tuple((offset + step * a, step * b) for (offset, step), (a, b) in zip(grid, maps))
        elif shape_out[1:3] == shape_in[1:3]:
            grids[node.output] = grid
        if node.output == target:
            break
    found = grids.get(target)
    return None if found is None else tuple(found)


def _check_upsample(upsample, where):
    if upsample is True or upsample is False or upsample in ("aligned", "half_pixel"):
        return upsample
    raise ValueError(message(where, "upsample True (bilinear, each cell at the centre of its receptive field "
                             "where the model's geometry is known), 'aligned' (the same), 'half_pixel' "
                             "(bilinear, half-pixel centres, as cv2.resize) or False", repr(upsample)))


def _finish(maps, x, relu, upsample, model=None, index=None):
    if relu:
        maps = np.maximum(maps, 0)
    if upsample:
        # receptive-field centres when known (None otherwise: half-pixel centres); see the module notes
        grid = None if upsample == "half_pixel" else receptive_field_grid(model, index)
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


@in_batches
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
    upsample : {True, "aligned", "half_pixel", False}
        Resize to (H, W) bilinearly. True (or "aligned") puts each cell at the centre of its
        receptive field in the input when the model's geometry is known (exact for "valid"
        convolutions, which shift the map by (k - 1) / 2 per layer), else uses half-pixel centres;
        "half_pixel" always uses half-pixel centres (``cv2.resize``, PyTorch's
        ``align_corners=False``: what ``True`` meant before December 2026, see the module notes);
        False returns the layer's (h, w) resolution.
    score : {"logits", "probability"}
    modifier : {None, "guided", "rectified"}
        Backward rule for the gradient above ``layer`` (keras-vis's ``backprop_modifier``).
    batch_size : int
        Images per batch, each explained alone (default 128): the result does not depend on how
        the images are split, as long as the splits are multiples of it (see :mod:`glassnet.explain.batching`).

    Returns
    -------
    ndarray (N, H, W), or (N, h, w) when ``upsample=False``
    """
    x, r, index = _layer_gradients(model, images, target, layer, score, modifier, upsample, "explain.grad_cam",
                                   _grad_cam_maps)
    return _finish(r.reduced, x, relu, upsample, model, index)


@in_batches
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


@in_batches
def guided_grad_cam(model, images, target=None, layer=None, score="logits", upsample=True):
    """Guided Grad-CAM: guided-backprop input gradients times the upsampled Grad-CAM.

    Parameters as :func:`grad_cam`; ``upsample`` is True, "aligned" or "half_pixel" (the map must
    reach the input's resolution).

    Returns
    -------
    ndarray (N, H, W, C)
        Signed, per channel like :func:`~glassnet.explain.input_gradients`
        (``saliency``-style maps: ``np.abs(m).max(axis=-1)``).
    """
    where = "explain.guided_grad_cam"
    if upsample is False:
        raise ValueError(message(where, "upsample True, 'aligned' or 'half_pixel'", "False",
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


@in_batches
def cam(model, images, target=None, relu=True, upsample=True):
    """Class activation map (Zhou et al., 2016): ``M_c = sum_k W[k, c] A_k``.

    A (N, h, w, K) is the input of the model's GlobalAveragePooling2D and W (K, classes) the kernel
    of the Dense after it (the bias is left out, as in the paper).

    Parameters
    ----------
    model : Sequential
        Must end in GlobalAveragePooling2D -> Dense (Dropout allowed between, softmax after).
    images, target, relu, upsample, batch_size
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
