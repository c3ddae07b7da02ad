"""Sequential.compile and the validation gate of fit / evaluate / predict / train_on_batch (issue 3, issue 8 item 1).

Every bad input must raise glassnet's own ValueError / TypeError / RuntimeError in the
"<where> expects <expected>; got <received>. <fix>" form before any weight changes.
"""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers, losses, metrics, optimizers


def cnn(dtype="float32"):
    return gn.Sequential([
        layers.Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1), dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype), layers.Flatten(dtype=dtype),
        layers.Dense(4, activation="softmax", dtype=dtype)], seed=0)


def compiled(loss="sparse_categorical_crossentropy", metrics_=("accuracy",)):
    model = cnn()
    model.compile("sgd", loss, list(metrics_))
    return model


def data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 4, n)


# -- compile ----------------------------------------------------------------------------------
def test_compile_resolves_names_into_objects():
    model = compiled()
    assert isinstance(model.loss, losses.SparseCategoricalCrossentropy)
    assert isinstance(model.optimizer, optimizers.SGD)
    assert [type(m) for m in model.metrics] == [metrics.SparseCategoricalAccuracy]
    assert model.metrics_names == ["loss", "accuracy"]
    model.compile(optimizers.Adam(0.01), losses.CategoricalCrossentropy(), metrics=["acc"])
    assert isinstance(model.metrics[0], metrics.CategoricalAccuracy) and model.metrics_names == ["loss", "acc"]
    assert model.optimizer.learning_rate == 0.01


def test_compile_before_the_model_is_built_resolves_metrics_at_fit():
    model = gn.Sequential([layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", ["accuracy"])
    x = np.random.default_rng(0).random((10, 3))
    model.fit(x, (x[:, 0] > 0.5).astype(float), epochs=1, verbose=0)
    assert isinstance(model.metrics[0], metrics.BinaryAccuracy) and model.built


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(optimizer="adamm", loss="mse"), ValueError, "adamm"),
    (dict(optimizer="sgd", loss="cross_entropy"), ValueError, "cross_entropy"),
    (dict(optimizer="sgd"), ValueError, "loss"),
    (dict(optimizer="sgd", loss="mse", metrics=["acuracy"]), ValueError, "acuracy"),
    (dict(optimizer="sgd", loss="mse", metrics=5), TypeError, "metrics"),
    (dict(optimizer=3, loss="mse"), TypeError, "optimizer"),
    (dict(optimizer="sgd", loss="mse", metrics=["accuracy", "accuracy"]), ValueError, "distinct"),
])
def test_compile_rejects_unknown_names(kwargs, error, text):
    with pytest.raises(error, match=text):
        cnn().compile(**kwargs)


# -- the validation gate ------------------------------------------------------------------------
X, Y = data()


