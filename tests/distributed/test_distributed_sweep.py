"""Sweeps on a real cluster: the spec checked before anything starts, the results table, best model and
summary, a sweep killed and rerun, a trial whose worker dies."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import glassnet as gn
from glassnet import distributed as gd
from glassnet.distributed.sweeps import plan_trials, run_trial


def small_spec(**changes):
    spec = {"recipe": "lenet5", "dataset": "shapes", "train_images": 160, "test_images": 64,
            "validation_split": 0.25, "search": "grid", "seed": 3, "metric": "val_accuracy",
            "params": {"learning_rate": [0.001, 0.003], "epochs": [1], "batch_size": [32]}}
    spec.update(changes)
    return spec


def test_a_bad_spec_is_one_error_listing_every_problem_before_anything_starts(tmp_path):
    spec = small_spec(recipe="resnet", learning_rate=0.1, validation_split=1.5,
                      params={"learning_rate": [0.001, -1], "epochs": [0], "momentum": [0.9]})
    with pytest.raises(ValueError) as caught:
        gd.sweep(spec, tmp_path / "out", client="tcp://127.0.0.1:9")   # no cluster is contacted
    text = str(caught.value)
    for problem in ("unknown key 'learning_rate'", "recipe 'resnet'", "validation_split 1.5",
                    "params.learning_rate: -1", "params.epochs: 0", "unknown parameter 'momentum'"):
        assert problem in text
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="trials None: a random search needs a positive int"):
        gd.load_spec(small_spec(search="random"))


def test_the_cli_reports_a_bad_spec_in_one_line(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(small_spec(metric="f1")))
    run = subprocess.run([sys.executable, "-m", "glassnet.cli", "sweep", str(path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "metric 'f1' is not one of" in run.stderr


def test_a_grid_sweep_writes_its_table_best_model_and_summary(client, tmp_path):
    spec = small_spec()
    out = tmp_path / "sweep"
    result = gd.sweep(spec, out, client=client)
    assert len(result["trained"]) == 2 and result["skipped"] == [] and result["failed"] == []
    values = [row["metrics"]["val_accuracy"] for row in result["results"]]
    assert values == sorted(values, reverse=True)
    table = (out / "results.csv").read_text().splitlines()
    assert table[0].startswith("rank,id,seed,batch_size,epochs,learning_rate") and len(table) == 3
    assert json.loads((out / "results.json").read_text())["trials"] == result["results"]
    best = gn.load_model(out / "best_model.npz")
    assert best.metadata["sweep_trial"] == result["best"]["id"]
    page = (out / "summary.html").read_text()
    assert "<table>" in page and "<svg" in page and result["best"]["id"] in page
    # a trial computed on a worker is what the same trial gives in this process (one BLAS thread)
    trial = next(t for t in plan_trials(gd.load_spec(spec)) if t["id"] == result["best"]["id"])
    with threadpool_limits(1):
        here, history, _ = run_trial(gd.load_spec(spec), trial)
    assert here["metrics"] == result["best"]["metrics"]
    assert json.loads((out / "trials" / trial["id"] / "history.json").read_text()) == history
    again = gd.sweep(spec, out, client=client)
    assert again["trained"] == [] and len(again["skipped"]) == 2 and again["results"] == result["results"]
    with pytest.raises(ValueError, match="holds .*spec.json of another spec"):
        gd.sweep(small_spec(seed=4), out, client=client)


def test_a_sweep_killed_and_rerun_skips_the_finished_trials(client, tmp_path):
    spec = small_spec(search="random", trials=4, params={"learning_rate": {"min": 1e-4, "max": 1e-2, "log": True},
                                                         "epochs": [1, 2], "batch_size": [32]})
    path, out = tmp_path / "spec.json", tmp_path / "sweep"
    path.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "glassnet.cli", "sweep", str(path), "--out", str(out), "--quiet",
               "--scheduler", client.scheduler.address]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while not list(out.glob("trials/*/result.json")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = {p.parent.name: p.read_bytes() for p in out.glob("trials/*/result.json")}
    assert 1 <= len(finished) < 4, "the sweep was not stopped midway"
    assert not (out / "results.csv").exists()
    result = gd.sweep(spec, out, client=client)
    assert sorted(result["skipped"]) == sorted(finished) and len(result["trained"]) == 4 - len(finished)
    assert len(result["results"]) == 4 and len({row["id"] for row in result["results"]}) == 4
    for trial_id, content in finished.items():
        assert (out / "trials" / trial_id / "result.json").read_bytes() == content


def test_a_trial_whose_worker_dies_is_retried_and_counted_once(client, tmp_path, monkeypatch):
    from glassnet.distributed import sweeps as sweep_module
    stored, killed = [], []
    original = sweep_module._store

    def spy(out, result, history, model_bytes):
        stored.append(result["id"])
        original(out, result, history, model_bytes)
    monkeypatch.setattr(sweep_module, "_store", spy)

    def kill_while_busy(done, total):
        busy = [address for address, keys in client.processing().items() if keys]
        if done and not killed and busy:
            pids = client.run(os.getpid, workers=busy[:1])
            os.kill(next(iter(pids.values())), signal.SIGKILL)
            killed.append(busy[0])
    spec = small_spec(params={"learning_rate": [0.001, 0.002, 0.003, 0.004], "epochs": [1], "batch_size": [32]})
    result = gd.sweep(spec, tmp_path / "sweep", client=client, progress=kill_while_busy)
    assert killed and result["failed"] == []
    assert sorted(stored) == sorted(t["id"] for t in plan_trials(gd.load_spec(spec)))     # each trial once
    assert len(os.listdir(tmp_path / "sweep" / "trials")) == 4
    assert np.isfinite([row["metrics"]["val_accuracy"] for row in result["results"]]).all()


def test_a_dataset_missing_on_a_worker_fails_its_trial_naming_the_worker(client, tmp_path):
    empty = str(tmp_path / "no-data")
    # lambdas travel by value and find the worker's own os.environ (a bound method would carry a copy)
    before = client.run(lambda: os.environ.get("GLASSNET_DATA"))
    client.run(lambda: os.environ.update(GLASSNET_DATA=empty))         # an empty dataset cache on the workers
    try:
        result = gd.sweep(small_spec(dataset="mnist", params={"epochs": [1]}), tmp_path / "sweep", client=client)
    finally:
        for address, value in before.items():
            client.run(lambda: os.environ.pop("GLASSNET_DATA", None) if value is None
                       else os.environ.update(GLASSNET_DATA=value), workers=[address])
    assert result["results"] == [] and len(result["failed"]) == 1
    reason = json.loads((tmp_path / "sweep" / "failed.json").read_text())[result["failed"][0]]
    assert re.search(r"worker tcp://127\.0\.0\.1:\d+ cannot load dataset 'mnist'", reason)
