"""Reshaping layers for images: UpSampling2D and Cropping2D (Keras's names and arguments, NHWC).

Both follow the per-call protocol: :meth:`apply` returns ``(y, cache)``, :meth:`vjp` ``(dx, grads)``.
"""
import numpy as np

from glassnet.errors import message
from glassnet.layers.base import Geometry, Layer, register
from glassnet.validation import check_name_choice, check_pair, check_padding
from glassnet.ops.resize import (bilinear_resize, bilinear_resize_backward, nearest_upsample,
                                 nearest_upsample_backward)

INTERPOLATIONS = ("nearest", "bilinear")


@register
class UpSampling2D(Layer):
    """Repeat (``"nearest"``) or linearly interpolate (``"bilinear"``) the rows and columns of images.

    Parameters
    ----------
    size : int or (SH, SW)
        Upsampling factors of H and W.
    interpolation : {"nearest", "bilinear"}
        "bilinear" samples with half-pixel centres, as Keras 3 and PyTorch's ``align_corners=False``.

    Shapes: (N, H, W, C) -> (N, H * SH, W * SW, C).
    """

    input_rank = 3

    def __init__(self, size=(2, 2), interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = check_pair(size, "size", "UpSampling2D")
        self.interpolation = check_name_choice(interpolation, INTERPOLATIONS, "interpolation", "UpSampling2D",
                                               "Keras's 'bicubic' and 'lanczos' modes are not implemented; use "
                                               "'bilinear'.")

    def compute_output_shape(self, input_shape):
        H, W, C = input_shape
        return (H * self.size[0], W * self.size[1], C)

    def apply(self, x, training=False):
        self.ensure_built(x)
        if self.interpolation == "nearest":
            return nearest_upsample(x, self.size), None
        out_hw = (x.shape[1] * self.size[0], x.shape[2] * self.size[1])
        return bilinear_resize(x, out_hw)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        if self.interpolation == "nearest":
            return nearest_upsample_backward(dy, self.size), {}
        return bilinear_resize_backward(dy, cache), {}

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "interpolation": self.interpolation}


@register
class Cropping2D(Layer):
    """Remove rows and columns at the borders of images.

    Parameters
    ----------
    cropping : int, (symmetric_height, symmetric_width) or ((top, bottom), (left, right))

    Shapes: (N, H, W, C) -> (N, H - top - bottom, W - left - right, C). The gradient is ``dy``
    placed back in the middle of zeros.
    """

    input_rank = 3

    def __init__(self, cropping=((0, 0), (0, 0)), **kwargs):
        super().__init__(**kwargs)
        self.cropping = check_padding(cropping, "Cropping2D", modes=(), name="cropping",
                                      fix="For example Cropping2D(2), Cropping2D((1, 2)) or "
                                      "Cropping2D(((top, bottom), (left, right))).")

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        (top, bottom), (left, right) = self.cropping
        if shape[0] <= top + bottom or shape[1] <= left + right:
            raise ValueError(message(f"Cropping2D '{self.name}'", f"an input larger than the cropping "
                                     f"{self.cropping} (at least one row and column must remain)",
                                     f"per-example shape {shape}", "Crop less, or check the layers before."))

    def geometry(self, input_hw):
        # cropping is padding by a negative amount: output cell j is input cell j + top
        (top, bottom), (left, right) = self.cropping
        return Geometry((1, 1), (1, 1), ((-top, -bottom), (-left, -right)))

    def compute_output_shape(self, input_shape):
        (top, bottom), (left, right) = self.cropping
        H, W, C = input_shape
        return (H - top - bottom, W - left - right, C)

    def apply(self, x, training=False):
        self.ensure_built(x)
        (top, bottom), (left, right) = self.cropping
        H, W = x.shape[1:3]
        # a copy: the layers after it run faster on contiguous arrays, and may modify their input's copy freely
        return np.ascontiguousarray(x[:, top:H - bottom, left:W - right, :]), x.shape

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        (top, bottom), (left, right) = self.cropping
        dx = np.zeros(cache, dtype=dy.dtype)
        dx[:, top:top + dy.shape[1], left:left + dy.shape[2], :] = dy
        return dx, {}

    def get_config(self):
        return {**super().get_config(), "cropping": [list(pair) for pair in self.cropping]}
