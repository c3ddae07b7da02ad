"""Checks at the public boundary: arrays of the right kind, rank, shape and values.

Each raises glassnet's own error saying what was expected, what was received and how to fix it.
"""
import os

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
        # a 0-d object array wraps something that is no array at all (a dict, a generator): name that
        raise TypeError(message(where, f"{name} as a numeric array", describe(x if array.ndim == 0 else array),
                                f"Convert it first, e.g. np.asarray({name}, dtype='float32')."))
    if array.size == 0:
        raise ValueError(message(where, f"a non-empty {name}", describe(array),
                                 "Check the slicing or loading that produced it: it holds no examples."))
    if np.iscomplexobj(array):
        raise TypeError(message(where, f"real-valued {name}", describe(array),
                                f"Keep the real part ({name}.real) or the magnitude (np.abs({name}))."))
    _check_finite(array, where, name)
    with np.errstate(over="ignore"):
        converted = array.astype(dtype, copy=False)
    if converted is not array and not np.isfinite(converted).all():
        # finite before the cast, infinite after: values beyond the range of ``dtype``
        raise ValueError(message(where, f"values of {name} within the range of {np.dtype(dtype)} "
                                 f"(|x| <= {np.finfo(dtype).max:.3g})", f"values up to {np.abs(array).max():.3g}",
                                 "Rescale the data, e.g. x / 255.0 for pixels."))
    return converted


def _check_finite(array, where, name):
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise ValueError(message(where, f"finite values in {name}", f"{bad} NaN or inf entries",
                                 "Clean or impute the data before passing it in."))


def check_input_shape(x, expected, where, name="x"):
    """Check a batch ``x`` against a per-example shape ``expected`` (e.g. (28, 28, 1))."""
    expected = tuple(expected)
    if x.ndim == len(expected) + 1 and tuple(x.shape[1:]) == expected:
        return x
    layout = "(N, H, W, C)" if len(expected) == 3 else f"(N, {', '.join(map(str, expected))})"
    raise ValueError(message(where, f"input of shape {layout} with per-example shape {expected}",
                             f"shape {tuple(x.shape)}", _shape_fix(tuple(x.shape), expected)))


def _shape_fix(shape, expected):
    """How to turn a batch of shape ``shape`` into one of per-example shape ``expected``."""
    image = len(expected) == 3
    if image and expected[2] == 1 and shape == expected[:2]:
        return "For one grayscale image use x[None, ..., None]."
    if image and expected[2] == 1 and len(shape) == 3 and shape[1:] == expected[:2]:
        return "For a batch of grayscale images add the channel axis: x[..., None]."
    if shape == expected:
        return "For one example add the batch axis: x[None]."
    if len(shape) == len(expected) + 2:
        # one axis too many: name the length-1 axis whose removal gives the expected shape
        for axis in range(1, len(shape)):
            if shape[axis] == 1 and shape[1:axis] + shape[axis + 1:] == expected:
                return f"Drop the extra length-1 axis: np.squeeze(x, axis={axis})."
    if len(shape) != len(expected) + 1:
        return f"Reshape each example to {expected}."
    if image and shape[1] == expected[2] and shape[3] != expected[2]:
        return "The data looks channels-first (N, C, H, W); glassnet is channels-last: x.transpose(0, 2, 3, 1)."
    if image and shape[1:3] == expected[:2]:
        if (shape[3], expected[2]) == (3, 1):
            return "Convert RGB to grayscale, e.g. x @ [0.299, 0.587, 0.114] then x[..., None]."
        return f"Give images with {expected[2]} channel(s), or build a model with input_shape={shape[1:]}."
    if image:
        return (f"Resize or crop the images to {expected[0]}x{expected[1]}, or build a model with "
                f"input_shape={shape[1:]}.")
    return f"Build a model with input_shape={shape[1:]}, or reshape the data to (N,) + {expected}."


