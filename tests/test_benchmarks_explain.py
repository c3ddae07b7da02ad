"""benchmarks.explain: the same weights in PyTorch, the same maps from Captum, ratios and the RESULTS.md section."""
import numpy as np
import pytest

import glassnet as gn
from benchmarks import explain as bench
from benchmarks import explain_jobs
from benchmarks.report import MARKER

torch = pytest.importorskip("torch", reason="PyTorch (bench/dev oracle) is not installed")


@pytest.mark.parametrize("name", ["keras_mnist", "lenet5"])
def test_torch_copy_computes_the_glassnet_logits(name):
    model = gn.models.PRESETS[name](seed=0)
    x = np.random.default_rng(0).standard_normal((3, 28, 28, 1)).astype(np.float32)
    probabilities = model.predict(x)
    with torch.no_grad():
        logits = explain_jobs.torch_copy(model)(torch.from_numpy(np.array(x.transpose(0, 3, 1, 2), order="C")))
    np.testing.assert_allclose(torch.softmax(logits, dim=1).numpy(), probabilities, rtol=1e-4, atol=1e-6)


def test_both_libraries_compute_the_same_maps():
    pytest.importorskip("captum", reason="Captum (the bench extra) is not installed")
    spec = {"model": "lenet5", "batch": 3, "threads": 1, "warmup": 0, "repeats": 1,
            "methods": ["saliency", "guided_backprop", "grad_cam", "occlusion"]}
    ours = explain_jobs.explain_job({**spec, "lib": "glassnet"})
    theirs = explain_jobs.explain_job({**spec, "lib": "captum"})
    for method in spec["methods"]:
        assert ours["methods"][method]["ips_median"] > 0
        assert bench.agreement(ours["methods"][method]["maps"], theirs["methods"][method]["maps"]) < 1e-4, method


def _result(ips):
    return {"methods": {"saliency": {"ips_median": ips, "maps": [[1.0, 2.0]]}}, "foreign_cpu": 0.05}


def test_ratios_are_medians_of_per_round_ratios_and_the_section_is_kept(tmp_path):
    rounds = [{"glassnet": _result(100), "captum": _result(50)}, {"glassnet": _result(60), "captum": _result(60)},
              {"glassnet": _result(90), "captum": _result(30)}]
    row = bench.summarize_rounds(rounds, "saliency")
    assert row["ratio"] == 2.0 and row["range"] == (1.0, 3.0)       # per-round ratios 2, 1, 3
    assert row["glassnet"] == 90 and row["captum"] == 50 and row["agreement"] == 0.0 and row["foreign"] == 0.05
    assert bench.agreement([[1.0, -4.0]], [[1.0, -3.0]]) == 0.25
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# notes\n\n{MARKER}\ngenerated\n")
    a = bench.parse_args(["--threads", "1", "--methods", "saliency", "--rounds", "3"])
    info = {"captum": "0.9.0", "started": "s", "finished": "f", "load_start": [1], "load_end": [2]}
    bench.write(path, bench.markdown(a, {1: {"saliency": row}}, info))
    bench.write(path, bench.markdown(a, {1: {"saliency": {**row, "ratio": 2.5}}}, info))     # replaced, not added
    text = path.read_text()
    assert text.startswith("# notes") and text.endswith(f"{MARKER}\ngenerated\n")
    assert text.count(bench.BEGIN) == 1 and "| saliency | 1 | 90 | 50 | 2.50x | 1.00-3.00 |" in text
    with pytest.raises(SystemExit):
        bench.parse_args(["--methods", "lime"])
