"""The TensorBoard callback: real event files written with the ``tensorboard`` package's writer.

Layout and tags follow Keras 3, so a Keras user's dashboards read the same:

- ``<log_dir>/train``: ``epoch_loss``, ``epoch_<metric>`` and ``epoch_learning_rate`` at step
  ``epoch`` (0-based); with ``update_freq=k`` also ``batch_loss`` / ``batch_<metric>`` every k batches,
  at the step counted in batches since the start of training;
- ``<log_dir>/validation``: ``epoch_loss``, ``epoch_<metric>`` from the ``val_*`` logs;
- ``histogram_freq=k``: a histogram ``<layer>/<weight>/histogram`` of every weight every k epochs;
- ``write_graph=True``: at step 0 the model's Keras-style JSON (tag ``keras``, the plugin TensorBoard's
  graph view reads) and, as text, the JSON and the summary table (tags ``model/config``, ``model/summary``).

Install the writer with ``pip install glassnet[tensorboard]`` (or ``pip install tensorboard``).
"""
import json
import numbers
import os
import time

import numpy as np

from glassnet.callbacks import Callback
from glassnet.errors import describe, message
from glassnet.validation import check_int

_WHERE = "TensorBoard"


def _protos():
    """TensorBoard's writer and protocol buffers (an ImportError that says how to install them)."""
    try:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        from tensorboard.util import tensor_util
    except ImportError as error:
        raise ImportError(f"{_WHERE} needs the 'tensorboard' package to write event files ({error}). "
                          "Install it with: pip install glassnet[tensorboard]") from None
    return summary_pb2, Event, EventFileWriter, tensor_util


def _check_frequency(value, name, allow_epoch=False):
    if allow_epoch and isinstance(value, str):
        if value not in ("epoch", "batch"):
            raise ValueError(message(_WHERE, f"{name} as 'epoch', 'batch' or an int >= 1", repr(value)))
        return 1 if value == "batch" else value
    return check_int(value, name, _WHERE, minimum=1 if allow_epoch else 0,
                     fix="'epoch', 'batch' or a number of batches" if allow_epoch else "0 writes none")


class _Writer:
    """One event file in one folder: scalars, histograms and text at a step."""

    def __init__(self, folder):
        self.summary_pb2, self.Event, writer_class, self.tensor_util = _protos()
        os.makedirs(folder, exist_ok=True)
        self.writer = writer_class(folder)

    def _write(self, step, values):
        self.writer.add_event(self.Event(wall_time=time.time(), step=int(step),
                                         summary=self.summary_pb2.Summary(value=values)))

    def scalars(self, step, named_values):
        Value = self.summary_pb2.Summary.Value
        self._write(step, [Value(tag=tag, simple_value=float(value)) for tag, value in named_values])

    def histogram(self, step, tag, array, bins=30):
        values = np.asarray(array, dtype=np.float64).ravel()
        counts, edges = np.histogram(values, bins=bins)
        histo = self.summary_pb2.HistogramProto(
            min=float(values.min()), max=float(values.max()), num=float(values.size), sum=float(values.sum()),
            sum_squares=float(np.dot(values, values)), bucket_limit=edges[1:].tolist(),
            bucket=counts.astype(np.float64).tolist())
        self._write(step, [self.summary_pb2.Summary.Value(tag=tag, histo=histo)])

    def text(self, step, tag, text, plugin="text", content=b""):
        metadata = self.summary_pb2.SummaryMetadata(
            plugin_data=self.summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin, content=content))
        tensor = self.tensor_util.make_tensor_proto(np.array(text.encode("utf-8"), dtype=object))
        self._write(step, [self.summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)])

    def close(self):
        self.writer.close()


class TensorBoard(Callback):
    """Write TensorBoard event files during ``fit`` (see the module notes for what goes where).

    Parameters
    ----------
    log_dir : str or os.PathLike
        Folder for the ``train`` and ``validation`` event folders (created).
    histogram_freq : int
        Every how many epochs to write weight histograms (0: never).
    write_graph : bool
        Write the model's architecture at the start.
    update_freq : "epoch", "batch" or int
        "epoch": scalars once per epoch; an int k (or "batch" = 1): also per-batch training scalars every k
        batches.

    Keras's ``write_images``, ``write_steps_per_second``, ``profile_batch`` and ``embeddings_freq`` are
    accepted at their defaults only: glassnet has nothing to write for them.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        try:
            self.log_dir = os.fspath(log_dir)
        except TypeError:
            raise TypeError(message(_WHERE, "log_dir as a str or path", describe(log_dir))) from None
        self.histogram_freq = _check_frequency(histogram_freq, "histogram_freq")
        self.update_freq = _check_frequency(update_freq, "update_freq", allow_epoch=True)
        self.write_graph = bool(write_graph)
        unsupported = {"write_images": write_images, "write_steps_per_second": write_steps_per_second,
                       "profile_batch": profile_batch, "embeddings_freq": embeddings_freq,
                       "embeddings_metadata": embeddings_metadata}
        for name, value in unsupported.items():
            if value not in (False, 0, None):
                raise ValueError(message(_WHERE, f"{name} left at its default", repr(value),
                                         "glassnet's TensorBoard writes scalars, weight histograms and the graph; "
                                         "see glassnet.explain and glassnet.viz for images of filters and maps."))
        _protos()                   # fail at construction, not after the first epoch
        self._writers = {}
        self._batches_seen = 0
        if self.update_freq != "epoch":     # per-batch logs cost fit some time: only when asked for
            self.on_batch_end = self._log_batch

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = _Writer(os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_train_begin(self, logs=None):
        self._batches_seen = 0
        if self.write_graph:
            self._write_graph()

    def _write_graph(self):
        writer = self._writer("train")
        config = self.model.to_json() if hasattr(self.model, "to_json") else json.dumps(self.model.get_config())
        writer.text(0, "keras", config, plugin="graph_keras_model", content=b"1")
        writer.text(0, "model/config", config)
        if self.model.built:
            lines = []
            self.model.summary(print_fn=lines.append)
            writer.text(0, "model/summary", "\n".join(lines))

    def _log_batch(self, batch, logs=None):
        self._batches_seen += 1
        if self._batches_seen % self.update_freq:
            return
        values = [(f"batch_{k}", v) for k, v in (logs or {}).items() if k not in ("batch", "size")]
        self._writer("train").scalars(self._batches_seen, values)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_") and _is_number(v)}
        train["epoch_learning_rate"] = float(self.model.optimizer.learning_rate)
        self._writer("train").scalars(epoch, train.items())
        validation = [(f"epoch_{k[4:]}", v) for k, v in logs.items() if k.startswith("val_") and _is_number(v)]
        if validation:
            self._writer("validation").scalars(epoch, validation)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer("train")
            for layer in self.model.layers:
                for key, weight in list(layer.params.items()) + list(layer.non_trainable.items()):
                    writer.histogram(epoch, f"{layer.name}/{key}/histogram", weight)
        for writer in self._writers.values():
            writer.writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
