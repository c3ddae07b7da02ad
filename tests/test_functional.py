"""The Functional API: gn.Input, layers called on tensors, gn.Model(inputs, outputs) with its graph
checks, shared layers, several inputs and outputs, training, saving and the summary; a residual
model compared with real Keras 3 on the same weights."""
import os

import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers
from glassnet.testing import check_model_gradients


def residual(dtype="float32", seed=0, channels=2):
    """conv -> [conv -> BN] + projection shortcut -> ReLU -> GAP -> Dense(softmax)."""
    x = gn.Input((8, 8, channels), name="image")
    stem = layers.Conv2D(4, 3, padding="same", activation="relu", dtype=dtype, seed=seed, name="stem")(x)
    branch = layers.Conv2D(6, 3, padding="same", dtype=dtype, seed=seed + 1, name="branch")(stem)
    branch = layers.BatchNormalization(dtype=dtype, name="bn")(branch)
    shortcut = layers.Conv2D(6, 1, dtype=dtype, seed=seed + 2, name="shortcut")(stem)
    merged = layers.ReLU(dtype=dtype, name="relu")(layers.Add(dtype=dtype, name="add")([branch, shortcut]))
    pooled = layers.GlobalAveragePooling2D(dtype=dtype, name="gap")(merged)
    return gn.Model(x, layers.Dense(3, activation="softmax", dtype=dtype, seed=seed + 3, name="out")(pooled),
                    name="residual")


def data(n=12, seed=1, channels=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8, 8, channels)).astype("float32"), rng.integers(0, 3, n)


def test_a_diamond_graph_passes_the_finite_difference_check():
    """x -> a -> (b, c) -> Add -> d: the gradient of a's output is the sum over b and c."""
    x = gn.Input((5,))
    a = layers.Dense(4, activation="tanh", dtype="float64", seed=0)(x)
    b = layers.Dense(3, activation="sigmoid", dtype="float64", seed=1)(a)
    c = layers.Dense(3, dtype="float64", seed=2)(a)
    d = layers.Dense(2, dtype="float64", seed=3)(layers.Multiply(dtype="float64")([b, c]))
    model = gn.Model(x, layers.Add(dtype="float64")([d, layers.Dense(2, dtype="float64", seed=4)(a)]))
    errors = check_model_gradients(model, np.random.default_rng(0).standard_normal((3, 5)))
    assert len(errors) == 1 + 2 * 5 and max(errors.values()) < 1e-7


def test_a_residual_model_trains_with_the_fused_steps_and_passes_the_gradient_check():
    errors = check_model_gradients(residual("float64"), data()[0][:3].astype("float64"), training=True)
    assert max(errors.values()) < 1e-7


def test_a_layer_called_twice_shares_its_weights():
    shared = layers.Dense(4, activation="tanh", dtype="float64", seed=0, name="shared")
    x1, x2 = gn.Input((4,), name="left"), gn.Input((4,), name="right")
    model = gn.Model([x1, x2], layers.Subtract(dtype="float64")([shared(x1), shared(shared(x2))]))
    assert model.count_params() == 20 and [l.name for l in model.layers].count("shared") == 1
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    kernel, bias = shared.get_weights()

    def by_hand(v):
        return np.tanh(v @ kernel + bias)
    np.testing.assert_allclose(model.predict([a, b]), by_hand(a) - by_hand(by_hand(b)), rtol=1e-12)
    np.testing.assert_array_equal(model.predict({"left": a, "right": b}), model.predict([a, b]))
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Connected to" in line for line in lines)
    assert any("shared (Dense)" in line and "left[0][0]" in line for line in lines)
    assert any(line.strip().endswith("shared[1][0]") for line in lines)


def test_several_outputs_as_a_list_or_a_dict():
    x = gn.Input((6,))
    h = layers.Dense(5, activation="relu", seed=0)(x)
    first, second = layers.Dense(2, seed=1)(h), layers.Dense(3, activation="softmax", seed=2)(h)
    x_data = np.random.default_rng(2).random((7, 6))
    as_list = gn.Model(x, [first, second]).predict(x_data, batch_size=3)
    as_dict = gn.Model(x, {"a": first, "b": second}).predict(x_data)
    assert [o.shape for o in as_list] == [(7, 2), (7, 3)]
    np.testing.assert_array_equal(as_dict["a"], as_list[0])
    np.testing.assert_array_equal(as_dict["b"], as_list[1])


