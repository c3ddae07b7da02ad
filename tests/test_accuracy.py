"""Issue 3's accuracy acceptance runs (slow: ``pytest -m slow tests/test_accuracy.py -s``).

- seed 003's recipe (Conv3x3(8) -> MaxPool2 -> Dense(10, softmax), per-sample SGD lr 0.005, 3 epochs)
  on the first 1,000 real MNIST test digits beats the seed's 78% on the next 1,000;
- LeNet-5 with Adam, 3 epochs on 8,000 real digits scores >= 97% on the other 2,000;
- on Fashion-MNIST (Debian's dataset-fashion-mnist), keras_mnist >= 92.5% and fashion >= 93.5% test accuracy;
- issue 20's: ``glassnet train --model resnet_fashion`` >= 94.5% in <= 30 minutes.

Each run appends its numbers and wall time as one JSON line to ``$GLASSNET_ACCURACY_LOG``
(default ``test-artifacts/accuracy.jsonl``) and prints them.
"""
import json
import os
import time

import numpy as np
import pytest

from glassnet import optimizers
from glassnet import presets as models
from glassnet.data import fashion_mnist
from glassnet.data.mnist import DatasetNotFoundError, load_t10k

pytestmark = pytest.mark.slow


def _record(name, **values):
    path = os.environ.get("GLASSNET_ACCURACY_LOG", os.path.join("test-artifacts", "accuracy.jsonl"))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    entry = {"run": name, **values}
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
    print("\nACCURACY", json.dumps(entry))


def _digits():
    x, y = load_t10k()
    return x.astype(np.float32)[..., None], y.astype(np.int64)


def _fashion():
    try:
        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(download=False)
    except DatasetNotFoundError as error:
        pytest.skip(f"Fashion-MNIST files not installed (Debian package dataset-fashion-mnist): {error}")
    scale = lambda x: (x.astype(np.float32) / 255.0)[..., None]  # noqa: E731
    return (scale(x_train), y_train.astype(np.int64)), (scale(x_test), y_test.astype(np.int64))


def test_seed003_recipe_beats_the_seeds_78_percent():
    x, y = _digits()
    x = x / 255.0 - 0.5                      # the seed's (image / 255) - 0.5
    model = models.seed003_tiny(seed=0)
    model.compile(optimizers.SGD(learning_rate=0.005), "sparse_categorical_crossentropy", ["accuracy"])
    start = time.perf_counter()
    model.fit(x[:1000], y[:1000], batch_size=1, epochs=3, shuffle=True, seed=0, verbose=0)
    wall = time.perf_counter() - start
    loss, accuracy = model.evaluate(x[1000:2000], y[1000:2000])
    _record("seed003_tiny per-sample SGD, 1k t10k digits", test_accuracy=accuracy, test_loss=loss, wall_s=wall)
    assert accuracy > 0.78


def test_lenet5_adam_three_epochs_on_8000_digits():
    x, y = _digits()
    x = (x / 255.0 - 0.1307) / 0.3081        # the usual MNIST standardization (mean 0.1307, std 0.3081)
    model = models.lenet5(seed=0)
    model.compile(optimizers.Adam(), "sparse_categorical_crossentropy", ["accuracy"])
    start = time.perf_counter()
    model.fit(x[:8000], y[:8000], batch_size=32, epochs=3, seed=0, verbose=0)
    wall = time.perf_counter() - start
    loss, accuracy = model.evaluate(x[8000:], y[8000:])
    _record("lenet5 Adam 3 epochs, 8k/2k t10k digits", test_accuracy=accuracy, test_loss=loss, wall_s=wall)
    assert accuracy >= 0.97


def _fashion_run(name, threshold):
    (x_train, y_train), (x_test, y_test) = _fashion()
    model = models.get(name, seed=0)
    models.compile_recipe(model, name)
    start = time.perf_counter()
    history = models.fit_recipe(model, name, x_train, y_train, seed=0,
                                verbose=int(os.environ.get("GLASSNET_ACCURACY_VERBOSE", "0")))
    wall = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256)
    _record(f"{name} on Fashion-MNIST (60k train / 10k test)", test_accuracy=accuracy, test_loss=loss,
            wall_s=wall, epochs=len(history.epoch), train_accuracy=history.history["accuracy"][-1],
            recipe=models.recipe(name))
    assert accuracy >= threshold


def test_keras_mnist_on_fashion_mnist():
    _fashion_run("keras_mnist", 0.925)


def test_fashion_preset_on_fashion_mnist():
    _fashion_run("fashion", 0.935)


def test_resnet_fashion_reaches_its_target_through_the_command_line(tmp_path):
    """Issue 20's target, through ``glassnet train --dataset fashion-mnist --model resnet_fashion
    --validation-split 0``: >= 94.5% test accuracy in <= 30 minutes of wall time (on an idle 2-core machine;
    ``GLASSNET_TIME_BUDGET_S`` sets another bound for another machine). The time covers the whole command:
    loading the data, the 12 epochs, the checkpoints and the test evaluation."""
    from glassnet import cli
    _fashion()                                           # skips, saying why, without the Debian package
    start = time.perf_counter()
    status = cli.main(["train", "--dataset", "fashion-mnist", "--model", "resnet_fashion", "--validation-split",
                       "0", "--verbose", "0", "--out", str(tmp_path)])
    wall = time.perf_counter() - start
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    _record("glassnet train --model resnet_fashion (Fashion-MNIST 60k / 10k)", test_accuracy=metrics["test_accuracy"],
            test_loss=metrics["test_loss"], wall_s=wall, train_s=metrics["train_seconds"], epochs=metrics["epochs"],
            recipe=models.recipe("resnet_fashion"))
    assert status == 0
    assert metrics["test_accuracy"] >= 0.945
    assert wall <= float(os.environ.get("GLASSNET_TIME_BUDGET_S", 30 * 60))
