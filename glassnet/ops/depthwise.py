"""Depthwise 2-D convolution over NHWC images, vectorized with loops over kernel offsets only.

Each input channel ``c`` is convolved with its own ``depth_multiplier`` filters ``kernel[:, :, c, :]``
(shape ``(KH, KW, C, M)``, Keras's layout); output channel ``c * M + m`` is filter ``m`` of channel
``c`` (Keras's and PyTorch's ``groups=C`` order):

    y[n, i, j, c*M + m] = sum_{a, b} xp[n, i*sh + a*dh, j*sw + b*dw, c] * kernel[a, b, c, m] (+ bias[c*M + m])

with ``xp`` the padded input, ``(sh, sw)`` the strides and ``(dh, dw)`` the dilation.

How it runs (benchmarks/NOTES.md, "Depthwise convolution", has the measurements):

- **Multiplier folded into the channels.** Channel ``c*M + m`` of the output only reads input channel
  ``c``, so the convolution equals a multiplier-1 convolution of the input with each channel repeated
  M times (``xr[..., c*M + m] = x[..., c]``) by the kernel reshaped to ``(KH, KW, C*M)``.
- **Stride phases.** Padded row ``r`` is row ``r // sh`` of phase ``r % sh`` (likewise columns). Offset
  ``(a, b)`` reads phase ``(a*dh % sh, b*dw % sw)`` from row ``a*dh // sh`` and column ``b*dw // sw`` on,
  with stride 1: so every offset is a slab whose rows are ``OW * C`` contiguous values, and NumPy's inner
  loop runs over whole rows instead of ``C`` values at a time (a strided slab was 3-10x slower).
- **Blocks of images in cache.** A block's phases (padding built in, no padded copy of the whole batch)
  and output stay in cache while its ``KH * KW`` broadcast multiply-adds run; the blocks are spread over
  glassnet's worker threads (:func:`glassnet.ops.parallel.run_blocks`).
- **Backward.** ``dL/dx``: with stride 1 and multiplier 1, the forward correlation of ``dy`` with the
  flipped kernel (:func:`_transposed_pads`), each pixel written once; otherwise each offset adds
  ``dy * kernel[a, b]`` into the phase slab it read (slabs of one offset never overlap), then the phases
  are written back into ``dx``. ``dL/dkernel[a, b]``: the products ``slab * dy`` summed over images and
  pixels, one einsum per offset. ``dL/dbias``: ``dy`` summed the same way.
"""
import math

import numpy as np

from glassnet.ops.padding import conv_output_size, fill_border
from glassnet.ops.parallel import add_parts, num_threads, run_blocks
from glassnet.ops.workspace import recycled_array, scratch_array, view

#: Bytes of output per block of images: the block's output, phases and product stay in cache (L2 or
#: the L3 slice) while all KH * KW offsets are added up, and a block's Python work is small next to its
#: arithmetic (512 KiB measured fastest of 128 KiB .. 4 MiB at 1 thread; benchmarks/NOTES.md).
BLOCK_BYTES = 1 << 19


