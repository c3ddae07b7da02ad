"""callbacks.TensorBoard writes real event files; TensorBoard's own reader reads the right values back."""
import json

import numpy as np
import pytest

import glassnet as gn

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="tensorboard (the optional writer, in the dev extra) is not installed")


def _read(folder):
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _fit(log_dir, **options):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    model = gn.Sequential([gn.layers.Dense(8, activation="relu", input_shape=(4,), name="hidden"),
                           gn.layers.Dense(2, activation="softmax", name="out")], seed=0)
    model.compile(gn.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0, seed=0,
                        callbacks=[gn.callbacks.TensorBoard(log_dir, **options)])
    return model, history.history


def test_epoch_scalars_read_back_with_the_history_values(tmp_path):
    _, history = _fit(tmp_path)
    train, validation = _read(tmp_path / "train"), _read(tmp_path / "validation")
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(train.Tags()["scalars"])
    for tag, key in (("epoch_loss", "loss"), ("epoch_accuracy", "accuracy")):
        events = train.Scalars(tag)
        assert [e.step for e in events] == [0, 1, 2]
        np.testing.assert_allclose([e.value for e in events], history[key], rtol=1e-6)
        np.testing.assert_allclose([e.value for e in validation.Scalars(tag)], history["val_" + key], rtol=1e-6)
    assert [e.value for e in train.Scalars("epoch_learning_rate")] == pytest.approx([0.1] * 3)


def test_histograms_graph_and_batch_scalars(tmp_path):
    model, _ = _fit(tmp_path, histogram_freq=2, update_freq=2)
    train = _read(tmp_path / "train")
    histograms = train.Histograms("hidden/kernel/histogram")
    assert [h.step for h in histograms] == [0, 2]
    last = histograms[-1].histogram_value
    kernel = model.get_layer("hidden").get_weights()[0]
    assert last.num == kernel.size and sum(last.bucket) == kernel.size
    assert last.min == pytest.approx(kernel.min()) and last.max == pytest.approx(kernel.max())
    assert "out/bias/histogram" in train.Tags()["histograms"]
    # 3 training batches per epoch (24 samples, batch 8): every 2nd of the 9 batches.
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6, 8]
    config = train.Tensors("model/config")[0].tensor_proto.string_val[0].decode()
    assert json.loads(config) == json.loads(model.to_json())
    summary = train.Tensors("model/summary")[0].tensor_proto.string_val[0].decode()
    assert "Total params: 58" in summary


def test_bad_arguments_say_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="update_freq"):
        gn.callbacks.TensorBoard(tmp_path, update_freq=0)
    with pytest.raises(ValueError, match="write_images"):
        gn.callbacks.TensorBoard(tmp_path, write_images=True)


@pytest.mark.parametrize("kwargs, error", [
    (dict(update_freq="2"), ValueError), (dict(update_freq=1.5), TypeError), (dict(update_freq=-1), ValueError),
    (dict(histogram_freq="1"), TypeError), (dict(histogram_freq=-1), ValueError),
])
def test_frequencies_a_wrong_type_or_value(tmp_path, kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        gn.callbacks.TensorBoard(tmp_path, **kwargs)
