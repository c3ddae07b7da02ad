"""The ``glassnet`` command line: train, evaluate, summary, predict, demo (and more, registered below).

This is the only module of glassnet that prints or exits. Every subcommand is one
``add_<name>_arguments(parser)`` / ``run_<name>(args) -> exit code`` pair registered in
:data:`COMMANDS` with :func:`register`; other modules (e.g. the visualization commands) add theirs
the same way. Bad input prints one line ``glassnet: error: ...`` on stderr and exits non-zero,
without a traceback.
"""
import argparse
import json
import os
import sys
import time
from collections import namedtuple

import numpy as np

Command = namedtuple("Command", "name help description add_arguments run")

#: Subcommands in the order ``glassnet --help`` lists them.
COMMANDS = {}


def register(name, help, add_arguments, run, description=None):
    """Add a subcommand: ``add_arguments(parser)`` declares its options, ``run(args)`` returns the exit code."""
    COMMANDS[name] = Command(name, help, description or help, add_arguments, run)


class CommandError(Exception):
    """A user mistake the CLI reports in one line (exit status 2)."""


def say(*parts):
    """Print a line of normal output (the CLI's only way to write to stdout)."""
    print(*parts, flush=True)


def warn(line):
    """Print a one-line warning on stderr: ``glassnet: warning: ...``."""
    print(f"glassnet: warning: {line}", file=sys.stderr, flush=True)


# -- datasets --------------------------------------------------------------------------------
DATASET_NAMES = ("fashion-mnist", "mnist", "mnist-t10k", "shapes")

Data = namedtuple("Data", "name x_train y_train x_test y_test class_names description")


def _images(x):
    """uint8 (N, H, W) images -> float32 (N, H, W, 1) in [0, 1], the scaling every preset is trained with."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    return (x.astype(np.float32) / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)


def _downloadable(module, download):
    """``module.load_data(download=download)``; when the files are missing, the error also says
    how to get them from the command line (the library's own message speaks of its Python API)."""
    from glassnet.datasets import DatasetNotFoundError
    try:
        return module.load_data(download=download)
    except DatasetNotFoundError as error:
        if download:
            raise
        raise DatasetNotFoundError(f"{error} From the command line: add --download to fetch it, or try "
                                   "--dataset shapes, which needs no download.") from error


def load_dataset(name, limit=None, test_limit=None, download=False, seed=0):
    """Load a dataset by CLI name, scaled to [0, 1] with a channel axis.

    ``fashion-mnist`` and ``mnist`` use the Keras-style loaders (local files, then a download when
    ``download``); ``mnist-t10k`` splits the 10,000 real MNIST test digits 8,000 / 2,000;
    ``shapes`` is the synthetic offline set.
    """
    from glassnet import datasets
    if name == "fashion-mnist":
        (xt, yt), (xv, yv) = _downloadable(datasets.fashion_mnist, download)
        names, text = datasets.fashion_mnist.CLASS_NAMES, "Fashion-MNIST"
    elif name == "mnist":
        (xt, yt), (xv, yv) = _downloadable(datasets.mnist, download)
        names, text = tuple(str(d) for d in range(10)), "MNIST"
    elif name == "mnist-t10k":
        x, y = datasets.mnist.load_t10k()
        (xt, yt), (xv, yv) = (x[:8000], y[:8000]), (x[8000:], y[8000:])
        names, text = tuple(str(d) for d in range(10)), "MNIST t10k digits (8,000 train / 2,000 test)"
    elif name == "shapes":
        n_train = 6000 if limit is None else limit
        (xt, yt), (xv, yv) = datasets.shapes.load_data(n_train=n_train, n_test=test_limit or 1000, seed=seed)
        names, text = datasets.shapes.CLASS_NAMES, "synthetic shapes"
    else:
        raise CommandError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if limit is not None:
        xt, yt = xt[:limit], yt[:limit]
    if test_limit is not None:
        xv, yv = xv[:test_limit], yv[:test_limit]
    return Data(name, _images(xt), yt.astype(np.int64), _images(xv), yv.astype(np.int64), tuple(names), text)


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _add_data_arguments(parser, default="fashion-mnist"):
    parser.add_argument("--dataset", choices=DATASET_NAMES, default=default,
                        help=f"dataset (default: {default}); mnist-t10k = the 10,000 real MNIST test digits "
                             "split 8,000/2,000 (from $GLASSNET_MNIST_T10K or the MNIST cache); shapes = synthetic, always available")
    parser.add_argument("--limit", type=_positive(int), metavar="N", help="use only the first N training images")
    parser.add_argument("--test-limit", type=_positive(int), metavar="N", help="use only the first N test images")
    parser.add_argument("--download", action="store_true",
                        help="download the dataset when it is not on disk (needs internet)")


# -- models ----------------------------------------------------------------------------------
def _load_model_file(path):
    from glassnet.saving import load_model
    return load_model(path)


def _model_from_name_or_path(text, input_shape=(28, 28, 1), num_classes=10, seed=None):
    from glassnet import models
    if text in models.available():
        return models.get(text, input_shape=input_shape, num_classes=num_classes, seed=seed)
    if os.path.exists(text):
        return _load_model_file(text)
    raise CommandError(f"--model {text!r} is neither a preset ({', '.join(models.available())}) nor an "
                       "existing model file")


# -- train -----------------------------------------------------------------------------------
def add_train_arguments(parser):
    from glassnet import models
    _add_data_arguments(parser)
    parser.add_argument("--model", default="fashion", choices=models.available(),
                        help="preset to train (default: fashion); see 'glassnet summary --model NAME'")
    parser.add_argument("--epochs", type=_positive(int), help="epochs (default: the preset's recipe)")
    parser.add_argument("--batch-size", type=_positive(int), help="batch size (default: the preset's recipe)")
    parser.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop", "adagrad", "adadelta"),
                        help="optimizer with Keras's defaults (default: the preset's recipe)")
    parser.add_argument("--lr", type=_positive(float), help="learning rate (default: the recipe's or optimizer's)")
    parser.add_argument("--seed", type=int, default=0, help="seed for initialization, shuffling and dropout "
                                                            "(default: 0)")
    parser.add_argument("--validation-split", type=_fraction, default=0.1, metavar="F",
                        help="fraction of the training data held out for validation curves (default: 0.1)")
    parser.add_argument("--no-augment", action="store_true", help="turn off the recipe's data augmentation")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/model.npz (saved after every epoch) instead of starting over")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: runs/MODEL-DATASET): model.npz, history.json, "
                             "history.csv, history.png, metrics.json")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="0 quiet, 1 progress bar per epoch (default), 2 one line per epoch")


