"""Callbacks with Keras's semantics: History, EarlyStopping, ModelCheckpoint, LearningRateScheduler,
CSVLogger, TerminateOnNaN (see test_training) and the progress output."""
import csv
import io
import os
import sys

import numpy as np
import pytest

import glassnet as gn
from glassnet import callbacks, layers, optimizers
from glassnet.saving import load_model


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])[y] + rng.normal(0, 0.6, (n, 2)), y


def model(lr=0.05):
    m = gn.Sequential([layers.Dense(3, activation="softmax", input_shape=(2,), dtype="float64")], seed=0)
    m.compile(optimizers.SGD(lr), "sparse_categorical_crossentropy", ["accuracy"])
    return m


class Scores(callbacks.Callback):
    """Puts a scripted value under ``key`` in the epoch logs (runs before the callbacks after it)."""

    def __init__(self, values, key="score"):
        super().__init__()
        self.values, self.key = list(values), key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class WeightLog(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


X, Y = blobs()


# -- EarlyStopping ------------------------------------------------------------------------------
def test_early_stopping_waits_patience_epochs_without_improvement():
    stopper = callbacks.EarlyStopping(monitor="score", patience=2)
    history = model().fit(X, Y, epochs=10, verbose=0, callbacks=[Scores([5, 4, 4.5, 4.2, 3, 1, 1, 1, 1, 1]),
                                                                  stopper])
    assert history.epoch == [0, 1, 2, 3] and stopper.stopped_epoch == 3 and stopper.best == 4


def test_early_stopping_min_delta_mode_and_baseline():
    stopper = callbacks.EarlyStopping(monitor="score", patience=1, min_delta=0.5)
    history = model().fit(X, Y, epochs=6, verbose=0, callbacks=[Scores([5, 4.8, 4.6, 1, 1, 1]), stopper])
    assert history.epoch == [0, 1]                       # 4.8 is not 0.5 better than 5
    auto = callbacks.EarlyStopping(monitor="val_accuracy")
    assert auto.mode == "max" and callbacks.EarlyStopping(monitor="val_loss").mode == "min"
    rising = callbacks.EarlyStopping(monitor="score", patience=1, mode="max")
    history = model().fit(X, Y, epochs=5, verbose=0, callbacks=[Scores([1, 2, 3, 2, 5]), rising])
    assert history.epoch == [0, 1, 2, 3]
    baseline = callbacks.EarlyStopping(monitor="score", patience=2, baseline=0.5)
    history = model().fit(X, Y, epochs=5, verbose=0, callbacks=[Scores([1, 1, 1, 0, 0]), baseline])
    assert history.epoch == [0, 1]


def test_early_stopping_restores_the_best_weights():
    log = WeightLog()
    stopper = callbacks.EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    m = model()
    m.fit(X, Y, epochs=8, verbose=0, callbacks=[Scores([3, 1, 2, 2, 2, 2, 2, 2]), log, stopper])
    assert stopper.best_epoch == 1 and len(log.weights) == 4
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), log.weights[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(m.get_weights(), log.weights[3]))


def test_missing_monitor_warns_and_does_not_stop():
    with pytest.warns(RuntimeWarning, match="val_loss"):
        history = model().fit(X, Y, epochs=3, verbose=0, callbacks=[callbacks.EarlyStopping(patience=0)])
    assert history.epoch == [0, 1, 2]


@pytest.mark.parametrize("make, error", [
    (lambda: callbacks.EarlyStopping(patience=-1), ValueError),
    (lambda: callbacks.EarlyStopping(mode="biggest"), ValueError),
    (lambda: callbacks.EarlyStopping(monitor=3), TypeError),
    (lambda: callbacks.EarlyStopping(min_delta=float("nan")), ValueError),
    (lambda: callbacks.ModelCheckpoint(3.5), TypeError),
    (lambda: callbacks.ModelCheckpoint("x.npz", period=0), ValueError),
    (lambda: callbacks.LearningRateScheduler(0.1), TypeError),
    (lambda: callbacks.ProgbarLogger(verbose=5), ValueError),
    (lambda: callbacks.CSVLogger(None), TypeError),
])
def test_callback_arguments_are_validated(make, error):
    with pytest.raises(error, match="expects"):
        make()


# -- ModelCheckpoint -----------------------------------------------------------------------------
def test_checkpoint_formats_the_path_and_saves_loadable_models(tmp_path):
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.npz")
    m = model()
    history = m.fit(X[:40], Y[:40], epochs=3, verbose=0, validation_data=(X[40:], Y[40:]),
                    callbacks=[callbacks.ModelCheckpoint(pattern)])
    names = sorted(os.listdir(tmp_path))
    expected = [f"ckpt-{e + 1:02d}-{v:.2f}.npz" for e, v in enumerate(history.history["val_loss"])]
    assert names == sorted(expected)
    last = load_model(tmp_path / expected[-1])
    assert last.completed_epochs == 3
    assert all(np.array_equal(a, b) for a, b in zip(last.get_weights(), m.get_weights()))


