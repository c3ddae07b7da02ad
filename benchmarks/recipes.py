"""Accuracy of a preset's recipe and of variants of it, epoch by epoch: the experiments behind the README's
accuracy table and the recipe choices in benchmarks/NOTES.md.

``python -m benchmarks.recipes --model resnet_fashion --set epochs=14 --set preset.stem=[16,32] --log run.jsonl``
trains the preset (seed 0) with :func:`glassnet.presets.fit_recipe` on Fashion-MNIST and writes one JSON line
per epoch: seconds, training loss and accuracy, and every ``--every`` epochs (and the last three) the test
accuracy. After the last two epochs it also gives the accuracy of a flip test-time augmentation (the mean of
the predicted probabilities of each test image and its mirror image), for comparison only: it is not what
``evaluate`` or ``glassnet train`` report.

``--set KEY=VALUE`` (VALUE in JSON, else a string) overrides the recipe: ``epochs``, ``batch_size``,
``optimizer`` (a whole optimizers.get config), ``label_smoothing``, or ``preset.ARG`` (an argument of the
preset function, such as ``stem``, ``widths`` or ``head``). Two variants can run side by side on one thread
each (``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``): a one-thread run differs from the command line's two-thread
run only where the convolutions' blocks, which follow the thread count, sum in another order (the fifth stop's
SGD recipe: 94.27% test accuracy both ways, training accuracy 95.16% and 95.18%).
"""
import argparse
import json
import time

import numpy as np


def parse_override(text):
    """``("a.b", value)`` from ``"a.b=VALUE"``, VALUE parsed as JSON when it is JSON, else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def variant(model_name, overrides):
    """``(preset_kwargs, recipe)``: the preset's recipe (:func:`glassnet.presets.recipe`) with ``overrides``
    (``[(key, value), ...]`` as :func:`parse_override` gives them) applied."""
    from glassnet import presets
    recipe, preset_kwargs = presets.recipe(model_name), {}
    loss = recipe.get("loss", {"class_name": "SparseCategoricalCrossentropy"})
    for key, value in overrides:
        if key.startswith("preset."):
            preset_kwargs[key[len("preset."):]] = value
        elif key == "label_smoothing":
            loss = {**loss, "label_smoothing": value}
        elif key in ("epochs", "batch_size", "optimizer"):
            recipe[key] = value
        else:
            raise ValueError(f"unknown override {key!r}: use epochs, batch_size, optimizer, label_smoothing "
                             "or preset.ARG")
    return preset_kwargs, {**recipe, "loss": loss}


def flip_tta_accuracy(model, x, y, probabilities):
    """Accuracy of the mean of ``probabilities`` (the model's on ``x``) and the model's on mirrored ``x``."""
    mirrored = model.predict(np.ascontiguousarray(x[:, :, ::-1]), batch_size=256, verbose=0)
    return float(((probabilities + mirrored).argmax(axis=1) == y).mean())


def run(model_name, overrides, x_train, y_train, x_test, y_test, write, every=2, seed=0):
    """Train the variant and call ``write(record)`` once per epoch (see the module notes); returns the
    records."""
    import glassnet as gn
    from glassnet import presets
    preset_kwargs, recipe = variant(model_name, overrides)
    model = presets.get(model_name, seed=seed, **preset_kwargs)
    model.compile(optimizer=gn.optimizers.get(recipe["optimizer"]), loss=gn.losses.get(recipe["loss"]),
                  metrics=["accuracy"])
    records, epochs = [], recipe["epochs"]

    class EpochLog(gn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            record = {"epoch": done, "seconds": round(time.perf_counter() - self.start, 1),
                      "loss": round(float(logs["loss"]), 4), "accuracy": round(float(logs["accuracy"]), 4)}
            if done % every == 0 or done > epochs - 3:
                probabilities = self.model.predict(x_test, batch_size=256, verbose=0)
                record["test_accuracy"] = round(float((probabilities.argmax(axis=1) == y_test).mean()), 4)
                if done > epochs - 2:
                    record["flip_tta_accuracy"] = round(flip_tta_accuracy(self.model, x_test, y_test,
                                                                          probabilities), 4)
            records.append(record)
            write(record)

    presets.fit_recipe(model, model_name, x_train, y_train, seed=seed, verbose=0, callbacks=[EpochLog()],
                       settings=recipe)
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.recipes", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet_fashion", help="preset (default: %(default)s)")
    ap.add_argument("--set", dest="overrides", action="append", type=parse_override, default=[],
                    metavar="KEY=VALUE", help="override the recipe (repeatable)")
    ap.add_argument("--dataset", default="fashion-mnist", help="a glassnet train dataset (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="first N training and test images (a smoke test)")
    ap.add_argument("--every", type=int, default=2, help="test accuracy every N epochs (default 2)")
    ap.add_argument("--log", default=None, help="append the JSON lines to this file too")
    a = ap.parse_args(argv)
    from glassnet.cli import load_dataset
    data = load_dataset(a.dataset, limit=a.limit, test_limit=a.limit)
    sink = open(a.log, "a") if a.log else None

    def write(record):
        line = json.dumps(record)
        print(line, flush=True)
        if sink:
            print(line, file=sink, flush=True)
    write({"model": a.model, "overrides": dict(a.overrides), "dataset": a.dataset, "limit": a.limit})
    try:
        run(a.model, a.overrides, data.x_train, data.y_train, data.x_test, data.y_test, write, a.every)
    finally:
        if sink:
            sink.close()


if __name__ == "__main__":
    main()
