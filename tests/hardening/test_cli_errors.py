"""The command line on bad input: one line ``glassnet: error: ...`` on stderr, a non-zero exit, no traceback.

Each case runs ``python -m glassnet.cli`` in a subprocess (so argparse's exits and the real entry
point are exercised) with ``HOME`` and ``GLASSNET_DATA`` pointing at an empty folder, so no
dataset is found and nothing is downloaded.
"""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn
from glassnet import layers

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with a valid small model, damaged copies of it and bad input files."""
    root = tmp_path_factory.mktemp("cli")
    model = gn.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(28, 28, 1), name="conv"),
                           layers.MaxPooling2D(4, name="pool"), layers.Flatten(name="flat"),
                           layers.Dense(10, activation="softmax", name="preds")], seed=0)
    model.save(root / "ok.npz")
    model.metadata = {"class_names": ["only one"], "dataset": "mnist"}
    model.save(root / "short_names.npz")
    data = (root / "ok.npz").read_bytes()
    (root / "truncated.npz").write_bytes(data[:len(data) // 2])
    (root / "text.npz").write_text("this is not a model\n")
    (root / "pickle.npz").write_bytes(pickle.dumps(Marker(root / "marker.txt")))
    np.save(root / "wrong_shape.npy", np.zeros((2, 5), dtype=np.float32))
    np.save(root / "strings.npy", np.full((1, 28, 28), "a"))
    np.save(root / "objects.npy", np.array([Marker(root / "marker.txt")], dtype=object), allow_pickle=True)
    np.savez(root / "archive.npy", x=np.zeros(3))  # an .npz archive under an .npy name
    np.save(root / "nan.npy", np.full((1, 28, 28), np.nan, dtype=np.float32))
    (root / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (root / "empty").mkdir()
    (root / "a_file").write_text("x")
    return root


class Marker:
    """Unpickling this creates a file: evidence that the CLI ran code from an input file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path(self.path).write_text, ("unpickled",))