def dilated_kernel_size(kernel_size, dilation_rate):
    """Extent ``(k - 1) * d + 1`` of a dilated kernel, per axis (what "same" padding and the output size use)."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation_rate))


def depthwise_output_hw(input_hw, kernel_size, strides, pads, dilation_rate):
    """Output ``(OH, OW)`` of a depthwise convolution of an ``input_hw`` image with explicit ``pads``."""
    extent = dilated_kernel_size(kernel_size, dilation_rate)
    return tuple(conv_output_size(size, k, s, *pad) for size, k, s, pad in zip(input_hw, extent, strides, pads))


class _Axis:
    """One spatial axis of the convolution: where each kernel tap reads, in stride phases.

    Padded position ``r = i*s + k*d`` (output ``i``, tap ``k``) is position ``r // s`` of phase ``r % s``;
    phase ``p`` holds the padded positions ``p, p + s, ...``, ``ceil((size + pads - p) / s)`` of them.
    """

    def __init__(self, size, kernel, stride, dilation, pads):
        self.size, self.stride, self.before = size, stride, pads[0]
        padded = size + pads[0] + pads[1]
        self.lengths = [-(-(padded - p) // stride) for p in range(stride)]
        self.taps = [((k * dilation) % stride, (k * dilation) // stride) for k in range(kernel)]

    def source(self, phase):
        """``(first, count, start)``: phase positions ``first .. first+count-1`` hold input positions
        ``start, start + s, ...``; the others are padding."""
        first = max(0, -(-(self.before - phase) // self.stride))
        start = first * self.stride + phase - self.before
        count = max(0, min(self.lengths[phase] - first, -(-(self.size - start) // self.stride)))
        return first, count, start


class _Geometry:
    """Both axes, the channels (``C * M``) and the per-thread scratch layout of a block's phases."""

    def __init__(self, x_shape, kernel_shape, strides, pads, dilation_rate):
        KH, KW, C, M = kernel_shape
        out_hw = depthwise_output_hw(x_shape[1:3], (KH, KW), strides, pads, dilation_rate)
        self.rows, self.cols = (_Axis(*args) for args in zip(x_shape[1:3], (KH, KW), strides, dilation_rate, pads))
        self.channels, self.multiplier, self.out_hw = C * M, M, out_hw
        self.phases = [(p, q) for p in range(strides[0]) for q in range(strides[1])]

    def phase_shape(self, n, phase):
        return (n, self.rows.lengths[phase[0]], self.cols.lengths[phase[1]], self.channels)

    def offsets(self):
        """``(a, b, phase, row shift, column shift)`` for every kernel tap."""
        return [(a, b, (pa, pb), sa, sb) for a, (pa, sa) in enumerate(self.rows.taps)
                for b, (pb, sb) in enumerate(self.cols.taps)]

    def slab(self, phase_array, row_shift, col_shift):
        """The stride-1 view of a phase that one tap reads for every output: (n, OH, OW, C*M)."""
        OH, OW = self.out_hw
        return phase_array[:, row_shift:row_shift + OH, col_shift:col_shift + OW]

    def interior(self, phase):
        """``(phase index, input index)`` pairs of slices: where the input sits in ``phase``."""
        (r0, rn, h0), (c0, cn, w0) = self.rows.source(phase[0]), self.cols.source(phase[1])
        sh, sw = self.rows.stride, self.cols.stride
        return (slice(r0, r0 + rn), slice(c0, c0 + cn)), (_every(h0, rn, sh), _every(w0, cn, sw))


def _every(start, count, step):
    """The slice of ``count`` positions ``start, start + step, ...`` (empty when ``count`` is 0)."""
    return slice(start, start + (count - 1) * step + 1 if count else start, step)


def _phase_buffers(geometry, n, dtype, prefix):
    """This thread's scratch arrays for the ``n``-image phases of one block (contents undefined)."""
    return {phase: view(scratch_array(f"{prefix}{phase}", math.prod(geometry.phase_shape(n, phase)), dtype),
                        geometry.phase_shape(n, phase)) for phase in geometry.phases}


def _fill_phases(geometry, x, phases):
    """Write the padded block ``x`` (n, H, W, C) into its stride phases: zeros where the padding is, each
    input channel repeated M times (channel ``c*M + m`` of a phase is input channel ``c``)."""
    for phase, target in phases.items():
        (rows, cols), (h, w) = geometry.interior(phase)
        fill_border(target, rows, cols)
        _split_multiplier(geometry, target)[:, rows, cols] = x[:, h, w, :, None]


