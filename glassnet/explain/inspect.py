"""Looking inside: a layer's feature maps for some images, a convolution's filters."""
import numpy as np

from glassnet.engine import run
from glassnet.errors import message
from glassnet.explain.backprop import check_images, check_layer, chunk_size, chunks
from glassnet.layers import Conv2D


def feature_maps(model, images, layer):
    """Output of ``layer`` for each image (after its activation), computed in memory-bounded chunks.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    layer : str, int or Layer

    Returns
    -------
    ndarray, shape (N,) + the layer's output shape, e.g. (N, OH, OW, F) for a Conv2D
    """
    where = "explain.feature_maps"
    x = check_images(model, images, where)
    index = check_layer(model, layer, where)
    plan, slot = model.plan(), model.layer_slot(index)
    return np.concatenate([np.array(run(plan, [x[part]], targets=[slot], keep=False).values[slot], copy=True)
                           for part in chunks(len(x), chunk_size(model))])


def filters(model, layer=None):
    """A Conv2D layer's kernel arranged filter-first: (F, KH, KW, C).

    ``filters(model, layer)[f]`` is filter ``f`` as a small KH x KW image with C channels, the same
    numbers as Keras's ``layer.get_weights()[0][:, :, :, f]``.

    Parameters
    ----------
    model : Sequential
    layer : str, int or Layer, optional
        A Conv2D layer; default the first one (seed 000 plots the first layer's filters).

    Returns
    -------
    ndarray (F, KH, KW, C), a copy
    """
    where = "explain.filters"
    if layer is None:
        convs = [l for l in model.layers if isinstance(l, Conv2D)]
        if not convs:
            raise ValueError(message(where, "a model with a Conv2D layer", "none",
                                     "Dense kernels are (in, units): use layer.get_weights()[0]."))
        found = convs[0]
    else:
        found = model.layers[check_layer(model, layer, where)]
    if not isinstance(found, Conv2D):
        raise ValueError(message(where, "a Conv2D layer", f"{type(found).__name__} {found.name!r}",
                                 "Filters are convolution kernels; for Dense use layer.get_weights()[0]."))
    if not found.built:
        raise RuntimeError(message(where, "a built model", "an unbuilt layer",
                                   "Give the first layer input_shape=... or call model.build(input_shape)."))
    return np.ascontiguousarray(found.params["kernel"].transpose(3, 0, 1, 2))