def test_checkpoint_save_best_only_keeps_the_best(tmp_path):
    path = tmp_path / "best.npz"
    log = WeightLog()
    checkpoint = callbacks.ModelCheckpoint(path, monitor="score", save_best_only=True)
    model().fit(X, Y, epochs=5, verbose=0, callbacks=[Scores([3, 2, 2.5, 1, 4]), log, checkpoint])
    assert checkpoint.best == 1
    best = load_model(path)
    assert best.completed_epochs == 4
    assert all(np.array_equal(a, b) for a, b in zip(best.get_weights(), log.weights[3]))
    accuracy = callbacks.ModelCheckpoint(tmp_path / "acc.npz", monitor="val_accuracy", save_best_only=True)
    assert accuracy.mode == "max"


def test_checkpoint_weights_only_and_period(tmp_path):
    m = model()
    m.fit(X, Y, epochs=4, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}.npz"), save_weights_only=True, period=2)])
    assert sorted(os.listdir(tmp_path)) == ["w-2.npz", "w-4.npz"]
    fresh = model()
    fresh.load_weights(tmp_path / "w-4.npz")
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), m.get_weights()))
    with pytest.raises(ValueError, match="glassnet.model"):
        load_model(tmp_path / "w-4.npz")                  # weights only: not a whole model


def test_checkpoint_with_an_unknown_field_says_which(tmp_path):
    with pytest.raises(ValueError, match="val_loss"):
        model().fit(X, Y, epochs=1, verbose=0, callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "{val_loss}"))])


def test_a_crash_while_checkpointing_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    m = model()
    m.fit(X, Y, epochs=1, verbose=0, callbacks=[callbacks.ModelCheckpoint(path)])
    good = path.read_bytes()

    def crash(handle, **arrays):
        handle.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        m.fit(X, Y, epochs=3, initial_epoch=1, verbose=0, callbacks=[callbacks.ModelCheckpoint(path)])
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["model.npz"]   # no temporary left behind
    assert load_model(path).completed_epochs == 1


# -- LearningRateScheduler -----------------------------------------------------------------------
def test_scheduler_sets_the_rate_each_epoch_and_logs_it():
    seen = []

    class Spy(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.model.optimizer.learning_rate)
    m = model(lr=0.1)
    history = m.fit(X, Y, epochs=3, verbose=0,
                    callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2), Spy()])
    assert seen == [0.05, 0.025, 0.0125] and history.history["lr"] == seen
    one_arg = model()
    one_arg.fit(X, Y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e: 0.01 * (e + 1))])
    assert one_arg.optimizer.learning_rate == 0.02


def test_scheduler_refuses_bad_rates():
    with pytest.raises(ValueError, match="finite float"):
        model().fit(X, Y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: -1.0)])
    with pytest.raises(TypeError, match="finite float"):           # a wrong type
        model().fit(X, Y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: "fast")])
    with pytest.raises(ValueError, match="finite float"):
        model().fit(X, Y, epochs=1, verbose=0,
                    callbacks=[callbacks.LearningRateScheduler(lambda e, lr: float("nan"))])


# -- CSVLogger -----------------------------------------------------------------------------------
def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    m = model()
    h = m.fit(X[:40], Y[:40], epochs=2, verbose=0, validation_data=(X[40:], Y[40:]),
              callbacks=[callbacks.CSVLogger(path)])
    m.fit(X[:40], Y[:40], epochs=3, initial_epoch=2, verbose=0, validation_data=(X[40:], Y[40:]),
          callbacks=[callbacks.CSVLogger(path, append=True)])
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert float(rows[1][2]) == h.history["loss"][0]
    m.fit(X, Y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path)])      # append=False overwrites
    with open(path, newline="") as handle:
        assert len(list(csv.reader(handle))) == 2


# -- progress ------------------------------------------------------------------------------------
def test_verbose_2_writes_one_line_per_epoch(capsys):
    model().fit(X[:40], Y[:40], epochs=3, verbose=2, validation_data=(X[40:], Y[40:]))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3")
    assert all(key in lines[-1] for key in ("loss:", "accuracy:", "val_loss:", "val_accuracy:"))


def test_verbose_1_draws_a_tqdm_bar_with_eta_loss_and_accuracy():
    stream = io.StringIO()
    logger = callbacks.ProgbarLogger(verbose=1, stream=stream)
    assert logger.uses_bar
    model().fit(X, Y, epochs=2, batch_size=10, verbose=0, callbacks=[logger])
    text = stream.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "6/6" in text
    assert "loss:" in text and "accuracy:" in text and "batch/s" in text and "<" in text   # rate and ETA


def test_without_tqdm_verbose_1_falls_back_to_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    stream = io.StringIO()
    logger = callbacks.ProgbarLogger(verbose=1, stream=stream)
    assert not logger.uses_bar
    model().fit(X, Y, epochs=2, verbose=0, callbacks=[logger])
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2")


def test_verbose_0_is_silent(capsys):
    model().fit(X, Y, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_history_resets_for_every_fit():
    m = model()
    first = m.fit(X, Y, epochs=2, verbose=0)
    second = m.fit(X, Y, epochs=1, verbose=0)
    assert len(first.history["loss"]) == 2 and len(second.history["loss"]) == 1 and m.history is second


@pytest.mark.parametrize("make", [lambda p: callbacks.CSVLogger(p), lambda p: callbacks.ModelCheckpoint(p)])
def test_a_folder_given_as_the_file_is_refused_with_a_suggested_file(tmp_path, make):
    with pytest.raises(ValueError, match="an existing folder.*Name a file inside it"):
        make(tmp_path)
