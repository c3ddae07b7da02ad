"""Fuzzing ``gn.load_model`` with damaged Keras (.keras, .h5) and ONNX files (issue 22, bad input).

Starting from small files written by Keras 3 and torch.onnx.export (tests/interop/fixtures), every
mutation -- truncation, flipped bytes, edits of the Keras JSON configuration anywhere in its tree,
absurd tensor dimensions in the ONNX protobuf, a file of one format under another's extension --
must load a model or raise one ``ValueError`` starting "load_model expects" (never a zipfile /
h5py / protobuf / NumPy / KeyError crash), and must not allocate far more than the file holds.
"""
import copy
import io
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glassnet as gn
import guarded_loading

pytest.importorskip("h5py", reason="h5py (glassnet[interop]) is not installed")
onnx = pytest.importorskip("onnx", reason="onnx (glassnet[interop]) is not installed")

FUZZ = settings(max_examples=int(os.environ.get("GLASSNET_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "interop" / "fixtures"
MiB = 1 << 20
NAMES = ("keras_cnn.keras", "keras_cnn.h5", "torch_cnn.onnx", "keras_resnet.keras", "keras_resnet.h5",
         "torch_resnet.onnx")
KERAS_ZIPS = ("keras_cnn.keras", "keras_resnet.keras")


@pytest.fixture(scope="module")
def originals():
    return {name: (FIXTURES / name).read_bytes() for name in NAMES}


def load_guarded(path):
    """A Keras or ONNX file's load_model outcome (see guarded_loading.load_guarded; fixtures of 10-100 KB)."""
    return guarded_loading.load_guarded(path, slack=8 * MiB, longest_message=6000)


@FUZZ
@given(name=st.sampled_from(NAMES), cut=st.floats(0, 1, exclude_max=True))
def test_truncated(tmp_path, originals, name, cut):
    data = originals[name]
    path = tmp_path / name
    path.write_bytes(data[:int(cut * len(data))])
    result = load_guarded(path)
    if not isinstance(result, ValueError):
        # a protobuf has no end marker: a cut inside its last fields (the opset list) may still be a
        # model, which must then be the intact one
        assert name.endswith(".onnx") and cut > 0.99
        x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
        np.testing.assert_array_equal(result.predict(x), gn.load_model(FIXTURES / name).predict(x))


@FUZZ
@given(name=st.sampled_from(NAMES),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=6))
def test_flipped_bytes(tmp_path, originals, name, flips):
    data = bytearray(originals[name])
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    path = tmp_path / name
    path.write_bytes(bytes(data))
    load_guarded(path)


def _keras_parts(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_keras(path, parts, config):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else content)
    return path


def _paths(tree, prefix=()):
    """Every path to a value in a JSON tree."""
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, prefix + (i,))


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 10 ** 12), st.floats(allow_nan=True),
                        st.text(max_size=12), st.sampled_from(["Lambda", "same", "channels_first", "relu", "elu"]),
                        st.lists(st.integers(-1, 10 ** 9), max_size=5), st.dictionaries(st.text(max_size=5),
                                                                                         st.integers(), max_size=2))


def _edited(config, choice, value):
    """A copy of a JSON tree with the value at one of its paths (picked by ``choice``) replaced by ``value``."""
    paths = [p for p in _paths(config) if p]
    target = paths[choice % len(paths)]
    edited = copy.deepcopy(config)
    node = edited
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = value
    return edited


@FUZZ
@given(name=st.sampled_from(KERAS_ZIPS), choice=st.integers(0, 10 ** 6), value=JSON_VALUES)
def test_keras_config_edits(tmp_path, originals, name, choice, value):
    parts = _keras_parts(originals[name])
    edited = _edited(json.loads(parts["config.json"]), choice, value)
    load_guarded(_write_keras(tmp_path / "edited.keras", parts, edited))


@FUZZ
@given(choice=st.integers(0, 10 ** 6), value=JSON_VALUES)
def test_tf_keras_channels_first_graph_config_edits(tmp_path, choice, value):
    """The channels_first graph tf.keras wrote (Keras 2's list-style calls, no shapes in them): its
    conversion to channels-last meets edited configurations, and loads a model or raises one error."""
    import h5py
    path = tmp_path / "edited.h5"
    path.write_bytes((FIXTURES / "tf_keras" / "channels_first.h5").read_bytes())
    with h5py.File(path, "r+") as handle:
        handle.attrs["model_config"] = json.dumps(_edited(json.loads(handle.attrs["model_config"]), choice, value))
    load_guarded(path)


def _histories(config):
    """Every keras_history list (a call's input: [layer, node, tensor]) in a Functional configuration."""
    found = []
    for path in _paths(config):
        node = config
        for key in path:
            node = node[key]
        if path and path[-1] == "keras_history":
            found.append(node)
    return found


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 2),
                                st.one_of(st.integers(-2, 6), st.sampled_from(["ghost", "stem", "residual", "preds",
                                                                                "image", "branches", ""]))),
                      min_size=1, max_size=4))
