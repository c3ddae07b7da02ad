"""A catalogue of bad inputs over every public entry point (issue 8, section 1).

Each case calls one public entry with one distinct mistake and checks that glassnet raises its
*own* error:

- a ``ValueError`` / ``TypeError`` / ``RuntimeError`` (or the documented ``FileNotFoundError``
  for a missing file) of a builtin or glassnet class -- not ``zipfile.BadZipFile``,
  ``json.JSONDecodeError``, ``KeyError``, ``IndexError`` or a NumPy ``AxisError``;
- raised from glassnet's own code: the traceback's last frame is a file of the glassnet package
  (a NumPy broadcasting error raised inside NumPy fails this);
- with a message that says what was expected (``expect``...) and contains the case's
  ``expected`` and ``received`` fragments (the offending value, shape or name).

Run ``pytest tests/hardening/test_bad_inputs.py -s`` to print the count of cases per entry.
"""
import collections
import gzip
import os
import re
import traceback
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn
from glassnet import layers, validation

GLASSNET_DIR = str(Path(gn.__file__).resolve().parent)
VT = (ValueError, TypeError)
RT = (RuntimeError,)
EXPECTED_WORDING = re.compile(r"expect|must|starts with|needs|known|should|header says", re.IGNORECASE)


# -- fixtures built fresh for every case ---------------------------------------------------------
def model(compiled=False, loss="categorical_crossentropy"):
    """Conv(2) 3x3 -> MaxPool 2 -> Flatten -> Dense(3, softmax) on (8, 8, 1) images."""
    net = gn.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1), name="conv"),
                         layers.MaxPooling2D(2, name="pool"), layers.Flatten(name="flat"),
                         layers.Dense(3, activation="softmax", name="preds")], seed=0)
    if compiled:
        net.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return net


def gap_model():
    """Conv -> GlobalAveragePooling2D -> Dense: the architecture CAM needs."""
    return gn.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1), name="conv"),
                          layers.GlobalAveragePooling2D(name="gap"), layers.Dense(3, name="preds")], seed=0)


def compiled(loss="categorical_crossentropy"):
    return model(compiled=True, loss=loss)


X = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
Y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]            # one-hot, 3 classes
LABELS = np.array([0, 1, 2, 0])                          # sparse


def with_nan(array, value=np.nan):
    array = array.copy()
    array.flat[5] = value
    return array


def explain(name):
    import glassnet.explain as module  # the package loads lazily; a missing function fails its case only
    return getattr(module, name)


def layer_set_weights(weights):
    return model().get_layer("conv").set_weights(weights)


def unbuilt_set_weights():
    return layers.Dense(3).set_weights([np.zeros((4, 3)), np.zeros(3)])


