"""Issue 19 item 2: predict and every explanation from many threads on one shared model, bit for bit
equal to serial results; two threads training one model at once get a clear error, not corruption.

Every call keeps its state in its own tape (glassnet.engine), so concurrent calls cannot see each
other's caches or ReLU rules. The serial results are computed on a worker thread too, so the
comparison is about sharing the model, not about which thread computes (see issue 19 item 4).
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers

ROUNDS = 4
THREADS = 6


def shared_model():
    """Two stacked ReLU convolutions (a gate moved between them), a fusable pair, BatchNorm, GAP."""
    model = gn.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)),
        layers.Conv2D(6, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(8, 3, padding="same"),
        layers.ReLU(),
        layers.BatchNormalization(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax"),
    ], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    model.fit(rng.random((16, 12, 12, 1)), rng.integers(0, 3, 16), epochs=1, batch_size=8, verbose=0, seed=0)
    return model


def tasks(model, x):
    """(name, call) for predict and every explain method."""
    importance = np.random.default_rng(3).random(x.shape[:3])
    return [
        ("predict", lambda: model.predict(x)),
        ("predict_logits", lambda: model.predict(x, logits=True)),
        ("input_gradients", lambda: explain.input_gradients(model, x)),
        ("guided", lambda: explain.saliency(model, x, modifier="guided")),
        ("rectified", lambda: explain.input_gradients(model, x, modifier="rectified")),
        ("saliency_probability", lambda: explain.saliency(model, x, score="probability")),
        ("smooth_grad", lambda: explain.smooth_grad(model, x, samples=3, seed=0)),
        ("integrated_gradients", lambda: explain.integrated_gradients(model, x, steps=4)),
        ("grad_cam", lambda: explain.grad_cam(model, x)),
        ("grad_cam_first_guided", lambda: explain.grad_cam(model, x, layer=0, modifier="guided")),
        ("grad_cam_plus_plus", lambda: explain.grad_cam_plus_plus(model, x)),
        ("guided_grad_cam", lambda: explain.guided_grad_cam(model, x)),
        ("cam", lambda: explain.cam(model, x)),
        ("occlusion", lambda: explain.occlusion(model, x, window=4)),
        ("activation_maximization", lambda: explain.activation_maximization(model, 3, 1, steps=3, seed=0)),
        ("feature_maps", lambda: explain.feature_maps(model, x, 1)),
        ("deletion_insertion", lambda: explain.deletion_insertion(model, x, importance, steps=4, seed=0)),
    ]


def as_arrays(result):
    """A result as a list of arrays (explanations return arrays or named tuples of arrays)."""
    if isinstance(result, tuple):
        return [np.asarray(part) for part in result]
    return [np.asarray(result)]


def test_predict_and_every_explanation_from_many_threads_equal_the_serial_results():
    model = shared_model()
    x = np.random.default_rng(2).random((5, 12, 12, 1)).astype("float32")
    jobs = tasks(model, x)
    with ThreadPoolExecutor(1) as one:
        serial = {name: as_arrays(one.submit(call).result()) for name, call in jobs}
    weights = model.get_weights()
    order = np.random.default_rng(4)
    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(ROUNDS):
            picked = [jobs[i] for i in order.permutation(len(jobs))] * 2
            futures = [(name, pool.submit(call)) for name, call in picked]
            for name, future in futures:
                got = as_arrays(future.result())
                assert len(got) == len(serial[name])
                for a, b in zip(got, serial[name]):
                    np.testing.assert_array_equal(a, b, err_msg=name)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))


def test_a_second_thread_training_the_same_model_gets_a_clear_error():
    model = shared_model()
    rng = np.random.default_rng(5)
    x, y = rng.random((32, 12, 12, 1)), rng.integers(0, 3, 32)
    inside, release = threading.Event(), threading.Event()

    class Hold(gn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            inside.set()
            release.wait(30)

    worker = threading.Thread(target=model.fit, args=(x, y), kwargs=dict(epochs=1, batch_size=16, verbose=0,
                                                                        callbacks=[Hold()]))
    worker.start()
    try:
        assert inside.wait(30)
        before = model.get_weights()
        with pytest.raises(RuntimeError, match="one thread at a time"):
            model.train_on_batch(x[:8], y[:8])
        with pytest.raises(RuntimeError, match="one thread at a time"):
            model.fit(x, y, epochs=1, verbose=0)
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))    # nothing half-done
        assert model.predict(x[:2]).shape == (2, 3)                   # predicting meanwhile is fine
    finally:
        release.set()
        worker.join(60)
    model.train_on_batch(x[:8], y[:8])                # free again once the first fit returned


def test_the_same_thread_may_nest_training_calls():
    model = shared_model()
    rng = np.random.default_rng(6)
    x, y = rng.random((8, 12, 12, 1)), rng.integers(0, 3, 8)

    class Nested(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.loss = self.model.train_on_batch(x, y)

    nested = Nested()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[nested])
    assert np.isfinite(nested.loss)
