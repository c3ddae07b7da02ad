"""Hyperparameter sweeps: trials of a preset's training recipe on a Dask cluster.

The spec (a dict, or a JSON file)::

    {"recipe": "lenet5", "dataset": "mnist-t10k", "train_images": 2000, "test_images": 500,
     "validation_split": 0.1, "search": "grid", "seed": 0, "metric": "val_accuracy",
     "params": {"learning_rate": [0.001, 0.003], "batch_size": [32, 64], "epochs": [2]}}

- ``recipe``: a preset of :mod:`glassnet.models`; ``dataset``: a ``glassnet`` CLI dataset name
  (loaded on the workers); ``train_images`` / ``test_images`` cap the splits.
- ``params``: ``learning_rate``, ``batch_size``, ``epochs``, ``optimizer``, each a list of values
  (grid: every combination; random: one drawn per trial), or for random search
  ``{"min": a, "max": b}`` (``"log": true`` for a log-uniform ``learning_rate``; ints for the others).
- ``search``: ``"grid"`` or ``"random"`` (then ``trials``: how many).
- ``metric``: ``val_accuracy``, ``val_loss``, ``test_accuracy``, ``test_loss``, ``accuracy`` or
  ``loss`` (the last epoch's); ``mode`` ``"max"`` or ``"min"`` (default: min for losses).
- ``seed``: the trial list of a random search and every trial's own seed (initial weights,
  shuffling, dropout) derive from it, so a rerun plans the same trials.

Output folder: ``trials/<id>/`` (model.npz, history.json, result.json: written by the client,
result.json last), ``results.csv`` and ``results.json`` sorted by the metric, ``best_model.npz``,
``summary.html`` (the table and the metric against each hyperparameter). A sweep that is
stopped and rerun skips the trials whose result.json exists. A trial whose worker dies is rerun
by the scheduler on another worker (``distributed.scheduler.allowed-failures`` times, 3 by
default); its result is written once. A trial that fails is listed in ``failed.json`` and tried
again by the next run.
"""
import hashlib
import html
import io
import itertools
import json
import os
import shutil
import time

import numpy as np

from glassnet.distributed.cluster import CONNECT_TIMEOUT, connect, import_distributed
from glassnet.errors import describe, message
from glassnet.saving import atomic_write

WHERE = "glassnet.distributed.sweep"
KEYS = {"recipe", "dataset", "train_images", "test_images", "validation_split", "search", "trials", "seed",
        "metric", "mode", "params"}
PARAMS = ("learning_rate", "batch_size", "epochs", "optimizer")
METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "accuracy", "loss")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad", "adadelta")
DEFAULTS = {"train_images": None, "test_images": None, "validation_split": 0.1, "search": "grid", "trials": None,
            "seed": 0, "metric": "val_accuracy", "mode": None}


# -- the spec --------------------------------------------------------------------------------------
def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _value_problem(name, value):
    """Why ``value`` cannot be parameter ``name`` (None when it can)."""
    if name == "learning_rate":
        return None if _is_number(value) and value > 0 else f"{value!r} is not a positive number"
    if name == "optimizer":
        return None if isinstance(value, str) and value.lower() in OPTIMIZERS else f"{value!r} is not one of {OPTIMIZERS}"
    return None if _is_int(value) and value >= 1 else f"{value!r} is not a positive int"


