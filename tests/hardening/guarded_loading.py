"""What the fuzz tests of glassnet's file readers assert about one call: its outcome and peak memory."""
import pathlib
import tracemalloc

import numpy as np

import glassnet as gn

MiB = 1 << 20


def outcome_and_peak(load, path):
    """``(load(path) or the ValueError it raised, peak bytes traced during the call)``."""
    tracemalloc.start()
    try:
        result = load(path)
    except ValueError as error:
        result = error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


def load_guarded(path, slack=4 * MiB, longest_message=4000):
    """load_model's outcome: a built model (a Sequential or a graph gn.Model) with finite weights, or glassnet's one ValueError.

    Asserts bounded memory (at most 16x the file's size plus ``slack`` bytes: reading and building take
    a few times the file) and a readable message (``longest_message`` characters, no traceback).
    """
    size = pathlib.Path(path).stat().st_size
    result, peak = outcome_and_peak(gn.load_model, path)
    assert peak <= 16 * size + slack, f"load_model peaked at {peak} bytes for a {size}-byte file"
    if isinstance(result, ValueError):
        assert type(result) is ValueError, type(result)
        text = str(result)
        assert text.startswith("load_model expects"), text
        assert "Traceback" not in text and len(text) < longest_message
    else:
        assert isinstance(result, gn.Model)
        assert all(np.isfinite(w).all() for w in result.get_weights())
    return result
