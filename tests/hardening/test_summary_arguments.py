"""Sequential.summary refuses arguments it cannot use, with glassnet's own error."""
import pytest

import glassnet as gn
from glassnet import layers


def small_model():
    return gn.Sequential([layers.Dense(3, input_shape=(4,))])


@pytest.mark.parametrize("kwargs, error, words", [
    ({"print_fn": 5}, TypeError, "print_fn as a callable"),
    ({"line_length": -5}, ValueError, "line_length"),
    ({"line_length": "wide"}, TypeError, "line_length"),
])
def test_summary_rejects_unusable_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        small_model().summary(**kwargs)


def test_summary_passes_every_line_to_print_fn():
    lines = []
    assert small_model().summary(print_fn=lines.append) is None
    assert lines[0].startswith("Model: ") and "Total params: 15" in lines


def test_summary_prints_once_and_returns_none(capsys):
    """As Keras: an interactive prompt or a notebook shows the table once, not again as a string."""
    assert small_model().summary() is None
    printed = capsys.readouterr().out
    assert printed.count("Total params: 15") == 1 and printed.startswith("Model: ")