def _param_problems(params, search):
    if not isinstance(params, dict) or not params:
        return [f"params must be a non-empty object of {list(PARAMS)}"]
    problems = [f"unknown parameter {name!r} (known: {', '.join(PARAMS)})" for name in params if name not in PARAMS]
    for name, values in params.items():
        if name not in PARAMS:
            continue
        if isinstance(values, dict) and search == "random" and name != "optimizer":
            unknown = set(values) - {"min", "max", "log"}
            low, high = values.get("min"), values.get("max")
            if unknown:
                problems.append(f"params.{name}: unknown keys {sorted(unknown)} (use min, max, log)")
            elif _value_problem(name, low) or _value_problem(name, high) or low > high:
                problems.append(f"params.{name}: needs min <= max, both valid ({values!r})")
            elif values.get("log") and name != "learning_rate":
                problems.append(f"params.{name}: log applies to learning_rate only")
        elif not isinstance(values, list) or not values:
            problems.append(f"params.{name}: expected a non-empty list of values"
                            + (" (or {min, max} with search 'random')" if name != "optimizer" else ""))
        else:
            problems += [f"params.{name}: {why}" for why in (_value_problem(name, v) for v in values) if why]
    return problems


def _setup_problems(spec):
    from glassnet import models
    from glassnet.cli import DATASET_NAMES
    problems = []
    if spec.get("recipe") not in models.available():
        problems.append(f"recipe {spec.get('recipe')!r} is not one of {models.available()}")
    if spec.get("dataset") not in DATASET_NAMES:
        problems.append(f"dataset {spec.get('dataset')!r} is not one of {list(DATASET_NAMES)}")
    for key in ("train_images", "test_images"):
        if spec[key] is not None and not (_is_int(spec[key]) and spec[key] >= 1):
            problems.append(f"{key} {spec[key]!r} is not a positive int")
    split = spec["validation_split"]
    if not (_is_number(split) and 0 <= split < 1):
        problems.append(f"validation_split {split!r} is not in [0, 1)")
    if spec["search"] not in ("grid", "random"):
        problems.append(f"search {spec['search']!r} is not 'grid' or 'random'")
    elif spec["search"] == "random" and not (_is_int(spec["trials"]) and spec["trials"] >= 1):
        problems.append(f"trials {spec['trials']!r}: a random search needs a positive int")
    if not (_is_int(spec["seed"]) and spec["seed"] >= 0):
        problems.append(f"seed {spec['seed']!r} is not an int >= 0")
    if spec["metric"] not in METRICS:
        problems.append(f"metric {spec['metric']!r} is not one of {list(METRICS)}")
    elif spec["metric"].startswith("val_") and _is_number(split) and split == 0:
        problems.append(f"metric {spec['metric']!r} needs validation_split > 0")
    if spec["mode"] not in (None, "min", "max"):
        problems.append(f"mode {spec['mode']!r} is not 'min' or 'max'")
    return problems


def load_spec(spec):
    """Read (from a JSON file) and check a sweep spec; returns it with every default filled in.

    Raises
    ------
    ValueError
        One error listing every unknown key and impossible value, before any trial starts.
    TypeError
        ``spec`` is neither a dict nor a path.
    """
    if isinstance(spec, (str, os.PathLike)):
        try:
            with open(spec, encoding="utf-8") as handle:
                spec = json.load(handle)
        except FileNotFoundError:
            raise FileNotFoundError(message(WHERE, "a sweep spec file", f"{os.fspath(spec)!r}, which does not exist")) \
                from None
        except ValueError as error:
            raise ValueError(message(WHERE, "a JSON sweep spec", f"invalid JSON ({error})")) from None
    if not isinstance(spec, dict):
        raise TypeError(message(WHERE, "a sweep spec as a dict or the path of a JSON file", describe(spec)))
    problems = [f"unknown key {key!r}" for key in spec if key not in KEYS]
    problems += [f"missing key {key!r}" for key in ("recipe", "dataset", "params") if key not in spec]
    full = {**DEFAULTS, **spec}
    problems += _setup_problems(full) + _param_problems(full.get("params"), full["search"])
    if problems:
        raise ValueError(message(WHERE, f"a valid sweep spec (keys: {', '.join(sorted(KEYS))})",
                                 "; ".join(problems), "Fix the spec; no trial was started."))
    if full["mode"] is None:
        full["mode"] = "min" if full["metric"].endswith("loss") else "max"
    return full