# files (written under the case's tmp_path; ``fn`` receives it when it takes one argument)
def idx_file(tmp_path, data, name="bad.idx"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def saved_model(tmp_path):
    path = tmp_path / "model.npz"
    model().save(path)
    return path


def edited_model_file(tmp_path, edit):
    """A saved model whose JSON configuration ``edit(config)`` has altered."""
    import json
    with np.load(saved_model(tmp_path)) as archive:
        arrays = {key: archive[key] for key in archive.files}
    config = json.loads(arrays["config"].tobytes())
    edit(config)
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    return npz_file(tmp_path, **arrays)


def weights_file(tmp_path):
    path = tmp_path / "weights.npz"
    gn.saving.save_weights(model(), path)
    return path


def npz_file(tmp_path, **arrays):
    path = tmp_path / "forged.npz"
    np.savez(path, **arrays)
    return path


# -- the catalogue -------------------------------------------------------------------------------
def case(entry, name, fn, expected, received, errors=VT):
    """One bad input: ``fn()`` (or ``fn(tmp_path)``) must raise ``errors`` naming expected and received."""
    expected = (expected,) if isinstance(expected, str) else tuple(expected)
    received = (received,) if isinstance(received, str) else tuple(received)
    return pytest.param(fn, errors, expected, received, id=f"{entry}: {name}")


CASES = [
    # ---- Sequential.predict: the shape and content of x -----------------------------------
    case("predict", "one image without batch and channel axes", lambda: model().predict(X[0, ..., 0]),
         "(N, H, W, C)", "(8, 8)"),
    case("predict", "batch without channel axis", lambda: model().predict(X[..., 0]), "(N, H, W, C)", "(4, 8, 8)"),
    case("predict", "rank 5", lambda: model().predict(X[..., None]), "(8, 8, 1)", "(4, 8, 8, 1, 1)"),
    case("predict", "wrong spatial size", lambda: model().predict(np.zeros((2, 9, 9, 1))), "(8, 8, 1)",
         "(2, 9, 9, 1)"),
    case("predict", "wrong channel count", lambda: model().predict(np.zeros((2, 8, 8, 3))), "(8, 8, 1)",
         "(2, 8, 8, 3)"),
    case("predict", "channels-first data", lambda: model().predict(np.zeros((2, 1, 8, 8))), "(8, 8, 1)",
         ("(2, 1, 8, 8)", "channels-first")),
    case("predict", "NaN in x", lambda: model().predict(with_nan(X)), "finite", "NaN"),
    case("predict", "inf in x", lambda: model().predict(with_nan(X, np.inf)), "finite", "inf"),
    case("predict", "values overflowing float32", lambda: model().predict(np.full((2, 8, 8, 1), 1e300)),
         "float32", "1e+300"),
    case("predict", "string array", lambda: model().predict(np.full((2, 8, 8, 1), "a")), "numeric", "<U1"),
    case("predict", "object array", lambda: model().predict(np.array([X[0], None], dtype=object)), "numeric",
         "object"),
    case("predict", "ragged list", lambda: model().predict([X[0], X[0, :7]]), "numeric", "inhomogeneous"),
    case("predict", "None", lambda: model().predict(None), "numeric", "None"),
    case("predict", "complex array", lambda: model().predict(X.astype(complex)), "real", "complex"),
    case("predict", "empty batch", lambda: model().predict(np.zeros((0, 8, 8, 1))), "non-empty", "(0, 8, 8, 1)"),
    case("predict", "batch_size 0", lambda: model().predict(X, batch_size=0), "batch_size", "0"),
    case("predict", "batch_size -4", lambda: model().predict(X, batch_size=-4), "batch_size", "-4"),
    case("predict", "batch_size 2.5", lambda: model().predict(X, batch_size=2.5), "batch_size", "2.5"),

    # ---- compile -------------------------------------------------------------------------------
    case("compile", "unknown loss name", lambda: model().compile("sgd", loss="categorical_crossentropyy"),
         "categorical_crossentropy", "categorical_crossentropyy"),
    case("compile", "unknown optimizer name", lambda: model().compile("adamm", loss="mse"), "'adam'", "'adamm'"),
    case("compile", "unknown metric name", lambda: model().compile("sgd", loss="mse", metrics=["acuracy"]),
         "accuracy", "acuracy"),
    case("compile", "loss of the wrong type", lambda: model().compile("sgd", loss=3), "loss", "3"),
    case("compile", "optimizer of the wrong type", lambda: model().compile(optimizer=0.1, loss="mse"),
         "optimizer", "0.1"),

    # ---- Sequential.fit ------------------------------------------------------------------------
    case("fit", "fit before compile", lambda: model().fit(X, Y, epochs=1, verbose=0), "compile", "compile",
         errors=RT),
    case("fit", "x/y length mismatch", lambda: compiled().fit(X, Y[:3], epochs=1, verbose=0), "4",
         "(3, 3)"),
    case("fit", "label width wrong", lambda: compiled().fit(X, np.eye(4)[[0, 1, 2, 3]], epochs=1, verbose=0),
         "3", "4"),
    case("fit", "sparse labels out of range",
         lambda: compiled("sparse_categorical_crossentropy").fit(X, np.array([0, 1, 3, 0]), epochs=1, verbose=0),
         "[0, 2]", "3"),
    case("fit", "negative sparse label",
         lambda: compiled("sparse_categorical_crossentropy").fit(X, np.array([0, -1, 2, 0]), epochs=1, verbose=0),
         "[0, 2]", "-1"),
    case("fit", "fractional sparse labels",
         lambda: compiled("sparse_categorical_crossentropy").fit(X, np.array([0, 0.5, 2, 0]), epochs=1, verbose=0),
         "integer", "0.5"),
    case("fit", "class indices given to categorical loss", lambda: compiled().fit(X, LABELS, epochs=1, verbose=0),
         "one-hot", "(4,)"),
    case("fit", "NaN in y", lambda: compiled().fit(X, with_nan(Y), epochs=1, verbose=0), "finite", "NaN"),
    case("fit", "string labels", lambda: compiled().fit(X, np.array(["a", "b", "c", "a"]), epochs=1, verbose=0),
         "numeric", "<U1"),
    case("fit", "y missing", lambda: compiled().fit(X, None, epochs=1, verbose=0), "y", "None"),
    case("fit", "NaN in x", lambda: compiled().fit(with_nan(X), Y, epochs=1, verbose=0), "finite", "NaN"),
    case("fit", "wrong rank x", lambda: compiled().fit(X[..., 0], Y, epochs=1, verbose=0), "(N, H, W, C)",
         "(4, 8, 8)"),
    case("fit", "channels-first x", lambda: compiled().fit(X.transpose(0, 3, 1, 2), Y, epochs=1, verbose=0),
         "(8, 8, 1)", "(4, 1, 8, 8)"),
    case("fit", "empty x", lambda: compiled().fit(X[:0], Y[:0], epochs=1, verbose=0), "non-empty", "(0, 8, 8, 1)"),
    case("fit", "batch_size 0", lambda: compiled().fit(X, Y, batch_size=0, epochs=1, verbose=0), "batch_size", "0"),
    case("fit", "batch_size -1", lambda: compiled().fit(X, Y, batch_size=-1, epochs=1, verbose=0), "batch_size",
         "-1"),
    case("fit", "epochs -1", lambda: compiled().fit(X, Y, epochs=-1, verbose=0), "epochs", "-1"),
    case("fit", "epochs 2.5", lambda: compiled().fit(X, Y, epochs=2.5, verbose=0), "epochs", "2.5"),
    case("fit", "validation_split 1.0", lambda: compiled().fit(X, Y, epochs=1, validation_split=1.0, verbose=0),
         "validation_split", "1.0"),
    case("fit", "validation_split -0.2", lambda: compiled().fit(X, Y, epochs=1, validation_split=-0.2, verbose=0),
         "validation_split", "-0.2"),
    case("fit", "validation_split 'all'", lambda: compiled().fit(X, Y, epochs=1, validation_split="all", verbose=0),
         "validation_split", "all"),
    case("fit", "validation_data not a pair", lambda: compiled().fit(X, Y, epochs=1, validation_data=X, verbose=0),
         "validation_data", "(4, 8, 8, 1)"),
    case("fit", "validation_data wrong shape",
         lambda: compiled().fit(X, Y, epochs=1, validation_data=(X[..., 0], Y), verbose=0), "(8, 8, 1)", "(4, 8, 8)"),

    # ---- Sequential.evaluate and train_on_batch ------------------------------------------------
    case("evaluate", "evaluate before compile", lambda: model().evaluate(X, Y, verbose=0), "compile", "compile",
         errors=RT),
    case("evaluate", "x/y length mismatch", lambda: compiled().evaluate(X, Y[:2], verbose=0), "4",
         "(2, 3)"),
    case("evaluate", "labels out of range",
         lambda: compiled("sparse_categorical_crossentropy").evaluate(X, np.array([0, 1, 5, 0]), verbose=0),
         "[0, 2]", "5"),
    case("evaluate", "wrong channel count", lambda: compiled().evaluate(np.zeros((4, 8, 8, 2)), Y, verbose=0),
         "(8, 8, 1)", "(4, 8, 8, 2)"),
    case("evaluate", "batch_size 0", lambda: compiled().evaluate(X, Y, batch_size=0, verbose=0), "batch_size", "0"),
    case("train_on_batch", "before compile", lambda: model().train_on_batch(X, Y), "compile", "compile", errors=RT),
    case("train_on_batch", "x/y length mismatch", lambda: compiled().train_on_batch(X, Y[:1]), "4",
         "(1, 3)"),
    case("train_on_batch", "inf in x", lambda: compiled().train_on_batch(with_nan(X, -np.inf), Y), "finite", "inf"),
    case("train_on_batch", "wrong spatial size", lambda: compiled().train_on_batch(np.zeros((4, 7, 7, 1)), Y),
         "(8, 8, 1)", "(4, 7, 7, 1)"),
    case("train_on_batch", "label width wrong", lambda: compiled().train_on_batch(X, np.eye(2)[[0, 1, 0, 1]]),
         "3", "2"),

    # ---- layer constructors and building -------------------------------------------------------
    case("Conv2D", "filters 0", lambda: layers.Conv2D(0, 3), "filters", "0"),
    case("Conv2D", "filters -3", lambda: layers.Conv2D(-3, 3), "filters", "-3"),
    case("Conv2D", "filters 2.5", lambda: layers.Conv2D(2.5, 3), "filters", "2.5"),
    case("Conv2D", "kernel_size 0", lambda: layers.Conv2D(4, 0), "kernel_size", "0"),
    case("Conv2D", "kernel_size of three entries", lambda: layers.Conv2D(4, (3, 3, 3)), "kernel_size", "(3, 3, 3)"),
    case("Conv2D", "strides 0", lambda: layers.Conv2D(4, 3, strides=0), "strides", "0"),
    case("Conv2D", "strides -1", lambda: layers.Conv2D(4, 3, strides=(1, -1)), "strides", "-1"),
    case("Conv2D", "padding 'full'", lambda: layers.Conv2D(4, 3, padding="full"), "'same'", "'full'"),
    case("Conv2D", "padding -1", lambda: layers.Conv2D(4, 3, padding=-1), "non-negative", "-1"),
    case("Conv2D", "unknown activation", lambda: layers.Conv2D(4, 3, activation="sigmoidd"), "sigmoid",
         "sigmoidd"),
    case("Conv2D", "kernel larger than the input",
         lambda: gn.Sequential([layers.Conv2D(2, 9, input_shape=(8, 8, 1))]), "(9, 9)", "8x8"),
    case("Conv2D", "kernel larger than the input after pooling",
         lambda: gn.Sequential([layers.MaxPooling2D(4, input_shape=(8, 8, 1)), layers.Conv2D(2, 3)]),
         "(3, 3)", "2x2"),
    case("Conv2D", "kernel larger than the padded input",
         lambda: gn.Sequential([layers.Conv2D(2, 7, padding=1, input_shape=(4, 4, 1))]), "(7, 7)", "6x6"),
    case("Conv2D", "image given to a Dense-only model",
         lambda: gn.Sequential([layers.Dense(3, input_shape=(8,))]).predict(X), "(N, 8)", "(4, 8, 8, 1)"),
    case("Dense", "units 0", lambda: layers.Dense(0), "units", "0"),
    case("Dense", "unknown activation", lambda: layers.Dense(3, activation="swish"), "relu", "swish"),
    case("Dense", "on feature maps without Flatten",
         lambda: gn.Sequential([layers.Conv2D(2, 3, input_shape=(8, 8, 1)), layers.Dense(3)]), "(N, features)",
         "(None, 6, 6, 2)"),
    case("MaxPooling2D", "pool_size 0", lambda: layers.MaxPooling2D(0), "pool_size", "0"),
    case("MaxPooling2D", "strides -2", lambda: layers.MaxPooling2D(2, strides=-2), "strides", "-2"),
    case("MaxPooling2D", "padding 'causal'", lambda: layers.MaxPooling2D(2, padding="causal"), "'valid'",
         "'causal'"),
    case("MaxPooling2D", "pool larger than the input",
         lambda: gn.Sequential([layers.MaxPooling2D(9, input_shape=(8, 8, 1))]), "(9, 9)", "(8, 8, 1)"),
    case("AveragePooling2D", "pool_size -1", lambda: layers.AveragePooling2D(-1), "pool_size", "-1"),
    case("Dropout", "rate 1.0", lambda: layers.Dropout(1.0), "[0, 1)", "1.0"),
    case("Dropout", "rate -0.1", lambda: layers.Dropout(-0.1), "[0, 1)", "-0.1"),
    case("Dropout", "rate NaN", lambda: layers.Dropout(float("nan")), "[0, 1)", "nan"),
    case("Dropout", "rate 'half'", lambda: layers.Dropout("half"), "[0, 1)", "half"),
    case("Activation", "unknown name", lambda: layers.Activation("gelu"), "relu", "gelu"),
    case("LeakyReLU", "alpha a string", lambda: layers.LeakyReLU(alpha="x"), "alpha", "'x'"),
    case("BatchNormalization", "momentum 1.5", lambda: layers.BatchNormalization(momentum=1.5), "[0, 1)", "1.5"),
    case("Reshape", "target_shape a string", lambda: layers.Reshape("abc"), "target_shape", "abc"),
    case("Layer", "input_shape with a zero", lambda: layers.Conv2D(2, 3, input_shape=(0, 8, 1)), "positive",
         "(0, 8, 1)"),
    case("Layer", "dtype int8", lambda: layers.Dense(3, dtype="int8"), "float32", "int8"),
    case("Layer", "dtype unknown", lambda: layers.Dense(3, dtype="bogus"), "float32", "bogus"),
    case("Layer", "name not a string", lambda: layers.Dense(3, name=5), "str", "5"),
    case("Sequential", "add a non-layer", lambda: gn.Sequential().add("dense"), "Layer", "'dense'"),
    case("Sequential", "two layers with one name",
         lambda: gn.Sequential([layers.Dense(2, name="d", input_shape=(3,)), layers.Dense(2, name="d")]),
         "unique", "'d'"),
    case("Sequential", "get_layer unknown name", lambda: model().get_layer("nope"), "conv", "'nope'"),
    case("Sequential", "get_layer index out of range", lambda: model().get_layer(index=9), "[-4, 3]", "9"),

    # ---- set_weights ---------------------------------------------------------------------------
    case("set_weights", "layer: one array short", lambda: layer_set_weights([np.zeros((3, 3, 1, 2))]), "2 arrays",
         "1 array"),
    case("set_weights", "layer: kernel transposed",
         lambda: layer_set_weights([np.zeros((2, 1, 3, 3)), np.zeros(2)]), "(3, 3, 1, 2)", "(2, 1, 3, 3)"),
    case("set_weights", "layer: object array",
         lambda: layer_set_weights([np.zeros((3, 3, 1, 2)), np.array([None, None])]), "finite", "object"),
    case("set_weights", "layer: NaN weights",
         lambda: layer_set_weights([with_nan(np.zeros((3, 3, 1, 2))), np.zeros(2)]), "finite",
         "'kernel'"),
    case("set_weights", "layer: not a list", lambda: layer_set_weights(5), "list", "5"),
    case("set_weights", "layer: unbuilt", unbuilt_set_weights, "built", "unbuilt", errors=RT),
    case("set_weights", "model: wrong count", lambda: model().set_weights([np.zeros(2)]), "4 arrays", "1 array"),
    case("set_weights", "model: wrong shape",
         lambda: model().set_weights([np.zeros((3, 3, 1, 2)), np.zeros(2), np.zeros((3, 18)), np.zeros(3)]),
         "(18, 3)", "(3, 18)"),

    # ---- explanations --------------------------------------------------------------------------
    case("explain", "input_gradients target out of range",
         lambda: explain("input_gradients")(model(), X, target=10), "[0, 2]", "10"),
    case("explain", "input_gradients negative target",
         lambda: explain("input_gradients")(model(), X, target=-1), "[0, 2]", "-1"),
    case("explain", "input_gradients one target too few",
         lambda: explain("input_gradients")(model(), X, target=[0, 1, 2]), "(4,)", "(3,)"),
    case("explain", "saliency fractional target", lambda: explain("saliency")(model(), X, target=1.5), "int",
         "1.5"),
    case("explain", "saliency unknown modifier", lambda: explain("saliency")(model(), X, modifier="guidedd"),
         "guided", "guidedd"),
    case("explain", "saliency wrong image shape", lambda: explain("saliency")(model(), X[..., 0]), "(8, 8, 1)",
         "(4, 8, 8)"),
    case("explain", "saliency NaN image", lambda: explain("saliency")(model(), with_nan(X)), "finite", "NaN"),
    case("explain", "saliency with a string for a model", lambda: explain("saliency")("model.npz", X), "Sequential",
         "model.npz"),
    case("explain", "grad_cam unknown layer name", lambda: explain("grad_cam")(model(), X, layer="nope"), "layer",
         "nope"),
    case("explain", "grad_cam layer index out of range", lambda: explain("grad_cam")(model(), X, layer=17),
         "layer", "17"),
    case("explain", "grad_cam on a Dense layer", lambda: explain("grad_cam")(model(), X, layer="preds"),
         "(N, H, W, C)", "preds"),
    case("explain", "cam without global average pooling", lambda: explain("cam")(model(), X), "GlobalAveragePooling2D",
         "Flatten"),
    case("explain", "cam target out of range", lambda: explain("cam")(gap_model(), X, target=3), "[0, 2]", "3"),
    case("explain", "occlusion window 0", lambda: explain("occlusion")(model(), X, window=0), "window", "0"),
    case("explain", "occlusion window larger than the image", lambda: explain("occlusion")(model(), X, window=9),
         "(8, 8)", "(9, 9)"),
    case("explain", "integrated_gradients steps 0",
         lambda: explain("integrated_gradients")(model(), X, steps=0), "steps", "0"),
    case("explain", "integrated_gradients baseline of the wrong shape",
         lambda: explain("integrated_gradients")(model(), X, baseline=np.zeros((5, 5))), "(8, 8, 1)", "(5, 5)"),
    case("explain", "smooth_grad samples -1", lambda: explain("smooth_grad")(model(), X, samples=-1), "samples",
         "-1"),
    case("explain", "feature_maps unknown layer", lambda: explain("feature_maps")(model(), X, "nope"), "layer",
         "nope"),
    case("explain", "filters of a layer without a kernel", lambda: explain("filters")(model(), "pool"), "Conv2D",
         "pool"),
    case("explain", "activation_maximization index out of range",
         lambda: explain("activation_maximization")(model(), "preds", 7, steps=1), "[0, 2]", "7"),
    case("explain", "activation_maximization unknown layer",
         lambda: explain("activation_maximization")(model(), "nope", 0, steps=1), "layer", "nope"),

    # ---- datasets ------------------------------------------------------------------------------
    case("load_idx", "missing file", lambda tmp: gn.datasets.load_idx(tmp / "absent.idx"), "absent.idx",
         "No such file", errors=(FileNotFoundError,)),
    case("load_idx", "empty file", lambda tmp: gn.datasets.load_idx(idx_file(tmp, b"")), "magic number", "empty"),
    case("load_idx", "a text file", lambda tmp: gn.datasets.load_idx(idx_file(tmp, b"hello, world\n")),
         "two zero bytes", "0x68656c6c"),
    case("load_idx", "unknown type code",
         lambda tmp: gn.datasets.load_idx(idx_file(tmp, bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 9]))), "known codes",
         "0x07"),
    case("load_idx", "body shorter than the header claims",
         lambda tmp: gn.datasets.load_idx(idx_file(tmp, bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(3))), "10 bytes",
         "only 3"),
    case("load_idx", ".gz name on a raw file",
         lambda tmp: gn.datasets.load_idx(idx_file(tmp, bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]), "raw.idx.gz")),
         "1f8b", "0x0000"),
    case("load_idx", "truncated gzip",
         lambda tmp: gn.datasets.load_idx(idx_file(tmp, gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 50]) + bytes(50))[:20],
                                                   "cut.gz")), "gzip", "truncated"),
    case("mnist.load_data", "folder with a corrupt file", lambda tmp: load_data_from_corrupt_folder(tmp),
         "magic number", "0x"),
    case("mnist.load_data", "npz without the Keras keys",
         lambda tmp: gn.datasets.mnist.load_data(path=npz_file(tmp, images=np.zeros(3))), "x_train", "missing"),
    case("to_categorical", "label beyond num_classes", lambda: gn.utils.to_categorical([0, 3], 3), "3", "3"),
    case("to_categorical", "negative label", lambda: gn.utils.to_categorical([0, -1], 3), ">= 0", "-1"),

    # ---- load_model ----------------------------------------------------------------------------
    case("load_model", "missing file", lambda tmp: gn.load_model(tmp / "absent.npz"), "absent.npz", "not exist",
         errors=(FileNotFoundError,)),
    case("load_model", "a text file", lambda tmp: gn.load_model(idx_file(tmp, b"not a model\n", "m.npz")), "npz",
         "m.npz"),
    case("load_model", "an IDX file", lambda tmp: gn.load_model(idx_file(tmp, bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]),
                                                                          "m.npz")), "npz", "m.npz"),
    case("load_model", "truncated file",
         lambda tmp: gn.load_model(idx_file(tmp, saved_model(tmp).read_bytes()[:300], "cut.npz")), "npz", "cut.npz"),
    case("load_model", "npz of plain arrays, no model config",
         lambda tmp: gn.load_model(npz_file(tmp, kernel=np.zeros(3))), "model file", "configuration"),
    case("load_model", "object array (pickle) inside",
         lambda tmp: gn.load_model(npz_file(tmp, config=np.array([{"a": 1}], dtype=object))), "pickle", "object"),

    # ---- more of fit, compile, build ----------------------------------------------------------
    case("fit", "validation_split leaving no training data",
         lambda: compiled().fit(X[:2], Y[:2], epochs=1, validation_split=0.9, verbose=0), "both sides", "0 for training"),
    case("fit", "callbacks a string", lambda: compiled().fit(X, Y, epochs=1, callbacks="x", verbose=0), "Callback",
         "'x'"),
    case("fit", "verbose 5", lambda: compiled().fit(X, Y, epochs=1, verbose=5), "verbose", "5"),
    case("fit", "batch_size True", lambda: compiled().fit(X, Y, batch_size=True, epochs=1, verbose=0), "batch_size",
         "True"),
    case("fit", "initial_epoch -1", lambda: compiled().fit(X, Y, epochs=1, initial_epoch=-1, verbose=0),
         "initial_epoch", "-1"),
    case("fit", "shuffle 'yes'", lambda: compiled().fit(X, Y, epochs=1, shuffle="yes", verbose=0), "shuffle", "'yes'"),
    case("Sequential", "seed a string", lambda: gn.Sequential([layers.Dense(3, input_shape=(4,))], seed="abc"),
         "seed as an int >= 0", "'abc'"),
    case("Sequential", "seed -1", lambda: gn.Sequential(seed=-1), "seed as an int >= 0", "-1"),
    case("Dropout", "seed a string", lambda: layers.Dropout(0.5, seed="abc"), "seed as an int >= 0", "'abc'"),
    case("Dense", "seed -1", lambda: layers.Dense(3, seed=-1), "seed as an int >= 0", "-1"),
    case("fit", "seed a string", lambda: compiled().fit(X, Y, epochs=1, seed="abc", verbose=0), "seed", "'abc'"),
    case("fit", "x None", lambda: compiled().fit(None, Y, epochs=1, verbose=0), "inputs x", "None"),
    case("fit", "one-hot labels given to a sparse loss",
         lambda: compiled("sparse_categorical_crossentropy").fit(X, Y, epochs=1, verbose=0), "integer class labels",
         "(4, 3)"),
    case("train_on_batch", "y None", lambda: compiled().train_on_batch(X, None), "targets y", "None"),
    case("Sequential", "build with a string", lambda: gn.Sequential([layers.Dense(3)]).build("abc"), "input_shape",
         "'abc'"),
    case("Sequential", "predict with no layers", lambda: gn.Sequential().predict(X), "with layers", "empty",
         errors=RT),
    case("Sequential", "summary of an unbuilt model", lambda: gn.Sequential([layers.Dense(3)]).summary(), "built",
         "unbuilt", errors=RT),
    case("optimizers", "SGD learning_rate -1", lambda: gn.optimizers.SGD(learning_rate=-1), ">= 0", "-1"),
    case("optimizers", "SGD momentum 1.5", lambda: gn.optimizers.SGD(momentum=1.5), "[0.0, 1.0)", "1.5"),

    # ---- more layers ----------------------------------------------------------------------------
    case("Conv2D", "unknown kernel_initializer", lambda: layers.Conv2D(2, 3, kernel_initializer="glorot_unifrom"),
         "initializer", "glorot_unifrom"),
    case("Conv2D", "on 1-D inputs", lambda: gn.Sequential([layers.Conv2D(2, 3, input_shape=(8,))]), "(N, H, W, C)",
         "(None, 8)"),
    case("BatchNormalization", "epsilon 0", lambda: layers.BatchNormalization(epsilon=0), "epsilon > 0", "0"),
    case("ZeroPadding2D", "padding -1", lambda: layers.ZeroPadding2D(-1), "non-negative", "-1"),
    case("GlobalAveragePooling2D", "after a Dense layer",
         lambda: gn.Sequential([layers.Dense(3, input_shape=(4,)), layers.GlobalAveragePooling2D()]), "(N, H, W, C)",
         "(None, 3)"),

    # ---- ImageDataGenerator -----------------------------------------------------------------------
    case("ImageDataGenerator", "unknown fill_mode", lambda: gn.preprocessing.ImageDataGenerator(fill_mode="wrap2"),
         "nearest", "'wrap2'"),
    case("ImageDataGenerator", "negative rotation_range",
         lambda: gn.preprocessing.ImageDataGenerator(rotation_range=-5), ">= 0", "-5"),
    case("ImageDataGenerator", "flow x/y length mismatch",
         lambda: gn.preprocessing.ImageDataGenerator().flow(X, Y[:3]), "(4)", "3"),
    case("ImageDataGenerator", "flow on images without channels",
         lambda: gn.preprocessing.ImageDataGenerator().flow(X[..., 0], Y), "(N, H, W, C)", "(4, 8, 8)"),
    case("ImageDataGenerator", "flow batch_size 0",
         lambda: gn.preprocessing.ImageDataGenerator().flow(X, Y, batch_size=0), "batch_size", "0"),

    # ---- more explanations ------------------------------------------------------------------------
    case("explain", "grad_cam_plus_plus target out of range",
         lambda: explain("grad_cam_plus_plus")(model(), X, target=5), "[0, 2]", "5"),
    case("explain", "guided_grad_cam unknown layer", lambda: explain("guided_grad_cam")(model(), X, layer="nope"),
         "layer", "'nope'"),
    case("explain", "sanity_check unknown method", lambda: explain("sanity_check")(model(), X, method="nope"),
         "grad_cam", "nope"),
    case("explain", "deletion_insertion maps of the wrong size",
         lambda: explain("deletion_insertion")(model(), X, np.zeros((4, 5, 5))), "(4, 8, 8)", "(4, 5, 5)"),
    case("explain", "occlusion baseline of the wrong shape",
         lambda: explain("occlusion")(model(), X, baseline=np.zeros((3, 3))), "(8, 8, 1)", "(3, 3)"),
    case("explain", "smooth_grad negative noise", lambda: explain("smooth_grad")(model(), X, noise=-1), ">= 0", "-1"),
    case("explain", "feature_maps images without channels",
         lambda: explain("feature_maps")(model(), X[..., 0], "conv"), "(8, 8, 1)", "(4, 8, 8)"),
    case("explain", "sanity_check threshold a string", lambda: explain("sanity_check")(model(), X, threshold="x"),
         "[-1, 1]", "'x'"),
    case("explain", "sanity_check threshold 2", lambda: explain("sanity_check")(model(), X, threshold=2),
         "[-1, 1]", "2"),
    case("predict", "a dict instead of an array", lambda: model().predict({"x": X}), "numeric", "dict"),
    case("predict", "a generator of non-batches", lambda: model().predict(iter([1, 2]), steps=2), "numeric", "int"),
    case("predict", "a generator without len() or steps", lambda: model().predict(iter([X])), "steps", "None"),
    case("explain", "filters of a model without Conv2D",
         lambda: explain("filters")(gn.Sequential([layers.Dense(3, input_shape=(4,))])), "Conv2D", "none"),

    # ---- more datasets and files -------------------------------------------------------------------
    case("load_idx", "path None", lambda: gn.datasets.load_idx(None), "file path", "None"),
    case("save_idx", "int64 array", lambda tmp: gn.datasets.save_idx(tmp / "x.idx", np.zeros(3, dtype=np.int64)),
         "uint8", "int64"),
    case("shapes.load_data", "n_train -1", lambda: gn.datasets.shapes.load_data(n_train=-1), "non-negative int", "-1"),
    case("mnist.load_data", "folder that does not exist",
         lambda tmp: gn.datasets.mnist.load_data(path=tmp / "nowhere", download=False), "four IDX files", "nowhere",
         errors=(FileNotFoundError,)),
    case("to_categorical", "num_classes 0", lambda: gn.utils.to_categorical([0], 0), ">= 1", "0"),
    case("load_model", "path an int", lambda: gn.load_model(123), "file path", "123"),
    case("load_model", "a folder", lambda tmp: gn.load_model(tmp), "file", "not a file", errors=(FileNotFoundError,)),
    case("load_model", "a weights-only file", lambda tmp: gn.load_model(weights_file(tmp)), "glassnet.model",
         "glassnet.weights"),
    case("load_model", "newer format_version",
         lambda tmp: gn.load_model(edited_model_file(tmp, lambda c: c.update(format_version=99))), "<= 1", "99"),
    case("load_model", "unknown layer class",
         lambda tmp: gn.load_model(edited_model_file(tmp, lambda c: c["model"]["layers"][0].update(
             class_name="Lambda"))), "layer class", "'Lambda'"),
    case("load_model", "layer renamed",
         lambda tmp: gn.load_model(edited_model_file(tmp, lambda c: c["model"]["layers"][0]["config"].update(
             name="renamed"))), "conv", "renamed"),
    case("load_model", "units tampered",
         lambda tmp: gn.load_model(edited_model_file(tmp, lambda c: c["model"]["layers"][3]["config"].update(
             units=10 ** 9))), "1000000000", "(18, 3)"),
    case("save", "to a folder", lambda tmp: model().save(tmp), "file", "folder"),
    case("load_weights", "weights of another architecture",
         lambda tmp: gn.Sequential([layers.Dense(3, input_shape=(5,))]).load_weights(weights_file(tmp)),
         ("this one's layers", "gn.load_model(path)"), "4 weights"),
    case("load_weights", "weights of another shape",
         lambda tmp: gn.Sequential([layers.Conv2D(4, 3, input_shape=(8, 8, 1), name="conv"), layers.MaxPooling2D(2),
                                    layers.Flatten(), layers.Dense(3, name="preds")]).load_weights(saved_model(tmp)),
         ("this one's layers", "another architecture"), "(3, 3, 1, 2)"),
]


