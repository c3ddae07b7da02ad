"""benchmarks.ab: the two versions alternate, the order rotates, and the ratios are before / after."""
from pathlib import Path

from benchmarks import ab


def test_rounds_alternate_and_ratios_are_before_over_after(monkeypatch, capsys):
    calls = []

    def measure(tree, spec):
        calls.append((tree, spec["model"], spec["threads"]))
        return {"wall": 2.0, "cpu": 1.0} if tree == Path("old") else {"wall": 1.0, "cpu": 0.5}
    monkeypatch.setattr(ab, "measure", measure)
    args = ab.parse_args(["--before", "HEAD", "--models", "lenet5", "--threads", "1,2", "--rounds", "3"])
    records = ab.compare(args, Path("old"), Path("new"))
    trees = [tree.name for tree, model, threads in calls if threads == 1]
    assert trees == ["old", "new", "new", "old", "old", "new"]          # the order rotates every round
    assert [(r["model"], r["threads"]) for r in records] == [("lenet5", 1), ("lenet5", 2)]
    assert records[0]["wall_ratios"] == [2.0] * 3 and records[0]["cpu_ratios"] == [2.0] * 3
    assert "cpu 2.000 (2.000-2.000" in capsys.readouterr().out


def test_the_child_times_real_training_steps():
    timing = ab.step_seconds({"model": "seed003_tiny", "threads": 1, "batch": 8, "steps": 2, "warmup": 1})
    assert set(timing) == {"wall", "cpu"} and timing["wall"] > 0 and timing["cpu"] > 0
