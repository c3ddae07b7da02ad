"""Helpers that build glassnet's error messages: what was expected, what was received, how to fix it."""


def describe(value):
    """Short description of a value for an error message (shape and dtype for arrays)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"array of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(value).__name__} {value!r}"[:200]


def message(where, expected, received, fix=None):
    """Format ``"<where> expects <expected>; got <received>. <fix>"``."""
    text = f"{where} expects {expected}; got {received}."
    if fix:
        text += f" {fix}"
    return text
