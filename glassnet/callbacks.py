"""Callbacks for ``Sequential.fit``, with Keras 2's names and semantics.

A callback is an object whose hooks ``fit`` calls at fixed points::

    on_train_begin(logs)  ->  [ on_epoch_begin(epoch, logs)
                                -> [ on_batch_begin(batch, logs) -> on_batch_end(batch, logs) ]*
                                -> on_epoch_end(epoch, logs) ]*  ->  on_train_end(logs)

``epoch`` and ``batch`` count from 0. Batch logs hold ``batch``, ``size``, ``loss`` and the
metrics of that batch; epoch logs hold the epoch means of ``loss`` and the metrics plus
``val_loss`` / ``val_<metric>`` when there is validation data. Setting
``model.stop_training = True`` ends ``fit`` after the current batch.

Only :class:`ProgbarLogger` (and the ``verbose=`` option of the others) writes text, and only to
the stream it is given (``sys.stdout`` by default) when the user asked for it with ``verbose``;
it draws with :mod:`glassnet.progress`, as :class:`glassnet.utils.Progbar` does for loops written
by hand.
"""
import csv
import inspect
import math
import os
import sys
import time
import warnings

import numpy as np

from glassnet.errors import describe, message
from glassnet.progress import RunningMeans, format_logs, load_tqdm, say
from glassnet.validation import check_int, check_real


class Callback:
    """Base class: every hook does nothing. ``self.model`` and ``self.params`` are set by ``fit``.

    ``params`` holds ``epochs``, ``steps`` (batches per epoch, None when unknown), ``samples``,
    ``batch_size``, ``verbose``, ``metrics`` (the History keys) and ``initial_epoch``.
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None):
        """Before the first epoch."""

    def on_train_end(self, logs=None):
        """After the last epoch (not called when ``fit`` raises)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Before epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch, logs=None):
        """After epoch ``epoch`` and its validation; ``logs`` may be extended for later callbacks."""

    def on_batch_begin(self, batch, logs=None):
        """Before a training batch (only called for callbacks that override it: keeps ``fit`` fast)."""

    def on_batch_end(self, batch, logs=None):
        """After a training batch and its weight update."""

    def on_test_begin(self, logs=None):
        """Before ``evaluate`` runs its batches."""

    def on_test_batch_end(self, batch, logs=None):
        """After each ``evaluate`` batch."""

    def on_test_end(self, logs=None):
        """After ``evaluate``; ``logs`` holds the results."""


def _overrides(callback, hook):
    # A hook set on the instance (LambdaCallback) counts as well as one defined by a subclass.
    function = getattr(callback, hook)
    return getattr(function, "__func__", function) is not getattr(Callback, hook)


class CallbackList:
    """Calls one hook on every callback in order; per-batch hooks only on those that define them."""

    def __init__(self, callbacks, model=None, params=None):
        callbacks = list(callbacks or [])
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(message("Sequential.fit(callbacks=...)", "a list of glassnet Callback instances",
                                        describe(callback), "Subclass glassnet.callbacks.Callback, or pass "
                                        "e.g. callbacks.EarlyStopping(patience=2)."))
            callback.set_model(model)
            callback.set_params(params or {})
        self.callbacks = callbacks
        self._batch_begin = [c for c in callbacks if _overrides(c, "on_batch_begin")]
        self._batch_end = [c for c in callbacks if _overrides(c, "on_batch_end")]
        self._test_batch = [c for c in callbacks if _overrides(c, "on_test_batch_end")]

    @property
    def wants_batches(self):
        """True when some callback listens to batches (``fit`` then builds batch logs)."""
        return bool(self._batch_begin or self._batch_end)

    def _call(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs if logs is not None else {})

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs if logs is not None else {})

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs if logs is not None else {})

    def on_epoch_end(self, epoch, logs):
        self._call("on_epoch_end", epoch, logs)

    def on_batch_begin(self, batch, logs):
        for callback in self._batch_begin:
            callback.on_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs):
        for callback in self._batch_end:
            callback.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs if logs is not None else {})

    def on_test_batch_end(self, batch, logs):
        for callback in self._test_batch:
            callback.on_test_batch_end(batch, logs)

    def on_test_end(self, logs):
        self._call("on_test_end", logs)


