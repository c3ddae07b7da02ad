"""Text progress output: Keras-style log lines, tqdm bars, and :class:`Progbar` for loops written by hand.

Nothing here writes unless asked: :class:`glassnet.callbacks.ProgbarLogger` draws with these
pieces when ``fit`` / ``evaluate`` get ``verbose``, and a :class:`Progbar` when the user makes one.
"""
import numbers
import sys
import time

import numpy as np

from glassnet.errors import message
from glassnet.validation import check_int, check_real


def _format_value(key, value):
    if not isinstance(value, numbers.Real):
        return f"{key}: {value}"
    return f"{key}: {value:.4g}" if key == "lr" else f"{key}: {value:.4f}"


def format_logs(logs, keys=None):
    """``"loss: 0.4123 - accuracy: 0.8512"`` from a logs dict (Keras's style; values that are not
    numbers are shown as they are)."""
    keys = [k for k in (keys or logs) if k not in ("batch", "size") and k in logs]
    return " - ".join(_format_value(k, logs[k]) for k in keys)


def say(stream, text):
    """Write one line to ``stream`` (``sys.stdout`` when None) and flush it."""
    stream = stream if stream is not None else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def load_tqdm():
    """tqdm's class, or None when tqdm is not installed (progress then falls back to lines)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class RunningMeans:
    """Means of named values, each weighted by the number of samples it stands for, in the order
    the names first came."""

    def __init__(self):
        self.sums, self.weights = {}, {}

    def add(self, values, weight):
        """Add ``values`` (pairs ``(name, value)``; an array value counts as its mean) with ``weight``."""
        for key, value in values:
            self.sums[key] = self.sums.get(key, 0.0) + float(np.mean(value)) * weight
            self.weights[key] = self.weights.get(key, 0) + weight

    def means(self):
        return {key: total / self.weights[key] for key, total in self.sums.items() if self.weights[key]}


def _check_progbar_args(target, width, verbose, interval):
    where = "Progbar"
    if target is not None:
        check_int(target, "target (or None when unknown)", where, minimum=0)
    if width is not None:
        check_int(width, "width (or None to fill the line)", where, minimum=1)
    if check_int(verbose, "verbose", where, minimum=0) > 2:
        raise ValueError(message(where, "verbose 0 (silent), 1 (bar) or 2 (one line)", repr(verbose)))
    check_real(interval, "interval in seconds", where, low=0)


class Progbar:
    """A progress bar for training loops written by hand, like ``keras.utils.Progbar`` (seed 000)::

        progbar = Progbar(len(x), unit_name="sample")
        flow = datagen.flow(x, y, batch_size=32, seed=0)
        for _, (xb, yb) in zip(range(len(flow)), flow):       # one pass: the flow repeats forever
            loss, accuracy = model.train_on_batch(xb, yb)
            progbar.add(len(xb), values=[("loss", loss), ("accuracy", accuracy)])

    Each value is shown as its mean so far, weighted by the counts the calls advance by (at least
    1, as in Keras, so a value given without progress still counts); names in
    ``stateful_metrics`` show their latest value instead.

    Parameters
    ----------
    target : int or None
        Total count expected (samples or steps); None when unknown.
    width : int or None
        Width of the bar itself in characters (None: fill the line).
    verbose : {0, 1, 2}
        0: silent; 1: a live bar (tqdm, the ``progress`` extra; without it, as 2); 2: one line
        when the target is reached.
    interval : float
        Least time in seconds between two redraws of the bar.
    stateful_metrics : iterable of str, optional
        Names shown as given, not averaged.
    unit_name : str
        What one count is ("step", "sample", ...).
    stream : file-like, optional
        Where to write (default ``sys.stdout``).
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None, unit_name="step",
                 stream=None):
        _check_progbar_args(target, width, verbose, interval)
        self.target = None if target is None else int(target)
        self.verbose, self.stream = verbose, stream
        self.stateful_metrics = set(stateful_metrics or ())
        self._means, self._latest, self._order = RunningMeans(), {}, {}
        self._seen_so_far, self._start, self._finalized = 0, time.perf_counter(), False
        tqdm = load_tqdm() if verbose == 1 else None
        bar_format = None if width is None else "{l_bar}{bar:%d}{r_bar}" % width
        self._bar = None if tqdm is None else tqdm(total=self.target, unit=unit_name, file=stream or sys.stdout,
                                                   bar_format=bar_format, mininterval=interval, leave=True)

    def values(self):
        """What the bar shows now, by name in the order the names first came: running means, and
        the latest value of the stateful metrics."""
        shown = {**self._means.means(), **self._latest}
        return {key: shown[key] for key in self._order if key in shown}

    def update(self, current, values=None, finalize=None):
        """Move to ``current`` with the values of the samples since the last call.

        Parameters
        ----------
        current : int
            The count so far (not the increment; see :meth:`add`).
        values : list of (str, number) pairs, optional
        finalize : bool, optional
            Close the bar (verbose 1) or write the summary line (verbose 2); default
            ``current >= target``. Later calls write nothing more.
        """
        values = list(values or [])
        self._order.update((key, None) for key, _ in values)
        self._latest.update((key, value) for key, value in values if key in self.stateful_metrics)
        self._means.add([(k, v) for k, v in values if k not in self.stateful_metrics],
                        max(current - self._seen_so_far, 1))
        advance = max(current - self._seen_so_far, 0)
        self._seen_so_far = current
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if self._finalized:
            return
        text = format_logs(self.values())
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(advance)
            if finalize:
                self._bar.close()
        elif finalize and self.verbose:
            total = "?" if self.target is None else self.target
            say(self.stream, f"{current}/{total} - {time.perf_counter() - self._start:.1f}s - {text}")
        self._finalized = bool(finalize)

    def add(self, n, values=None):
        """Advance by ``n`` (e.g. the batch size) with the values of those samples: ``update(count + n, values)``."""
        self.update(self._seen_so_far + n, values)
