"""Sequential.fit / evaluate / train_on_batch / test_on_batch: Keras semantics, the fused logits path,
reproducibility, generators and the non-finite guard."""
import math

import numpy as np
import pytest

import glassnet as gn
from glassnet import callbacks, layers, losses, optimizers
from glassnet.layers import Layer
from glassnet.preprocessing import ImageDataGenerator
from glassnet.trainers import numerics, trainer


# -- fixtures ----------------------------------------------------------------------------------
def blobs(n=150, seed=0):
    """Three well separated Gaussian blobs in 2-D: a linear model learns them to ~100%."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    return centres[y] + rng.normal(0, 0.6, (n, 2)), y


def images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 6, 6, 1))
    x[np.arange(n), 2 * y, 2 * y, 0] += 2.0      # a bright pixel whose place tells the class
    return x, y


def small_cnn(seed=0, dtype="float64", dropout=0.3):
    return gn.Sequential([
        layers.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1), dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype), layers.Flatten(dtype=dtype), layers.Dropout(dropout, dtype=dtype),
        layers.Dense(3, activation="softmax", dtype=dtype)], seed=seed)


def dense_model(seed=0, dtype="float64", activation="softmax"):
    return gn.Sequential([layers.Dense(3, activation=activation, input_shape=(2,), dtype=dtype)], seed=seed)


def compiled(model, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    model.compile(optimizer, loss, list(metrics))
    return model


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events, self.batch_logs = [], []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.events.append("train_end")


# -- fit basics --------------------------------------------------------------------------------
def test_fit_learns_and_returns_keras_history():
    x, y = blobs()
    model = compiled(dense_model(), optimizers.Adam(0.05))
    history = model.fit(x, y, epochs=8, batch_size=16, validation_split=0.2, verbose=0, seed=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == list(range(8))
    assert all(len(v) == 8 for v in history.history.values())
    assert history.history["loss"][-1] < history.history["loss"][0] / 2
    assert history.history["val_accuracy"][-1] > 0.95
    assert model.history is history and model.completed_epochs == 8


def test_validation_split_holds_out_the_last_samples_before_shuffling():
    x, y = blobs(100)
    model = compiled(dense_model())
    history = model.fit(x, y, epochs=2, batch_size=7, validation_split=0.25, shuffle=True, verbose=0, seed=1)
    loss, accuracy = model.evaluate(x[75:], y[75:], batch_size=7)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-12)
    assert history.history["val_accuracy"][-1] == pytest.approx(accuracy, rel=1e-12)
    # ... and training saw only the first 75: its batch sizes add up to 75 per epoch
    recorder = Recorder()
    model.fit(x, y, epochs=1, batch_size=7, validation_split=0.25, verbose=0, callbacks=[recorder])
    assert sum(log["size"] for log in recorder.batch_logs) == 75
    assert [log["size"] for log in recorder.batch_logs] == [7] * 10 + [5]


def test_validation_data_is_used_instead_of_split():
    x, y = blobs(90)
    model = compiled(dense_model())
    history = model.fit(x[:60], y[:60], epochs=1, verbose=0, validation_data=(x[60:], y[60:]),
                        validation_split=0.5)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[60:], y[60:])[0], rel=1e-12)


def test_epoch_logs_are_sample_weighted_means_of_the_batches():
    x, y = blobs(50)
    model = compiled(dense_model())
    recorder = Recorder()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[recorder], seed=0)
    logs = recorder.events[-2][2]
    sizes = np.array([b["size"] for b in recorder.batch_logs])
    for key in ("loss", "accuracy"):
        expected = np.sum([b[key] for b in recorder.batch_logs] * sizes) / sizes.sum()
        assert logs[key] == pytest.approx(expected, rel=1e-12)


def test_initial_epoch_and_epochs_follow_keras():
    x, y = blobs(40)
    model = compiled(dense_model())
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4] and model.completed_epochs == 5
    assert model.fit(x, y, epochs=2, initial_epoch=2, verbose=0).epoch == []


def test_steps_per_epoch_caps_the_batches_of_arrays():
    x, y = blobs(100)
    recorder = Recorder()
    compiled(dense_model()).fit(x, y, epochs=1, batch_size=10, steps_per_epoch=3, verbose=0,
                                callbacks=[recorder])
    assert len(recorder.batch_logs) == 3


def test_callback_hooks_run_in_keras_order():
    x, y = blobs(20)
    recorder = Recorder()
    compiled(dense_model()).fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[recorder])
    kinds = [e if isinstance(e, str) else e[:2] for e in recorder.events]
    assert kinds == ["train_begin", ("epoch_begin", 0), ("epoch_end", 0), ("epoch_begin", 1), ("epoch_end", 1),
                     "train_end"]
    assert [b["batch"] for b in recorder.batch_logs] == [0, 1, 0, 1]


def test_stop_training_from_a_callback_ends_after_that_batch():
    class StopAt(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True
    x, y = blobs(100)
    recorder = Recorder()
    history = compiled(dense_model()).fit(x, y, epochs=4, batch_size=10, verbose=0,
                                          callbacks=[StopAt(), recorder])
    assert len(recorder.batch_logs) == 3 and history.epoch == [0]


# -- reproducibility ---------------------------------------------------------------------------
def test_seed_makes_fit_reproducible_with_dropout_and_shuffle():
    x, y = images()
    runs = []
    for seed in (5, 5, 6):
        model = compiled(small_cnn(), optimizers.SGD(0.1, momentum=0.9))
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=seed)
        runs.append(model)
    assert same_weights(runs[0], runs[1])
    assert not same_weights(runs[0], runs[2])


def test_a_generator_seeds_models_and_layers_as_the_int_drawn_from_it(tmp_path):
    """Sequential(seed=Generator) and Dropout(seed=Generator): the same stream gives the same
    weights and masks, the seed saved is an int, and the saved model loads with it."""
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        model = gn.Sequential([layers.Dense(4, input_shape=(3,), dtype="float64"),
                               layers.Dropout(0.5, seed=rng, dtype="float64")], seed=rng)
        runs.append((model, model.layers[1].forward(np.ones((2, 4)), training=True)))
    assert isinstance(runs[0][0].seed, int) and isinstance(runs[0][0].layers[1].seed, int)
    assert same_weights(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    runs[0][0].save(tmp_path / "m.npz")
    loaded = gn.load_model(tmp_path / "m.npz")
    assert loaded.seed == runs[0][0].seed and loaded.layers[1].seed == runs[0][0].layers[1].seed


def test_shuffle_changes_the_batches_and_false_keeps_the_order():
    x, y = blobs(30)
    orders = []
    for shuffle in (False, True):
        model = compiled(dense_model())
        first = model.layers[0]
        seen = []
        first.apply = lambda batch, training=False, **kw: (seen.append(batch.copy()),
                                                           type(first).apply(first, batch, training, **kw))[1]
        model.fit(x, y, epochs=1, batch_size=30, shuffle=shuffle, verbose=0, seed=0)
        orders.append(seen[0])       # the (single) batch the Dense layer saw
    assert np.array_equal(orders[0], x)
    assert not np.array_equal(orders[1], x)
    assert np.array_equal(np.sort(orders[1], axis=0), np.sort(x, axis=0))


def test_inputs_are_converted_once_to_the_model_dtype():
    x, y = blobs(20)
    for dtype in ("float32", "float64"):
        model = compiled(dense_model(dtype=dtype))
        first, seen = model.layers[0], []
        first.apply = lambda batch, training=False, **kw: (seen.append(batch.dtype),
                                                           type(first).apply(first, batch, training, **kw))[1]
        model.fit((x * 10).astype(np.int32), y, epochs=1, verbose=0)
        assert set(seen) == {np.dtype(dtype)}
        assert all(w.dtype == np.dtype(dtype) for w in model.get_weights())


# -- fused softmax + cross-entropy ---------------------------------------------------------------
class Unfused(losses.CategoricalCrossentropy):
    def fuses_with(self, activation):
        return False


def test_fused_path_is_used_and_matches_the_probability_path():
    x, y = blobs(32)
    onehot = np.eye(3)[y]
    fused = compiled(dense_model(), optimizers.SGD(0.5), "categorical_crossentropy")
    plain = compiled(dense_model(), optimizers.SGD(0.5), Unfused())
    calls = {"logits": 0}
    original = fused.loss.value_and_grad_logits

    def counting(*args):
        calls["logits"] += 1
        return original(*args)
    fused.loss.value_and_grad_logits = counting
    for _ in range(3):
        a = fused.train_on_batch(x, onehot)
        b = plain.train_on_batch(x, onehot)
        assert a[0] == pytest.approx(b[0], rel=1e-9)
    assert calls["logits"] == 3
    for u, v in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


def test_fused_path_stays_finite_where_probabilities_saturate():
    x = np.array([[200.0, -200.0], [-200.0, 200.0]])
    model = compiled(dense_model(), optimizers.SGD(0.1), "sparse_categorical_crossentropy", ())
    model.layers[0].set_weights([np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]]), np.zeros(3)])
    loss = model.train_on_batch(x, np.array([1, 0]))      # the wrong classes: logits differ by 800
    assert loss == pytest.approx(800.0, rel=1e-12)       # exact log-sum-exp, not log(1e-7) = 16.1
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_separate_softmax_layer_and_mse_take_the_right_paths():
    x, y = blobs(24)
    model = gn.Sequential([layers.Dense(3, input_shape=(2,), dtype="float64"), layers.Activation("softmax")])
    compiled(model, "sgd", "categorical_crossentropy")
    assert model._fusable()
    model.train_on_batch(x, np.eye(3)[y])
    mse = compiled(dense_model(), "sgd", "mse", ())
    assert not mse._fusable()
    assert mse.train_on_batch(x, np.eye(3)[y]) > 0
    sigmoid = compiled(dense_model(activation="sigmoid"), "sgd", "binary_crossentropy", ())
    assert sigmoid._fusable()
    separate = gn.Sequential([layers.Dense(1, input_shape=(2,)), layers.Activation("sigmoid")])
    compiled(separate, "sgd", "binary_crossentropy", ())
    assert not separate._fusable()        # a separate sigmoid layer is not skipped by logits=True
    assert math.isfinite(separate.train_on_batch(x, (y > 0).astype(float)))


# -- evaluate / train_on_batch / test_on_batch --------------------------------------------------
def test_evaluate_matches_a_hand_computed_cross_entropy():
    x, y = blobs(37)
    model = compiled(dense_model())
    probs = model.predict(x)
    expected_loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    loss, accuracy = model.evaluate(x, y, batch_size=5)
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert accuracy == pytest.approx(np.mean(probs.argmax(1) == y))
    no_metrics = compiled(dense_model(), metrics=())
    assert isinstance(no_metrics.evaluate(x, y), float)


def test_train_on_batch_updates_and_test_on_batch_does_not():
    x, y = blobs(16)
    model = compiled(dense_model(), optimizers.SGD(0.1))
    before = model.get_weights()
    test = model.test_on_batch(x, y)
    assert same_weights(model, dense_model()) and len(test) == 2
    train = model.train_on_batch(x, y)
    assert train[0] == pytest.approx(test[0], rel=1e-12)          # the loss before the update
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.test_on_batch(x, y)[0] < test[0]


def test_evaluate_verbose_writes_only_through_the_progress_callback(capsys):
    x, y = blobs(20)
    model = compiled(dense_model())
    model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=2)
    assert "Evaluate" in capsys.readouterr().out


# -- generators ----------------------------------------------------------------------------------
def test_fit_accepts_image_data_generator_flow():
    x, y = images(40)
    model = compiled(small_cnn())
    flow = ImageDataGenerator(horizontal_flip=True).flow(x, y, batch_size=8, seed=0)
    recorder = Recorder()
    history = model.fit(flow, epochs=2, verbose=0, callbacks=[recorder], validation_data=(x[:8], y[:8]))
    assert len(recorder.batch_logs) == 2 * len(flow) == 10
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_fit_accepts_python_generators_with_steps_per_epoch():
    x, y = blobs(60)

    def batches():
        while True:
            for start in range(0, 60, 20):
                yield x[start:start + 20], y[start:start + 20]
    model = compiled(dense_model())
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(batches(), epochs=1, verbose=0)
    history = model.fit(batches(), steps_per_epoch=3, epochs=3, verbose=0)
    assert history.epoch == [0, 1, 2]


def test_a_finite_generator_that_runs_out_ends_training():
    x, y = blobs(40)
    finite = iter([(x[:20], y[:20]), (x[20:], y[20:]), (x[:20], y[:20])])
    with pytest.warns(RuntimeWarning, match="ran out"):
        history = compiled(dense_model()).fit(finite, steps_per_epoch=2, epochs=5, verbose=0)
    assert history.epoch == [0, 1]


def test_keras_style_sequences_are_indexed_per_batch():
    x, y = blobs(30)

    class Batches:
        def __init__(self):
            self.epochs_ended = 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[10 * i:10 * i + 10], y[10 * i:10 * i + 10]

        def on_epoch_end(self):
            self.epochs_ended += 1
    sequence = Batches()
    compiled(dense_model()).fit(sequence, epochs=2, verbose=0)
    assert sequence.epochs_ended == 2


def test_generator_batches_are_validated():
    x, y = blobs(20)
    bad = iter([(x, y), (x[:, :1], y)])
    with pytest.raises(ValueError, match="per-example shape"):
        compiled(dense_model()).fit(bad, steps_per_epoch=2, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="pairs"):                  # an array, not a pair: a wrong type
        compiled(dense_model()).fit(iter([x]), steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match="pairs"):                 # a tuple of 4: a wrong value
        compiled(dense_model()).fit(iter([(x, y, None, None)]), steps_per_epoch=1, verbose=0)


# -- the non-finite guard (issue 8 item 2) ------------------------------------------------------
def test_exploding_training_stops_with_the_epoch_batch_and_layer():
    x, y = images(64)
    model = compiled(small_cnn(dropout=0.0, dtype="float32"), optimizers.SGD(1e12))
    with pytest.raises(RuntimeError) as info:
        model.fit(x * 100, y, epochs=3, batch_size=8, verbose=0, seed=0)
    text = str(info.value)
    assert "epoch" in text and "batch" in text and "check_numerics=False" in text
    assert any(f"'{layer.name}'" in text for layer in model.layers)
    assert all(np.isfinite(w).all() for w in model.get_weights())     # the bad batch was not applied


def test_the_first_layer_with_a_non_finite_output_is_named():
    x, y = images(16)
    model = compiled(small_cnn(dropout=0.0, dtype="float32"))
    model.layers[0].params["kernel"][...] = 1e38          # finite weights, but 9 * 1e38 overflows float32
    with pytest.raises(RuntimeError, match=rf"output .*first in layer '{model.layers[0].name}'"):
        model.fit(np.abs(x) + 1, y, epochs=1, batch_size=8, verbose=0)
    model.layers[0].params["kernel"][0, 0, 0, 0] = np.inf
    with pytest.raises(RuntimeError, match=rf"weights 'kernel' in layer '{model.layers[0].name}'"):
        model.train_on_batch(x, y)


class Poison(Layer):
    """Identity forward; backward returns NaN (a bug in a custom layer)."""

    def apply(self, x, training=False):
        self.ensure_built(x)
        return x, None

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return dy * np.nan, {}


def test_a_non_finite_gradient_names_the_layer_where_it_appeared():
    x, y = images(16)
    model = gn.Sequential([layers.Conv2D(2, 3, input_shape=(6, 6, 1), dtype="float64"),
                           Poison(name="poison", dtype="float64"), layers.Flatten(dtype="float64"),
                           layers.Dense(3, activation="softmax", dtype="float64")])
    compiled(model)
    before = model.get_weights()
    with pytest.raises(RuntimeError, match="gradient .*first in layer 'poison'") as info:
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert "epoch 1, batch 1" in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # without the guard NumPy warns about the overflow
def test_opting_out_trains_on_and_terminate_on_nan_stops():
    x, y = images(32)
    model = compiled(small_cnn(dropout=0.0, dtype="float32"), optimizers.SGD(1e12))
    history = model.fit(x * 100, y, epochs=3, batch_size=8, verbose=0, check_numerics=False)
    assert history.epoch == [0, 1, 2] and not np.isfinite(history.history["loss"][-1])
    model = compiled(small_cnn(dropout=0.0, dtype="float32"), optimizers.SGD(1e12))
    stopper = callbacks.TerminateOnNaN()
    history = model.fit(x * 100, y, epochs=3, batch_size=8, verbose=0, check_numerics=False, callbacks=[stopper])
    assert stopper.stopped_batch is not None and history.epoch == [stopper.stopped_batch[0]]


def test_replaying_a_bad_batch_leaves_random_state_and_statistics_alone():
    x, y = images(16)
    model = gn.Sequential([layers.Conv2D(2, 3, input_shape=(6, 6, 1), dtype="float64"),
                           layers.BatchNormalization(dtype="float64"), layers.Dropout(0.5, dtype="float64"),
                           Poison(name="poison2", dtype="float64"), layers.Flatten(dtype="float64"),
                           layers.Dense(3, activation="softmax", dtype="float64")])
    compiled(model)
    model.forward(x, training=True)
    model.backward(np.ones((16, 3)))
    stats = [w.copy() for w in model.layers[1].non_trainable.values()]
    state = model.layers[2].rng.bit_generator.state
    with pytest.raises(RuntimeError):
        numerics.raise_non_finite(model, [x], [y], trainer.fusion(model), "test")
    assert model.layers[2].rng.bit_generator.state == state
    assert all(np.array_equal(a, b) for a, b in zip(stats, model.layers[1].non_trainable.values()))