class History(Callback):
    """Records epoch logs: ``history[key]`` is a list with one value per epoch; ``epoch`` the epoch numbers.

    ``fit`` returns it (and keeps it as ``model.history``).
    """

    def __init__(self):
        super().__init__()
        self.epoch = []
        self.history = {}

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class ProgbarLogger(Callback):
    """Progress output of ``fit`` / ``evaluate``.

    Parameters
    ----------
    verbose : {1, 2}
        1: a live bar per epoch (tqdm) with ETA, running loss and metrics; 2: one line per epoch.
        Without tqdm installed, 1 behaves like 2.
    stream : file-like, optional
        Where to write (default ``sys.stdout``).
    """

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        if verbose not in (1, 2):
            raise ValueError(message("ProgbarLogger", "verbose 1 (bar) or 2 (one line per epoch)", repr(verbose)))
        self.verbose = verbose
        self.stream = stream
        self._tqdm = load_tqdm() if verbose == 1 else None
        self._bar = None

    @property
    def uses_bar(self):
        return self._tqdm is not None

    def _new_bar(self, total, desc):
        return self._tqdm(total=total, desc=desc, unit="batch", file=self.stream or sys.stdout, leave=True,
                          dynamic_ncols=True, mininterval=0.2)

    # -- fit -------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._running = RunningMeans()
        self._desc = f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}"
        if self.uses_bar:
            self._bar = self._new_bar(self.params.get("steps"), self._desc)

    def on_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        self._running.add([(k, v) for k, v in logs.items() if k not in ("batch", "size")], logs.get("size", 1))
        self._bar.set_postfix_str(format_logs(self._running.means()), refresh=False)
        self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        text = format_logs(logs or {})
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.close()
            self._bar = None
        else:
            say(self.stream, f"{self._desc} - {time.perf_counter() - self._start:.1f}s - {text}")

    def on_train_end(self, logs=None):
        if self._bar is not None:  # fit stopped mid-epoch (stop_training)
            self._bar.close()
            self._bar = None

    # -- evaluate --------------------------------------------------------------------------
    def on_test_begin(self, logs=None):
        self._start = time.perf_counter()
        if self.uses_bar:
            self._bar = self._new_bar(self.params.get("steps"), "Evaluate")

    def on_test_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)

    def on_test_end(self, logs=None):
        text = format_logs(logs or {})
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.close()
            self._bar = None
        else:
            say(self.stream, f"Evaluate - {time.perf_counter() - self._start:.1f}s - {text}")


def _monitor_mode(mode, monitor, where):
    """``np.less`` or ``np.greater`` for mode min/max/auto (auto: max for accuracies, else min)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(message(where, "mode 'auto', 'min' or 'max'", repr(mode)))
    if mode == "auto":
        mode = "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
    return mode


def _check_monitor(monitor, where):
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(message(where, "monitor as a logs key such as 'val_loss'", describe(monitor)))
    return monitor


def _missing_monitor(where, monitor, logs):
    warnings.warn(f"{where}: the monitored quantity {monitor!r} is not in the logs (available: "
                  f"{sorted(k for k in logs if k not in ('batch', 'size'))}); skipping. Pass validation data "
                  f"for 'val_*' keys, or monitor one of those.", RuntimeWarning, stacklevel=3)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        Epoch logs key, e.g. ``"val_loss"`` or ``"val_accuracy"``.
    min_delta : float
        Changes smaller than this do not count as improvement.
    patience : int
        Epochs without improvement after which training stops.
    mode : {"auto", "min", "max"}
        "auto": "max" when the key contains "acc", else "min".
    baseline : float, optional
        Training stops if the model does not beat this.
    restore_best_weights : bool
        When stopping, set the weights back to those of the best epoch.
    start_from_epoch : int
        Epochs (counted from 0) to let pass before watching at all, as Keras 3's warm-up.
    verbose : int
        1 writes "Epoch N: early stopping" to ``stream``.

    Attributes
    ----------
    stopped_epoch : int
        Epoch (0-based) at which training stopped, 0 if it did not stop early.
    best : float
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, stream=None, start_from_epoch=0):
        super().__init__()
        where = "EarlyStopping"
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch", where, minimum=0)
        self.monitor = _check_monitor(monitor, where)
        self.patience = check_int(patience, "patience", where, minimum=0)
        min_delta = check_real(min_delta, "min_delta", where)
        self.mode = _monitor_mode(mode, self.monitor, where)
        self.min_delta = abs(min_delta) * (1 if self.mode == "max" else -1)
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose, self.stream = verbose, stream
        self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, None

    def _improved(self, current, best):
        return current > best if self.mode == "max" else current < best

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, None
        if self.baseline is not None:
            self.best = float(self.baseline)
        else:
            self.best = -np.inf if self.mode == "max" else np.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            _missing_monitor("EarlyStopping", self.monitor, logs)
            return
        if epoch < self.start_from_epoch:       # still warming up (Keras 3)
            return
        if self._improved(current - self.min_delta, self.best):
            self.best, self.wait, self.best_epoch = current, 0, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)
            if self.verbose:
                say(self.stream, f"Epoch {epoch + 1}: early stopping")


def _file_path(value, where, name, example):
    """``value`` as a str path to a file (not an existing folder), or glassnet's own error."""
    try:
        path = os.fspath(value)
    except TypeError:
        raise TypeError(message(where, f"{name} as a str or path", describe(value))) from None
    if os.path.isdir(path):
        raise ValueError(message(where, f"{name} naming a file", f"{path!r}, an existing folder",
                                 f"Name a file inside it, e.g. {os.path.join(path, example)!r}."))
    return path


