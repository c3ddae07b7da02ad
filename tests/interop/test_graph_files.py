"""Graph models (branches, merges, shared layers, several inputs and outputs) through Keras and ONNX files,
against the real producers: Keras 3 (PyTorch backend) and torch.onnx.export, with onnxruntime for exports.

- Keras 3 writes a residual net, a two-branch concatenation net and a two-input, two-output net with a
  shared layer, as ``.keras`` and legacy ``.h5``; Keras 2's list-style ``inbound_nodes`` are read too;
- PyTorch exports a small ResNet (identity and projection shortcuts, a torch.cat of branches);
- glassnet's predictions equal the producer's within 1e-5, and its Grad-CAM and saliency on the
  residual models equal the ones computed by the producer's autograd (torch) on the same file;
- round trips: glassnet graphs (the resnet_fashion preset among them) -> .keras -> Keras 3, -> Keras 2
  .h5 -> Keras 3's legacy loader, and -> ONNX -> onnxruntime;
- bad graph configurations (a missing layer, a cycle, a Lambda) get one glassnet error each.
"""
import copy
import json
import re
import sys
import zipfile

import numpy as np
import pytest

from producers import keras, keras_graph_logits_and_grads, randomize_keras, write_keras_files

import glassnet as gn
from glassnet import explain
from glassnet import layers as L

pytest.importorskip("h5py", reason="h5py (glassnet[interop]) is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a dev oracle) is not installed")
torch = pytest.importorskip("torch", reason="torch (a dev oracle) is not installed")