def _write_json(path, data):
    from glassnet.saving import atomic_write
    atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=2).encode("utf-8")))


def _plot_history(history, path):
    """Learning curves as a PNG (matplotlib, Agg); returns the path or None when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        from glassnet.viz import plot_history
    except ImportError:
        return None
    import matplotlib.pyplot as plt
    figure = plot_history(history, to_file=path)
    plt.close(figure)
    return path


def _whole_history(path, history, initial_epoch):
    """``{"history": ..., "epoch": ...}`` of the whole run: when resuming after ``initial_epoch``
    epochs, those epochs from the run's earlier ``history.json`` (unreadable: left out, with a
    note), then this fit's epochs. CSVLogger appends to history.csv the same way."""
    record = {"history": dict(history.history), "epoch": list(history.epoch)}
    if initial_epoch == 0 or not os.path.exists(path):
        return record
    try:
        with open(path, encoding="utf-8") as handle:
            earlier = json.load(handle)
        kept = [i for i, epoch in enumerate(earlier["epoch"]) if epoch < initial_epoch]
        before = {key: [values[i] for i in kept] for key, values in earlier["history"].items()}
        epochs = [earlier["epoch"][i] for i in kept]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        say(f"Could not read the earlier epochs from {path}; history.json starts at epoch {initial_epoch}.")
        return record
    keys = list(before) + [key for key in record["history"] if key not in before]
    return {"history": {key: before.get(key, []) + list(record["history"].get(key, [])) for key in keys},
            "epoch": epochs + record["epoch"]}