class ModelCheckpoint(Callback):
    """Save the model (atomically: temporary file, fsync, rename) after every epoch or when it improves.

    Parameters
    ----------
    filepath : str or os.PathLike
        May contain ``str.format`` fields filled from the epoch (1-based) and the logs, e.g.
        ``"ckpt-{epoch:02d}-{val_loss:.2f}.npz"``.
    monitor : str
        Logs key compared when ``save_best_only``.
    save_best_only : bool
        Only overwrite when ``monitor`` improved.
    save_weights_only : bool
        Write only the weights (``model.save_weights``) instead of the full model.
    mode : {"auto", "min", "max"}
    period : int
        Epochs between checkpoints.
    verbose : int
        1 writes a line per save to ``stream``.

    A crash at any moment leaves either the previous checkpoint or the new one, complete.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", period=1, stream=None):
        super().__init__()
        where = "ModelCheckpoint"
        self.filepath = _file_path(filepath, where, "filepath", "model.npz")
        self.monitor = _check_monitor(monitor, where)
        self.mode = _monitor_mode(mode, self.monitor, where)
        self.period = check_int(period, "period", where, minimum=1)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.verbose, self.stream = verbose, stream
        self.best = -np.inf if self.mode == "max" else np.inf
        self._since_last = 0
        self.last_saved = None

    def _path(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(message("ModelCheckpoint", "filepath fields that exist in the logs "
                                     f"(epoch, {', '.join(sorted(logs))})", f"{self.filepath!r} ({error!r})",
                                     "Use e.g. 'ckpt-{epoch:02d}.npz', and pass validation data for {val_loss}."
                                     )) from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._since_last += 1
        if self._since_last < self.period:
            return
        self._since_last = 0
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                _missing_monitor("ModelCheckpoint", self.monitor, logs)
                return
            improved = current > self.best if self.mode == "max" else current < self.best
            if not improved:
                return
            self.best = current
        path = self._path(epoch, logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.last_saved = path
        if self.verbose:
            say(self.stream, f"Epoch {epoch + 1}: saved model to {path}")


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to ``schedule(epoch, lr)``.

    ``schedule`` takes the epoch (0-based) and the current learning rate (or just the epoch) and
    returns the new rate. The rate in effect is added to the epoch logs as ``lr``.
    """

    def __init__(self, schedule, verbose=0, stream=None):
        super().__init__()
        if not callable(schedule):
            raise TypeError(message("LearningRateScheduler", "schedule as a function (epoch, lr) -> lr",
                                    describe(schedule)))
        self.schedule = schedule
        self.verbose, self.stream = verbose, stream
        self._two_args = self._takes_lr(schedule)

    @staticmethod
    def _takes_lr(schedule):
        try:
            parameters = inspect.signature(schedule).parameters.values()
        except (TypeError, ValueError):
            return True
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(optimizer.learning_rate)
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        new = check_real(new, f"schedule(epoch, lr)'s value at epoch {epoch}", "LearningRateScheduler", low=0,
                         fix="Return a finite float >= 0 (the new learning rate).")
        optimizer.learning_rate = new
        if self.verbose:
            say(self.stream, f"Epoch {epoch + 1}: learning rate {float(new):.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the epoch logs in sorted key order.

    Parameters
    ----------
    filename : str or os.PathLike
    separator : str
    append : bool
        Append to an existing file (no second header), e.g. when resuming training.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = _file_path(filename, "CSVLogger", "filename", "history.csv")
        self.separator = separator
        self.append = bool(append)
        self._file = self._writer = self._keys = None

    def on_train_begin(self, logs=None):
        has_content = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._write_header = not has_content
        self._keys = None
        if has_content:
            with open(self.filename, newline="") as existing:
                header = next(csv.reader(existing, delimiter=self.separator), None)
            self._keys = header[1:] if header and header[0] == "epoch" else None
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.separator)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        if self._write_header:
            self._writer.writerow(["epoch"] + self._keys)
            self._write_header = False
        self._writer.writerow([epoch] + [repr(float(logs[k])) if k in logs else "NA" for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite.

    ``fit`` already raises on a non-finite loss unless ``check_numerics=False``; this callback is
    Keras's softer alternative for that case: it ends the run and keeps what was trained.

    Attributes
    ----------
    stopped_batch : tuple (epoch, batch) or None
    """

    def __init__(self):
        super().__init__()
        self.stopped_batch = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.stopped_batch = (self._epoch, batch)
            self.model.stop_training = True


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has stopped improving, as Keras 3 does.

    After ``patience`` epochs without an improvement larger than ``min_delta`` the rate becomes
    ``max(lr * factor, min_lr)`` (only while ``lr > min_lr``); then ``cooldown`` epochs pass before
    waiting starts again. The rate in effect is added to the epoch logs as ``learning_rate``.

    Parameters
    ----------
    monitor : str
        Epoch logs key, e.g. ``"val_loss"``.
    factor : float in (0, 1)
    patience : int >= 0
    verbose : int
        1 writes a line to ``stream`` at each reduction.
    mode : {"auto", "min", "max"}
        "auto": "max" when the key contains "acc", else "min".
    min_delta : float
        Improvements smaller than this do not count.
    cooldown : int >= 0
    min_lr : float >= 0
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, stream=None):
        super().__init__()
        where = "ReduceLROnPlateau"
        self.monitor = _check_monitor(monitor, where)
        self.factor = check_real(factor, "factor", where, low=0, high=1, high_open=True,
                                 fix="E.g. factor=0.5 halves the rate.")
        if self.factor == 0:
            raise ValueError(message(where, "factor in (0, 1)", "0.0", "E.g. factor=0.5 halves the rate."))
        self.patience, self.cooldown = (check_int(value, name, where, minimum=0)
                                        for name, value in (("patience", patience), ("cooldown", cooldown)))
        self.min_delta, self.min_lr = (check_real(value, name, where, low=0)
                                       for name, value in (("min_delta", min_delta), ("min_lr", min_lr)))
        self.mode = _monitor_mode(mode, self.monitor, where)
        self.verbose, self.stream = verbose, stream
        self._reset()

    def _reset(self):
        self.best = -np.inf if self.mode == "max" else np.inf
        self.wait = self.cooldown_counter = 0

    def _improved(self, current):
        if self.mode == "max":
            return current > self.best + self.min_delta
        return current < self.best - self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            _missing_monitor("ReduceLROnPlateau", self.monitor, logs)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:        # the last cooldown epoch already counts, as in Keras
            self.wait += 1
            # Keras compares with the float32 min_lr: a rate already at the floor stays there.
            if self.wait >= self.patience and optimizer.learning_rate > np.float32(self.min_lr):
                optimizer.learning_rate = max(optimizer.learning_rate * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    say(self.stream, f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                                     f"{optimizer.learning_rate:.6g}.")


class LambdaCallback(Callback):
    """A callback from plain functions, as Keras's: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Parameters
    ----------
    on_epoch_begin, on_epoch_end : callable(epoch, logs), optional
    on_batch_begin, on_batch_end : callable(batch, logs), optional
        Also accepted under Keras 3's names ``on_train_batch_begin`` / ``on_train_batch_end``.
    on_train_begin, on_train_end : callable(logs), optional
    on_test_begin, on_test_end : callable(logs), optional
    on_test_batch_end : callable(batch, logs), optional
    """

    _ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}

    def __init__(self, **hooks):
        super().__init__()
        for name, function in hooks.items():
            hook = self._ALIASES.get(name, name)
            if not _overridable(hook):
                raise TypeError(message("LambdaCallback", "hooks named like Callback's (on_epoch_end=..., "
                                        "on_batch_end=..., on_train_begin=...)", repr(name)))
            if function is None:
                continue
            if not callable(function):
                raise TypeError(message("LambdaCallback", f"{name} as a function", describe(function)))
            setattr(self, hook, function)


def _overridable(hook):
    return hook.startswith("on_") and callable(getattr(Callback, hook, None))


__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "ReduceLROnPlateau", "LambdaCallback",
           "TensorBoard"]


def __getattr__(name):
    # TensorBoard lives in its own module (it needs the optional ``tensorboard`` package to write).
    if name == "TensorBoard":
        from glassnet.trainers.tensorboard import TensorBoard
        return TensorBoard
    raise AttributeError(f"module 'glassnet.callbacks' has no attribute {name!r}")
