"""The command line on a real cluster: --scheduler on evaluate, explain and report."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from glassnet import explain
from glassnet.cli import load_dataset, main


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from glassnet import models
    path = tmp_path_factory.mktemp("cli") / "model.npz"
    net = models.get("lenet5", seed=1)
    net.metadata = {"dataset": "shapes"}
    net.save(path)
    return str(path)


def test_evaluate_on_a_cluster_prints_what_one_process_prints(client, model_file, capsys):
    arguments = ["evaluate", "--model", model_file, "--dataset", "shapes", "--limit", "1", "--test-limit", "96"]
    assert main(arguments) == 0
    here = capsys.readouterr().out
    assert main(arguments + ["--scheduler", client.scheduler.address]) == 0
    assert capsys.readouterr().out == here and "96 test images: loss" in here


def test_explain_every_test_image_on_a_cluster(client, model_file, tmp_path, capsys):
    import glassnet as gn
    out = tmp_path / "maps.npy"
    assert main(["explain", "--model", model_file, "--test-limit", "10", "--method", "guided", "--out", str(out),
                 "--scheduler", client.scheduler.address]) == 0
    assert "Wrote guided maps (10, 28, 28)" in capsys.readouterr().out
    x = load_dataset("shapes", limit=1, test_limit=10).x_test
    with threadpool_limits(1):
        expected = explain.saliency(gn.load_model(model_file), x, modifier="guided")
    assert np.array_equal(np.load(out), expected)


@pytest.mark.parametrize("extra, error", [(["--index", "3"], "leave out --index"),
                                          (["--out", "x.png"], "a .npy or .zarr file"),
                                          (["--method", "no"], "invalid choice")])
def test_explain_with_scheduler_refuses_what_it_cannot_do(model_file, extra, error, capsys):
    arguments = ["explain", "--model", model_file, "--out", "maps.npy", "--scheduler", "tcp://127.0.0.1:9"] + extra
    if "invalid" in error:                    # argparse's own refusal
        with pytest.raises(SystemExit):
            main(arguments)
    else:                                     # refused before any cluster is contacted
        assert main(arguments) == 2
    assert error in capsys.readouterr().err


@pytest.mark.slow
def test_report_with_scheduler(client, model_file, tmp_path, capsys):
    assert main(["report", "--model", model_file, "--test-limit", "64", "--n-explain", "2", "--no-sanity", "--quiet",
                 "--out", str(tmp_path), "--scheduler", client.scheduler.address]) == 0
    assert (tmp_path / "report.html").exists() and "Report:" in capsys.readouterr().out