# -- the trials ------------------------------------------------------------------------------------
def _draw(rng, values):
    if isinstance(values, list):
        return values[int(rng.integers(len(values)))]
    low, high = values["min"], values["max"]
    if values.get("log"):
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high)) if isinstance(low, float) or isinstance(high, float) \
        else int(rng.integers(low, high + 1))


def plan_trials(spec):
    """The trials of a checked spec, in order: dicts ``id``, ``index``, ``seed``, ``params``.

    The id hashes the setup, the parameters and the seed, so a rerun finds the same trials.
    """
    names = sorted(spec["params"])
    if spec["search"] == "grid":
        combos = [dict(zip(names, values)) for values in itertools.product(*(spec["params"][n] for n in names))]
    else:
        rng = np.random.default_rng([spec["seed"], 1])
        combos = [{name: _draw(rng, spec["params"][name]) for name in names} for _ in range(spec["trials"])]
    seeds = np.random.SeedSequence([spec["seed"], 2]).generate_state(len(combos), np.uint32)
    setup = {key: spec[key] for key in ("recipe", "dataset", "train_images", "test_images", "validation_split")}
    trials = []
    for index, (params, seed) in enumerate(zip(combos, seeds)):
        text = json.dumps({"setup": setup, "params": params, "seed": int(seed)}, sort_keys=True)
        trials.append({"id": f"{index:03d}-{hashlib.sha256(text.encode()).hexdigest()[:10]}", "index": index,
                       "seed": int(seed), "params": params})
    return trials


_DATA = {}


def _trial_data(spec):
    """(Worker.) The dataset of the sweep, loaded once per worker process."""
    from glassnet.cli import load_dataset
    key = (spec["dataset"], spec["train_images"], spec["test_images"])
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_dataset(spec["dataset"], spec["train_images"], spec["test_images"], seed=spec["seed"])
    return _DATA[key]


def run_trial(spec, trial):
    """(Worker.) Train one trial; returns its result with the model file's bytes and the history."""
    from glassnet import models
    from glassnet.distributed.shipping import _save_bytes
    from glassnet.distributed.sources import worker_name
    started = time.perf_counter()
    try:
        data = _trial_data(spec)
    except FileNotFoundError as error:          # the dataset is missing where this trial runs
        raise FileNotFoundError(f"{worker_name()} cannot load dataset {spec['dataset']!r}: {error}") from None
    params = trial["params"]
    n_val = int(len(data.x_train) * spec["validation_split"])
    n_fit = len(data.x_train) - n_val
    model = models.get(spec["recipe"], input_shape=data.x_train.shape[1:], num_classes=len(data.class_names),
                       seed=trial["seed"])
    models.compile_recipe(model, spec["recipe"], optimizer=params.get("optimizer"),
                          learning_rate=params.get("learning_rate"))
    model.metadata.update({"dataset": data.name, "class_names": list(data.class_names), "preset": spec["recipe"],
                           "sweep_trial": trial["id"]})
    history = models.fit_recipe(model, spec["recipe"], data.x_train[:n_fit], data.y_train[:n_fit],
                                epochs=params.get("epochs"), batch_size=params.get("batch_size"), seed=trial["seed"],
                                validation_data=(data.x_train[n_fit:], data.y_train[n_fit:]) if n_val else None)
    test_loss, test_accuracy = model.evaluate(data.x_test, data.y_test, batch_size=256)
    final = {key: float(values[-1]) for key, values in history.history.items() if values}
    metrics = {**final, "test_loss": float(test_loss), "test_accuracy": float(test_accuracy)}
    history_record = {"history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
                      "epoch": list(history.epoch)}
    result = {"id": trial["id"], "index": trial["index"], "seed": trial["seed"], "params": params,
              "metrics": metrics, "worker": worker_name(), "seconds": round(time.perf_counter() - started, 3)}
    return result, history_record, _save_bytes(model)