def train(data, model_name, out, epochs=None, batch_size=None, optimizer=None, lr=None, seed=0,
          validation_split=0.1, augment=True, resume=False, verbose=1):
    """Train preset ``model_name`` on ``data`` and write everything under ``out``; returns a results dict."""
    from glassnet import models
    from glassnet.callbacks import CSVLogger, ModelCheckpoint
    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, "model.npz")
    recipe = models.recipe(model_name)
    epochs = epochs or recipe["epochs"]
    n_val = int(len(data.x_train) * validation_split) if validation_split else 0
    x_train, y_train = data.x_train[:len(data.x_train) - n_val], data.y_train[:len(data.y_train) - n_val]
    validation = (data.x_train[len(x_train):], data.y_train[len(y_train):]) if n_val else None
    if resume and os.path.exists(checkpoint):
        model = _load_model_file(checkpoint)
        initial_epoch = model.completed_epochs
        say(f"Resuming {checkpoint} after epoch {initial_epoch}.")
    else:
        model = models.get(model_name, input_shape=data.x_train.shape[1:], num_classes=len(data.class_names),
                           seed=seed)
        models.compile_recipe(model, model_name, optimizer=optimizer, learning_rate=lr)
        initial_epoch = 0
    model.metadata.update({"dataset": data.name, "dataset_description": data.description,
                           "class_names": list(data.class_names), "preprocessing": "x / 255 (uint8 images to [0, 1])",
                           "preset": model_name})
    callbacks = [ModelCheckpoint(checkpoint, save_best_only=False),
                 CSVLogger(os.path.join(out, "history.csv"), append=initial_epoch > 0)]
    start = time.perf_counter()
    history = models.fit_recipe(model, model_name, x_train, y_train, epochs=epochs, batch_size=batch_size,
                                seed=seed, verbose=verbose, validation_data=validation, callbacks=callbacks,
                                augment=augment, initial_epoch=initial_epoch)
    wall = time.perf_counter() - start
    model.save(checkpoint)
    loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=256)
    results = {"dataset": data.name, "dataset_description": data.description, "model": model_name,
               "params": model.count_params(), "train_samples": int(len(x_train)),
               "validation_samples": int(n_val), "test_samples": int(len(data.x_test)),
               "epochs": model.completed_epochs, "train_seconds": round(wall, 2),
               "test_loss": loss, "test_accuracy": accuracy}
    _write_json(os.path.join(out, "metrics.json"), results)
    whole = _whole_history(os.path.join(out, "history.json"), history, initial_epoch)
    _write_json(os.path.join(out, "history.json"), whole)
    if whole["epoch"]:
        results["plot"] = _plot_history(whole["history"], os.path.join(out, "history.png"))
    return model, history, results


def run_train(args):
    data = load_dataset(args.dataset, args.limit, args.test_limit, args.download, args.seed)
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    say(f"Training {args.model} on {data.description}: {len(data.x_train)} training and "
        f"{len(data.x_test)} test images.")
    _, _, results = train(data, args.model, out, args.epochs, args.batch_size, args.optimizer, args.lr, args.seed,
                          args.validation_split, not args.no_augment, args.resume, args.verbose)
    epochs = results["epochs"]
    say(f"Test accuracy {results['test_accuracy']:.4f} (loss {results['test_loss']:.4f}) after "
        f"{epochs} epoch{'' if epochs == 1 else 's'}, {results['train_seconds']:.0f} s of training. Wrote {out}/.")
    return 0


# -- evaluate --------------------------------------------------------------------------------
def add_evaluate_arguments(parser):
    parser.add_argument("--model", required=True, metavar="PATH", help="model file written by train / model.save")
    _add_data_arguments(parser)
    parser.add_argument("--batch-size", type=_positive(int), default=256, help="batch size (default: 256)")


def run_evaluate(args):
    model = _load_model_file(args.model)
    if not model.compiled:
        model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    data = load_dataset(args.dataset, args.limit, args.test_limit, args.download)
    values = model.evaluate(data.x_test, data.y_test, batch_size=args.batch_size)
    values = values if isinstance(values, list) else [values]
    say(f"{data.description}, {len(data.x_test)} test images: " +
        ", ".join(f"{name} {value:.4f}" for name, value in zip(model.metrics_names, values)))
    return 0


# -- summary ---------------------------------------------------------------------------------
def add_summary_arguments(parser):
    parser.add_argument("--model", metavar="NAME_OR_PATH",
                        help="a preset name (see --list) or a saved model file (needed without --list)")
    parser.add_argument("--list", action="store_true", help="list the presets (with --model: after its table)")


def run_summary(args):
    from glassnet import models
    if args.model is None:
        if not args.list:
            raise CommandError("summary needs --model NAME_OR_PATH (a preset or a saved model), or --list "
                               "to list the presets")
        say("Presets: " + ", ".join(models.available()))
        return 0
    model = _model_from_name_or_path(args.model)
    model.summary(print_fn=say)
    if args.list:
        say("Presets: " + ", ".join(models.available()))
    if getattr(model, "completed_epochs", 0):
        say(f"Trained for {model.completed_epochs} epochs" +
            (f" on {model.metadata['dataset']}" if model.metadata.get("dataset") else "") + ".")
    return 0


