"""The command line on a folder of your own images (--dataset FOLDER) and continuing a saved model
(train --model model.npz)."""
import json
import os

import numpy as np
import pytest

import glassnet as gn
from glassnet import cli
from glassnet.saving import load_model

Image = pytest.importorskip("PIL.Image", reason="Pillow (the viz extra) is not installed")


def run(capsys, *argv):
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real t10k digits 3, 7 and 8 as PNG files, 50 per class folder."""
    x, y = gn.datasets.mnist.load_t10k()
    root = tmp_path_factory.mktemp("my_digits")
    for digit in (3, 7, 8):
        os.makedirs(root / f"digit{digit}")
        for k, index in enumerate(np.flatnonzero(y == digit)[:50]):
            Image.fromarray(x[index]).save(root / f"digit{digit}" / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    status = cli.main(["train", "--dataset", str(folder), "--model", "seed003_tiny", "--epochs", "2",
                       "--verbose", "0", "--out", str(out), "--validation-split", "0"])
    assert status == 0
    return out


def test_train_on_a_folder_learns_its_classes(trained, folder):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["train_samples"] == 120 and metrics["test_samples"] == 30        # 80 / 20 of 150
    assert metrics["test_accuracy"] > 0.7                                           # chance: 1/3
    model = load_model(trained / "model.npz")
    assert model.metadata["class_names"] == ["digit3", "digit7", "digit8"]
    assert model.metadata["dataset"] == os.path.abspath(folder)


def test_train_model_file_continues_the_saved_model(trained, folder, capsys, tmp_path):
    status, out, _ = run(capsys, "train", "--model", trained / "model.npz", "--dataset", folder, "--epochs", "1",
                         "--verbose", "0", "--out", tmp_path, "--validation-split", "0")
    assert status == 0 and "Continuing" in out and "after epoch 2" in out
    continued = load_model(tmp_path / "model.npz")
    assert continued.completed_epochs == 3 and continued.optimizer.iterations > 0
    original = load_model(trained / "model.npz")
    assert continued.optimizer.iterations == original.optimizer.iterations + 120         # the recipe's batch of 1
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == "seed003_tiny"


def test_evaluate_explain_and_report_take_the_folder(trained, folder, capsys, tmp_path):
    status, out, _ = run(capsys, "evaluate", "--model", trained / "model.npz", "--dataset", folder)
    assert status == 0 and "30 test images" in out and "accuracy" in out
    # explain and report find the folder in the model file when --dataset is left out
    status, out, _ = run(capsys, "explain", "--model", trained / "model.npz", "--index", "3", "--out",
                         tmp_path / "why.png")
    assert status == 0 and (tmp_path / "why.png").stat().st_size > 0 and "predicted digit" in out
    status, out, _ = run(capsys, "report", "--model", trained / "model.npz", "--dataset", folder, "--out",
                         tmp_path / "report", "--n-explain", "2", "--no-sanity", "--quiet")
    assert status == 0 and (tmp_path / "report" / "report.html").exists()


def test_bad_dataset_and_model_arguments(capsys, tmp_path, trained):
    status, _, err = run(capsys, "train", "--dataset", tmp_path / "nowhere")
    assert status == 2 and "neither a dataset" in err
    status, _, err = run(capsys, "train", "--model", "resnet")
    assert status == 2 and "invalid choice" in err and "saved model file" in err
    status, _, err = run(capsys, "train", "--model", trained / "model.npz", "--dataset", "shapes", "--limit", "20",
                         "--test-limit", "10", "--verbose", "0", "--out", tmp_path)
    assert status == 2 and "outputs" in err
