"""Fuzzing ``gn.load_model`` with poisoned and damaged model files (issue 8, sections 3 and 5).

A model file is an ``.npz`` (a zip of ``.npy`` members) whose ``config`` member is JSON. Every
mutation -- flipped bytes, truncation, object arrays, pickles, JSON edits (version, layer names,
shapes, classes, arbitrary values anywhere in the tree) -- must either load a model or raise the
documented ``ValueError`` (never a zipfile / JSON / NumPy / KeyError crash), must not allocate
far more than the file holds, and must never unpickle: a pickle whose ``__reduce__`` writes a
marker file is planted in many ways and the marker must never appear.

Run with ``-s`` to see how many files were tried.
"""
import copy
import io
import json
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glassnet as gn
from glassnet import layers
from guarded_loading import load_guarded

#: examples per property; raise it for a long hunt, e.g. GLASSNET_FUZZ_EXAMPLES=5000
FUZZ = settings(max_examples=int(os.environ.get("GLASSNET_FUZZ_EXAMPLES", 120)),
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNTS = {}
X = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print(f"\nmodel-file fuzz: {sum(COUNTS.values())} files "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(COUNTS.items()))})")


def count(kind):
    COUNTS[kind] = COUNTS.get(kind, 0) + 1


def _build_original():
    """A trained model with every kind of saved state: weights, Adam slots, Dropout RNG, epoch count."""
    model = gn.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1), name="conv"),
                           layers.MaxPooling2D(2, name="pool"), layers.Dropout(0.3, name="drop"),
                           layers.Flatten(name="flat"), layers.Dense(3, activation="softmax", name="preds")],
                          seed=0)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, np.eye(3)[[0, 1, 2, 0]], epochs=1, verbose=0, seed=1)
    return model


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(file bytes, arrays dict, parsed config, the model's predictions) of a valid saved model."""
    model = _build_original()
    path = tmp_path_factory.mktemp("original") / "model.npz"
    model.save(path)
    data = path.read_bytes()
    with np.load(path) as archive:  # our own trusted file
        arrays = {key: archive[key] for key in archive.files}
    config = json.loads(arrays["config"].tobytes().decode("utf-8"))
    return data, arrays, config, model.predict(X)


def write_npz(path, arrays, config=None):
    arrays = dict(arrays)
    if config is not None:
        arrays["config"] = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)
    return path


# the npz files are ~7 KB: load_guarded's default slack of 4 MiB covers building the model


# -- the round trip and byte-level damage ---------------------------------------------------------
def test_unmutated_file_round_trips(tmp_path, original):
    data, _, _, predictions = original
    path = tmp_path / "model.npz"
    path.write_bytes(data)
    model = load_guarded(path)
    np.testing.assert_allclose(model.predict(X), predictions, rtol=1e-6)


def test_unbuilt_model_round_trips(tmp_path):
    """A model saved before it was built (no input shape yet) loads back, builds on first use."""
    path = tmp_path / "unbuilt.npz"
    gn.Sequential([layers.Dense(3, name="d")]).save(path)
    model = load_guarded(path)
    assert not model.built and model.predict(np.ones((2, 4), dtype=np.float32)).shape == (2, 3)


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=6))
def test_flipped_bytes(tmp_path, original, flips):
    count("flipped bytes")
    data = bytearray(original[0])
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    path = tmp_path / "flip.npz"
    path.write_bytes(bytes(data))
    load_guarded(path)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated(tmp_path, original, cut):
    count("truncated")
    data = original[0][:int(cut * len(original[0]))]
    path = tmp_path / "cut.npz"
    path.write_bytes(data)
    assert isinstance(load_guarded(path), ValueError), "a truncated file never loads"


@FUZZ
@given(junk=st.binary(min_size=0, max_size=300), zip_magic=st.booleans())
def test_random_bytes(tmp_path, junk, zip_magic):
    count("random bytes")
    path = tmp_path / "random.npz"
    path.write_bytes((b"PK\x03\x04" if zip_magic else b"") + junk)
    assert isinstance(load_guarded(path), ValueError)