def test_graph_wiring_edits(tmp_path, originals, edits):
    """Rewired calls (a missing layer or call, a cycle, a wrong tensor index, a shape mismatch) in a
    Keras graph: a model or one glassnet error, never a crash or a hang."""
    parts = _keras_parts(originals["keras_resnet.keras"])
    config = json.loads(parts["config.json"])
    ends = [config["config"][key] for key in ("input_layers", "output_layers")]
    histories = _histories(config) + [end for value in ends for end in ([value] if isinstance(value[0], str) else value)]
    for which, field, value in edits:
        histories[which % len(histories)][field] = value
    load_guarded(_write_keras(tmp_path / "rewired.keras", parts, config))


def test_lambda_and_absurd_units_in_a_keras_config(tmp_path, originals):
    parts = _keras_parts(originals["keras_cnn.keras"])
    config = json.loads(parts["config.json"])
    lambda_config = copy.deepcopy(config)
    lambda_config["config"]["layers"][2] = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                                            "config": {"name": "evil", "function": {"class_name": "__lambda__",
                                                                                    "config": {"code": "4wEAAAAA"}}}}
    error = load_guarded(_write_keras(tmp_path / "lambda.keras", parts, lambda_config))
    assert "'evil' (Lambda: a Lambda holds Python code" in str(error)
    huge = copy.deepcopy(config)
    huge["config"]["layers"][-1]["config"]["units"] = 10 ** 9
    error = load_guarded(_write_keras(tmp_path / "huge.keras", parts, huge))
    assert "parameters" in str(error) or "shape" in str(error)


@pytest.mark.parametrize("dims", [[10 ** 9, 10 ** 9], [-1, 4], [2 ** 40], [4, 1, 3, 4]])
def test_absurd_onnx_tensor_shapes(tmp_path, originals, dims):
    model = onnx.load_model_from_string(originals["torch_cnn.onnx"])
    tensor = model.graph.initializer[0]
    del tensor.dims[:]
    tensor.dims.extend(dims)
    path = tmp_path / "absurd.onnx"
    path.write_bytes(model.SerializeToString())
    assert isinstance(load_guarded(path), ValueError)


def test_absurd_image_sizes_before_a_channels_first_flatten(tmp_path, monkeypatch):
    """A 20000 x 20000 input written into a file whose NCHW images are flattened (ONNX from PyTorch, and the
    channels_first graph tf.keras wrote): one error, and the flattened features' reordering (600 million
    indices) is never made: it waits for weights of its size, which such a file does not hold."""
    import h5py
    pytest.importorskip("torch", reason="PyTorch (a dev-only oracle) is not installed")
    monkeypatch.syspath_prepend(str(FIXTURES.parent))
    from producers import export_torch, torch_nets
    make, shape = torch_nets()["plain"]
    export_torch(make(), shape, tmp_path / "plain.onnx")
    model = onnx.load(tmp_path / "plain.onnx")
    for axis in (2, 3):
        model.graph.input[0].type.tensor_type.shape.dim[axis].dim_value = 20000
    onnx.save(model, tmp_path / "huge.onnx")
    keras_path = tmp_path / "huge.h5"
    keras_path.write_bytes((FIXTURES / "tf_keras" / "channels_first.h5").read_bytes())
    with h5py.File(keras_path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][0]["config"]["batch_input_shape"] = [None, 2, 20000, 20000]
        handle.attrs["model_config"] = json.dumps(config)
    for path in (tmp_path / "huge.onnx", keras_path):
        assert isinstance(load_guarded(path), ValueError)


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path, originals):
    model = onnx.load_model_from_string(originals["torch_cnn.onnx"])
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    tensor.ClearField("raw_data")
    path = tmp_path / "escape.onnx"
    path.write_bytes(model.SerializeToString())
    assert "outside the model's folder" in str(load_guarded(path))


@pytest.mark.parametrize("content, named", [("torch_cnn.onnx", "m.keras"), ("keras_cnn.keras", "m.onnx"),
                                            ("keras_cnn.h5", "m.npz"), ("keras_cnn.keras", "m.h5")])
def test_format_is_told_by_content_not_extension(tmp_path, originals, content, named):
    path = tmp_path / named
    path.write_bytes(originals[content])
    assert isinstance(load_guarded(path), gn.Model)


@pytest.mark.parametrize("data", [b"", b"\x08", b"\x08\x07garbage" * 10, b"PK\x03\x04" + b"\x00" * 40,
                                  b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, b"not a model at all"])
@pytest.mark.parametrize("named", ["m.keras", "m.h5", "m.onnx"])
def test_garbage_under_every_extension(tmp_path, data, named):
    path = tmp_path / named
    path.write_bytes(data)
    assert isinstance(load_guarded(path), ValueError)
