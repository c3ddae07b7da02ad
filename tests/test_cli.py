"""The glassnet command line: help, train / evaluate / summary / predict / demo, and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from glassnet import cli
from glassnet.saving import load_model


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``glassnet argv``."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_help_lists_every_command_and_each_has_its_own_help(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for name in ("train", "evaluate", "summary", "predict", "demo"):
        assert name in out
        status, sub, _ = run(capsys, name, "--help")
        assert status == 0 and f"usage: glassnet {name}" in sub
    status, out, _ = run(capsys, "train", "--help")
    assert all(option in out for option in ("--dataset", "--model", "--epochs", "--batch-size", "--optimizer",
                                            "--lr", "--seed", "--out"))
    assert run(capsys)[0] == 2                                  # no command: help and a usage status


def test_commands_are_registered_in_one_table():
    assert list(cli.COMMANDS)[:5] == ["train", "evaluate", "summary", "predict", "demo"]
    for command in cli.COMMANDS.values():
        assert callable(command.add_arguments) and callable(command.run) and command.help


def test_summary_of_a_preset(capsys):
    status, out, _ = run(capsys, "summary", "--model", "keras_mnist", "--list")
    assert status == 0 and "Total params: 1,199,882" in out and "lenet5" in out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    status = cli.main(["train", "--dataset", "shapes", "--limit", "300", "--test-limit", "100", "--model",
                       "seed003_tiny", "--epochs", "2", "--batch-size", "32", "--out", str(out), "--verbose", "0"])
    assert status == 0
    return out


def test_train_writes_model_history_plot_and_metrics(trained):
    assert sorted(os.listdir(trained)) == ["history.csv", "history.json", "history.png", "metrics.json",
                                           "model.npz"]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["dataset"] == "shapes" and metrics["model"] == "seed003_tiny" and metrics["epochs"] == 2
    assert metrics["train_samples"] == 270 and metrics["validation_samples"] == 30 and metrics["test_samples"] == 100
    assert 0 <= metrics["test_accuracy"] <= 1
    history = json.loads((trained / "history.json").read_text())
    assert set(history["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert (trained / "history.png").read_bytes()[:4] == b"\x89PNG"
    model = load_model(trained / "model.npz")
    assert model.completed_epochs == 2 and model.metadata["dataset"] == "shapes"
    assert model.metadata["class_names"][0] == "square"


def test_summary_list_alone_lists_the_presets_and_nothing_at_all_is_an_error(capsys):
    status, out, _ = run(capsys, "summary", "--list")
    assert status == 0 and "keras_mnist" in out and "lenet5" in out and "Total params" not in out
    status, _, err = run(capsys, "summary")
    assert status != 0 and "--model" in err and "--list" in err


def test_evaluate_and_summary_of_a_saved_model(capsys, trained):
    status, out, _ = run(capsys, "evaluate", "--model", str(trained / "model.npz"), "--dataset", "shapes",
                         "--test-limit", "100")
    saved = json.loads((trained / "metrics.json").read_text())
    assert status == 0 and f"accuracy {saved['test_accuracy']:.4f}" in out
    status, out, _ = run(capsys, "summary", "--model", str(trained / "model.npz"))
    assert status == 0 and "Total params: 13,602" in out and "2 epochs on shapes" in out


def test_predict_from_npy_writes_probabilities(capsys, trained, tmp_path):
    images = (np.random.default_rng(0).random((3, 28, 28)) * 255).astype(np.uint8)
    np.save(tmp_path / "x.npy", images)
    status, out, _ = run(capsys, "predict", "--model", str(trained / "model.npz"), "--input",
                         str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npy"), "--top", "2")
    assert status == 0 and out.startswith("0: ")
    probabilities = np.load(tmp_path / "p.npy")
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities, load_model(trained / "model.npz").predict(images[..., None] / 255.0),
                               rtol=1e-5)


def test_train_resume_continues_from_the_checkpoint(capsys, tmp_path):
    common = ["train", "--dataset", "shapes", "--limit", "120", "--test-limit", "40", "--model", "seed003_tiny",
              "--batch-size", "16", "--out", str(tmp_path), "--verbose", "0"]
    assert run(capsys, *common, "--epochs", "1")[0] == 0
    status, out, _ = run(capsys, *common, "--epochs", "2", "--resume")
    assert status == 0 and "after epoch 1" in out
    assert load_model(tmp_path / "model.npz").completed_epochs == 2
    assert len((tmp_path / "history.csv").read_text().strip().splitlines()) == 3        # header + 2 epochs
    record = json.loads((tmp_path / "history.json").read_text())
    assert record["epoch"] == [0, 1] and all(len(values) == 2 for values in record["history"].values())
    assert run(capsys, *common, "--epochs", "2", "--resume")[0] == 0                    # nothing left to train
    assert json.loads((tmp_path / "history.json").read_text()) == record


def test_resume_with_an_unreadable_history_keeps_this_runs_epochs(capsys, tmp_path):
    common = ["train", "--dataset", "shapes", "--limit", "120", "--test-limit", "40", "--model", "seed003_tiny",
              "--batch-size", "16", "--out", str(tmp_path), "--verbose", "0"]
    assert run(capsys, *common, "--epochs", "1")[0] == 0
    (tmp_path / "history.json").write_text("{not json")
    status, out, _ = run(capsys, *common, "--epochs", "2", "--resume")
    assert status == 0 and "Could not read the earlier epochs" in out and "after 2 epochs" in out
    assert json.loads((tmp_path / "history.json").read_text())["epoch"] == [1]


def test_demo_falls_back_to_shapes_and_writes_everything(capsys, tmp_path, monkeypatch):
    from glassnet.datasets import DatasetNotFoundError
    original = cli.load_dataset

    def no_fashion(name, *args, **kwargs):
        if name == "fashion-mnist":
            raise DatasetNotFoundError("Fashion-MNIST was not found")
        return original(name, *args, **kwargs)
    monkeypatch.setattr(cli, "load_dataset", no_fashion)
    monkeypatch.setitem(cli.DEMO, "test_images", 60)
    monkeypatch.setitem(cli.DEMO, "model", "seed003_tiny")      # the flow, not the (slower) default net
    monkeypatch.setitem(cli.DEMO, "report_images", 2)
    status, out, _ = run(capsys, "demo", "--out", str(tmp_path), "--limit", "200", "--epochs", "1",
                         "--verbose", "0")
    assert status == 0 and "synthetic shapes" in out
    assert {"model.npz", "history.json", "history.png", "metrics.json", "report.html"} <= set(os.listdir(tmp_path))
    assert str(tmp_path / "report.html") in out                  # the demo ends by printing the report's path
    page = (tmp_path / "report.html").read_text()
    assert "synthetic shapes" in page and "Grad-CAM" in page and page.count("data:image/png;base64,") >= 10


@pytest.mark.parametrize("argv, status, text", [
    (["train", "--model", "resnet"], 2, "invalid choice"),
    (["train", "--epochs", "0"], 2, "positive int"),
    (["train", "--validation-split", "1.5"], 2, "[0, 1)"),
    (["evaluate", "--model", "missing.npz", "--dataset", "shapes"], 1, "does not exist"),
    (["summary", "--model", "no-such-thing"], 2, "neither a preset"),
    (["predict", "--model", "missing.npz", "--input", "x.npy"], 1, "does not exist"),
])
def test_bad_input_prints_one_line_and_exits_non_zero(capsys, argv, status, text):
    code, out, err = run(capsys, *argv)
    assert code == status and text in err and err.startswith("glassnet: error: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_damaged_files_and_wrong_images_are_one_line_errors(capsys, trained, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes((trained / "model.npz").read_bytes()[:500])
    code, _, err = run(capsys, "evaluate", "--model", str(broken), "--dataset", "shapes")
    assert code == 1 and "truncated" in err and len(err.strip().splitlines()) == 1
    np.save(tmp_path / "rgb.npy", np.zeros((2, 28, 28, 3), dtype=np.uint8))
    code, _, err = run(capsys, "predict", "--model", str(trained / "model.npz"), "--input", str(tmp_path / "rgb.npy"))
    assert code == 1 and "per-example shape (28, 28, 1)" in err and len(err.strip().splitlines()) == 1


def test_the_installed_entry_point_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "glassnet.cli", "evaluate", "--model", str(tmp_path / "x.npz"),
                             "--dataset", "shapes"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("glassnet: error:")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_internal_bug_is_one_line_unless_debugging(capsys, monkeypatch):
    def broken(args):
        raise KeyError("oops")
    monkeypatch.setitem(cli.COMMANDS, "summary", cli.COMMANDS["summary"]._replace(run=broken))
    code, _, err = run(capsys, "summary", "--model", "lenet5")
    assert code == 1 and err.startswith("glassnet: internal error: KeyError") and "GLASSNET_DEBUG" in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("GLASSNET_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["summary", "--model", "lenet5"])


def test_predict_reads_idx_and_png_images(capsys, trained, tmp_path):
    from glassnet.datasets import save_idx
    images = (np.random.default_rng(1).random((2, 28, 28)) * 255).astype(np.uint8)
    save_idx(tmp_path / "x.idx.gz", images)
    status, out, _ = run(capsys, "predict", "--model", str(trained / "model.npz"), "--input", str(tmp_path / "x.idx.gz"))
    assert status == 0 and len(out.strip().splitlines()) == 2
    import matplotlib.image as mpimg
    mpimg.imsave(tmp_path / "one.png", images[0], cmap="gray", vmin=0, vmax=255)
    status, out, _ = run(capsys, "predict", "--model", str(trained / "model.npz"), "--input", str(tmp_path / "one.png"))
    expected = load_model(trained / "model.npz").predict(images[:1, ..., None] / 255.0).argmax()
    names = load_model(trained / "model.npz").metadata["class_names"]
    assert status == 0 and out.startswith(f"0: {names[expected]} (")


def test_train_resnet_fashion_with_and_without_its_augmentation_layers(capsys, tmp_path):
    for flag, expected in [([], True), (["--no-augment"], False)]:
        out = tmp_path / ("plain" if flag else "augmented")
        status, _, _ = run(capsys, "train", "--dataset", "shapes", "--limit", "64", "--test-limit", "32", "--model",
                           "resnet_fashion", "--epochs", "1", "--batch-size", "32", "--out", str(out), "--verbose",
                           "0", *flag)
        assert status == 0
        model = load_model(out / "model.npz")
        assert model.count_params() == 874_282 and model.completed_epochs == 1
        assert model.loss.label_smoothing == 0.1           # the recipe's loss, saved and loaded
        assert any(type(layer).__name__ == "RandomFlip" for layer in model.layers) == expected
        assert model.optimizer.schedule is not None
        assert json.loads((out / "metrics.json").read_text())["model"] == "resnet_fashion"