# -- pickles: never executed ------------------------------------------------------------------
class Marker:
    """Unpickling this writes a file: evidence that a loader ran code from the model file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (pathlib.Path(self.path).write_text, ("unpickled: code from the model file ran",))


def npy_bytes(array, allow_pickle=True):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def zip_with(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


PLANTS = ["whole file is a pickle", "object array as a weight", "object array as the config",
          "raw pickle as a member", "pickle after a numeric npy header", "object array as optimizer state",
          "extra object member", "npy header claiming a float dtype with a pickle body"]


@pytest.mark.parametrize("plant", PLANTS)
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickles_are_never_unpickled(tmp_path, original, plant, protocol):
    count("pickle plants")
    _, arrays, _, _ = original
    marker = tmp_path / "marker.txt"
    evil = Marker(marker)
    evil_array = np.array([evil, 1], dtype=object)
    payload = pickle.dumps(evil, protocol=protocol)
    members = {f"{key}.npy": npy_bytes(value) for key, value in arrays.items()}
    if plant == "whole file is a pickle":
        data = payload
    else:
        if plant == "object array as a weight":
            members["weight_0000.npy"] = npy_bytes(evil_array)
        elif plant == "object array as the config":
            members["config.npy"] = npy_bytes(evil_array)
        elif plant == "raw pickle as a member":
            members["weight_0001.npy"] = payload
        elif plant == "pickle after a numeric npy header":
            header = npy_bytes(np.zeros(len(payload), dtype=np.uint8))[:-len(payload)]
            members["weight_0002.npy"] = header + payload
        elif plant == "object array as optimizer state":
            members["optimizer_0001.npy"] = npy_bytes(evil_array)
        elif plant == "extra object member":
            members["extra.npy"] = npy_bytes(evil_array)
        else:
            header = npy_bytes(np.zeros(2, dtype="<f8"))[:-16]
            members["weight_0003.npy"] = header + payload
        data = zip_with(members)
    path = tmp_path / "poisoned.npz"
    path.write_bytes(data)
    result = load_guarded(path)
    assert not marker.exists(), "load_model unpickled data from the model file"
    if plant != "pickle after a numeric npy header":
        assert isinstance(result, ValueError)
    # the trap is real: NumPy's own pickle-enabled loader does trigger it
    if plant == "object array as a weight":
        with np.load(path, allow_pickle=True) as archive:
            archive["weight_0000"]
        assert marker.exists()


# -- JSON config edits ------------------------------------------------------------------------
def layer_config(config, name):
    return next(layer["config"] for layer in config["model"]["layers"] if layer["config"]["name"] == name)


EDITS = {
    "newer format_version": lambda c: c.update(format_version=2),
    "format_version a string": lambda c: c.update(format_version="1"),
    "format_version missing": lambda c: c.pop("format_version"),
    "format a weights file": lambda c: c.update(format="glassnet.weights"),
    "format unknown": lambda c: c.update(format="keras.h5"),
    "layer renamed in the model": lambda c: layer_config(c, "conv").update(name="conv_renamed"),
    "layer renamed in the weight list": lambda c: c["weights"][0].update(layer="other"),
    "weight shape edited": lambda c: c["weights"][0].update(shape=[3, 3, 1, 4]),
    "filters edited": lambda c: layer_config(c, "conv").update(filters=4),
    "units edited": lambda c: layer_config(c, "preds").update(units=10),
    "units absurd": lambda c: layer_config(c, "preds").update(units=10 ** 7),
    "filters absurd": lambda c: layer_config(c, "conv").update(filters=10 ** 6),
    "input_shape absurd": lambda c: (c["model"].update(input_shape=[10 ** 5, 10 ** 5, 1]),
                                     layer_config(c, "conv").update(input_shape=[10 ** 5, 10 ** 5, 1])),
    "kernel_size absurd": lambda c: layer_config(c, "conv").update(kernel_size=[10 ** 4, 10 ** 4]),
    "unknown layer class": lambda c: c["model"]["layers"][0].update(class_name="Lambda"),
    "class_name of a Python builtin": lambda c: c["model"]["layers"][1].update(class_name="__import__"),
    "layer config with an unknown key": lambda c: layer_config(c, "pool").update(code="import os"),
    "activation unknown": lambda c: layer_config(c, "preds").update(activation="os.system"),
    "dropout rate 2": lambda c: layer_config(c, "drop").update(rate=2.0),
    "layers not a list": lambda c: c["model"].update(layers={"a": 1}),
    "model config missing": lambda c: c.pop("model"),
    "weights list missing": lambda c: c.pop("weights"),
    "weights list shortened": lambda c: c["weights"].pop(),
    "loss unknown": lambda c: c["compile"]["loss"].update(class_name="Evil"),
    "optimizer unknown": lambda c: c["compile"]["optimizer"].update(class_name="os.system"),
    "optimizer learning rate a string": lambda c: c["compile"]["optimizer"].update(learning_rate="fast"),
    "metric class unknown": lambda c: c["compile"].update(metrics=[{"class_name": "Evil"}]),
    "optimizer_state count too big": lambda c: c.update(optimizer_state=10 ** 9),
    "optimizer_state negative": lambda c: c.update(optimizer_state=-1),
    "completed_epochs negative": lambda c: c["training"].update(completed_epochs=-3),
    "rng bit generator unknown": lambda c: c["training"]["rng"][2].update(bit_generator="Evil"),
    "rng bit generator a non-generator": lambda c: c["training"]["rng"][2].update(bit_generator="seed"),
    "rng state garbage": lambda c: c["training"]["rng"][2].update(state="x"),
    "rng list too long": lambda c: c["training"]["rng"].append(None),
    "metadata a list": lambda c: c.update(metadata=[1, 2]),
    "config a list": None,
    "config not UTF-8": None,
    "config of floats": None,
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_config_edits(tmp_path, original, edit):
    """Named, targeted edits of the JSON: each must give load_model's ValueError (or a sane model)."""
    count("named config edits")
    _, arrays, config, _ = original
    config = copy.deepcopy(config)
    arrays = dict(arrays)
    if edit == "config a list":
        config = [config]
    elif edit == "config not UTF-8":
        arrays["config"] = np.frombuffer(b"\xff\xfe{}", dtype=np.uint8)
        config = None
    elif edit == "config of floats":
        arrays["config"] = np.zeros(8, dtype=np.float32)
        config = None
    else:
        EDITS[edit](config)
    path = write_npz(tmp_path / "edited.npz", arrays, config)
    result = load_guarded(path)
    if edit not in ("metadata a list",):
        assert isinstance(result, ValueError), f"{edit}: loaded anyway"
    if edit == "newer format_version":
        assert "upgrade" in str(result)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


