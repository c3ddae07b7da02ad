"""What NumPy's bundled OpenBLAS does with a thread count set from a thread other than the main one.

Run: ``PYTHONPATH=. python scripts/blas_threads_probe.py`` (needs threadpoolctl and >= 2 cores).

A GEMM tells how many BLAS threads ran it: OpenBLAS's 1-thread and 2-thread float32 products of
the same operands differ in their last bits (different blocking), so each product below is named
by the reference it equals bit for bit. The findings are the notes of ``glassnet/ops/blas_threads.py``.
"""
import ctypes
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from glassnet.ops import blas_threads

A = np.random.default_rng(1).standard_normal((512, 2000)).astype(np.float32)
B = np.random.default_rng(2).standard_normal((2000, 300)).astype(np.float32)


def on_thread(fn):
    """``fn()`` run on a new thread; its result."""
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def main():
    blas = blas_threads.library()
    if blas is None:
        raise SystemExit("NumPy's BLAS is not a pthreads OpenBLAS: nothing to probe")
    blas.set(1)
    one = A @ B
    blas.set(2)
    two = A @ B
    if np.array_equal(one, two):
        raise SystemExit("this OpenBLAS's 1- and 2-thread products are equal: the probe cannot tell them apart")

    def ran_on():
        product = A @ B
        return "1 thread" if np.array_equal(product, one) else "2 threads" if np.array_equal(product, two) else "?"

    print(f"library: {blas.path}\nstart: count {blas.get()}, GEMM on {ran_on()}")

    on_thread(lambda: blas.set(1))
    print(f"openblas_set_num_threads(1) on another thread -> main thread reads {blas.get()}, "
          f"its GEMM runs on {ran_on()}")
    blas.set(2)

    local = getattr(ctypes.CDLL(blas.path), "openblas_set_num_threads_local", None)
    if local is not None:
        local.restype, local.argtypes = ctypes.c_int, [ctypes.c_int]
        returned = on_thread(lambda: local(1))
        print(f"openblas_set_num_threads_local(1) on another thread (returned {returned}) -> main thread reads "
              f"{blas.get()}, its GEMM runs on {ran_on()}")
        blas.set(2)

    controller = next(c for c in ThreadpoolController().lib_controllers if c.filepath == blas.path)
    controller.set_num_threads(2)              # the main thread becomes threadpoolctl's controlling thread
    on_thread(lambda: controller.set_num_threads(1))
    print(f"threadpoolctl set_num_threads(1) on another thread, after the main thread used it -> count "
          f"{blas.get()}, GEMM of that thread runs on {on_thread(ran_on)} (ignored)")
    type(controller).clear_controlling_thread(force=True)


if __name__ == "__main__":
    main()