def bad_calls():
    """(description, call(model), expected error type, text in the message)."""
    nan = X.copy()
    nan[0, 0, 0, 0] = np.nan
    inf_y = np.eye(4)[Y].astype(float)
    inf_y[1, 2] = np.inf
    return [
        ("rank: one grayscale image", lambda m: m.fit(X[0, ..., 0], Y[:1], verbose=0), ValueError, r"x\[None"),
        ("rank: missing channel axis", lambda m: m.fit(X[..., 0], Y, verbose=0), ValueError, r"x\[\.\.\., None\]"),
        ("channels: RGB for gray", lambda m: m.fit(np.repeat(X, 3, -1), Y, verbose=0), ValueError, r"\(8, 8, 1\)"),
        ("channels first", lambda m: m.fit(np.zeros((6, 1, 8, 8)), Y, verbose=0), ValueError, "channels-first"),
        ("spatial size", lambda m: m.fit(np.zeros((6, 9, 9, 1)), Y, verbose=0), ValueError, "per-example shape"),
        ("x/y length mismatch", lambda m: m.fit(X, Y[:5], verbose=0), ValueError, "same length"),
        ("NaN in x", lambda m: m.fit(nan, Y, verbose=0), ValueError, "NaN"),
        ("inf in one-hot y", lambda m: m.fit(X, inf_y, verbose=0), ValueError, "finite"),
        ("object x", lambda m: m.fit(np.array([None] * 6, dtype=object), Y, verbose=0), TypeError, "numeric"),
        ("string y", lambda m: m.fit(X, np.array(list("abcdef")), verbose=0), TypeError, "numeric"),
        ("ragged x", lambda m: m.fit([[1, 2], [3]], Y, verbose=0), TypeError, "numeric"),
        ("empty x", lambda m: m.fit(np.zeros((0, 8, 8, 1)), np.zeros(0), verbose=0), ValueError, "non-empty"),
        ("empty y", lambda m: m.fit(X, np.zeros(0), verbose=0), ValueError, "non-empty"),
        ("labels out of range", lambda m: m.fit(X, Y + 4, verbose=0), ValueError, r"labels in \[0, 3\]"),
        ("negative labels", lambda m: m.fit(X, -Y - 1, verbose=0), ValueError, r"labels in \[0, 3\]"),
        ("fractional labels", lambda m: m.fit(X, Y + 0.5, verbose=0), ValueError, "integer"),
        ("one-hot with sparse loss", lambda m: m.fit(X, np.eye(4)[Y], verbose=0), ValueError, "one-hot"),
        ("y is None", lambda m: m.fit(X, None, verbose=0), ValueError, "targets"),
        ("x is None", lambda m: m.fit(None, Y, verbose=0), ValueError, "inputs"),
        ("batch_size 0", lambda m: m.fit(X, Y, batch_size=0, verbose=0), ValueError, "batch_size"),
        ("batch_size float", lambda m: m.fit(X, Y, batch_size=2.5, verbose=0), TypeError, "batch_size"),  # a wrong type (issue 20)
        ("epochs negative", lambda m: m.fit(X, Y, epochs=-1, verbose=0), ValueError, "epochs"),
        ("verbose 3", lambda m: m.fit(X, Y, verbose=3), ValueError, "verbose"),
        ("validation_split 1", lambda m: m.fit(X, Y, validation_split=1.0, verbose=0), ValueError,
         "validation_split"),
        ("validation_split leaves nothing", lambda m: m.fit(X[:1], Y[:1], validation_split=0.5, verbose=0),
         ValueError, "both sides"),
        ("validation_data of four", lambda m: m.fit(X, Y, validation_data=(X, Y, Y, Y), verbose=0), ValueError,
         "pair"),
        ("validation_data wrong shape", lambda m: m.fit(X, Y, validation_data=(X[..., 0], Y), verbose=0),
         ValueError, "validation_data"),
        ("seed negative", lambda m: m.fit(X, Y, seed=-1, verbose=0), ValueError, "seed"),
        ("shuffle string", lambda m: m.fit(X, Y, shuffle="yes", verbose=0), TypeError, "shuffle"),
        ("callbacks not callbacks", lambda m: m.fit(X, Y, callbacks=[print], verbose=0), TypeError, "Callback"),
        ("generator with y", lambda m: m.fit(iter([(X, Y)]), Y, steps_per_epoch=1, verbose=0), ValueError,
         "y=None"),
        ("generator with validation_split", lambda m: m.fit(iter([(X, Y)]), steps_per_epoch=1,
                                                            validation_split=0.2, verbose=0), ValueError,
         "validation_data"),
        ("evaluate: wrong shape", lambda m: m.evaluate(X[..., 0], Y), ValueError, "per-example shape"),
        ("evaluate: labels out of range", lambda m: m.evaluate(X, Y + 10), ValueError, "labels"),
        ("predict: NaN", lambda m: m.predict(nan), ValueError, "NaN"),
        ("predict: object", lambda m: m.predict(np.array([object()] * 6)), TypeError, "numeric"),
        ("predict: batch_size 0", lambda m: m.predict(X, batch_size=0), ValueError, "batch_size"),
        ("train_on_batch: length", lambda m: m.train_on_batch(X, Y[:2]), ValueError, "same length"),
        ("train_on_batch: channels", lambda m: m.train_on_batch(np.zeros((6, 8, 8, 2)), Y), ValueError,
         "per-example shape"),
        ("test_on_batch: string labels", lambda m: m.test_on_batch(X, np.array(["a"] * 6)), TypeError,
         "numeric"),
    ]


@pytest.mark.parametrize("case", bad_calls(), ids=lambda c: c[0])
def test_bad_input_gives_glassnets_own_clear_error_and_changes_nothing(case):
    _, call, error, text = case
    model = compiled()
    before = model.get_weights()
    with pytest.raises(error, match=text) as info:
        call(model)
    assert type(info.value) is error                       # not a NumPy subclass from deep inside
    assert "expects" in str(info.value) and "got" in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_categorical_loss_explains_sparse_labels_and_wrong_widths():
    model = compiled("categorical_crossentropy")
    with pytest.raises(ValueError, match="to_categorical"):
        model.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match="4 wide"):
        model.fit(X, np.eye(5)[Y], verbose=0)


@pytest.mark.parametrize("call", [
    lambda m: m.fit(X, Y, verbose=0), lambda m: m.evaluate(X, Y), lambda m: m.train_on_batch(X, Y),
    lambda m: m.test_on_batch(X, Y)])
def test_training_calls_before_compile_raise_runtime_error(call):
    with pytest.raises(RuntimeError, match="compile"):
        call(cnn())


def test_predict_works_uncompiled_and_check_y_returns_ready_targets():
    model = cnn()
    assert model.predict(X).shape == (6, 4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    labels = model.check_y(Y.astype(np.float64), 6, "t")
    assert labels.dtype.kind == "i" and labels.shape == (6,)
    model.compile("sgd", "categorical_crossentropy")
    onehot = model.check_y(np.eye(4, dtype=np.int64)[Y], 6, "t")
    assert onehot.dtype == np.float32
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        model.check_y(Y[:, None], 6, "t")


def test_binary_and_mse_targets_are_checked_against_the_output():
    model = gn.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile("sgd", "binary_crossentropy")
    x = np.zeros((4, 3))
    assert model.check_y(np.array([0, 1, 1, 0]), 4, "t").shape == (4, 1)
    with pytest.raises(ValueError, match="shape"):
        model.fit(x, np.zeros((4, 2)), verbose=0)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="expects"):
        model.fit(x, np.zeros((4, 3)), verbose=0)