# -- scalars and choices ------------------------------------------------------------------------
def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, name, where, minimum=None, fix=None):
    """An int (NumPy ints too, bools not) ``>= minimum``, returned as a Python int.

    E.g. ``check_int(batch_size, "batch_size", "Sequential.fit", minimum=1)``.
    Raises TypeError for a non-int, ValueError for an int below ``minimum``.
    """
    kind = {None: "an int", 0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
    if not _is_int(value):
        raise TypeError(message(where, f"{name} as {kind}", describe(value), fix))
    if minimum is not None and value < minimum:
        raise ValueError(message(where, f"{name} as {kind}", repr(value), fix))
    return int(value)


def check_seed(seed, where, name="seed"):
    """A seed as an int >= 0 or None, as a model file stores it: an int passes, a
    ``numpy.random.Generator`` gives one draw from it (so it keeps its place in the generator's
    stream and the seed can still be saved as JSON), None stays None.

    Raises TypeError for anything else and ValueError for a negative int.
    """
    if seed is None:
        return None
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2 ** 63))
    expected = f"{name} as an int >= 0, a numpy.random.Generator or None"
    if not _is_int(seed):
        raise TypeError(message(where, expected, describe(seed), "For example seed=0."))
    if seed < 0:
        raise ValueError(message(where, expected, repr(seed), "For example seed=0."))
    return int(seed)


def as_generator(seed, where, name="seed"):
    """A ``numpy.random.Generator`` for ``seed``: a Generator as it is (its stream goes on), an int
    >= 0 or None (fresh entropy) through ``default_rng``; else the errors of :func:`check_seed`."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed, where, name))


def check_real(value, name, where, low=None, high=None, high_open=False, fix=None, low_open=False):
    """A finite real number in ``[low, high]`` (``high_open`` / ``low_open`` leave that end out),
    returned as float."""
    if high is None and low is not None:       # one-sided: "learning_rate >= 0.0"
        bounds = f"{'>' if low_open else '>='} {low}"
    else:
        bounds = (f"in {'(' if low_open else '['}{'-inf' if low is None else low}, "
                  f"{'inf' if high is None else high}{')' if high_open else ']'}")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(message(where, f"{name} as a real number {bounds}", describe(value), fix))
    value = float(value)
    inside = (np.isfinite(value) and (low is None or (value > low if low_open else value >= low))
              and (high is None or (value < high if high_open else value <= high)))
    if not inside:
        raise ValueError(message(where, f"{name} {bounds}", repr(value), fix))
    return value


def check_real_pair(value, name, where, low=None, high=None, fix=None):
    """A pair ``(a, b)`` of finite reals, each in ``[low, high]`` (a list or a tuple), returned as a tuple of
    floats. TypeError for a non-sequence, ValueError for another length or a value out of range."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(message(where, f"{name} as a pair of real numbers", describe(value), fix))
    if len(value) != 2:
        raise ValueError(message(where, f"{name} as a pair of real numbers", repr(value), fix))
    return tuple(check_real(v, name, where, low=low, high=high, fix=fix) for v in value)


def check_fraction(value, name, where, fix=None):
    """A fraction in ``[0, 1)``: dropout rates, ``validation_split``, momenta."""
    return check_real(value, name, where, low=0, high=1, high_open=True, fix=fix)


def check_choice(value, choices, name, where, fix=None):
    """One of ``choices`` (strings compared case-insensitively); returns the canonical choice."""
    for choice in choices:
        if isinstance(value, str) and isinstance(choice, str):
            if value.lower() == choice.lower():
                return choice
        elif not isinstance(value, str) and value == choice:
            return choice
    raise ValueError(message(where, f"{name} one of {list(choices)}", repr(value), fix))


