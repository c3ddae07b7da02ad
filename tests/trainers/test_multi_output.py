"""Training a graph model with two inputs and two outputs, side by side with real Keras 3 (torch backend) on the
same weights: predictions, losses and metrics by Keras 3's names, one SGD / Adam step, fit's History, per-output
sample weights, the errors for a wrong structure, and an exact resume from a saved multi-output model."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers
import keras_oracle

RNG = np.random.default_rng(7)
N = 12
XA = RNG.normal(size=(N, 4)).astype("float32")
XB = RNG.normal(size=(N, 3)).astype("float32")
Y_CLS = RNG.integers(0, 3, N)
Y_REG = RNG.normal(size=(N, 2)).astype("float32")
W_CLS = RNG.uniform(0.2, 2.0, N).astype("float32")
WEIGHTED = ("da", "db", "cls", "reg")


def build(lib, as_dict=False):
    """The same two-input, two-output graph in glassnet (``lib=gn``) or Keras (``lib=keras``)."""
    a, b = lib.Input((4,), name="a"), lib.Input((3,), name="b")
    da = lib.layers.Dense(5, activation="relu", name="da")(a)
    db = lib.layers.Dense(5, activation="tanh", name="db")(b)
    merged = lib.layers.Concatenate(name="cat")([da, db])
    cls = lib.layers.Dense(3, activation="softmax", name="cls")(merged)
    reg = lib.layers.Dense(2, name="reg")(merged)
    if as_dict:
        return lib.Model({"a": a, "b": b}, {"cls": cls, "reg": reg})
    return lib.Model([a, b], [cls, reg])


def pair(as_dict=False):
    """(glassnet model, Keras model) with equal weights."""
    keras = keras_oracle.load()
    ours, theirs = build(gn, as_dict), build(keras, as_dict)
    for name in WEIGHTED:
        theirs.get_layer(name).set_weights(ours.get_layer(name).get_weights())
    return ours, theirs


def assert_same_weights(ours, theirs, rtol=1e-5, atol=1e-6):
    for name in WEIGHTED:
        for mine, keras_weight in zip(ours.get_layer(name).get_weights(), theirs.get_layer(name).get_weights()):
            np.testing.assert_allclose(mine, np.asarray(keras_weight), rtol=rtol, atol=atol, err_msg=name)


def assert_same_logs(got, expected, rel=1e-5):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert np.asarray(got[key]) == pytest.approx(np.asarray(value), rel=rel, abs=1e-6), key


COMPILE = dict(loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
               metrics=[["accuracy"], ["mae"]])


def test_predictions_agree_with_keras3_for_lists_and_dicts():
    for as_dict in (False, True):
        ours, theirs = pair(as_dict)
        x = {"a": XA, "b": XB} if as_dict else [XA, XB]
        got, expected = ours.predict(x), theirs.predict(x, verbose=0)
        for key in (("cls", "reg") if as_dict else (0, 1)):
            np.testing.assert_allclose(got[key], np.asarray(expected[key]), rtol=1e-5, atol=1e-6)


def test_evaluate_names_and_values_match_keras3():
    ours, theirs = pair()
    for model in (ours, theirs):
        model.compile("sgd", **COMPILE)
    expected = theirs.evaluate([XA, XB], [Y_CLS, Y_REG], batch_size=5, verbose=0, return_dict=True)
    got = ours.evaluate([XA, XB], [Y_CLS, Y_REG], batch_size=5, return_dict=True)
    assert set(got) == {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"}
    assert_same_logs(got, expected)
    assert got["loss"] == pytest.approx(got["cls_loss"] + 0.5 * got["reg_loss"], rel=1e-6)
    assert ours.metrics_names == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"]
    as_list = ours.evaluate([XA, XB], [Y_CLS, Y_REG], batch_size=5)
    assert as_list == pytest.approx([got[name] for name in ours.metrics_names])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_training_step_matches_keras3(optimizer):
    keras = keras_oracle.load()
    ours, theirs = pair(as_dict=True)
    make = {"sgd": lambda lib: lib.optimizers.SGD(0.1, momentum=0.9), "adam": lambda lib: lib.optimizers.Adam(0.01)}
    compile_args = dict(loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                        loss_weights={"cls": 0.7, "reg": 2.0}, metrics={"cls": ["accuracy"], "reg": ["mae", "mse"]})
    ours.compile(make[optimizer](gn), **compile_args)
    theirs.compile(make[optimizer](keras), **compile_args)
    x, y = {"a": XA, "b": XB}, {"cls": Y_CLS, "reg": Y_REG}
    for _ in range(2):                           # the second step reads the optimizer's slots
        got = ours.train_on_batch(x, y, return_dict=True)
        expected = theirs.train_on_batch(x, y, return_dict=True)
    assert_same_logs(got, {k: float(v) for k, v in expected.items()})
    assert_same_weights(ours, theirs)


def test_fit_history_with_validation_matches_keras3():
    ours, theirs = pair()
    for model in (ours, theirs):
        model.compile("sgd", **COMPILE)
    args = dict(epochs=2, batch_size=4, shuffle=False, validation_split=0.25)
    expected = theirs.fit([XA, XB], [Y_CLS, Y_REG], verbose=0, **args).history
    got = ours.fit([XA, XB], [Y_CLS, Y_REG], verbose=0, **args).history
    assert set(got) == set(expected) and "val_cls_accuracy" in got and "reg_loss" in got
    assert_same_logs(got, expected, rel=1e-4)
    assert_same_weights(ours, theirs, rtol=1e-4, atol=1e-5)


def test_one_loss_for_every_output_and_sample_weight_per_output_match_keras3():
    keras = keras_oracle.load()
    ours, theirs = pair(as_dict=True)
    for model in (ours, theirs):
        model.compile("sgd", loss="mse")
    y = {"cls": keras.utils.to_categorical(Y_CLS, 3), "reg": Y_REG}
    weights = {"cls": W_CLS, "reg": np.ones(N, "float32")}
    x = {"a": XA, "b": XB}
    expected = theirs.evaluate(x, y, sample_weight=weights, batch_size=N, verbose=0, return_dict=True)
    got = ours.evaluate(x, y, sample_weight=weights, batch_size=N, return_dict=True)
    assert_same_logs(got, expected)
    unweighted = ours.evaluate(x, y, batch_size=N, return_dict=True)
    assert unweighted["reg_loss"] == pytest.approx(got["reg_loss"]) and unweighted["cls_loss"] != got["cls_loss"]


def compiled_graph(**overrides):
    model = build(gn, as_dict=True)
    model.compile("sgd", **{**dict(loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}), **overrides})
    return model


@pytest.mark.parametrize("call, error, text", [
    (lambda m: m.fit({"a": XA, "b": XB}, {"cls": Y_CLS}, verbose=0), ValueError, r"missing \['reg'\]"),
    (lambda m: m.fit({"a": XA, "b": XB}, {"cls": Y_CLS, "reg": Y_REG, "extra": Y_REG}, verbose=0), ValueError,
     r"unknown \['extra'\]"),
    (lambda m: m.fit({"a": XA, "b": XB}, Y_REG, verbose=0), TypeError, "one per output"),
    (lambda m: m.fit({"a": XA, "b": XB}, [Y_CLS], verbose=0), ValueError, "one entry per output"),
    (lambda m: m.evaluate({"a": XA}, {"cls": Y_CLS, "reg": Y_REG}), ValueError, "one array per input"),
    (lambda m: m.fit({"a": XA, "b": XB}, {"cls": Y_CLS, "reg": Y_REG[:5]}, verbose=0), ValueError, "output 'reg'"),
    (lambda m: m.fit({"a": XA, "b": XB}, {"cls": Y_CLS, "reg": Y_REG}, class_weight={0: 2.0}, verbose=0),
     ValueError, "class_weight only for a model with one output"),
])
def test_a_wrong_structure_gets_a_clear_error(call, error, text):
    model = compiled_graph()
    before = model.get_weights()
    with pytest.raises(error, match=text):
        call(model)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("arguments, error, text", [
    (dict(loss=["mse"]), ValueError, "one entry per output"),
    (dict(loss={"cls": "mse"}), ValueError, r"missing \['reg'\]"),
    (dict(loss={"cls": "mse", "reg": "mse", "other": "mse"}), ValueError, r"unknown \['other'\]"),
    (dict(loss="mse", loss_weights=[1.0]), ValueError, "one entry per output"),
    (dict(loss="mse", loss_weights=0.5), TypeError, "loss_weights"),
    (dict(loss="mse", loss_weights=["1", 2.0]), TypeError, "loss_weights"),
    (dict(loss="mse", metrics=["mae"]), ValueError, "one entry per output"),
    (dict(loss="mse", metrics={"cls": ["acuracy"], "reg": []}), ValueError, "acuracy"),
])
def test_bad_compile_arguments_for_several_outputs_are_refused(arguments, error, text):
    model = build(gn)
    with pytest.raises(error, match=text):
        model.compile("sgd", **arguments)
    assert not model.compiled


def test_save_and_load_round_trip_a_compiled_multi_output_model_and_resume_exactly(tmp_path):
    x, y = {"a": XA, "b": XB}, {"cls": Y_CLS, "reg": Y_REG}
    args = dict(loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, loss_weights={"cls": 1.0, "reg": 0.3},
                metrics={"cls": ["accuracy"], "reg": ["mae"]})
    straight = build(gn, as_dict=True)
    first = build(gn, as_dict=True)
    first.set_weights(straight.get_weights())
    for model in (straight, first):
        model.compile(gn.optimizers.Adam(0.01), **args)
    full = straight.fit(x, y, epochs=3, batch_size=5, seed=4, verbose=0).history
    first.fit(x, y, epochs=1, batch_size=5, seed=4, verbose=0)
    first.save(tmp_path / "multi.npz")
    resumed = gn.load_model(tmp_path / "multi.npz")
    assert resumed.get_compile_config() == first.get_compile_config()
    assert resumed.get_compile_config()["loss_weights"] == {"cls": 1.0, "reg": 0.3}
    rest = resumed.fit(x, y, epochs=3, initial_epoch=1, batch_size=5, verbose=0).history
    for key in full:
        assert rest[key] == full[key][1:], key
    for old, new in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_compile_config_round_trips_for_one_and_several_outputs():
    single = gn.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    single.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    config = single.get_compile_config()
    assert config["metrics"] == ["accuracy"] and config["loss"]["class_name"] == "SparseCategoricalCrossentropy"
    twin = gn.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))]).compile_from_config(config)
    assert twin.get_compile_config() == config and twin.metrics_names == ["loss", "accuracy", "weighted_accuracy"]
    several = compiled_graph(loss_weights=[2.0, 1.0], metrics=[["accuracy"], ["mae"]])
    again = build(gn, as_dict=True).compile_from_config(several.get_compile_config())
    assert again.metrics_names == several.metrics_names == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"]
    assert again.get_compile_config() == several.get_compile_config()
    assert gn.Sequential([layers.Dense(2, input_shape=(3,))]).get_compile_config() is None


def test_fit_takes_a_generator_of_two_input_batches():
    model = compiled_graph(metrics={"cls": ["accuracy"], "reg": []})
    batches = [((XA[i:i + 4], XB[i:i + 4]), {"cls": Y_CLS[i:i + 4], "reg": Y_REG[i:i + 4]}) for i in range(0, N, 4)]
    reference = compiled_graph(metrics={"cls": ["accuracy"], "reg": []})
    reference.set_weights(model.get_weights())
    streamed = model.fit(iter(batches), steps_per_epoch=3, epochs=1, verbose=0).history
    arrays = reference.fit([XA, XB], [Y_CLS, Y_REG], batch_size=4, shuffle=False, epochs=1, verbose=0).history
    assert set(streamed) == {"loss", "cls_loss", "reg_loss", "cls_accuracy"}
    for key in streamed:
        assert streamed[key] == pytest.approx(arrays[key], rel=1e-6), key
    predicted = model.predict(iter([((XA[:6], XB[:6]),), ((XA[6:], XB[6:]),)]), steps=2)    # batches (x,)
    np.testing.assert_allclose(predicted["cls"], model.predict([XA, XB])["cls"], rtol=1e-6)


def test_one_sample_weight_array_weighs_every_output_and_none_leaves_one_unweighted_as_in_keras3():
    ours, theirs = pair()
    for model in (ours, theirs):
        model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"])
    for weights in (W_CLS, [None, W_CLS]):
        expected = theirs.evaluate([XA, XB], [Y_CLS, Y_REG], sample_weight=weights, batch_size=5, verbose=0,
                                   return_dict=True)
        got = ours.evaluate([XA, XB], [Y_CLS, Y_REG], sample_weight=weights, batch_size=5, return_dict=True)
        assert_same_logs(got, expected)


def test_an_output_whose_loss_does_not_fuse_with_its_activation_trains_as_keras3():
    keras = keras_oracle.load()

    def sigmoid_graph(lib):
        a, b = lib.Input((4,), name="a"), lib.Input((3,), name="b")
        merged = lib.layers.Concatenate(name="cat")([lib.layers.Dense(5, activation="relu", name="da")(a),
                                                     lib.layers.Dense(5, activation="tanh", name="db")(b)])
        return lib.Model([a, b], [lib.layers.Dense(3, activation="softmax", name="cls")(merged),
                                  lib.layers.Dense(2, activation="sigmoid", name="reg")(merged)])

    ours, theirs = sigmoid_graph(gn), sigmoid_graph(keras)
    for name in WEIGHTED:
        theirs.get_layer(name).set_weights(ours.get_layer(name).get_weights())
    y = [Y_CLS, (Y_REG > 0).astype("float32")]
    for model, lib in ((ours, gn), (theirs, keras)):
        model.compile(lib.optimizers.SGD(0.5), loss=["sparse_categorical_crossentropy", "mse"])
    from glassnet.trainers import trainer
    assert trainer.fusion(ours)[:2] == (False, [False, False])      # sigmoid + mse: both outputs run to probabilities
    ours.compile(gn.optimizers.SGD(0.5), loss=["sparse_categorical_crossentropy", "binary_crossentropy"])
    assert trainer.fusion(ours)[:2] == (True, [True, True])
    ours.compile(gn.optimizers.SGD(0.5), loss=["sparse_categorical_crossentropy", "mse"])
    got = ours.train_on_batch([XA, XB], y, return_dict=True)
    expected = theirs.train_on_batch([XA, XB], y, return_dict=True)
    assert_same_logs(got, {k: float(v) for k, v in expected.items()})
    assert_same_weights(ours, theirs)


def test_a_non_finite_value_in_one_branch_is_named_and_the_weights_are_kept():
    model = compiled_graph()
    kernel, bias = model.get_layer("da").get_weights()
    model.get_layer("da").set_weights([np.full_like(kernel, 1e30), bias])      # relu(1e30 * 1e10) overflows
    before = model.get_weights()
    with pytest.raises(RuntimeError, match="non-finite output .* layer 'da'"):
        model.train_on_batch({"a": np.abs(XA) * 1e10, "b": XB}, {"cls": Y_CLS, "reg": Y_REG})
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