# -- predict ---------------------------------------------------------------------------------
def add_predict_arguments(parser):
    parser.add_argument("--model", required=True, metavar="PATH", help="model file written by train / model.save")
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="images: .npy array (N, H, W[, C]), an IDX file (.gz or raw) or a PNG image; "
                             "uint8 pixels are scaled by 1/255 like the training data")
    parser.add_argument("--output", metavar="FILE.npy", help="also save the class probabilities there")
    parser.add_argument("--top", type=_positive(int), default=1, help="how many classes to show per image")
    parser.add_argument("--max-rows", type=_positive(int), default=20, help="print at most this many images")


def _read_images(path):
    from glassnet.datasets import load_idx
    if not os.path.isfile(path):
        raise CommandError(f"--input {path!r} does not exist")
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as error:
            raise CommandError(f"--input {path!r} is not a numeric .npy array ({error})") from None
    if lower.endswith(".png"):
        try:
            import matplotlib.image as mpimg
        except ImportError:
            raise CommandError("reading PNG files needs matplotlib (pip install matplotlib)") from None
        try:
            image = mpimg.imread(path)
        except (OSError, ValueError, SyntaxError) as error:  # PIL reports broken PNG chunks as SyntaxError
            raise CommandError(f"--input {path!r} is not a readable PNG image ({_one_line(error)})") from None
        if image.ndim == 3:
            image = image[..., :3].mean(axis=-1)
        return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)[None]
    return load_idx(path)


def run_predict(args):
    model = _load_model_file(args.model)
    x = _read_images(args.input)
    shape = model.input_shape[1:]
    if x.ndim == len(shape) - 1 and x.shape == shape[:-1]:
        x = x[None]
    if x.ndim == len(shape) and x.shape[1:] == shape[:-1] and shape[-1] == 1:
        x = x[..., None]
    probabilities = model.predict(_images(x) if x.dtype == np.uint8 else x)
    names = model.metadata.get("class_names")
    if not isinstance(names, (list, tuple)) or len(names) != probabilities.shape[-1]:  # absent or tampered
        names = [str(i) for i in range(probabilities.shape[-1])]
    top = np.argsort(-probabilities, axis=-1)[:, :args.top]
    for i in range(min(len(x), args.max_rows)):
        say(f"{i}: " + ", ".join(f"{names[k]} ({probabilities[i, k]:.3f})" for k in top[i]))
    if len(x) > args.max_rows:
        say(f"... {len(x) - args.max_rows} more")
    if args.output:
        np.save(args.output, probabilities)
        say(f"Wrote probabilities {probabilities.shape} to {args.output}.")
    return 0


# -- demo ------------------------------------------------------------------------------------
#: The demo: LeNet-5 (fast on 2 cores) on a 20,000-image subset, 3 epochs, then the report.
DEMO = {"model": "lenet5", "train_images": 20000, "test_images": 2000, "epochs": 3, "report_images": 8}


def add_demo_arguments(parser):
    parser.add_argument("--out", default=os.path.join("runs", "demo"), metavar="DIR",
                        help="output folder (default: runs/demo)")
    parser.add_argument("--dataset", choices=("auto",) + DATASET_NAMES, default="auto",
                        help="auto (default): Fashion-MNIST when its files are installed, else synthetic shapes")
    parser.add_argument("--epochs", type=_positive(int), default=DEMO["epochs"],
                        help=f"epochs (default: {DEMO['epochs']})")
    parser.add_argument("--limit", type=_positive(int), default=DEMO["train_images"], metavar="N",
                        help=f"training images (default: {DEMO['train_images']})")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="progress output (default: 1)")


def _demo_data(choice, limit):
    from glassnet.datasets import DatasetNotFoundError
    if choice != "auto":
        return load_dataset(choice, limit, DEMO["test_images"])
    try:
        return load_dataset("fashion-mnist", limit, DEMO["test_images"])
    except (DatasetNotFoundError, OSError, ValueError) as error:
        say(f"Fashion-MNIST is not available ({str(error).splitlines()[0]}); using the synthetic shapes "
            "dataset instead.")
        return load_dataset("shapes", limit, DEMO["test_images"])


def _demo_report(model, data, history, out):
    """The demo's closing step: the HTML report of glassnet.viz (its single call site)."""
    try:
        from glassnet.viz import report
    except ImportError as error:
        say(f"Skipping the HTML report ({error}).")
        return None
    n = DEMO["report_images"]
    return report(model, data.x_test[:256], data.y_test[:256], out, history=history.history, n_explain=n,
                  class_names=data.class_names, title=f"glassnet demo: {model.name} on {data.description}",
                  progress=False, maximization_steps=60, on_warning=warn)


