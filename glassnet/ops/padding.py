"""Padding arithmetic shared by convolution and pooling.

Padding is always resolved to explicit amounts ``((top, bottom), (left, right))``.
"same" follows Keras/TensorFlow: the output has ``ceil(size / stride)`` positions and
the total padding is split with the extra pixel at the bottom/right when it is odd.
"""
from glassnet.ops.parallel import over_rows
from glassnet.ops.workspace import recycled_array
from glassnet.validation import check_padding


def resolve_padding(padding, kernel_size, strides, input_hw):
    """Turn a padding spec into explicit ``((top, bottom), (left, right))`` amounts.

    Parameters
    ----------
    padding : {"valid", "same"} or int or (int, int) or ((int, int), (int, int))
        Parsed by :func:`glassnet.validation.check_padding` (the one parser of padding arguments);
        layers store what it returns.
    kernel_size, strides : (int, int)
        The kernel's extent (dilated, for a dilated convolution) and the strides.
    input_hw : (int, int)
        Unpadded input height and width.
    """
    padding = check_padding(padding, "ops.resolve_padding")
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for size, k, s in zip(input_hw, kernel_size, strides):
            out = -(-size // s)
            total = max((out - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    return padding


def conv_output_size(size, kernel, stride, pad_before, pad_after):
    """Number of window positions along one axis: ``floor((size + pads - kernel) / stride) + 1``."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def padded_shape(shape, pads):
    """The shape (N, H + top + bottom, W + left + right, C) of an NHWC array of ``shape`` after padding."""
    (top, bottom), (left, right) = pads
    N, H, W, C = shape
    return (N, H + top + bottom, W + left + right, C)


def pad2d(x, pads, value=0.0):
    """Pad the H and W axes of an NHWC array; returns ``x`` itself when no padding is needed.

    The result is a recycled array (:func:`glassnet.ops.workspace.recycled_array`: memory a
    previous call returned and nothing refers to any more), of which only the border is filled
    with ``value`` and the interior copied: one write per element, no fresh pages to fault in, the
    images shared out between glassnet's worker threads.
    """
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    N, H, W, C = x.shape
    out = recycled_array("padded", padded_shape(x.shape, pads), x.dtype)
    rows, cols = slice(top, top + H), slice(left, left + W)

    def pad_images(images):
        fill_border(out[images], rows, cols, value)
        out[images, rows, cols] = x[images]
    over_rows(pad_images, N, 2 * out.nbytes)
    return out


def fill_border(target, rows, cols, value=0.0):
    """Set ``target`` (n, R, S, C) to ``value`` outside rows ``rows`` and columns ``cols`` (slices of unit
    step): the padding around an interior that the caller fills."""
    target[:, :rows.start] = value
    target[:, rows.stop:] = value
    target[:, rows, :cols.start] = value
    target[:, rows, cols.stop:] = value


def unpad2d(x, pads):
    """Inverse of :func:`pad2d`: a view of the interior of a padded NHWC array."""
    (top, bottom), (left, right) = pads
    H, W = x.shape[1], x.shape[2]
    return x[:, top:H - bottom, left:W - right, :]