def run_cli(args, cwd):
    env = {**os.environ, "HOME": str(cwd / "empty"), "GLASSNET_DATA": str(cwd / "empty"),
           "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "glassnet.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


CASES = [
    # argument parsing
    ("unknown command", ["trian"], "trian"),
    ("unknown dataset", ["train", "--dataset", "cifar10"], "cifar10"),
    ("unknown model preset", ["train", "--model", "resnet152"], "resnet152"),
    ("epochs 0", ["train", "--epochs", "0"], "positive int"),
    ("epochs -1", ["train", "--epochs", "-1"], "-1"),
    ("epochs not a number", ["train", "--epochs", "ten"], "ten"),
    ("epochs fractional", ["train", "--epochs", "2.5"], "2.5"),
    ("batch size 0", ["train", "--batch-size", "0"], "positive int"),
    ("validation split 1.5", ["train", "--validation-split", "1.5"], "1.5"),
    ("learning rate negative", ["train", "--lr", "-0.1"], "-0.1"),
    ("unknown optimizer", ["train", "--optimizer", "lbfgs"], "lbfgs"),
    ("explain: unknown method", ["explain", "--model", "ok.npz", "--method", "shap"], "shap"),
    ("evaluate: --model missing", ["evaluate"], "--model"),
    # model files
    ("evaluate: missing model file", ["evaluate", "--model", "absent.npz", "--dataset", "mnist"], "absent.npz"),
    ("evaluate: text file as model", ["evaluate", "--model", "text.npz", "--dataset", "mnist"], "text.npz"),
    ("evaluate: truncated model", ["evaluate", "--model", "truncated.npz", "--dataset", "mnist"], "truncated.npz"),
    ("evaluate: pickle as model", ["evaluate", "--model", "pickle.npz", "--dataset", "mnist"], "pickle"),
    ("summary: unknown name or path", ["summary", "--model", "nosuchmodel"], "nosuchmodel"),
    ("summary: corrupt model file", ["summary", "--model", "truncated.npz"], "truncated.npz"),
    ("report: corrupt model file", ["report", "--model", "text.npz", "--dataset", "mnist"], "text.npz"),
    ("explain: corrupt model file", ["explain", "--model", "truncated.npz", "--index", "0"], "truncated.npz"),
    ("predict: missing model", ["predict", "--model", "absent.npz", "--input", "nan.npy"], "absent.npz"),
    # data
    ("evaluate: dataset not on disk", ["evaluate", "--model", "ok.npz", "--dataset", "mnist"], "MNIST"),
    ("train: dataset not on disk says --download", ["train", "--dataset", "mnist", "--epochs", "1"], "--download"),
    ("explain: no dataset recorded", ["explain", "--model", "ok.npz"], "--dataset"),
    ("explain: index out of range", ["explain", "--model", "ok.npz", "--dataset", "shapes", "--test-limit", "5",
                                     "--index", "99"], "99"),
    ("explain: target out of range", ["explain", "--model", "ok.npz", "--dataset", "shapes", "--test-limit", "5",
                                      "--target", "12", "--out", "e.png"], "12"),
    ("explain: missing image", ["explain", "--model", "ok.npz", "--image", "absent.png"], "absent.png"),
    ("explain: corrupt image", ["explain", "--model", "ok.npz", "--image", "fake.png"], "fake.png"),
    ("predict: missing input", ["predict", "--model", "ok.npz", "--input", "absent.npy"], "absent.npy"),
    ("predict: input of the wrong shape", ["predict", "--model", "ok.npz", "--input", "wrong_shape.npy"], "(2, 5)"),
    ("predict: string pixels", ["predict", "--model", "ok.npz", "--input", "strings.npy"], "numeric"),
    ("predict: pickled input", ["predict", "--model", "ok.npz", "--input", "objects.npy"], "objects.npy"),
    ("predict: npz archive named .npy", ["predict", "--model", "ok.npz", "--input", "archive.npy"], "archive.npy"),
    ("predict: NaN pixels", ["predict", "--model", "ok.npz", "--input", "nan.npy"], "NaN"),
    ("predict: corrupt PNG", ["predict", "--model", "ok.npz", "--input", "fake.png"], "fake.png"),
    ("predict: IDX garbage", ["predict", "--model", "ok.npz", "--input", "a_file"], "a_file"),
    ("train: --out is a file", ["train", "--dataset", "shapes", "--limit", "8", "--test-limit", "4", "--epochs", "1",
                                "--out", "a_file/run", "--verbose", "0"], "a_file"),
]


def run_in_process(args, cwd, monkeypatch, capsys):
    """``glassnet.cli.main(args)`` in this process; an escaping exception (a traceback) fails the test."""
    from glassnet import cli
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(cwd / "empty"))
    monkeypatch.setenv("GLASSNET_DATA", str(cwd / "empty"))
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def check_one_line_failure(result, fragment, workdir):
    output = result.stdout + result.stderr
    assert result.returncode not in (0, None), f"exit 0 for bad input; output: {output[-500:]}"
    assert "Traceback" not in output, output[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {result.stderr[-1000:]}"
    assert lines[0].startswith("glassnet: error: "), lines[0]
    assert fragment in lines[0], f"{fragment!r} missing from: {lines[0]}"
    assert not (workdir / "marker.txt").exists(), "the CLI unpickled an input file"


@pytest.mark.parametrize("args, fragment", [pytest.param(a, f, id=name) for name, a, f in CASES])
def test_cli_reports_one_line_and_fails(workdir, args, fragment, monkeypatch, capsys):
    """Every case through ``cli.main`` (fast, in process)."""
    check_one_line_failure(run_in_process(args, workdir, monkeypatch, capsys), fragment, workdir)


SUBPROCESS_CASES = ["epochs 0", "epochs not a number", "unknown dataset", "evaluate: missing model file",
                    "evaluate: truncated model", "evaluate: pickle as model", "predict: pickled input"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_entry_point_in_a_subprocess(workdir, name):
    """The real entry point (``python -m glassnet.cli``): exit status, stderr and no traceback as a user sees them."""
    args, fragment = next((a, f) for n, a, f in CASES if n == name)
    check_one_line_failure(run_cli(args, workdir), fragment, workdir)


def test_class_names_shorter_than_outputs_are_not_a_crash(workdir):
    """A model file whose metadata lists fewer class names than outputs still predicts (or fails in one line)."""
    np.save(workdir / "one.npy", np.zeros((1, 28, 28), dtype=np.uint8))
    result = run_cli(["predict", "--model", "short_names.npz", "--input", "one.npy", "--top", "3"], workdir)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
    if result.returncode != 0:
        assert result.stderr.startswith("glassnet: error: ") and result.stderr.count("\n") == 1


def test_case_count():
    print(f"\nCLI bad-input cases: {len(CASES) + 1}")
    assert len({name for name, _, _ in CASES}) == len(CASES)
