"""gn.viz.report: one self-contained HTML page, opened in real headless Chromium."""
import os
import pathlib
import re
import shutil

import markupsafe
import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")
pytest.importorskip("jinja2", reason="jinja2 (the viz extra) is not installed")

import glassnet as gn  # noqa: E402
from glassnet import datasets, explain, layers, optimizers  # noqa: E402
from glassnet.viz.report import METHOD_KEYS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts"
SECTIONS = ["summary", "architecture", "training", "accuracy", "filters", "feature-maps",
            "activation-maximization", "explanations", "trust"]
N_EXPLAIN = 4


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained for a few seconds on the shapes dataset, its test split and history."""
    (x_train, y_train), (x_test, y_test) = datasets.shapes.load_data(n_train=1500, n_test=200, seed=0)
    x_train = x_train[..., None].astype(np.float32) / 255
    x_test = x_test[..., None].astype(np.float32) / 255
    model = gn.Sequential([
        layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(10, activation="softmax", name="preds"),
    ], seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # ~90% test accuracy in 3 short epochs
    history = model.fit(x_train, y_train, batch_size=32, epochs=3, validation_split=0.1, verbose=0, seed=0)
    return model, x_test, y_test, history


@pytest.fixture(scope="module")
def report(trained, tmp_path_factory):
    """(path, progress calls) of the report on the trained model."""
    model, x, y, history = trained
    calls = []
    path = gn.viz.report(model, x, y, tmp_path_factory.mktemp("report"), history=history, n_explain=N_EXPLAIN,
                         class_names=datasets.shapes.CLASS_NAMES, maximization_steps=30, sanity_images=2,
                         progress=lambda stage, done, total: calls.append((stage, done, total)))
    return pathlib.Path(path), calls


def test_report_is_one_self_contained_file(report):
    path, _ = report
    assert path.name == "report.html" and os.listdir(path.parent) == ["report.html"]
    text = path.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)
    assert len(sources) >= 8 + N_EXPLAIN * (1 + len(METHOD_KEYS))
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    links = re.findall(r'\s(?:href|src)="([^"]*)"', text)
    assert all(link.startswith(("data:", "#")) for link in links), "the page must not fetch anything"
    assert "<script" not in text


def test_report_progress_reaches_its_total_in_order(report):
    _, calls = report
    total = calls[0][2]
    assert [done for _, done, _ in calls] == list(range(1, total + 1))
    assert {t for _, _, t in calls} == {total}
    stages = [stage for stage, _, _ in calls]
    assert stages[-1] == "written" and "activation maximization" in stages
    assert sum(stage.startswith("sanity check") for stage in stages) == len(METHOD_KEYS)


def _dense_model():
    """No convolution: the report must leave out what needs one."""
    return gn.Sequential([layers.Flatten(input_shape=(8, 8, 1)), layers.Dense(3, activation="softmax")], seed=1)


def test_progress_true_draws_a_tqdm_bar_on_stderr(tmp_path, capsys):
    pytest.importorskip("tqdm", reason="tqdm (the progress extra) is not installed")
    x = np.random.default_rng(0).random((12, 8, 8, 1)).astype(np.float32)
    arguments = dict(n_explain=1, methods=["saliency"], sanity=False, maximization_steps=1)
    gn.viz.report(_dense_model(), x, np.arange(12) % 3, tmp_path, progress=True, **arguments)
    captured = capsys.readouterr()
    assert captured.out == ""  # library code never prints
    assert "glassnet report" in captured.err and "100%" in captured.err
    gn.viz.report(_dense_model(), x, np.arange(12) % 3, tmp_path, progress=False, **arguments)
    assert capsys.readouterr() == ("", "")


def test_sanity_verdicts_are_explain_sanity_check(trained, report):
    """The Grad-CAM badge says what explain.sanity_check says for the same (first two) images."""
    path, _ = report
    model, x, y, _ = trained
    text = path.read_text(encoding="utf-8")
    sample = np.sort(np.random.default_rng(0).choice(len(x), N_EXPLAIN, replace=False))
    check = explain.sanity_check(model, x[sample[:2]],
                                 lambda net, images, target=None: explain.grad_cam(net, images, target), seed=0,
                                 independent=False)
    header = re.search(r"<th>Grad-CAM(.*?)</th>", text, flags=re.S).group(1)
    assert ("passes sanity check" if check.passed else "fails sanity check") in header
    assert str(markupsafe.escape(check.reason)) in header
    row = re.search(r'<tr class="trust-row" data-method="grad_cam">(.*?)</tr>', text, flags=re.S).group(1)
    assert str(markupsafe.escape(check.reason)) in row
    for index in sample:
        assert f"#{index}:" in text
    assert "on\n    the first 2 of these images" in text


def test_every_method_row_has_its_curve_verdict_and_aucs(trained, report):
    """The trust section: per method the cascade curve, the verdict with its reason, deletion/insertion AUCs
    against a random order (those of explain.deletion_insertion on the explained images) and the blank count."""
    path, _ = report
    model, x, y, _ = trained
    text = path.read_text(encoding="utf-8")
    rows = dict(re.findall(r'<tr class="trust-row" data-method="(\w+)">(.*?)</tr>', text, flags=re.S))
    assert list(rows) == list(METHOD_KEYS)
    for key, row in rows.items():
        assert re.search(r'<img class="curve" src="data:image/png;base64,', row), key
        assert re.search(r"(passes|fails) sanity check</span><br>(passes|fails): ", row), key
        assert re.search(r'auc-deletion"><span class="(better|worse)">\d\.\d{3}</span> / \d\.\d{3}', row), key
        assert re.search(r'auc-insertion"><span class="(better|worse)">\d\.\d{3}</span> / \d\.\d{3}', row), key
        assert re.search(rf"\d+ of {N_EXPLAIN}", row), key
    sample = np.sort(np.random.default_rng(0).choice(len(x), N_EXPLAIN, replace=False))
    maps = explain.grad_cam(model, x[sample])
    expected = explain.deletion_insertion(model, x[sample], maps, steps=10, seed=0)
    cell = re.search(r'auc-deletion"><span class="\w+">([\d.]+)</span> / ([\d.]+)', rows["grad_cam"])
    assert float(cell.group(1)) == pytest.approx(expected.deletion_auc.mean(), abs=6e-4)
    assert float(cell.group(2)) == pytest.approx(expected.random_deletion_auc.mean(), abs=6e-4)


def test_model_without_convolutions_skips_cam_with_a_note(tmp_path):
    x = np.random.default_rng(0).random((12, 8, 8, 1)).astype(np.float32)
    path = gn.viz.report(_dense_model(), x, np.arange(12) % 3, tmp_path, n_explain=2, sanity=False, progress=False,
                         methods=["saliency", "grad_cam", "occlusion"], maximization_steps=2,
                         diagram_engine="matplotlib")
    text = pathlib.Path(path).read_text(encoding="utf-8")
    assert "skipped grad_cam" in text
    assert "(matplotlib drawing)" in text
    assert 'id="filters"' not in text and 'id="feature-maps"' not in text and 'id="training"' not in text
    headers = re.findall(r"<th>(saliency \(vanilla\)|Grad-CAM|occlusion)\s", text)
    assert headers == ["saliency (vanilla)", "occlusion"]


@pytest.mark.parametrize("history", [{"history": {}, "epoch": []}, {"loss": [], "accuracy": []}, "json"])
def test_a_history_of_no_epochs_leaves_the_curves_out_with_a_note(tmp_path, history):
    """A model saved before any training (``glassnet train --resume`` with nothing left to do)."""
    if history == "json":
        history = tmp_path / "history.json"
        history.write_text('{"history": {}, "epoch": []}')
    x = np.random.default_rng(0).random((12, 8, 8, 1)).astype(np.float32)
    path = gn.viz.report(_dense_model(), x, np.arange(12) % 3, tmp_path, history=history, n_explain=1,
                         methods=["saliency"], sanity=False, progress=False, maximization_steps=1,
                         diagram_engine="matplotlib")
    text = pathlib.Path(path).read_text(encoding="utf-8")
    assert "holds no epochs" in text and 'id="training"' not in text


def test_report_rejects_bad_arguments(trained, tmp_path):
    model, x, y, _ = trained
    with pytest.raises(ValueError, match="method one of"):
        gn.viz.report(model, x, y, tmp_path, methods=["lime"])
    with pytest.raises(TypeError, match="methods as a list"):
        gn.viz.report(model, x, y, tmp_path, methods="saliency")
    with pytest.raises(ValueError, match="n_explain"):
        gn.viz.report(model, x, y, tmp_path, n_explain=0)
    with pytest.raises(TypeError, match="n_explain"):
        gn.viz.report(model, x, y, tmp_path, n_explain="3")
    with pytest.raises(TypeError, match="sanity_images"):            # a bool is not an int
        gn.viz.report(model, x, y, tmp_path, sanity_images=True)
    with pytest.raises(ValueError, match="one label per image"):
        gn.viz.report(model, x, y[:-1], tmp_path)
    with pytest.raises(TypeError, match="Sequential"):
        gn.viz.report("model.npz", x, y, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written on bad input


def _browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian: apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    return sync_api.sync_playwright


def test_report_renders_in_headless_chromium(report):
    sync_playwright = _browser()
    path, _ = report
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: errors.append(f"failed {request.url[:80]}"))
            page.goto(path.as_uri(), wait_until="load")
            images = page.evaluate("""Array.from(document.images).map(img => ({
                alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}))""")
            sections = page.evaluate("Array.from(document.querySelectorAll('main section[id]')).map(s => s.id)")
            headings = page.evaluate("Array.from(document.querySelectorAll('section h2')).map(h => h.innerText)")
            columns = page.evaluate("Array.from(document.querySelectorAll('#explanations thead th'))"
                                    ".map(th => th.innerText)")
            rows = page.evaluate("document.querySelectorAll('#explanations tbody tr').length")
            badges = page.evaluate("Array.from(document.querySelectorAll('#explanations .badge'))"
                                   ".map(b => b.innerText)")
            architecture = page.evaluate("document.querySelector('#architecture p').innerText")
            summary = page.evaluate("Array.from(document.querySelectorAll('#summary tbody tr'))"
                                    ".map(tr => tr.innerText)")
            broken_layout = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert images and all(img["complete"] and img["width"] > 0 and img["height"] > 0 for img in images), \
        [img["alt"] for img in images if not img["width"]]
    assert sections == SECTIONS
    assert "Model summary" in headings and "Explanations" in headings
    assert architecture.endswith("(graphviz drawing).") == (shutil.which("dot") is not None)
    assert len(summary) == 6 and "preds" in summary[-1]
    assert [column.split("\n")[0] for column in columns] == [
        "input", "saliency (vanilla)", "saliency (guided)", "saliency (rectified)", "Grad-CAM", "guided Grad-CAM",
        "occlusion", "integrated gradients"]
    assert rows == N_EXPLAIN
    assert len(badges) == len(METHOD_KEYS) and all(b in ("passes sanity check", "fails sanity check") for b in badges)
    assert not broken_layout, "the page scrolls sideways at 1400 px"
    assert (ARTIFACTS / "report.png").stat().st_size > 100_000
