"""fit / evaluate with sample_weight, class_weight, weighted_metrics, validation_freq and (x, y, w)
triples, side by side with real Keras 3 (torch backend) where it helps."""
import numpy as np
import pytest

import glassnet as gn
from glassnet.preprocessing import ImageDataGenerator
import keras_oracle

RNG = np.random.default_rng(3)
X = RNG.normal(size=(40, 5)).astype("float32")
Y = RNG.integers(0, 3, 40)
W = RNG.uniform(0.1, 2.0, 40).astype("float32")


def test_evaluate_with_sample_weight_matches_keras3():
    keras = keras_oracle.load()
    ours, theirs = keras_oracle.dense_pair(keras, 5, 3, "softmax")
    for model in (ours, theirs):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    expected = theirs.evaluate(X, Y, sample_weight=W, return_dict=True, verbose=0, batch_size=16)
    got = ours.evaluate(X, Y, sample_weight=W, return_dict=True, batch_size=16)
    assert set(got) == set(expected) == {"loss", "accuracy", "weighted_accuracy"}
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-5), key
    # Keras 3's documented reduction: sum(w * loss) / N, not / sum(w); plain metrics are unweighted.
    p = ours.predict(X)
    per_sample = -np.log(p[np.arange(40), Y].astype(np.float64))
    assert got["loss"] == pytest.approx((W * per_sample).sum() / 40, rel=1e-5)
    assert got["accuracy"] == pytest.approx((p.argmax(1) == Y).mean())
    assert got["weighted_accuracy"] == pytest.approx(((p.argmax(1) == Y) * W).sum() / W.sum(), rel=1e-6)


def test_evaluate_return_dict_and_list_agree():
    model, _ = _pair_without_keras()
    as_list = model.evaluate(X, Y)
    as_dict = model.evaluate(X, Y, return_dict=True)
    assert list(as_dict) == model.metrics_names == ["loss", "accuracy"]
    assert list(as_dict.values()) == as_list