def _split_multiplier(geometry, phase_array):
    """The view (n, R, S, C, M) of a phase array (n, R, S, C*M)."""
    M = geometry.multiplier
    return phase_array.reshape(phase_array.shape[:3] + (geometry.channels // M, M))


def _kernel_rows(kernel, width):
    """``rows[a, b]``: the (C*M,) filter taps ``kernel[a, b]`` repeated over an output row, (KH, KW, width, C*M).

    Multiplying a slab (n, OH, OW, C*M) by a contiguous (OW, C*M) row lets NumPy run its inner loop over
    whole rows of OW * C*M values; broadcasting the (C*M,) taps instead runs it over C*M values at a time
    (4x slower for C = 32, measured).
    """
    KH, KW, C, M = kernel.shape
    return np.ascontiguousarray(np.broadcast_to(kernel.reshape(KH, KW, 1, C * M), (KH, KW, width, C * M)))


def _image_blocks(N, bytes_per_image):
    """Slices of about :data:`BLOCK_BYTES` of output each over the N images."""
    size = max(1, BLOCK_BYTES // max(bytes_per_image, 1))
    return [slice(start, min(start + size, N)) for start in range(0, N, size)]


def _row_sums(array):
    """``array`` (n, OH, OW, K) summed over its images and pixels, (K,): rows of OW*K values added first
    (a contiguous inner loop), then the OW groups."""
    return array.reshape(-1, array.shape[-2] * array.shape[-1]).sum(axis=0).reshape(array.shape[-2:]).sum(axis=0)


def _correlate(x, kernel, bias, strides, pads, dilation_rate, kind):
    """The forward sum of :func:`depthwise_conv2d_forward` into a recycled array of ``kind``."""
    geometry = _Geometry(x.shape, kernel.shape, strides, pads, dilation_rate)
    N, (OH, OW), K = len(x), geometry.out_hw, geometry.channels
    y = recycled_array(kind, (N, OH, OW, K), x.dtype)
    rows = _kernel_rows(kernel.astype(x.dtype, copy=False), OW)
    bias = None if bias is None else bias.astype(x.dtype, copy=False)

    def forward_block(images):
        # one block of images stays in cache while all KH * KW offsets are added into it
        out = y[images]
        phases = _phase_buffers(geometry, len(out), x.dtype, "depthwise_x")
        _fill_phases(geometry, x[images], phases)
        product = view(scratch_array("depthwise_product", out.size, x.dtype), out.shape)
        for index, (a, b, phase, row_shift, col_shift) in enumerate(geometry.offsets()):
            slab = geometry.slab(phases[phase], row_shift, col_shift)
            if index == 0:
                np.multiply(slab, rows[a, b], out=out)
            else:
                out += np.multiply(slab, rows[a, b], out=product)
        if bias is not None:
            out += bias

    run_blocks(forward_block, _image_blocks(N, y[0].nbytes), num_threads(y.nbytes + x.nbytes), blas=False)
    return y


def _transposed_pads(kernel_shape, strides, pads, dilation_rate):
    """Padding of ``dy`` under which dL/dx is a forward correlation of ``dy`` with the flipped kernel,
    or None when that does not hold (a stride, a multiplier, or padding wider than the kernel).

    With stride 1, ``dx[h] = sum_a dy[h + top - a*d] * kernel[a] = sum_a' dy[h + top - (e-1) + a'*d] *
    kernel[K-1-a']`` (``e`` the dilated extent): ``dy`` padded by ``e - 1 - top`` before and
    ``e - 1 - bottom`` after, correlated with the flipped taps, gives ``dx`` directly, written once per
    pixel with no zeroed frame to scatter into.
    """
    extent = dilated_kernel_size(kernel_shape[:2], dilation_rate)
    flipped = tuple((e - 1 - before, e - 1 - after) for e, (before, after) in zip(extent, pads))
    if tuple(strides) != (1, 1) or kernel_shape[3] != 1 or min(min(pad) for pad in flipped) < 0:
        return None
    return flipped


def depthwise_conv2d_forward(x, kernel, bias, strides, pads, dilation_rate=(1, 1)):
    """Depthwise convolution.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, M)
    bias : ndarray, shape (C * M,), or None
    strides, dilation_rate : (int, int)
    pads : ((top, bottom), (left, right))

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C * M), x's dtype
    cache : tuple
        What :func:`depthwise_conv2d_backward` needs (the input and the geometry; no copy of the input).
    """
    y = _correlate(x, kernel, bias, strides, pads, dilation_rate, "depthwise_y")
    return y, (x, pads, strides, dilation_rate)


def depthwise_conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True, need_kernel=True):
    """Gradients of :func:`depthwise_conv2d_forward` from ``dy`` (N, OH, OW, C * M); ``need_kernel=False``
    (an explanation) skips the kernel gradient's products and sums.

    Returns
    -------
    dx : ndarray (N, H, W, C) or None when ``need_dx`` is False
    dkernel : ndarray (KH, KW, C, M) or None when ``need_kernel`` is False
    dbias : ndarray (C * M,) or None when ``need_bias`` is False
    """
    x, pads, strides, dilation_rate = cache
    geometry = _Geometry(x.shape, kernel.shape, strides, pads, dilation_rate)
    KH, KW, C, M = kernel.shape
    rows = _kernel_rows(kernel.astype(dy.dtype, copy=False), geometry.out_hw[1])
    gather_pads = _transposed_pads(kernel.shape, strides, pads, dilation_rate) if need_dx else None
    dx = None
    if gather_pads is not None:
        dx = _correlate(dy, kernel[::-1, ::-1], None, (1, 1), gather_pads, dilation_rate, "depthwise_dx")
    elif need_dx:
        dx = recycled_array("depthwise_dx", x.shape, dy.dtype)
    scatter = need_dx and gather_pads is None

    def backward_block(images):
        """This block's share of (dL/dkernel, dL/dbias), summed over the blocks; writes its images of dL/dx."""
        grad = dy[images]
        product = view(scratch_array("depthwise_product", grad.size, dy.dtype), grad.shape)
        dkernel = np.zeros((KH, KW, C * M), dtype=dy.dtype) if need_kernel else None
        phases = _phase_buffers(geometry, len(grad), dy.dtype, "depthwise_x") if need_kernel else None
        if need_kernel:
            _fill_phases(geometry, x[images], phases)
        dphases = _phase_buffers(geometry, len(grad), dy.dtype, "depthwise_dx") if scatter else None
        for target in (dphases or {}).values():
            target.fill(0)
        for a, b, phase, row_shift, col_shift in geometry.offsets():
            if need_kernel:
                # dL/dkernel[a, b, k] = sum over n, i, j of slab[n, i, j, k] * dy[n, i, j, k]: one einsum pass
                # (products summed as they are made) into (OW, K), 1.6x faster than a multiply and a sum
                slab = geometry.slab(phases[phase], row_shift, col_shift)
                dkernel[a, b] = np.einsum("nijk,nijk->jk", slab, grad).sum(axis=0)
            if scatter:
                # each output pixel sends dy * kernel[a, b] back to the pixel it read at this offset
                target = geometry.slab(dphases[phase], row_shift, col_shift)
                np.add(target, np.multiply(grad, rows[a, b], out=product), out=target)
        if scatter:
            _gather_phases(geometry, dphases, dx[images])
        return dkernel, (_row_sums(grad) if need_bias else None)

    if not (need_kernel or need_bias or scatter):
        return dx, None, None
    blocks = _image_blocks(len(dy), dy[0].nbytes)
    dkernel, dbias = run_blocks(backward_block, blocks, num_threads(dy.nbytes + x.nbytes), fold=add_parts,
                                blas=False)
    if dkernel is not None:
        dkernel = dkernel.reshape(KH, KW, C, M)
    return dx, dkernel, dbias


def _gather_phases(geometry, dphases, dx):
    """``dx`` (n, H, W, C) from the gradients of the phases (n, ., ., C*M): the inverse of
    :func:`_fill_phases` (padding dropped, the M copies of a channel summed)."""
    M = geometry.multiplier
    for phase, source in dphases.items():
        (rows, cols), (h, w) = geometry.interior(phase)
        inside = _split_multiplier(geometry, source)[:, rows, cols]
        if M == 1:
            dx[:, h, w] = inside[..., 0]
        else:
            np.add(inside[..., 0], inside[..., 1], out=dx[:, h, w])
            for m in range(2, M):
                dx[:, h, w] += inside[..., m]