# -- batches ------------------------------------------------------------------------------------
def check_same_length(x, y, where, names=("x", "y")):
    """``x`` and ``y`` are arrays with the same number of samples (first axis)."""
    nx = x.shape[0] if np.ndim(x) else None
    ny = y.shape[0] if np.ndim(y) else None
    if nx is None or ny is None or nx != ny:
        raise ValueError(message(where, f"{names[0]} and {names[1]} with the same number of samples",
                                 f"{names[0]} of shape {np.shape(x)} and {names[1]} of shape {np.shape(y)}",
                                 "Pass one label (row) per input example."))


def as_label_array(y, where, name="y"):
    """Targets as a numeric, non-empty, finite NumPy array (integer labels keep their dtype)."""
    if isinstance(y, (str, bytes)) or y is None:
        raise TypeError(message(where, f"{name} as a numeric array", describe(y)))
    try:
        array = np.asarray(y)
    except (ValueError, TypeError) as error:
        raise TypeError(message(where, f"{name} as a numeric array", f"{type(y).__name__} ({error})",
                                "Give every example a label of the same shape.")) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(message(where, f"{name} as a numeric array", describe(array),
                                f"Convert it first, e.g. np.asarray({name}, dtype='int64')."))
    if array.size == 0:
        raise ValueError(message(where, f"a non-empty {name}", describe(array)))
    _check_finite(array, where, name)
    return array


def check_class_indices(target, n, classes, where, name="target"):
    """An int or one int per image, each in ``[0, classes)``, as an (n,) intp array.

    For explanation functions (``target=None`` -- the predicted class -- is the caller's business).
    """
    fix = f"Use an int in [0, {classes - 1}] or {n} of them (one per image); None picks the predicted class."
    if _is_int(target):
        indices = np.full(n, int(target), dtype=np.intp)
    else:
        indices = np.asarray(target) if isinstance(target, (list, tuple, np.ndarray)) else None
        if indices is None or indices.dtype.kind not in "iu":
            raise TypeError(message(where, f"{name} as None, an int or {n} ints", describe(target), fix))
        if indices.shape != (n,):
            raise ValueError(message(where, f"{name} with one class per image, shape ({n},)",
                                     f"shape {indices.shape}", fix))
        indices = indices.astype(np.intp)
    bad = (indices < 0) | (indices >= classes)
    if bad.any():
        raise ValueError(message(where, f"{name} class indices in [0, {classes - 1}] ({classes} outputs)",
                                 repr(int(indices[bad][0])), fix))
    return indices


def check_weight_list(weights, where):
    """A ``set_weights`` argument: a list or tuple of arrays (as ``get_weights()`` returns)."""
    if not isinstance(weights, (list, tuple)):
        raise TypeError(message(where, "a list of NumPy arrays (as get_weights() returns)", describe(weights),
                                "Wrap a single array in a list: set_weights([kernel, bias])."))
    return list(weights)


