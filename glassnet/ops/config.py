"""Process-wide settings of glassnet's ops, read at every call.

Set them through the package, e.g. ``glassnet.ops.MEMORY_BUDGET_BYTES = 64 * 2**20`` or
``glassnet.ops.NUM_THREADS = 1`` (the package forwards reads and writes of these names here).
"""

#: Most bytes of im2col-sized temporaries one convolution call holds at once. Larger batches
#: (or images) are processed in blocks of images, or of output rows, that fit; set it lower to
#: trade a little speed for memory.
MEMORY_BUDGET_BYTES = 256 * 2 ** 20

#: Threads for glassnet's own blocks of work (convolution, pooling). None follows NumPy's BLAS
#: (e.g. ``threadpoolctl.threadpool_limits(2)``; read from NumPy's OpenBLAS itself, 1 with another
#: BLAS); an int fixes it; 1 keeps everything on the calling thread. See :mod:`glassnet.ops.parallel`.
NUM_THREADS = None

#: The names above, the settings the package forwards.
SETTINGS = ("MEMORY_BUDGET_BYTES", "NUM_THREADS")