def load_data_from_corrupt_folder(tmp_path):
    from glassnet.data.mnist import FILENAMES
    for name in FILENAMES:
        (tmp_path / name).write_bytes(gzip.compress(b"<html>404 Not Found</html>", mtime=0))
    return gn.datasets.mnist.load_data(path=tmp_path, download=False)


# -- the check -----------------------------------------------------------------------------------
def raise_from(fn, tmp_path):
    """Run the case; return (exception, traceback) or fail when nothing is raised."""
    try:
        fn(tmp_path) if fn.__code__.co_argcount == 1 else fn()
    except BaseException as error:  # noqa: BLE001 -- we classify whatever comes out
        return error, error.__traceback__
    pytest.fail("no error raised: the bad input was accepted")


def describe_failure(error, tb):
    frames = traceback.extract_tb(tb)
    return f"{type(error).__module__}.{type(error).__name__} at {frames[-1].filename}:{frames[-1].lineno}: {error}"


def problems(error, tb, errors, expected, received):
    """Why ``error`` is not glassnet's own clear error (an empty list when it is)."""
    where = describe_failure(error, tb)
    found = []
    if not isinstance(error, errors):
        found.append(f"wrong error type: {where}")
    module = type(error).__module__
    if not (module == "builtins" or module.startswith("glassnet")):
        found.append(f"a foreign error class: {where}")
    last = traceback.extract_tb(tb)[-1]
    if not str(Path(last.filename).resolve()).startswith(GLASSNET_DIR):
        found.append(f"raised outside glassnet: {where}")
    text = str(error)
    # a missing file keeps the OS's own "[Errno 2] No such file or directory: <path>"
    if not isinstance(error, FileNotFoundError) and not EXPECTED_WORDING.search(text):
        found.append(f"the message does not say what was expected: {text}")
    found += [f"expected-part {part!r} missing from: {text}" for part in expected if part not in text]
    found += [f"received-part {part!r} missing from: {text}" for part in received if part not in text]
    if "Traceback" in text or len(text) > 2000:
        found.append("the message is a dump, not a sentence")
    return found