# -- the output folder -------------------------------------------------------------------------------
def _write_json(path, data):
    atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=2, sort_keys=True).encode("utf-8")))


def _trial_folder(out, trial_id):
    return os.path.join(out, "trials", trial_id)


def _finished(out, trial):
    path = os.path.join(_trial_folder(out, trial["id"]), "result.json")
    try:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("id") == trial["id"] else None


def _store(out, result, history, model_bytes):
    """Write a trial's files; result.json last, so its presence means the trial is complete."""
    folder = _trial_folder(out, result["id"])
    atomic_write(os.path.join(folder, "model.npz"), lambda handle: handle.write(model_bytes))
    _write_json(os.path.join(folder, "history.json"), history)
    _write_json(os.path.join(folder, "result.json"), result)


def _check_out(out, spec):
    """Create ``out`` and record the spec; refuse a folder holding a sweep of another spec."""
    recorded = os.path.join(out, "spec.json")
    if os.path.exists(recorded):
        try:
            with open(recorded, encoding="utf-8") as handle:
                same = json.load(handle) == spec
        except (OSError, ValueError):
            same = False
        if not same:
            raise ValueError(message(WHERE, "an output folder that is new or holds a sweep of this spec",
                                     f"{out!r}, which holds {recorded} of another spec",
                                     "Use another folder, or delete it to start over."))
    else:
        _write_json(recorded, spec)


def _table(spec, results):
    """Results sorted by the metric (best first; trials without it last)."""
    sign = -1 if spec["mode"] == "max" else 1
    metric = spec["metric"]
    return sorted(results, key=lambda r: (metric not in r["metrics"], sign * r["metrics"].get(metric, 0), r["index"]))


def _write_tables(out, spec, rows):
    _write_json(os.path.join(out, "results.json"), {"metric": spec["metric"], "mode": spec["mode"], "trials": rows})
    params = sorted({name for row in rows for name in row["params"]})
    metrics = sorted({name for row in rows for name in row["metrics"]})
    lines = [",".join(["rank", "id", "seed"] + params + metrics + ["seconds", "worker"])]
    for rank, row in enumerate(rows, 1):
        cells = [rank, row["id"], row["seed"]] + [row["params"].get(p, "") for p in params]
        cells += [repr(row["metrics"][m]) if m in row["metrics"] else "" for m in metrics] + [row["seconds"], row["worker"]]
        lines.append(",".join(str(cell) for cell in cells))
    atomic_write(os.path.join(out, "results.csv"), lambda handle: handle.write(("\n".join(lines) + "\n").encode()))