def run_demo(args):
    started = time.perf_counter()
    data = _demo_data(args.dataset, args.limit)
    say(f"Demo: training the '{DEMO['model']}' preset on {data.description} ({len(data.x_train)} training, "
        f"{len(data.x_test)} test images, {args.epochs} epochs).")
    model, history, results = train(data, DEMO["model"], args.out, epochs=args.epochs, seed=0,
                                    validation_split=0.1, augment=False, verbose=args.verbose)
    say(f"Test accuracy {results['test_accuracy']:.4f} on {len(data.x_test)} test images.")
    if not args.no_report:
        path = _demo_report(model, data, history, args.out)
        if path:
            say(f"Report: {path}")
    say(f"Wrote {args.out}/ (model.npz, history.json, history.csv, history.png, metrics.json) in "
        f"{time.perf_counter() - started:.0f} s.")
    return 0


register("train", "train a preset model on a dataset and save it", add_train_arguments, run_train,
         "Train a preset (see 'glassnet summary --model NAME --list') with its recipe, checkpointing after every "
         "epoch. Writes model.npz, history.json/.csv/.png and metrics.json (test accuracy) under --out.")
register("evaluate", "loss and accuracy of a saved model on a test set", add_evaluate_arguments, run_evaluate)
register("summary", "print the Keras-style summary of a preset or a saved model", add_summary_arguments,
         run_summary)
register("predict", "class predictions of a saved model for images in a file", add_predict_arguments, run_predict)
register("demo", "train the default model in a few minutes and write model, curves, accuracy and report",
         add_demo_arguments, run_demo,
         f"Train the '{DEMO['model']}' preset on a subset of Fashion-MNIST (or, without its files, the synthetic "
         "shapes set), then write model, history, accuracy and the HTML report under --out.")


# -- report / explain (glassnet.viz) -------------------------------------------------------------
def _viz():
    """glassnet.viz, or a one-line error naming the missing extra."""
    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
        from glassnet import viz
    except ImportError as error:
        raise CommandError(f"this command needs the viz extra: pip install 'glassnet[viz]' ({error})") from None
    return viz


def _add_saved_model_arguments(parser):
    parser.add_argument("--model", required=True, metavar="PATH", help="model file written by train / model.save")
    parser.add_argument("--dataset", choices=DATASET_NAMES, default=None,
                        help="test data (default: the dataset named in the model file, i.e. the one it was "
                             "trained on)")
    parser.add_argument("--test-limit", type=_positive(int), metavar="N", help="use only the first N test images")
    parser.add_argument("--download", action="store_true",
                        help="download the dataset when it is not on disk (needs internet)")


def _test_data(args, model):
    """The test split of --dataset (or of the dataset recorded in the model file)."""
    name = args.dataset or (getattr(model, "metadata", None) or {}).get("dataset")
    if name not in DATASET_NAMES:
        raise CommandError("--dataset is required: the model file does not say which dataset it was trained on"
                           if name is None else f"the model file names dataset {name!r}; pass --dataset")
    # only the test split is used; limit=1 spares the synthetic set from drawing training images
    return load_dataset(name, limit=1, test_limit=args.test_limit, download=args.download)


def _class_names(model, data=None):
    names = (getattr(model, "metadata", None) or {}).get("class_names")
    return tuple(names) if names else (data.class_names if data is not None else None)


