"""Argument checks at the public training boundary (fit / evaluate / predict / train_on_batch / compile), done
by glassnet.validation: a TypeError for a wrong type, a ValueError for a wrong value, each naming the argument;
a refused call changes nothing."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers, validation

X = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
Y = np.arange(8) % 3


def model():
    net = gn.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))], seed=0)
    return net.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])


WRONG_TYPE = [
    ("fit", dict(batch_size="32"), "batch_size"),
    ("fit", dict(batch_size=2.5), "batch_size"),
    ("fit", dict(batch_size=True), "batch_size"),
    ("fit", dict(epochs="2"), "epochs"),
    ("fit", dict(initial_epoch=1.0), "initial_epoch"),
    ("fit", dict(steps_per_epoch="3"), "steps_per_epoch"),
    ("fit", dict(validation_steps=[1]), "validation_steps"),
    ("fit", dict(verbose=1.0), "verbose"),
    ("fit", dict(verbose=None), "verbose"),
    ("fit", dict(validation_split="0.2"), "validation_split"),
    ("fit", dict(shuffle=1), "shuffle"),
    ("fit", dict(shuffle="batch"), "shuffle"),
    ("fit", dict(check_numerics="yes"), "check_numerics"),
    ("fit", dict(validation_freq="2"), "validation_freq"),
    ("fit", dict(validation_freq=[1.5]), "validation_freq"),
    ("fit", dict(class_weight=[1, 2, 3]), "class_weight"),
    ("fit", dict(callbacks=5), "callbacks"),
    ("fit", dict(validation_data=5), "validation_data"),
    ("evaluate", dict(batch_size="32"), "batch_size"),
    ("evaluate", dict(verbose=0.0), "verbose"),
    ("evaluate", dict(steps=2.0), "steps"),
    ("evaluate", dict(return_dict="yes"), "return_dict"),
    ("train_on_batch", dict(return_dict=1), "return_dict"),
    ("test_on_batch", dict(return_dict=None), "return_dict"),
    ("predict", dict(batch_size="32"), "batch_size"),
    ("predict", dict(verbose=[0]), "verbose"),
    ("predict", dict(logits="yes"), "logits"),
]

WRONG_VALUE = [
    ("fit", dict(batch_size=0), "batch_size"),
    ("fit", dict(batch_size=-4), "batch_size"),
    ("fit", dict(epochs=-1), "epochs"),
    ("fit", dict(initial_epoch=-1), "initial_epoch"),
    ("fit", dict(steps_per_epoch=0), "steps_per_epoch"),
    ("fit", dict(verbose=3), "verbose"),
    ("fit", dict(verbose="loud"), "verbose"),
    ("fit", dict(validation_split=1.0), "validation_split"),
    ("fit", dict(validation_split=-0.1), "validation_split"),
    ("fit", dict(validation_split=float("nan")), "validation_split"),
    ("fit", dict(validation_freq=0), "validation_freq"),
    ("fit", dict(validation_freq=[0, 2]), "validation_freq"),
    ("fit", dict(class_weight={0: -1.0}), r"class_weight\[0\]"),
    ("evaluate", dict(batch_size=0), "batch_size"),
    ("evaluate", dict(verbose=5), "verbose"),
    ("evaluate", dict(steps=0), "steps"),
    ("predict", dict(batch_size=0), "batch_size"),
    ("predict", dict(verbose=-1), "verbose"),
]


def call(net, method, kwargs):
    if method == "predict":
        return net.predict(X, **kwargs)
    if method in ("fit", "evaluate"):
        return getattr(net, method)(X, Y, **{"verbose": 0, **kwargs})
    return getattr(net, method)(X, Y, **kwargs)


@pytest.mark.parametrize("method, kwargs, name", WRONG_TYPE + WRONG_VALUE,
                         ids=[f"{m}-{k}" for m, k, _ in WRONG_TYPE + WRONG_VALUE])
def test_a_wrong_type_is_a_type_error_and_a_wrong_value_a_value_error(method, kwargs, name):
    expected = TypeError if (method, kwargs, name) in WRONG_TYPE else ValueError
    net = model()
    before = net.get_weights()
    with pytest.raises(expected, match=name) as raised:
        call(net, method, kwargs)
    assert f"{type(net).__name__}.{method}" in str(raised.value)     # glassnet's own message names the call
    for old, new in zip(before, net.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert net.completed_epochs == 0


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(steps_per_execution="1"), TypeError, "steps_per_execution"),
    (dict(steps_per_execution=0), ValueError, "steps_per_execution"),
    (dict(jit_compile=True), ValueError, "jit_compile"),
    (dict(jit_compile="xla"), ValueError, "jit_compile"),
    (dict(run_eagerly="no"), TypeError, "run_eagerly"),
    (dict(metrics="accuracy", weighted_metrics=3), TypeError, "weighted_metrics"),
    (dict(metrics=7), TypeError, "metrics"),
    (dict(loss_weights=[-1.0]), ValueError, "loss_weights"),
    (dict(loss_weights=["1"]), TypeError, "loss_weights"),
])
def test_compile_arguments(kwargs, error, name):
    net = gn.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    with pytest.raises(error, match=name):
        net.compile("sgd", "sparse_categorical_crossentropy", **kwargs)
    assert not net.compiled


def test_the_accepted_forms_still_train():
    net = model()
    net.compile("sgd", "sparse_categorical_crossentropy", metrics="accuracy", jit_compile=False, run_eagerly=True,
                loss_weights=[1.0])
    assert net.compile("sgd", "mse", loss_weights=2.0)._compiled.loss_weights == [2.0]
    net.compile("sgd", "sparse_categorical_crossentropy", metrics="accuracy", loss_weights=[1.0])
    history = net.fit(X, Y, batch_size=np.int64(4), epochs=np.int32(2), verbose="auto", shuffle=np.bool_(False),
                      validation_split=0.25, validation_freq=[2], seed=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(history.history["loss"]) == 2 and len(history.history["val_loss"]) == 1
    assert net.predict(X, batch_size=3, verbose=2).shape == (8, 3)


@pytest.mark.parametrize("check, good, result", [
    (validation.check_verbose, "auto", 1),
    (validation.check_verbose, 2, 2),
    (validation.check_flag, np.bool_(True), True),
])
def test_the_training_checks_return_the_canonical_value(check, good, result):
    args = (good, "where") if check is validation.check_verbose else (good, "flag", "where")
    assert check(*args) == result


def test_validation_freq_selects_epochs():
    every_second = validation.check_validation_freq(2, "w")
    listed = validation.check_validation_freq((1, 3), "w")
    assert [every_second(e) for e in range(4)] == [False, True, False, True]
    assert [listed(e) for e in range(4)] == [True, False, True, False]


@pytest.mark.parametrize("make, error, name", [
    (lambda: gn.callbacks.EarlyStopping(patience="3"), TypeError, "patience"),
    (lambda: gn.callbacks.EarlyStopping(patience=-1), ValueError, "patience"),
    (lambda: gn.callbacks.EarlyStopping(start_from_epoch=1.0), TypeError, "start_from_epoch"),
    (lambda: gn.callbacks.EarlyStopping(min_delta="0.1"), TypeError, "min_delta"),
    (lambda: gn.callbacks.EarlyStopping(min_delta=float("inf")), ValueError, "min_delta"),
    (lambda: gn.callbacks.ModelCheckpoint("m.npz", period="1"), TypeError, "period"),
    (lambda: gn.callbacks.ModelCheckpoint("m.npz", period=0), ValueError, "period"),
    (lambda: gn.callbacks.ReduceLROnPlateau(factor="0.5"), TypeError, "factor"),
    (lambda: gn.callbacks.ReduceLROnPlateau(factor=0), ValueError, "factor"),
    (lambda: gn.callbacks.ReduceLROnPlateau(factor=1.0), ValueError, "factor"),
    (lambda: gn.callbacks.ReduceLROnPlateau(cooldown=2.5), TypeError, "cooldown"),
    (lambda: gn.callbacks.ReduceLROnPlateau(min_lr=-1e-3), ValueError, "min_lr"),
])
def test_callback_arguments_follow_the_same_rule(make, error, name):
    with pytest.raises(error, match=name):
        make()