def _plot_svg(spec, rows):
    """The metric against each hyperparameter, one panel each, as inline SVG (None without matplotlib)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    names = sorted({name for row in rows for name in row["params"]})
    figure = Figure(figsize=(3.2 * max(len(names), 1), 2.8), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, name in zip(figure.subplots(1, len(names), squeeze=False)[0], names):
        points = [(row["params"][name], row["metrics"][spec["metric"]]) for row in rows
                  if name in row["params"] and spec["metric"] in row["metrics"]]
        labels = sorted({str(x) for x, _ in points}, key=lambda s: (len(s), s))
        numeric = all(_is_number(x) for x, _ in points)
        xs = [x if numeric else labels.index(str(x)) for x, _ in points]
        axes.scatter(xs, [y for _, y in points], color="#1f77b4")
        if not numeric:
            axes.set_xticks(range(len(labels)), labels)
        elif name == "learning_rate":
            axes.set_xscale("log")
        axes.set_xlabel(name)
        axes.set_ylabel(spec["metric"])
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()[buffer.getvalue().find("<svg"):]


def _write_html(out, spec, rows, failed):
    params = sorted({name for row in rows for name in row["params"]})
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["rank", "trial"] + params + [spec["metric"], "test_accuracy"])
    body = ""
    for rank, row in enumerate(rows, 1):
        cells = [rank, row["id"]] + [row["params"].get(p, "") for p in params]
        cells += [f"{row['metrics'].get(m, float('nan')):.4f}" for m in (spec["metric"], "test_accuracy")]
        body += "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>\n"
    plot = _plot_svg(spec, rows) if rows else None
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>glassnet sweep: {html.escape(spec['recipe'])}"
            "</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
            "tr:nth-child(2){font-weight:bold}</style></head><body>"
            f"<h1>Sweep of {html.escape(spec['recipe'])} on {html.escape(spec['dataset'])}</h1>"
            f"<p>{len(rows)} trials, sorted by {html.escape(spec['metric'])} ({spec['mode']}); "
            f"{len(failed)} failed. Best model: best_model.npz.</p>"
            f"<table><tr>{head}</tr>\n{body}</table>{plot or '<p>(plot: needs matplotlib)</p>'}</body></html>")
    path = os.path.join(out, "summary.html")
    atomic_write(path, lambda handle: handle.write(page.encode("utf-8")))
    return path


# -- the sweep ---------------------------------------------------------------------------------------
def sweep(spec, out, client=None, progress=False, timeout=CONNECT_TIMEOUT):
    """Run the trials of ``spec`` on a Dask cluster; write and return the results table.

    Parameters
    ----------
    spec : dict or str
        The sweep (module docstring), checked in full before anything starts.
    out : str
        Output folder; rerunning into it skips the finished trials.
    client : None, distributed.Client or str
        As in :func:`glassnet.distributed.predict`.
    progress : bool or callable
        A tqdm bar over trials, or ``progress(done, total)`` after each trial.

    Returns
    -------
    dict
        ``results`` (rows sorted by the metric, best first), ``best`` (a row or None),
        ``trained`` / ``skipped`` / ``failed`` (trial ids), ``summary`` (the HTML page's path).
    """
    from glassnet.distributed.batch import _Progress
    spec = load_spec(spec)
    out = os.fspath(out)
    trials = plan_trials(spec)
    os.makedirs(out, exist_ok=True)
    _check_out(out, spec)
    results = {t["id"]: found for t in trials if (found := _finished(out, t)) is not None}
    todo = [t for t in trials if t["id"] not in results]
    skipped, trained, failed = sorted(results), [], {}
    bar = _Progress(progress, len(trials), "sweep")
    bar.update(len(results))
    if todo:
        distributed = import_distributed(WHERE)
        with connect(client, timeout, WHERE) as live:
            futures = {live.submit(run_trial, spec, trial, pure=False): trial for trial in todo}
            try:
                for future in distributed.as_completed(futures):
                    trial = futures[future]
                    try:
                        result, history, model_bytes = future.result()
                    except Exception as error:  # the trial's own failure, or its workers kept dying
                        failed[trial["id"]] = f"{type(error).__name__}: {error}"
                        continue
                    finally:
                        future.release()
                    if trial["id"] not in results:        # counted once, whatever the scheduler reran
                        _store(out, result, history, model_bytes)
                        results[trial["id"]] = result
                        trained.append(trial["id"])
                    bar.update(1)
            finally:
                live.cancel(list(futures))
                bar.close()
    rows = _table(spec, list(results.values()))
    _write_tables(out, spec, rows)
    _write_json(os.path.join(out, "failed.json"), failed)
    if rows:
        shutil.copyfile(os.path.join(_trial_folder(out, rows[0]["id"]), "model.npz"),
                        os.path.join(out, ".best_model.npz.partial"))
        os.replace(os.path.join(out, ".best_model.npz.partial"), os.path.join(out, "best_model.npz"))
    summary = _write_html(out, spec, rows, failed)
    return {"results": rows, "best": rows[0] if rows else None, "trained": trained, "skipped": skipped,
            "failed": sorted(failed), "summary": summary}


__all__ = ["sweep", "load_spec", "plan_trials", "run_trial", "METRICS", "PARAMS"]
