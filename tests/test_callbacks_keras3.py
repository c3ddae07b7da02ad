"""ReduceLROnPlateau and LambdaCallback, side by side with real Keras 3 (torch backend)."""
import numpy as np
import pytest

import glassnet as gn
import keras_oracle
from glassnet.callbacks import LambdaCallback, ReduceLROnPlateau

# A monitored series with plateaus, a dip inside min_delta and a late improvement.
SERIES = [1.0, 0.9, 0.9, 0.9, 0.89995, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]


def _rates(callback, model, series, key="val_loss"):
    callback.set_model(model)
    callback.on_train_begin({})
    rates = []
    for epoch, value in enumerate(series):
        logs = {key: value}
        callback.on_epoch_end(epoch, logs)
        rates.append(float(np.asarray(model.optimizer.learning_rate)))
        assert "learning_rate" in logs
    return rates


def _compiled(lr=0.1):
    model = gn.Sequential([gn.layers.Dense(2, input_shape=(3,))], seed=0)
    model.compile(gn.optimizers.SGD(lr), "mse")
    return model


@pytest.mark.parametrize("options", [
    dict(factor=0.5, patience=2),
    dict(factor=0.2, patience=1, cooldown=2, min_lr=0.005),
    dict(factor=0.5, patience=0, min_delta=0.0),
])
def test_reduce_lr_on_plateau_follows_keras3(options):
    keras = keras_oracle.load()
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    expected = _rates(keras.callbacks.ReduceLROnPlateau(**options), theirs, SERIES)
    got = _rates(ReduceLROnPlateau(**options), _compiled(), SERIES)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[-1] < 0.1                            # it did reduce (the test could fail)


def test_reduce_lr_on_plateau_in_fit_and_in_max_mode():
    # Zero inputs and no bias: the loss cannot improve, so the rate halves after every `patience` epoch.
    model = gn.Sequential([gn.layers.Dense(2, use_bias=False, input_shape=(3,))], seed=0)
    model.compile(gn.optimizers.SGD(0.08), "mse")
    history = model.fit(np.zeros((16, 3)), np.ones((16, 2)), epochs=5, verbose=0, callbacks=[
        ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1)])
    assert history.history["learning_rate"] == pytest.approx([0.08, 0.08, 0.04, 0.02, 0.01])
    assert model.optimizer.learning_rate == pytest.approx(0.005)
    assert _rates(ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1), _compiled(),
                  [0.5, 0.6, 0.6], key="val_accuracy") == pytest.approx([0.1, 0.1, 0.05])


@pytest.mark.parametrize("kwargs, error", [({"factor": 1.0}, ValueError), ({"patience": -1}, ValueError),
                                           ({"min_lr": -1.0}, ValueError), ({"monitor": 3}, TypeError)])
def test_reduce_lr_on_plateau_checks_its_arguments(kwargs, error):
    with pytest.raises(error, match="ReduceLROnPlateau"):
        ReduceLROnPlateau(**kwargs)


def test_lambda_callback_calls_each_function_with_keras_arguments():
    events = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(("epoch_begin", epoch)),
        on_epoch_end=lambda epoch, logs: events.append(("epoch_end", epoch, sorted(logs))),
        on_train_batch_end=lambda batch, logs: events.append(("batch_end", batch, round(logs["loss"], 6) >= 0)),
        on_train_end=lambda logs: events.append("train_end"))
    x = np.zeros((8, 3), "float32")
    _compiled().fit(x, np.zeros((8, 2)), batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    assert events == ["train_begin", ("epoch_begin", 0), ("batch_end", 0, True), ("batch_end", 1, True),
                      ("epoch_end", 0, ["loss"]), ("epoch_begin", 1), ("batch_end", 0, True),
                      ("batch_end", 1, True), ("epoch_end", 1, ["loss"]), "train_end"]


def test_lambda_callback_without_batch_hooks_keeps_fit_on_its_fast_path():
    from glassnet.callbacks import CallbackList
    assert not CallbackList([LambdaCallback(on_epoch_end=print)]).wants_batches
    assert CallbackList([LambdaCallback(on_batch_begin=print)]).wants_batches


def test_lambda_callback_refuses_unknown_hooks_and_non_functions():
    with pytest.raises(TypeError, match="hooks named"):
        LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="function"):
        LambdaCallback(on_epoch_end=3)


def test_early_stopping_start_from_epoch_waits_before_watching():
    keras = keras_oracle.load()
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    series = [1.0, 2.0, 3.0, 4.0, 3.5, 5.0, 6.0]
    stops = []
    for callback, model in ((keras.callbacks.EarlyStopping(patience=1, start_from_epoch=3), theirs),
                            (gn.callbacks.EarlyStopping(patience=1, start_from_epoch=3), _compiled())):
        callback.set_model(model)
        model.stop_training = False
        callback.on_train_begin({})
        for epoch, value in enumerate(series):
            callback.on_epoch_end(epoch, {"val_loss": value})
            if model.stop_training:
                break
        stops.append(epoch)
    assert stops[0] == stops[1] == 5