def json_paths(node, prefix=()):
    """Every path (tuple of keys/indices) in a JSON tree."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from json_paths(value, prefix + (index,))


@FUZZ
@given(choice=st.floats(0, 1, exclude_max=True), value=JSON_VALUES, delete=st.booleans())
def test_random_config_edits(tmp_path, original, choice, value, delete):
    """Replace (or delete) any node of the JSON configuration with an arbitrary JSON value."""
    count("random config edits")
    _, arrays, config, _ = original
    config = copy.deepcopy(config)
    paths = list(json_paths(config))[1:]
    path_to = paths[int(choice * len(paths))]
    parent = config
    for key in path_to[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path_to[-1]]
    else:
        parent[path_to[-1]] = value
    load_guarded(write_npz(tmp_path / "random_edit.npz", arrays, config))


@FUZZ
@given(key=st.sampled_from(["weight_0000", "weight_0001", "weight_0002", "weight_0003", "optimizer_0000",
                            "optimizer_0004"]),
       kind=st.sampled_from(["transposed", "wrong dtype", "NaN", "empty", "bigger", "int", "complex", "missing",
                             "scalar", "bool"]))
def test_array_replacements(tmp_path, original, key, kind):
    """Swap one stored array for a wrong one: shape, dtype, non-finite, missing."""
    count("array replacements")
    _, arrays, _, _ = original
    arrays = dict(arrays)
    array = arrays[key]
    replacement = {"transposed": array.T.copy() if array.ndim > 1 else array[::-1][:max(len(array) - 1, 0)]
                   if array.ndim else array.reshape(1),
                   "wrong dtype": array.astype(np.float16), "NaN": np.full_like(array, np.nan, dtype=np.float32),
                   "empty": np.zeros(0, dtype=np.float32), "bigger": np.zeros((array.size + 1,), np.float32),
                   "int": array.astype(np.int64), "complex": array.astype(np.complex64),
                   "scalar": np.float32(1.0), "bool": array.astype(bool)}.get(kind)
    if kind == "missing":
        del arrays[key]
    else:
        arrays[key] = np.asarray(replacement)
    result = load_guarded(write_npz(tmp_path / "swapped.npz", arrays))
    if key.startswith("weight") and kind not in ("wrong dtype",):
        assert isinstance(result, ValueError), f"{key} {kind}: loaded anyway"


def test_member_claiming_huge_size_fails_before_allocating(tmp_path, original):
    """A .npy header claiming a (2**31, 2**31) float64 array in a tiny file: refused without allocating."""
    _, arrays, _, _ = original
    members = {f"{key}.npy": npy_bytes(value) for key, value in arrays.items()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (2 ** 31, 2 ** 31)})
    members["weight_0000.npy"] = header.getvalue() + bytes(8)
    path = tmp_path / "huge.npz"
    path.write_bytes(zip_with(members))
    assert isinstance(load_guarded(path), ValueError)