def test_graph_mistakes_are_clear_errors_that_keep_nothing():
    x, other = gn.Input((4,), name="x_in"), gn.Input((4,), name="elsewhere")
    y = layers.Dense(2)(x)
    with pytest.raises(TypeError, match="symbolic tensor"):
        gn.Model(x, np.zeros((1, 2)))
    with pytest.raises(TypeError, match="symbolic tensor"):
        gn.Model([x, "not a tensor"], y)
    with pytest.raises(TypeError, match=r"Model\(inputs, outputs\)"):
        gn.Model()
    with pytest.raises(ValueError, match="'elsewhere'.*disconnected"):
        gn.Model(x, layers.Add()([y, layers.Dense(2)(other)]))
    with pytest.raises(ValueError, match=r"inputs \['elsewhere'\] of shapes \[\(None, 4\)\] that nothing uses"):
        gn.Model([x, other], y)
    with pytest.raises(ValueError, match="made by gn.Input"):
        gn.Model(y, layers.Dense(1)(y))
    with pytest.raises(ValueError, match=r"one per-example shape.*\(None, 2\).*\(None, 3\)"):
        layers.Add(name="bad_add")([y, layers.Dense(3)(x)])
    with pytest.raises(ValueError, match=r"Conv2D 'conv_on_vectors'.*\(N, H, W, C\)"):
        layers.Conv2D(2, 3, name="conv_on_vectors")(x)
    with pytest.raises(TypeError, match="one tensor"):
        layers.Dense(2)([x, other])
    with pytest.raises(ValueError, match="unique layer names"):
        gn.Model(x, layers.Dense(2, name="twin")(layers.Dense(3, name="twin")(x)))
    model = gn.Model(x, y)                             # the failures above left nothing behind
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "Dense"]