@pytest.mark.parametrize("fn, errors, expected, received", CASES)
def test_bad_input_gives_glassnets_own_clear_error(fn, errors, expected, received, tmp_path):
    error, tb = raise_from(fn, tmp_path)
    assert not problems(error, tb, errors, expected, received), problems(error, tb, errors, expected, received)


def _numpy_error():
    np.zeros(3).reshape(2)


def _key_error():
    return {}["config"]


def _vague_error():
    # raised from glassnet's own code path (a validation helper) but with a bare NumPy-style message
    return validation.check_input_shape(np.zeros((2, 3)), (3, 3), "x")


@pytest.mark.parametrize("fn, errors, expected, received, reason", [
    (_numpy_error, VT, ("2",), ("3",), "raised outside glassnet"),
    (_key_error, VT, ("config",), ("config",), "wrong error type"),
    (lambda: gn.Sequential().get_layer("x"), VT, ("x",), ("nonexistent-fragment",), "received-part"),
    (_vague_error, RT, ("(3, 3)",), ("(2, 3)",), "wrong error type"),
])
def test_the_check_rejects_foreign_or_vague_errors(fn, errors, expected, received, reason, tmp_path):
    """The classifier itself can fail: NumPy's and KeyError's crashes, a message missing the received value."""
    error, tb = raise_from(fn, tmp_path)
    assert any(reason in problem for problem in problems(error, tb, errors, expected, received))


