"""Checks at the public boundary: arrays of the right kind, rank, shape and values.

Each raises glassnet's own error saying what was expected, what was received and how to fix it.
"""
import numpy as np

from glassnet.errors import describe, message


def as_float_array(x, where, name="x", dtype="float32"):
    """Convert array-like input to a float array, refusing object, string, empty or non-finite data."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(message(where, f"{name} as a numeric array", describe(x)))
    try:
        array = np.asarray(x)
    except (ValueError, TypeError) as error:
        raise TypeError(message(where, f"{name} as a numeric array", f"{type(x).__name__} ({error})",
                                "Make every example the same shape.")) from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(message(where, f"{name} as a numeric array", describe(array),
                                f"Convert it first, e.g. np.asarray({name}, dtype='float32')."))
    if array.size == 0:
        raise ValueError(message(where, f"a non-empty {name}", describe(array)))
    if np.iscomplexobj(array):
        raise TypeError(message(where, f"real-valued {name}", describe(array)))
    array = array.astype(dtype, copy=False)
    if not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise ValueError(message(where, f"finite values in {name}", f"{bad} NaN or inf entries",
                                 "Clean or impute the data before passing it in."))
    return array


def check_input_shape(x, expected, where, name="x"):
    """Check a batch ``x`` against a per-example shape ``expected`` (e.g. (28, 28, 1))."""
    expected = tuple(expected)
    if x.ndim == len(expected) + 1 and tuple(x.shape[1:]) == expected:
        return x
    layout = "(N, H, W, C)" if len(expected) == 3 else f"(N, {', '.join(map(str, expected))})"
    fix = None
    if len(expected) == 3 and x.ndim == 2 and tuple(x.shape) == expected[:2] and expected[2] == 1:
        fix = "For one grayscale image use x[None, ..., None]."
    elif len(expected) == 3 and x.ndim == 3 and tuple(x.shape[1:]) == expected[:2] and expected[2] == 1:
        fix = "For a batch of grayscale images add the channel axis: x[..., None]."
    elif len(expected) == 3 and x.ndim == 3 and tuple(x.shape) == expected:
        fix = "For one image add the batch axis: x[None]."
    elif x.ndim == len(expected) + 1 and len(expected) == 3 and x.shape[1] == expected[2] and x.shape[-1] != expected[2]:
        fix = "The data looks channels-first (N, C, H, W); glassnet is channels-last: x.transpose(0, 2, 3, 1)."
    raise ValueError(message(where, f"input of shape {layout} with per-example shape {expected}",
                             f"shape {tuple(x.shape)}", fix))