def keras_graphs():
    """name -> a function building a Keras 3 Functional graph (the layer named "cam" is Grad-CAM's)."""
    k = keras()
    K = k.layers

    def residual():             # identity and projection shortcuts, BN, depthwise, a softmax head
        x = k.Input((10, 10, 3), name="image")
        h = K.ReLU()(K.BatchNormalization()(K.Conv2D(6, 3, padding="same", use_bias=False)(x)))
        y = K.BatchNormalization()(K.Conv2D(6, 3, padding="same")(K.Conv2D(6, 3, padding="same", activation="relu")(h)))
        h = K.Activation("relu", name="cam")(K.Add()([h, y]))
        shortcut = K.Conv2D(8, 1, strides=2)(h)
        y = K.Conv2D(8, 1)(K.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(h))
        h = K.Add()([shortcut, y])
        return k.Model(x, K.Softmax()(K.Dense(4)(K.GlobalAveragePooling2D()(h))))

    def two_branch_concat():    # parallel branches of different layers joined on the channels
        x = k.Input((12, 12, 2))
        scaled = K.Rescaling(0.5, offset=-0.2)(x)
        a = K.Conv2D(3, 3, padding="same", activation="relu", name="cam")(scaled)
        b = K.UpSampling2D(2)(K.MaxPooling2D(2)(K.SeparableConv2D(2, 5, padding="same")(scaled)))
        c = K.Cropping2D(1)(K.ZeroPadding2D(1)(K.Conv2D(2, 3, padding="same", dilation_rate=2, activation="tanh")(x)))
        h = K.Concatenate()([a, b, c])
        h = K.AveragePooling2D(2)(K.Conv2D(4, 3)(h))
        return k.Model(x, K.Dense(3, activation="softmax")(K.Flatten()(h)))

    def two_inputs():           # a shared layer, every merge, two outputs
        left, right = k.Input((8, 8, 1), name="left"), k.Input((8, 8, 1), name="right")
        shared = K.Conv2D(4, 3, activation="relu", name="shared")
        a, b = shared(left), shared(right)
        difference, product = K.Subtract()([a, b]), K.Multiply()([a, b])
        mixed = K.Maximum()([product, K.Average()([a, b, difference])])
        classes = K.Dense(3, activation="softmax", name="classes")(K.GlobalAveragePooling2D()(mixed))
        value = K.Dense(1, name="value")(K.Flatten()(K.Concatenate(axis=-1)([a, mixed])))
        return k.Model([left, right], [classes, value])

    cf = {"data_format": "channels_first"}

    def cf_residual():          # channels_first: BN(axis=1), shortcuts, a GAP head and a Flatten -> Dense branch
        x = k.Input((3, 10, 10), name="image")
        h = K.ReLU()(K.BatchNormalization(axis=1)(K.Conv2D(6, 3, padding="same", use_bias=False, **cf)(x)))
        y = K.Conv2D(6, 3, padding="same", **cf)(K.Conv2D(6, 3, padding="same", activation="relu", **cf)(h))
        h = K.Activation("relu", name="cam")(K.Add()([h, K.BatchNormalization(axis=1)(y)]))
        y = K.Conv2D(8, 1, **cf)(K.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", **cf)(h))
        h = K.Add()([K.Conv2D(8, 1, strides=2, **cf)(h), y])
        flat = K.Dense(5, activation="relu")(K.Flatten()(K.MaxPooling2D(2, **cf)(h)))
        return k.Model(x, K.Softmax()(K.Dense(4)(K.Concatenate()([K.GlobalAveragePooling2D(**cf)(h), flat]))))

    def cf_branches():          # channels_first: Concatenate on channels, heights and widths; three flattened
        x = k.Input((2, 12, 12))  # branches (one batch-normalized) concatenated into one Dense
        scaled = K.Rescaling(0.5, offset=-0.2)(x)
        a = K.Conv2D(3, 3, padding="same", activation="relu", name="cam", **cf)(scaled)
        b = K.UpSampling2D(2, **cf)(K.MaxPooling2D(2, **cf)(K.SeparableConv2D(2, 5, padding="same", **cf)(scaled)))
        c = K.Cropping2D(1, **cf)(K.ZeroPadding2D(1, **cf)(
            K.Conv2D(2, 3, padding="same", dilation_rate=2, activation="tanh", **cf)(x)))
        h = K.Concatenate(axis=1)([a, b, c])
        tall, wide = K.Concatenate(axis=-2)([b, c]), K.Concatenate(axis=-1)([b, c])
        left = K.Flatten()(K.AveragePooling2D(2, **cf)(K.Conv2D(2, 3, **cf)(h)))
        right = K.BatchNormalization()(K.Flatten()(K.MaxPooling2D(3, **cf)(tall)))
        features = K.Concatenate()([left, right, K.Flatten()(K.MaxPooling2D(3, **cf)(wide))])
        return k.Model(x, K.Dense(3, activation="softmax")(K.Dropout(0.1)(features)))

    def cf_two_inputs():        # channels_first: a shared Conv2D, a shared Dense on two flattened branches,
        left, right = k.Input((1, 8, 8), name="left"), k.Input((1, 8, 8), name="right")  # every merge
        shared, head = K.Conv2D(4, 3, activation="relu", name="shared", **cf), K.Dense(2, name="head")
        a, b = shared(left), shared(right)
        mixed = K.Maximum()([K.Multiply()([a, b]), K.Average()([a, b, K.Subtract()([a, b])])])
        mixed = K.BatchNormalization(axis=1)(mixed)
        classes = K.Dense(3, activation="softmax", name="classes")(K.GlobalAveragePooling2D(**cf)(mixed))
        both = K.Dense(2)(K.Flatten()(K.Concatenate(axis=-3)([a, mixed])))
        value = K.Add(name="value")([head(K.Flatten()(a)), head(K.Flatten()(b)), both])
        return k.Model([left, right], [classes, value])

    return {"residual": residual, "two_branch_concat": two_branch_concat, "two_inputs": two_inputs,
            "cf_residual": cf_residual, "cf_branches": cf_branches, "cf_two_inputs": cf_two_inputs}


def _inputs(model, seed, n=3):
    """Random inputs for a Keras model, in its own layout."""
    rng = np.random.default_rng(seed)
    return [rng.random((n,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]


def _as_glassnet(inputs, name):
    """Keras's inputs for glassnet: channels_first images (N, C, H, W) moved to (N, H, W, C)."""
    return [x.transpose(0, 2, 3, 1) if name.startswith("cf_") else x for x in inputs]


def _listed(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """name -> (Keras model, path of its .keras, path of its .h5)."""
    return write_keras_files(keras_graphs(), tmp_path_factory.mktemp("graphs"), 10)


@pytest.mark.parametrize("suffix", ["keras", "h5"])
@pytest.mark.parametrize("name", list(keras_graphs()))
def test_keras_graphs_predict_as_keras(written, name, suffix):
    model, keras_path, h5_path = written[name]
    loaded = gn.load_model(keras_path if suffix == "keras" else h5_path)
    assert type(loaded) is gn.Model
    assert sorted(layer.name for layer in loaded.layers) == sorted(layer.name for layer in model.layers)
    assert loaded.count_params() == model.count_params()
    x, feed = _inputs(model, 1), _as_glassnet(_inputs(model, 1), name)
    got = _listed(loaded.predict(feed if len(feed) > 1 else feed[0]))
    for got, want in zip(got, _listed(model.predict(x if len(x) > 1 else x[0], verbose=0))):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", ["residual", "two_branch_concat", "cf_residual", "cf_branches"])
def test_grad_cam_and_saliency_match_keras_autograd(written, name):
    model, path, _ = written[name]
    loaded = gn.load_model(path)
    x = _inputs(model, 2)[0]
    target = np.arange(len(x)) % loaded.output_shape[-1]
    logits, saliency, cam = keras_graph_logits_and_grads(model, x, target, channels_first=name.startswith("cf_"))
    x = _as_glassnet([x], name)[0]
    np.testing.assert_allclose(loaded.predict(x, logits=True), logits, atol=1e-5)
    np.testing.assert_allclose(explain.saliency(loaded, x, target), saliency, rtol=1e-4, atol=1e-6)
    got = explain.grad_cam(loaded, x, target, layer="cam", upsample=False)
    assert cam.max() > 0
    np.testing.assert_allclose(got, cam, rtol=1e-4, atol=1e-6 * cam.max())


def _as_keras2(config):
    """A Keras 3 Functional configuration rewritten with Keras 2's inbound nodes: per call a list of
    [layer, node, tensor, kwargs] (the format of tf.keras .h5 files)."""
    legacy = copy.deepcopy(config)
    legacy["class_name"] = "Model"
    for entry in legacy["config"]["layers"]:
        calls = []
        for node in entry["inbound_nodes"]:
            found = []
            stack = [node["args"]]
            while stack:
                value = stack.pop(0)
                if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                    found.append(value["config"]["keras_history"] + [{}])
                elif isinstance(value, list):
                    stack[:0] = value
            calls.append(found)
        entry["inbound_nodes"] = calls
    return legacy


def test_keras2_inbound_node_lists(written, tmp_path):
    import h5py
    model, _, h5_path = written["two_inputs"]
    legacy = tmp_path / "keras2.h5"
    legacy.write_bytes(h5_path.read_bytes())
    with h5py.File(legacy, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        handle.attrs["model_config"] = json.dumps(_as_keras2(config))
    loaded = gn.load_model(legacy)
    x = _inputs(model, 3)
    for got, want in zip(loaded.predict(x), model.predict(x, verbose=0)):
        np.testing.assert_allclose(got, want, atol=1e-5)


# -- ONNX from PyTorch ------------------------------------------------------------------------------
@pytest.mark.parametrize("dynamo", [False, True])
def test_torch_resnet_predictions_grad_cam_and_saliency(tmp_path, dynamo):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from make_fixtures import torch_resnet
    from producers import export_torch, torch_logits_and_grads
    net = torch_resnet()
    path = tmp_path / "resnet.onnx"
    export_torch(net, (1, 1, 28, 28), path, dynamo=dynamo)
    loaded = gn.load_model(path)
    assert type(loaded) is gn.Model
    assert {type(layer).__name__ for layer in loaded.layers} >= {"Add", "Concatenate", "Conv2D"}
    x = np.random.default_rng(4).random((3, 1, 28, 28)).astype("float32")
    x_nhwc = x.transpose(0, 2, 3, 1)
    target = np.array([1, 4, 7])
    logits, saliency, cam = torch_logits_and_grads(net, x, target)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.predict(x_nhwc), net(torch.tensor(x)).numpy(), atol=1e-5)
    np.testing.assert_allclose(loaded.predict(x_nhwc, logits=True), logits, atol=1e-5)
    np.testing.assert_allclose(explain.saliency(loaded, x_nhwc, target), saliency, rtol=1e-4, atol=1e-6)
    # block2's output: its last layer, the ReLU after the shortcut's Add
    block_out = [layer.name for layer in loaded.layers if type(layer).__name__ == "ReLU"][-1]
    got = explain.grad_cam(loaded, x_nhwc, target, layer=block_out, upsample=False)
    assert cam.max() > 0
    np.testing.assert_allclose(got, cam, rtol=1e-4, atol=1e-6 * cam.max())


# -- round trips: glassnet graphs -> .keras -> Keras 3, -> ONNX -> onnxruntime ------------------------
def glassnet_graph():
    """Two inputs, a shared convolution with explicit padding, every merge, two outputs; random weights."""
    left, right = gn.Input((9, 9, 2), name="left"), gn.Input((9, 9, 2), name="right")
    shared = L.Conv2D(4, 3, padding=(1, 2), activation="relu", name="shared")
    a, b = shared(left), shared(right)
    merged = L.Maximum()([L.Multiply()([a, b]), L.Average()([a, b, L.Subtract()([a, b])])])
    h = L.BatchNormalization()(L.Add()([merged, L.DepthwiseConv2D(3, padding="same")(a)]))
    h = L.Concatenate()([h, L.SeparableConv2D(3, 3, padding="same", activation="tanh")(b)])
    h = L.MaxPooling2D(2)(L.UpSampling2D(2)(h))
    classes = L.Dense(3, activation="softmax", name="classes")(L.GlobalAveragePooling2D()(h))
    value = L.Dense(2, name="value")(L.Flatten()(L.Cropping2D(((1, 0), (0, 2)))(h)))
    model = gn.Model([left, right], [classes, value])
    rng = np.random.default_rng(5)
    names = [n for layer in model.layers for n in layer.weight_names]
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(w.dtype) + (1.0 if n == "moving_variance" else 0.0)
                       for w, n in zip(model.get_weights(), names)])
    return model


@pytest.fixture(scope="module")
def graphs():
    from glassnet.presets import resnet_fashion
    return {"glassnet_graph": glassnet_graph(), "resnet_fashion": resnet_fashion(seed=3)}


@pytest.mark.parametrize("suffix", ["keras", "h5"])
@pytest.mark.parametrize("name", ["glassnet_graph", "resnet_fashion"])
def test_keras_round_trip(graphs, name, suffix, tmp_path):
    """glassnet graph -> .keras (Keras 3) or Keras 2 .h5 (list-style inbound nodes) -> Keras 3's loader
    (its legacy one for .h5) and back into glassnet: the same predictions."""
    import h5py
    model, path = graphs[name], tmp_path / f"m.{suffix}"
    model.save(path)
    if suffix == "h5":
        with h5py.File(path, "r") as handle:
            config = json.loads(handle.attrs["model_config"])
        calls = [node for entry in config["config"]["layers"] for node in entry["inbound_nodes"]]
        assert calls and all(isinstance(ref, list) and len(ref) == 4 for call in calls for ref in call)
    reopened = keras().models.load_model(path, compile=False)
    x = _inputs(model, 6)
    feed = x if len(x) > 1 else x[0]
    expected = _listed(model.predict(feed))
    for got, want in zip(_listed(reopened.predict(feed, verbose=0)), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
    for got, want in zip(_listed(gn.load_model(path).predict(feed)), expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("name", ["glassnet_graph", "resnet_fashion"])
def test_onnx_round_trip(graphs, name, tmp_path):
    model = graphs[name]
    gn.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = _inputs(model, 7)
    names = [i.name for i in session.get_inputs()]
    expected = _listed(model.predict(x if len(x) > 1 else x[0]))
    for got, want in zip(session.run(None, dict(zip(names, x))), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
    reread = gn.load_model(tmp_path / "m.onnx")
    for got, want in zip(_listed(reread.predict(x if len(x) > 1 else x[0])), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)


# -- bad graph configurations -----------------------------------------------------------------------
def _edited_keras(source, path, edit):
    with zipfile.ZipFile(source) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(parts["config.json"])
    edit(config["config"]["layers"])
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else content)
    return path


def _history(entry, call=0):
    """The keras_history lists of one call of a layer entry (Keras 3 format)."""
    args = entry["inbound_nodes"][call]["args"]
    tensors = args[0] if isinstance(args[0], list) else args
    return [t["config"]["keras_history"] for t in tensors]


def _by_name(layers, name):
    return next(entry for entry in layers if entry["name"] == name)


def test_a_call_naming_a_missing_layer(written, tmp_path):
    path = _edited_keras(written["two_inputs"][1], tmp_path / "missing.keras",
                         lambda layers: _history(_by_name(layers, "classes"))[0].__setitem__(0, "ghost"))
    with pytest.raises(ValueError, match=r"call 0 of layer 'classes' takes layer 'ghost', which the model does "
                                         r"not have"):
        gn.load_model(path)


def test_a_call_of_a_missing_node(written, tmp_path):
    path = _edited_keras(written["two_inputs"][1], tmp_path / "node.keras",
                         lambda layers: _history(_by_name(layers, "classes"))[0].__setitem__(1, 5))
    with pytest.raises(ValueError, match=r"takes output 0 of call 5 of layer"):
        gn.load_model(path)


def test_a_cycle(written, tmp_path):
    def close_loop(layers):     # the first Add takes its own successor's output
        adds = [entry for entry in layers if entry["class_name"] == "Add"]
        _history(adds[0])[1][:2] = [adds[1]["name"], 0]
    path = _edited_keras(written["residual"][1], tmp_path / "cycle.keras", close_loop)
    with pytest.raises(ValueError, match=r"a cycle: the calls of layers \[.*'add"):
        gn.load_model(path)


def test_a_lambda_in_a_graph_is_refused_without_running_it(written, tmp_path, monkeypatch):
    import marshal

    def make_lambda(layers):
        entry = _by_name(layers, "shared")
        entry.update(class_name="Lambda", module="keras.layers")
        entry["config"] = {"name": "shared", "function": {"class_name": "__lambda__", "config": {
            "code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}}
    path = _edited_keras(written["two_inputs"][1], tmp_path / "lambda.keras", make_lambda)
    monkeypatch.setattr(marshal, "loads", lambda *a: pytest.fail("code from the file was unmarshalled"))
    with pytest.raises(ValueError, match=r"1 unsupported layer: 'shared' \(Lambda: a Lambda holds Python code"):
        gn.load_model(path)


def test_a_graph_is_saved_as_a_functional_config(tmp_path):
    x = gn.Input((6, 6, 1))
    model = gn.Model(x, L.Add()([L.Conv2D(2, 3)(x), L.Conv2D(2, 3)(x)]))
    model.save(tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert config["class_name"] == "Functional"
    assert [e["class_name"] for e in config["config"]["layers"]] == ["InputLayer", "Conv2D", "Conv2D", "Add"]
    assert config["config"]["layers"][3]["inbound_nodes"][0]["args"][0][1]["config"]["keras_history"] == \
        [config["config"]["layers"][2]["name"], 0, 0]


def test_channels_first_layers_without_a_channels_last_counterpart_are_listed_in_one_error(tmp_path):
    """Every layer of a channels_first graph that cannot be converted exactly, named with its class and
    why, in one error; the layers after them do not add spurious entries."""
    k = keras()
    K, cf = k.layers, {"data_format": "channels_first"}
    x = k.Input((2, 6, 6))
    h = K.Conv2D(4, 3, padding="same", **cf)(x)
    small = K.MaxPooling2D(3, **cf)(h)                      # (4, 2, 2): 16 features, like the 16 of the GAP below
    shared = K.Dense(2, name="shared_head")
    pooled = K.Dense(16)(K.GlobalAveragePooling2D(**cf)(h))
    outputs = [K.Reshape((4, 36), name="reshape_images")(h), K.Dense(3, name="dense_on_width")(h),
               K.Activation("softmax", name="softmax_on_width")(h), K.Flatten(name="flat_out")(h),
               K.Dense(2)(K.Add(name="mixed_add")([K.Flatten()(small), pooled])),
               shared(K.Flatten()(small)), shared(K.GlobalAveragePooling2D(**cf)(K.Conv2D(16, 1, **cf)(h)))]
    k.Model(x, outputs).save(tmp_path / "cf.keras")
    with pytest.raises(ValueError) as caught:
        gn.load_model(tmp_path / "cf.keras")
    text = str(caught.value)
    assert "6 unsupported layers" in text
    for expected in [r"'reshape_images' \(Reshape: a Reshape from or to images in a channels_first model\)",
                     r"'dense_on_width' \(Dense: a Dense on channels_first images",
                     r"'softmax_on_width' \(Activation: a softmax over channels_first images",
                     r"'flat_out' \(output: channels_first features flattened without a Dense after them\)",
                     r"'mixed_add' \(Add: a merge of features in different orders",
                     r"'shared_head' \(Dense: a shared layer called on tensors in different layouts"]:
        assert re.search(expected, text), expected


def test_channels_first_image_outputs_come_out_channels_last(tmp_path):
    """A channels_first graph's image output is glassnet's (N, H, W, C): Keras's (N, C, H, W) transposed."""
    k = keras()
    K, cf = k.layers, {"data_format": "channels_first"}
    x = k.Input((3, 7, 7))
    features = K.Conv2D(4, 3, padding="same", activation="relu", **cf)(x)
    mask = K.Conv2D(2, 1, activation="sigmoid", name="mask", **cf)(K.Concatenate(axis=1)([x, features]))
    model = randomize_keras(k.Model(x, [mask, K.Dense(3)(K.Flatten()(features))]), 21)
    model.save(tmp_path / "cf.keras")
    loaded = gn.load_model(tmp_path / "cf.keras")
    images = np.random.default_rng(9).random((2, 3, 7, 7)).astype("float32")
    got_mask, got_scores = loaded.predict(images.transpose(0, 2, 3, 1))
    mask, scores = model.predict(images, verbose=0)
    assert got_mask.shape == (2, 7, 7, 2)
    np.testing.assert_allclose(got_mask, mask.transpose(0, 2, 3, 1), atol=1e-5)
    np.testing.assert_allclose(got_scores, scores, atol=1e-5)