def check_list(value, name, where, fix=None):
    """A list or tuple (of anything: the caller checks the entries), returned as a list; TypeError otherwise."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(message(where, f"{name} as a list", describe(value), fix))
    return list(value)


def check_text(value, name, where, fix=None):
    """A string (e.g. a ``name=``); TypeError for anything else."""
    if not isinstance(value, str):
        raise TypeError(message(where, f"{name} as a string", describe(value), fix))
    return value


def check_config(config, where, keys, fix=None):
    """A ``from_config`` dict whose keys are all among ``keys``; TypeError for a non-dict, ValueError
    naming the unknown keys."""
    if not isinstance(config, dict):
        raise TypeError(message(where, "a config dict (as get_config() returns)", describe(config), fix))
    unknown = sorted(set(config) - set(keys), key=str)
    if unknown:
        raise ValueError(message(where, f"config keys among {sorted(keys)}", f"unknown keys {unknown}", fix))
    return dict(config)


# -- shapes and files -----------------------------------------------------------------------------
def check_shape(shape, where, name="input_shape", batch=True, fix=None):
    """A shape given by the user: a tuple or list of positive ints, led by None (the batch) when
    ``batch`` allows it. Returned as a tuple, a leading None kept.

    TypeError for something that is no tuple or list or holds a non-int (a float, a string, a
    bool, None after the first entry), ValueError for an empty shape or a non-positive entry.
    """
    fix = fix or ("For example (None, 28, 28, 1) or (28, 28, 1)." if batch else "For example (28, 28, 1).")
    expected = f"{name} as a tuple of positive ints" + (" (a leading None for the batch is allowed)" if batch else "")
    if not isinstance(shape, (tuple, list)):
        raise TypeError(message(where, expected, describe(shape), fix))
    dims = list(shape[1:]) if batch and len(shape) and shape[0] is None else list(shape)
    if not all(_is_int(d) for d in dims):
        error = ValueError if any(d is None for d in dims) else TypeError   # None: a misplaced batch axis
        raise error(message(where, expected, repr(shape), fix))
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(message(where, expected, repr(shape), fix))
    return tuple(shape)


def check_path(path, where, name="path"):
    """A file-system path (str, bytes or os.PathLike), returned as ``os.fspath(path)``."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(message(where, f"{name} as a file path (str or pathlib.Path)", describe(path)))
    return os.fspath(path)


# -- layer hyperparameters and explanation arguments ----------------------------------------------
# A wrong type (a string, a float or a bool where an int is expected) raises TypeError; a value of the
# right type outside its range (0 filters, a negative padding) raises ValueError.
def _is_int_pair(value):
    return isinstance(value, (tuple, list)) and all(_is_int(v) for v in value)


def check_pair(value, name, where, minimum=1, fix=None):
    """An int or a pair of ints, each ``>= minimum`` (kernel_size, strides, pool_size, dilation_rate,
    UpSampling2D's size), returned as a pair of Python ints: ``3`` -> ``(3, 3)``."""
    kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
    expected = f"{name} as {kind} or a pair of them"
    fix = fix or f"For example {name}=3 or {name}=(3, 3)."
    pair = (value, value) if _is_int(value) else value
    if not _is_int_pair(pair):
        raise TypeError(message(where, expected, describe(value), fix))
    if len(pair) != 2 or any(v < minimum for v in pair):
        raise ValueError(message(where, expected, repr(value), fix))
    return (int(pair[0]), int(pair[1]))


PADDING_MODES = ("valid", "same")


def check_padding(padding, where, modes=PADDING_MODES, explicit=True, fix=None, name="padding"):
    """Parse a padding argument once, for every layer that has one (and Cropping2D's ``cropping``,
    with ``name="cropping"``: the same grammar without modes).

    Accepted: one of ``modes`` (case-insensitive) and, with ``explicit``, a non-negative int, a pair
    ``(ph, pw)`` or a pair of pairs ``((top, bottom), (left, right))``, as Keras takes them.
    Returns the mode as a lower-case string or the explicit amounts as ``((top, bottom), (left, right))``,
    the one form :func:`glassnet.ops.padding.resolve_padding` reads.
    """
    forms = [repr(mode) for mode in modes]
    if explicit:
        forms.append("a non-negative int, (ph, pw) or ((top, bottom), (left, right))")
    expected = f"{name} {' or '.join(forms)}"
    fix = fix or "For example " + " or ".join(([f"{name}={modes[-1]!r}"] if modes else [])
                                             + ([f"{name}=(1, 2)"] if explicit else [])) + "."
    if isinstance(padding, str) and modes:
        if padding.lower() not in modes:
            raise ValueError(message(where, expected, repr(padding), fix))
        return padding.lower()
    if not explicit or isinstance(padding, str):
        raise TypeError(message(where, expected, describe(padding), fix))
    pads = (padding, padding) if _is_int(padding) else padding
    if _is_int_pair(pads):                                   # (ph, pw): symmetric on each axis
        pads = [(part, part) for part in pads]
    if not (isinstance(pads, (tuple, list)) and all(_is_int_pair(part) for part in pads)):
        raise TypeError(message(where, expected, describe(padding), fix))
    if len(pads) != 2 or any(len(part) != 2 or min(part) < 0 for part in pads):
        raise ValueError(message(where, expected, repr(padding), fix))
    return tuple((int(part[0]), int(part[1])) for part in pads)