def test_fit_evaluate_and_an_exact_resume_from_a_saved_graph_model(tmp_path):
    x, y = data(24)

    def compiled():
        model = residual()
        model.compile(gn.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", ["accuracy"])
        return model
    straight = compiled()
    straight.fit(x, y, batch_size=8, epochs=2, seed=3, verbose=0)
    first = compiled()
    first.fit(x, y, batch_size=8, epochs=1, seed=3, verbose=0)
    path = os.path.join(tmp_path, "residual.npz")
    first.save(path)
    resumed = gn.load_model(path)
    assert type(resumed) is gn.Model and resumed.get_layer("add").name == "add"
    np.testing.assert_array_equal(resumed.predict(x), first.predict(x))
    resumed.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    loss, accuracy = resumed.evaluate(x, y)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    rebuilt = gn.Model.from_config(resumed.get_config())
    assert [l.name for l in rebuilt.layers] == [l.name for l in resumed.layers]


def test_layers_called_in_an_earlier_graph_save_and_load_in_a_later_one(tmp_path):
    """Keras's habit: an encoder model, then a bigger model calling the same layers again."""
    x = gn.Input((6,), name="features")
    encoder = layers.Dense(4, activation="relu", name="encoder", seed=0)
    gn.Model(x, encoder(x))
    head = layers.Dense(2, name="head", seed=1)
    full = gn.Model(x, head(encoder(x)))
    lines = []
    full.summary(print_fn=lines.append)
    assert any("features[0][0]" in line and "encoder" in line for line in lines)
    full.save(tmp_path / "full.npz")
    data_x = np.random.default_rng(0).random((3, 6))
    np.testing.assert_array_equal(gn.load_model(tmp_path / "full.npz").predict(data_x), full.predict(data_x))


def test_every_explanation_runs_on_a_graph_model():
    model = residual()
    x, _ = data(3)
    assert explain.saliency(model, x, modifier="guided").shape == (3, 8, 8)
    cam = explain.grad_cam(model, x, layer="add")
    assert cam.shape == (3, 8, 8) and np.isfinite(cam).all()
    assert explain.grad_cam(model, x).shape == (3, 8, 8)          # default: the last 4-D tensor
    assert explain.occlusion(model, x, window=4).shape == (3, 8, 8)
    assert explain.feature_maps(model, x, "relu").shape == (3, 8, 8, 6)
    assert explain.activation_maximization(model, "branch", 2, steps=2, seed=0).shape == (8, 8, 2)
    assert explain.integrated_gradients(model, x, steps=3).shape == x.shape


def test_a_residual_model_matches_keras_on_the_same_weights(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="Keras 3 is the dev-only oracle (pip install glassnet[dev])")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras was imported earlier with another backend")
    model = residual()
    x, y = data(6)
    inp = keras.Input((8, 8, 2))
    stem = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inp)
    branch = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(6, 3, padding="same", name="branch")(stem))
    shortcut = keras.layers.Conv2D(6, 1, name="shortcut")(stem)
    merged = keras.layers.ReLU()(keras.layers.Add()([branch, shortcut]))
    out = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D()(merged))
    reference = keras.Model(inp, out)
    for name in ("stem", "branch", "bn", "shortcut", "out"):
        reference.get_layer(name).set_weights(model.get_layer(name).get_weights())
    np.testing.assert_allclose(model.predict(x), np.asarray(reference.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
    model.compile(gn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    reference.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    reference.train_on_batch(x, y)
    for name in ("stem", "branch", "bn", "shortcut", "out"):
        for ours, theirs in zip(model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-4, atol=1e-6, err_msg=name)


def test_the_report_the_diagram_and_the_cli_take_a_graph_model(tmp_path, capsys):
    from glassnet import cli, viz
    model = residual(channels=1)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    x, y = data(8, channels=1)
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0)
    edges = viz.diagram.layer_edges(model)
    names = [layer.name for layer in model.layers]
    assert (names.index("stem"), names.index("shortcut")) in edges and (names.index("bn"), names.index("add")) in edges
    assert viz.model_to_dot(model).count(" -> ") == len(edges) == 9
    path = viz.report(model, x, y, tmp_path / "report", history=history, n_explain=2, sanity=False, progress=False,
                      maximization_steps=2, methods=["saliency", "grad_cam"], diagram_engine="matplotlib")
    assert os.path.getsize(path) > 10_000
    model.save(tmp_path / "graph.npz")
    np.save(tmp_path / "x.npy", x[:3])
    assert cli.main(["summary", "--model", str(tmp_path / "graph.npz")]) == 0
    out = capsys.readouterr().out
    assert "Connected to" in out and "bn[0][0]" in out
    assert cli.main(["predict", "--model", str(tmp_path / "graph.npz"), "--input", str(tmp_path / "x.npy")]) == 0


def test_grad_cam_on_a_residual_model_matches_an_independent_pytorch_implementation():
    """Grad-CAM at the Add tensor, recomputed with torch autograd on the same weights."""
    torch = pytest.importorskip("torch", reason="PyTorch is the dev-only oracle (pip install glassnet[dev])")
    model = residual("float64")
    x = data(3)[0].astype("float64")
    weights = {name: [torch.tensor(w) for w in model.get_layer(name).get_weights()]
               for name in ("stem", "branch", "bn", "shortcut", "out")}

    def conv(t, kernel, bias, same):
        return torch.nn.functional.conv2d(t, kernel.permute(3, 2, 0, 1), bias, padding="same" if same else 0)
    t = torch.tensor(x, requires_grad=True).permute(0, 3, 1, 2)
    stem = torch.relu(conv(t, *weights["stem"], True))
    gamma, beta, mean, var = weights["bn"]
    branch = conv(stem, *weights["branch"], True)
    branch = (branch - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-3) * gamma[:, None, None] \
        + beta[:, None, None]
    added = branch + conv(stem, *weights["shortcut"], False)
    added.retain_grad()
    logits = torch.relu(added).mean(dim=(2, 3)) @ weights["out"][0] + weights["out"][1]
    target = logits.argmax(dim=1)
    logits[torch.arange(3), target].sum().backward()
    alpha = added.grad.mean(dim=(2, 3))
    expected = torch.relu((alpha[:, :, None, None] * added).sum(dim=1)).detach().numpy()
    got = explain.grad_cam(model, x, layer="add", upsample=False)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
