"""glassnet.models: the named presets, their sizes and their training recipes."""
import numpy as np
import pytest

from glassnet import callbacks, layers, models


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
    assert models.available() == ["seed003_tiny", "keras_mnist", "seed000_tanh", "lenet5", "fashion"]
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