def check_number(value, name, where, valid, expected, fix=None):
    """A finite real ``value`` with ``valid(value)`` true, as a float; ``expected`` says what
    ``valid`` asks (e.g. ``"> 0"``). TypeError for a non-number (bools and strings included),
    ValueError for NaN, inf or a number ``valid`` refuses."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(message(where, f"{name} as a real number {expected}", describe(value), fix))
    if not np.isfinite(value) or not valid(value):
        raise ValueError(message(where, f"{name} {expected}", repr(value), fix))
    return float(value)


def check_name_choice(value, choices, name, where, fix=None):
    """One of the string ``choices`` (case-insensitive); TypeError for a non-string, ValueError for
    an unknown string. Returns the canonical choice."""
    if not isinstance(value, str):
        raise TypeError(message(where, f"{name} one of {list(choices)}", describe(value), fix))
    return check_choice(value, choices, name, where, fix)


# -- training arguments (model.fit / evaluate / predict / compile and glassnet.trainers) ---------------
def check_flag(value, name, where):
    """A bool (NumPy's too), returned as a Python bool; TypeError for anything else (1, "yes")."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(message(where, f"{name} as True or False", describe(value)))
    return bool(value)


def check_verbose(verbose, where):
    """Keras's ``verbose``: "auto" (1, a progress bar), 0 (silent), 1 (progress bar) or 2 (one line per
    epoch); returned as an int. TypeError for another type, ValueError for another value."""
    expected = "verbose 'auto', 0 (silent), 1 (progress bar) or 2 (one line per epoch)"
    if isinstance(verbose, str):
        if verbose != "auto":
            raise ValueError(message(where, expected, repr(verbose)))
        return 1
    if not _is_int(verbose):
        raise TypeError(message(where, expected, describe(verbose)))
    if verbose not in (0, 1, 2):
        raise ValueError(message(where, expected, repr(verbose)))
    return int(verbose)


def check_validation_freq(validation_freq, where):
    """Keras's ``validation_freq`` as a test ``epoch -> bool`` (epoch 0-based): an int k validates after
    every k-th epoch (counted from 1), a collection of 1-based epoch numbers after those (Keras 2's form)."""
    if _is_int(validation_freq):
        every = check_int(validation_freq, "validation_freq", where, minimum=1)
        return lambda epoch: (epoch + 1) % every == 0
    if isinstance(validation_freq, (list, tuple, set, frozenset, range)):
        chosen = {check_int(e, "validation_freq epochs", where, minimum=1) for e in validation_freq}
        return lambda epoch: epoch + 1 in chosen
    raise TypeError(message(where, "validation_freq as an int (every k-th epoch) or a list of epoch numbers",
                            describe(validation_freq), "E.g. validation_freq=2 validates after epochs 2, 4, ..."))


def check_jit_compile(jit_compile, where):
    """Keras compiles its step with XLA on request; glassnet's step is NumPy, run as written, so only
    "auto", False and None are accepted."""
    if not (jit_compile is None or jit_compile is False or jit_compile == "auto"):
        raise ValueError(message(where, "jit_compile='auto' or False", repr(jit_compile),
                                 "glassnet has no XLA (or other) compiler: its layers run NumPy directly and "
                                 "are already vectorized. Remove jit_compile=... from compile()."))


def check_optional_steps(steps, name, where):
    """``steps`` / ``steps_per_epoch`` / ``validation_steps``: None or a positive int."""
    return None if steps is None else check_int(steps, name, where, minimum=1)
