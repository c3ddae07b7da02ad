"""glassnet.presets: the named presets, their sizes and their training recipes."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import callbacks, layers
from glassnet import presets as models


@pytest.mark.parametrize("name, params", [
    ("seed003_tiny", 13_602), ("keras_mnist", 1_199_882), ("seed000_tanh", 35_754), ("lenet5", 61_706),
    ("fashion", 871_978)])
def test_presets_have_the_documented_sizes_and_shapes(name, params):
    model = models.get(name, seed=0)
    assert model.count_params() == params and model.built and not model.compiled
    assert model.output_shape == (None, 10)
    probs = model.predict(np.zeros((2, 28, 28, 1), dtype=np.float32))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_mnist_prints_seed_000s_summary():
    lines = []
    models.keras_mnist().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 26, 26, 32)" in text and "(None, 9216)" in text and "Total params: 1,199,882" in text
    assert models.keras_mnist().layers[-1].name == "preds"


def test_seed_presets_follow_their_seeds():
    tiny = models.seed003_tiny()
    conv = tiny.layers[0]
    assert isinstance(conv, layers.Conv2D) and not conv.use_bias and conv.filters == 8
    assert [l.output_shape for l in tiny.layers] == [(None, 26, 26, 8), (None, 13, 13, 8), (None, 1352), (None, 10)]
    tanh = models.seed000_tanh()
    shapes = [l.output_shape for l in tanh.layers if isinstance(l, (layers.Conv2D, layers.MaxPooling2D))]
    assert shapes == [(None, 24, 24, 4), (None, 22, 22, 8), (None, 11, 11, 8), (None, 9, 9, 16), (None, 4, 4, 16)]
    assert [l.activation for l in tanh.layers if isinstance(l, layers.Activation)] == ["tanh"] * 4 + ["softmax"]
    lenet = models.lenet5()
    assert [l.output_shape for l in lenet.layers if isinstance(l, layers.Dense)] == [(None, 120), (None, 84),
                                                                                     (None, 10)]


def test_options_and_seeds():
    a, b, c = models.get("lenet5", seed=3), models.get("lenet5", seed=3), models.get("lenet5", seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    rgb = models.get("fashion", input_shape=(32, 32, 3), num_classes=4, dtype="float64")
    assert rgb.input_shape == (None, 32, 32, 3) and rgb.output_shape == (None, 4)
    assert all(w.dtype == np.float64 for w in rgb.get_weights())


def test_lookup_errors_and_listing():
    assert models.available() == ["seed003_tiny", "keras_mnist", "seed000_tanh", "lenet5", "fashion", "resnet8",
                                  "resnet_fashion"]
    with pytest.raises(ValueError, match="preset name"):
        models.get("resnet50")
    with pytest.raises(ValueError, match="preset name"):
        models.recipe("resnet50")


def test_recipes_and_step_schedule():
    for name in models.available():
        settings = models.recipe(name)
        assert settings["epochs"] > 0 and settings["batch_size"] > 0 and "class_name" in settings["optimizer"]
    settings = models.recipe("fashion")
    settings["optimizer"]["learning_rate"] = 99                  # a copy: the table is unchanged
    assert models.RECIPES["fashion"]["optimizer"]["learning_rate"] == 1e-3
    schedule = models.step_schedule([(3, 0.1), (0, 1.0), (5, 0.01)])
    assert [schedule(e, 7.0) for e in range(7)] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01]


def test_fit_recipe_augments_through_image_data_generator(monkeypatch):
    from glassnet.preprocessing import ImageDataGenerator
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 20)
    monkeypatch.setitem(models.RECIPES, "lenet5", {**models.RECIPES["lenet5"], "augment": {"horizontal_flip": True}})
    flows = []
    original = ImageDataGenerator.flow

    def recording(self, *args, **kwargs):
        flows.append((self.horizontal_flip, kwargs.get("batch_size"), kwargs.get("seed")))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(ImageDataGenerator, "flow", recording)
    sizes = []

    class Spy(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            sizes.append(logs["size"])
    model = models.compile_recipe(models.lenet5(seed=0), "lenet5")
    models.fit_recipe(model, "lenet5", x, y, epochs=1, batch_size=8, seed=3, callbacks=[Spy()])
    assert flows == [(True, 8, 3)] and sizes == [8, 8, 4]
    models.fit_recipe(model, "lenet5", x, y, epochs=1, batch_size=8, seed=3, augment=False)
    assert len(flows) == 1


def test_fit_recipe_applies_the_schedule():
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 24)
    model = models.compile_recipe(models.seed003_tiny(seed=0), "fashion", learning_rate=0.002)
    assert model.optimizer.learning_rate == 0.002 and model.loss.name == "sparse_categorical_crossentropy"
    batches = []

    class Count(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            batches.append(logs["size"])
    history = models.fit_recipe(model, "fashion", x, y, epochs=2, batch_size=8, seed=0, callbacks=[Count()])
    assert history.history["lr"] == [0.002, 0.002] and batches == [8, 8, 8] * 2
    assert model.metadata["base_learning_rate"] == 0.002
    model.optimizer.learning_rate = 0.5                 # as a resumed run's optimizer would hold it
    history = models.fit_recipe(model, "fashion", x, y, epochs=10, initial_epoch=8, batch_size=8, seed=0)
    assert history.history["lr"] == pytest.approx([0.0006, 0.0006])     # base 0.002 times the factor 0.3
    plain = models.compile_recipe(models.seed003_tiny(seed=0), "seed003_tiny")
    history = models.fit_recipe(plain, "seed003_tiny", x[:6], y[:6], epochs=1, seed=0, callbacks=[Count()])
    assert "lr" not in history.history and batches[-6:] == [1] * 6


def test_fit_recipe_follows_a_cosine_decay_per_batch(monkeypatch):
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 20)
    monkeypatch.setitem(models.RECIPES, "seed003_tiny", {
        "optimizer": {"class_name": "SGD", "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 1e-3},
        "epochs": 3, "batch_size": 8, "cosine_decay": {"alpha": 0.1, "warmup_epochs": 1}})
    model = models.compile_recipe(models.seed003_tiny(seed=0), "seed003_tiny")
    rates = []

    class Rates(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            rates.append(self.model.optimizer.learning_rate)
    models.fit_recipe(model, "seed003_tiny", x, y, seed=0, callbacks=[Rates()])
    schedule = model.optimizer.schedule             # 3 batches per epoch: 3 warm-up steps, then 6 of decay
    assert schedule.get_config() == {"initial_learning_rate": pytest.approx(0.01), "decay_steps": 6, "alpha": 0.1,
                                     "name": "CosineDecay", "warmup_target": 0.1, "warmup_steps": 3}
    assert rates == pytest.approx([schedule(step) for step in range(9)])
    assert rates[0] == pytest.approx(0.01) and rates[3] == pytest.approx(0.1) and rates[-1] < 0.02
    assert models.cosine_schedule(0.5, epochs=4, steps_per_epoch=10)(40) == 0.0


def test_resnet8_is_a_functional_resnet():
    model = models.get("resnet8", seed=0)
    assert isinstance(model, gn.Model) and model.count_params() == 78_426 and model.output_shape == (None, 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[1:4] == ["RandomFlip", "ZeroPadding2D", "RandomCrop"]
    assert kinds.count("Add") == 3 and kinds.count("BatchNormalization") == kinds.count("Conv2D") == 9
    projections = [layer for layer in model.layers if isinstance(layer, layers.Conv2D) and layer.kernel_size == (1, 1)]
    assert [(p.strides, p.filters) for p in projections] == [((2, 2), 32), ((2, 2), 64)]
    assert all(not layer.use_bias for layer in model.layers if isinstance(layer, layers.Conv2D))
    lines = []
    model.summary(print_fn=lines.append)
    assert any(line.startswith("add_") or " (Add) " in line for line in lines) and "Total params: 78,426" in lines
    # the same seed gives the same weights; augmentation layers have none and are the identity at inference
    plain = models.get("resnet8", seed=0, augment=False)
    assert len(plain.layers) == len(model.layers) - 3
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    for a, b in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), model.predict(x, verbose=0))
    other = models.get("resnet8", seed=1, input_shape=(32, 32, 3), num_classes=4, widths=(8, 16, 16))
    assert other.output_shape == (None, 4) and not np.array_equal(other.get_weights()[0][..., :1, :8],
                                                                 model.get_weights()[0][..., :8])
    assert models.augment_option("resnet8", False) == {"augment": False}
    assert models.augment_option("fashion", False) == {}
    assert model.name == "resnet8"


def test_resnet_fashion_is_a_functional_resnet_with_a_deep_stem_and_a_dense_head():
    from glassnet import layers
    model = models.get("resnet_fashion", seed=0)
    assert isinstance(model, gn.Model) and model.count_params() == 874_282 and model.output_shape == (None, 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[1:4] == ["RandomFlip", "ZeroPadding2D", "RandomCrop"]
    assert kinds.count("Conv2D") == 5 and kinds.count("Add") == 1 and kinds.count("MaxPooling2D") == 2
    assert kinds[-4:] == ["Dense", "BatchNormalization", "ReLU", "Dense"] and "Flatten" in kinds
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert [(c.filters, c.kernel_size) for c in convs] == [(32, (3, 3)), (32, (3, 3)), (64, (3, 3)), (64, (3, 3)),
                                                          (64, (1, 1))]
    assert all(not c.use_bias for c in convs)
    add = next(layer for layer in model.layers if isinstance(layer, layers.Add))
    assert add.output_shape == (None, 14, 14, 64)
    plain = models.get("resnet_fashion", seed=0, augment=False)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    for a, b in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), model.predict(x, verbose=0))
    small = models.get("resnet_fashion", seed=1, input_shape=(32, 32, 3), num_classes=4, stem=(8,),
                       widths=(8, 16), head=12)
    assert small.output_shape == (None, 4) and small.count_params() < 10_000
    assert [type(layer).__name__ for layer in small.layers].count("Add") == 2
    assert "Dropout" not in kinds
    erased = models.get("resnet_fashion", seed=0, erasing=0.5)
    erasing = erased.layers[4]
    assert isinstance(erasing, layers.RandomErasing) and erasing.factor == (0.5, 0.5) and erasing.fill_value == 0.0
    assert "RandomErasing" not in kinds and len(erased.layers) == len(model.layers) + 1
    for a, b in zip(erased.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    dropped = models.get("resnet_fashion", seed=0, dropout=0.25)
    assert [type(layer).__name__ for layer in dropped.layers][-2:] == ["Dropout", "Dense"]
    assert dropped.layers[-2].rate == 0.25 and dropped.count_params() == 874_282


def test_resnet_fashion_trains_saves_and_resumes_with_its_recipe(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((48, 28, 28, 1), dtype=np.float32)
    y = (x[:, :14].mean(axis=(1, 2, 3)) > x[:, 14:].mean(axis=(1, 2, 3))).astype(np.int64)
    model = models.compile_recipe(models.get("resnet_fashion", seed=0, stem=(4, 4), widths=(8,), head=8),
                                  "resnet_fashion")
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "SGD" and optimizer.nesterov and optimizer.momentum == 0.9
    assert optimizer.weight_decay == 5e-3 and model.loss.get_config()["label_smoothing"] == 0.1
    history = models.fit_recipe(model, "resnet_fashion", x, y, epochs=3, batch_size=16, seed=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.optimizer.schedule.get_config()["decay_steps"] == 6          # 3 epochs x 3 batches - warm-up 3
    model.save(tmp_path / "resnet.npz")
    loaded = gn.load_model(tmp_path / "resnet.npz")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.loss.get_config() == model.loss.get_config()


@pytest.mark.parametrize("name", ["resnet8", "resnet_fashion"])
def test_resnet_batch_norm_statistics_follow_a_short_run(name):
    """Momentum 0.9 (not Keras's 0.99), so that a short run's moving statistics catch up (see models._conv_bn)."""
    from glassnet import layers
    model = models.get(name, seed=0, augment=False)
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    assert {layer.momentum for layer in norms} == {0.9}


def test_fit_recipe_trains_with_given_settings_instead_of_the_presets():
    rng = np.random.default_rng(1)
    x, y = rng.random((32, 28, 28, 1), dtype=np.float32), rng.integers(0, 2, 32)
    model = models.compile_recipe(models.get("resnet_fashion", seed=0, stem=(4,), widths=(8,), head=8),
                                  "resnet_fashion")
    settings = {**models.recipe("resnet_fashion"), "epochs": 2, "batch_size": 16}
    history = models.fit_recipe(model, "resnet_fashion", x, y, seed=0, settings=settings)
    assert len(history.history["loss"]) == 2 and models.recipe("resnet_fashion")["epochs"] == 12
    assert model.optimizer.schedule.get_config()["decay_steps"] == 2          # 2 epochs x 2 batches - warm-up 2
