"""glassnet.progress: log formatting and utils.Progbar (keras.utils.Progbar for hand-written loops)."""
import io

import numpy as np
import pytest

import glassnet as gn
from glassnet import layers, optimizers
from glassnet.progress import format_logs


def test_progbar_shows_sample_weighted_means_and_the_latest_stateful_value():
    stream = io.StringIO()
    progbar = gn.utils.Progbar(5, verbose=2, stateful_metrics=["lr"], stream=stream)
    progbar.add(2, values=[("loss", 1.0), ("lr", 0.1)])
    assert stream.getvalue() == ""                                          # one line, at the target
    progbar.add(3, values=[("loss", 2.0), ("lr", 0.05)])
    assert progbar.values() == pytest.approx({"loss": 1.6, "lr": 0.05})    # (2 * 1 + 3 * 2) / 5
    line = stream.getvalue().strip()
    assert line.startswith("5/5 - ") and line.endswith("loss: 1.6000 - lr: 0.05")
    progbar.update(5, values=[("loss", 0.0)])                               # already finalized: no second line
    assert stream.getvalue().strip() == line


def test_progbar_values_without_progress_count_once_as_in_keras():
    progbar = gn.utils.Progbar(None, verbose=0)
    progbar.update(0, values=[("loss", 5.0)])
    progbar.update(0, values=[("loss", 1.0), ("accuracy", np.array([0.5, 1.0]))])   # arrays count as their mean
    assert progbar.values() == pytest.approx({"loss": 3.0, "accuracy": 0.75})
    assert list(progbar.values()) == ["loss", "accuracy"]                   # in the order names came


def test_progbar_draws_a_bar_in_seed_000s_hand_written_loop():
    from glassnet.preprocessing import ImageDataGenerator
    x, y = np.random.default_rng(0).random((40, 8, 8, 1)), np.arange(40) % 3
    net = gn.Sequential([layers.Flatten(input_shape=(8, 8, 1)), layers.Dense(3, activation="softmax")], seed=0)
    net.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", ["accuracy"])
    stream = io.StringIO()
    progbar = gn.utils.Progbar(len(x), width=20, stream=stream, unit_name="sample", stateful_metrics=["phase"])
    flow = ImageDataGenerator(horizontal_flip=True).flow(x, y, batch_size=16, seed=0)
    for _, (xb, yb) in zip(range(len(flow)), flow):                        # the flow repeats forever
        loss, accuracy = net.train_on_batch(xb, yb)
        progbar.add(len(xb), values=[("train loss", loss), ("accuracy", accuracy), ("phase", "train")])
    text = stream.getvalue()
    assert "40/40" in text and "sample/s" in text
    assert "train loss:" in text and "accuracy:" in text and "phase: train" in text


@pytest.mark.parametrize("kwargs, error", [
    (dict(target=-1), ValueError), (dict(target=2.5), TypeError), (dict(target=10, verbose=3), ValueError),
    (dict(target=10, verbose=True), TypeError), (dict(target=10, width=0), ValueError),
    (dict(target=10, interval=-1), ValueError)])
def test_progbar_arguments_are_validated(kwargs, error):
    with pytest.raises(error, match="Progbar"):
        gn.utils.Progbar(**kwargs)


def test_format_logs_rounds_numbers_and_shows_the_rest_as_they_are():
    assert format_logs({"loss": 0.123456, "lr": 0.001, "size": 32, "note": "warm-up"}) == \
        "loss: 0.1235 - lr: 0.001 - note: warm-up"