def test_catalogue_size():
    """Every case is distinct, and every public entry family is covered."""
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids))
    entries = collections.Counter(i.split(":")[0] for i in ids)
    print(f"\nbad-input catalogue: {len(ids)} distinct cases over {len(entries)} entries: {dict(entries)}")
    for entry in ("predict", "fit", "evaluate", "train_on_batch", "compile", "set_weights", "explain",
                  "load_idx", "mnist.load_data", "load_model", "Conv2D", "Dense", "Dropout", "MaxPooling2D"):
        assert entries[entry] > 0, entry


@pytest.mark.parametrize("shape, expected, fix", [
    ((28, 28), (28, 28, 1), "x[None, ..., None]"),
    ((5, 28, 28), (28, 28, 1), "x[..., None]"),
    ((28, 28, 1), (28, 28, 1), "x[None]"),
    ((5, 1, 28, 28), (28, 28, 1), "transpose(0, 2, 3, 1)"),
    ((5, 28, 28, 1, 1), (28, 28, 1), "np.squeeze(x, axis=3)"),
    ((5, 1, 28, 28, 1), (28, 28, 1), "np.squeeze(x, axis=1)"),
    ((5, 32, 32, 1), (28, 28, 1), "Resize or crop the images to 28x28, or build a model with input_shape=(32, 32, 1)"),
    ((5, 28, 28, 3), (28, 28, 1), "Convert RGB to grayscale"),
    ((5, 28, 28, 2), (28, 28, 1), "input_shape=(28, 28, 2)"),
    ((5, 28, 28, 1), (784,), "Reshape each example to (784,)"),
    ((5, 10), (784,), "input_shape=(10,)"),
])
def test_every_input_shape_mismatch_says_how_to_fix_it(shape, expected, fix):
    with pytest.raises(ValueError) as error:
        validation.check_input_shape(np.zeros(shape, dtype=np.float32), expected, "Sequential.predict")
    text = str(error.value)
    assert f"got shape {shape}" in text and str(expected) in text and fix in text, text
    if "np.squeeze" in fix:                                   # the named axis really is the one to drop
        axis = int(re.search(r"axis=(\d+)", text).group(1))
        assert np.squeeze(np.zeros(shape), axis=axis).shape[1:] == expected