def _pair_without_keras(activation="softmax"):
    model = gn.Sequential([gn.layers.Dense(3, activation=activation, input_shape=(5,))], seed=0)
    model.compile(gn.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, None


@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_one_weighted_sgd_step_matches_keras3(weighting):
    keras = keras_oracle.load()
    ours, theirs = keras_oracle.dense_pair(keras, 5, 3, "softmax", seed=1)
    ours.compile(gn.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    theirs.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    options = {"sample_weight": W} if weighting == "sample_weight" else {"class_weight": {0: 0.2, 1: 3.0}}
    ours.fit(X, Y, batch_size=40, epochs=1, shuffle=False, verbose=0, **options)
    theirs.fit(X, Y, batch_size=40, epochs=1, shuffle=False, verbose=0, **options)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_class_weight_equals_the_sample_weights_it_stands_for():
    table = {0: 0.5, 2: 4.0}                        # class 1 left out: weight 1, as in Keras
    weights = np.array([table.get(int(c), 1.0) for c in Y])
    runs = []
    for options in ({"class_weight": table}, {"sample_weight": weights}):
        model, _ = _pair_without_keras()
        history = model.fit(X, Y, batch_size=8, epochs=2, seed=0, verbose=0, **options)
        runs.append((model.get_weights(), history.history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


def test_class_weight_shifts_the_decision_towards_the_rare_class():
    # 2 overlapping Gaussian classes, 9:1. Unweighted, the rare class is mostly called the common one;
    # weighing it 9x must make the model predict it far more often (and recall it better).
    rng = np.random.default_rng(0)
    n_common, n_rare = 900, 100
    x = np.concatenate([rng.normal(-0.5, 1.0, (n_common, 2)), rng.normal(0.5, 1.0, (n_rare, 2))]).astype("float32")
    y = np.concatenate([np.zeros(n_common, int), np.ones(n_rare, int)])
    recalls = {}
    for name, class_weight in (("plain", None), ("weighted", {0: 1.0, 1: 9.0})):
        model = gn.Sequential([gn.layers.Dense(2, activation="softmax", input_shape=(2,))], seed=0)
        model.compile(gn.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=50, epochs=20, seed=0, verbose=0, class_weight=class_weight)
        predicted = model.predict(x).argmax(1)
        recalls[name] = (predicted[y == 1] == 1).mean()
    assert recalls["plain"] < 0.2
    assert recalls["weighted"] > 0.6


def test_class_weight_with_sample_weight_is_refused_as_in_keras():
    model, _ = _pair_without_keras()
    with pytest.raises(ValueError, match="not both"):
        model.fit(X, Y, class_weight={0: 2.0}, sample_weight=W, verbose=0)


@pytest.mark.parametrize("bad, error, text", [
    ([1.0, 2.0], TypeError, "dict"),
    ({"cat": 1.0}, TypeError, "int class"),
    ({7: 1.0}, ValueError, r"\[0, 2\]"),
    ({0: -1.0}, ValueError, ">= 0"),
])
def test_bad_class_weight_gets_a_clear_error(bad, error, text):
    model, _ = _pair_without_keras()
    with pytest.raises(error, match=text):
        model.fit(X, Y, class_weight=bad, verbose=0)


@pytest.mark.parametrize("bad, error, text", [
    (np.ones(39), ValueError, r"shape \(40,\)"),
    (np.full(40, np.nan), ValueError, "finite"),
    (-np.ones(40), ValueError, ">= 0"),
    (np.array(["a"] * 40), TypeError, "numeric"),
])
def test_bad_sample_weight_gets_a_clear_error(bad, error, text):
    model, _ = _pair_without_keras()
    with pytest.raises(error, match=text):
        model.fit(X, Y, sample_weight=bad, verbose=0)


def test_zero_weights_leave_those_samples_out_of_the_gradient():
    weights = (np.arange(40) % 2).astype("float32")
    model_weighted, _ = _pair_without_keras()
    model_weighted.fit(X, Y, batch_size=40, epochs=1, shuffle=False, verbose=0, sample_weight=weights)
    # Same step on the odd samples alone, with the loss scaled back by 20/40 (Keras divides by N).
    model_subset, _ = _pair_without_keras()
    model_subset.compile(gn.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    model_subset.fit(X[1::2], Y[1::2], batch_size=20, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model_weighted.get_weights(), model_subset.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_validation_triple_and_validation_freq_match_keras3():
    keras = keras_oracle.load()
    ours, theirs = keras_oracle.dense_pair(keras, 5, 3, "softmax", seed=2)
    ours.compile(gn.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    options = dict(validation_data=(X, Y, W), epochs=4, validation_freq=2, batch_size=40, shuffle=False, verbose=0)
    got = ours.fit(X, Y, **options).history
    expected = theirs.fit(X, Y, **options).history
    assert set(got) == set(expected)
    assert len(got["val_loss"]) == 2 and len(got["loss"]) == 4          # epochs 2 and 4 only
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, err_msg=key)


def test_validation_freq_as_a_list_of_epochs():
    model, _ = _pair_without_keras()
    seen = []
    callback = gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append("val_loss" in logs))
    model.fit(X, Y, validation_split=0.25, epochs=4, validation_freq=[1, 4], callbacks=[callback], verbose=0)
    assert seen == [True, False, False, True]
    with pytest.raises(ValueError, match="validation_freq"):
        model.fit(X, Y, validation_split=0.25, validation_freq=0, verbose=0)


def test_generator_triples_train_like_arrays_with_sample_weight():
    images = RNG.normal(size=(24, 4, 4, 1)).astype("float32")
    labels = RNG.integers(0, 2, 24)
    weights = RNG.uniform(0, 2, 24)

    def model():
        net = gn.Sequential([gn.layers.Flatten(input_shape=(4, 4, 1)), gn.layers.Dense(2, activation="softmax")],
                            seed=0)
        net.compile(gn.optimizers.SGD(0.1), "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
        return net

    flow = ImageDataGenerator().flow(images, labels, batch_size=8, shuffle=False, sample_weight=weights)
    from_flow, from_arrays = model(), model()
    h1 = from_flow.fit(flow, epochs=2, verbose=0, seed=0).history
    h2 = from_arrays.fit(images, labels, sample_weight=weights, batch_size=8, shuffle=False, epochs=2, verbose=0,
                         seed=0).history
    assert set(h1) == set(h2) == {"loss", "accuracy"}
    for key in h1:
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-6)
    for a, b in zip(from_flow.get_weights(), from_arrays.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    flow = ImageDataGenerator().flow(images, labels, batch_size=8, shuffle=False, sample_weight=weights)
    assert from_flow.evaluate(flow, return_dict=True) == pytest.approx(
        from_flow.evaluate(images, labels, sample_weight=weights, batch_size=8, return_dict=True))


def test_train_and_test_on_batch_take_weights_and_return_dicts():
    model, _ = _pair_without_keras()
    before = model.test_on_batch(X, Y, sample_weight=W, return_dict=True)
    assert before == pytest.approx(model.evaluate(X, Y, sample_weight=W, batch_size=40, return_dict=True))
    result = model.train_on_batch(X, Y, class_weight={1: 2.0}, return_dict=True)
    assert set(result) == {"loss", "accuracy"}


def test_jit_compile_true_says_what_to_do():
    model, _ = _pair_without_keras()
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile="auto")
    with pytest.raises(ValueError, match="no XLA"):
        model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True)


def test_verbose_auto_is_a_progress_bar(capsys):
    model, _ = _pair_without_keras()
    model.fit(X, Y, epochs=1, verbose="auto")
    model.evaluate(X, Y, verbose="auto")
    out = capsys.readouterr()
    assert "Epoch 1/1" in out.out + out.err
    with pytest.raises(ValueError, match="verbose"):
        model.fit(X, Y, verbose="loud")


def test_validation_data_as_a_generator_of_batches_is_read_like_arrays():
    batches = [(X[i:i + 10], Y[i:i + 10], W[i:i + 10]) for i in range(0, 40, 10)]
    with_arrays, with_batches = _pair_without_keras()[0], _pair_without_keras()[0]
    h1 = with_arrays.fit(X, Y, validation_data=(X, Y, W), epochs=2, seed=0, verbose=0).history
    h2 = with_batches.fit(X, Y, validation_data=iter(batches), validation_steps=4, epochs=2, seed=0,
                          verbose=0).history
    np.testing.assert_allclose(h1["val_loss"], h2["val_loss"], rtol=1e-6)


def test_weighted_metrics_survive_save_and_load(tmp_path):
    model = gn.Sequential([gn.layers.Dense(3, activation="softmax", input_shape=(5,))], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy", gn.metrics.TopKCategoricalAccuracy(k=2, sparse=True)])
    model.fit(X, Y, sample_weight=W, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.npz")
    loaded = gn.load_model(tmp_path / "m.npz")
    expected = model.evaluate(X, Y, sample_weight=W, return_dict=True)
    assert list(expected) == ["loss", "accuracy", "weighted_accuracy", "sparse_top_k_categorical_accuracy"]
    assert loaded.evaluate(X, Y, sample_weight=W, return_dict=True) == expected