def add_report_arguments(parser):
    _add_saved_model_arguments(parser)
    parser.add_argument("--out", default=os.path.join("runs", "report"), metavar="DIR",
                        help="folder for report.html (default: runs/report)")
    parser.add_argument("--n-explain", type=_positive(int), default=16, metavar="N",
                        help="test images shown with every explanation method (default: 16)")
    parser.add_argument("--history", metavar="FILE.json",
                        help="training history for the curves (default: history.json next to the model, if any)")
    parser.add_argument("--seed", type=int, default=0, help="picks the explained images (default: 0)")
    parser.add_argument("--no-sanity", action="store_true", help="skip the sanity checks (faster)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_report(args):
    viz = _viz()
    model = _load_model_file(args.model)
    data = _test_data(args, model)
    history = args.history
    if history is None:
        beside = os.path.join(os.path.dirname(os.path.abspath(args.model)), "history.json")
        history = beside if os.path.exists(beside) else None
    elif not os.path.isfile(history):
        raise CommandError(f"--history {history!r} does not exist")
    say(f"Reporting on {args.model}: {len(data.x_test)} {data.description} test images, "
        f"{min(args.n_explain, len(data.x_test))} explained by every method.")
    start = time.perf_counter()
    path = viz.report(model, data.x_test, data.y_test, args.out, history=history, n_explain=args.n_explain,
                      class_names=_class_names(model, data), sanity=not args.no_sanity, progress=not args.quiet,
                      seed=args.seed, title=f"glassnet report: {os.path.basename(args.model)} on {data.description}",
                      on_warning=warn)
    say(f"Report: {path} ({time.perf_counter() - start:.0f} s)")
    return 0


def add_explain_arguments(parser):
    from glassnet.viz.explanations import METHODS
    _add_saved_model_arguments(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=None, metavar="I", help="test image to explain (default: 0)")
    which.add_argument("--image", metavar="FILE",
                       help="explain your own image (PNG, JPEG, ...): converted to grayscale/RGB and resized to "
                            "the model's input; like MNIST, a light object on a dark background")
    parser.add_argument("--method", choices=list(METHODS), default="grad_cam", help="default: grad_cam")
    parser.add_argument("--target", type=int, metavar="K", help="class to explain (default: the predicted one)")
    parser.add_argument("--out", default="explanation.png", metavar="FILE",
                        help="picture to write; .png, .svg or .pdf (default: explanation.png)")


def run_explain(args):
    viz = _viz()
    model = _load_model_file(args.model)
    names, label = _class_names(model), None
    if args.image is not None:
        try:
            x = viz.load_image(args.image, model.input_shape[1:])
        except ImportError as error:
            raise CommandError(_one_line(error)) from None
        what = args.image
    else:
        data = _test_data(args, model)
        index = 0 if args.index is None else args.index
        if not 0 <= index < len(data.x_test):
            raise CommandError(f"--index {index} is out of range: the {data.description} test set has "
                               f"{len(data.x_test)} images (0 to {len(data.x_test) - 1})")
        x, label, what = data.x_test[index], int(data.y_test[index]), f"test image #{index}"
        names = names or data.class_names
    viz.plot_explanation(model, x, args.method, target=args.target, class_names=names, label=label,
                         to_file=args.out, on_warning=warn)
    probabilities = model.predict(x[None])[0]
    predicted = int(probabilities.argmax())
    shown = names[predicted] if names and predicted < len(names) else str(predicted)
    truth = f"true {names[label] if names and label < len(names) else label}, " if label is not None else ""
    say(f"{what}: {truth}predicted {shown} ({probabilities[predicted]:.1%}). Wrote {args.method} to {args.out}.")
    return 0


register("report", "one self-contained HTML report: summary, diagram, curves, confusion, explanations",
         add_report_arguments, run_report,
         "Write DIR/report.html for a saved model on a test set: summary table, architecture diagram, training "
         "curves, accuracy and confusion, filters, feature maps, activation maximization per class, and for a "
         "sample of test images every explanation method with its sanity-check verdict, randomization curve and "
         "deletion/insertion AUCs. Blank (constant) maps are reported as warnings on stderr.")
register("explain", "explain one prediction as a heatmap picture", add_explain_arguments, run_explain,
         "Explain why a saved model predicts what it does for one test image (--index) or your own image "
         "(--image), with the chosen method, and write the picture (image and heatmap with colorbar) to --out.")


# -- entry point -----------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, text):
        # One line, no usage dump: the user asked for a short error; --help has the rest.
        self.exit(2, f"glassnet: error: {text} (see '{self.prog} --help')\n")


def build_parser():
    from glassnet import __version__
    parser = _Parser(prog="glassnet", description="glassnet: a CNN library on NumPy that trains fast and "
                     "explains itself. Run 'glassnet COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"glassnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS.values():
        child = sub.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(child)
        child.set_defaults(_run=command.run)
    return parser


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv=None):
    """Run the command line; returns the exit status (0 success, 1 failure, 2 bad usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return args._run(args) or 0
    except CommandError as error:
        print(f"glassnet: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glassnet: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, RuntimeError, OSError, MemoryError) as error:
        if os.environ.get("GLASSNET_DEBUG"):
            raise
        print(f"glassnet: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("GLASSNET_DEBUG"):
            raise
        print(f"glassnet: internal error: {type(error).__name__}: {_one_line(error)} (set GLASSNET_DEBUG=1 "
              "for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
