"""benchmarks/recipes.py: recipe overrides, the epoch log and the flip test-time augmentation it compares with."""
import argparse

import numpy as np
import pytest

from benchmarks import recipes
from glassnet import presets

SMALL = [("preset.stem", [4, 4]), ("preset.widths", [8]), ("preset.head", 8), ("epochs", 3), ("batch_size", 16)]


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    return x, (x[:, :, :14].mean(axis=(1, 2, 3)) > x[:, :, 14:].mean(axis=(1, 2, 3))).astype(np.int64)


def test_overrides_parse_as_json_or_text_and_refuse_a_missing_value():
    assert recipes.parse_override("epochs=14") == ("epochs", 14)
    assert recipes.parse_override("preset.stem=[16,32]") == ("preset.stem", [16, 32])
    assert recipes.parse_override("optimizer=adam") == ("optimizer", "adam")
    for bad in ("epochs", "=3"):
        with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
            recipes.parse_override(bad)


def test_a_variant_changes_what_it_names_and_leaves_the_preset_recipe_alone():
    before = presets.recipe("resnet_fashion")
    kwargs, recipe = recipes.variant("resnet_fashion", [("preset.stem", [16, 32]), ("epochs", 14),
                                                        ("label_smoothing", 0.0)])
    assert kwargs == {"stem": [16, 32]} and recipe["epochs"] == 14
    assert recipe["loss"] == {**before["loss"], "label_smoothing": 0.0}
    assert recipe["optimizer"] == before["optimizer"] and presets.recipe("resnet_fashion") == before
    with pytest.raises(ValueError, match="unknown override 'lr'"):
        recipes.variant("resnet_fashion", [("lr", 0.1)])


def test_the_log_has_one_record_per_epoch_with_test_and_flip_accuracy_at_the_end():
    (x, y), (xt, yt) = _data(48, 0), _data(32, 1)
    written = []
    records = recipes.run("resnet_fashion", SMALL, x, y, xt, yt, written.append)
    assert records == written and [r["epoch"] for r in records] == [1, 2, 3]
    assert all("test_accuracy" in r for r in records)                   # every 2 epochs and the last three
    assert ["flip_tta_accuracy" in r for r in records] == [False, True, True]
    assert all(0 <= r["test_accuracy"] <= 1 and r["loss"] > 0 for r in records)
    assert presets.recipe("resnet_fashion")["epochs"] == 12                   # the preset's own recipe untouched
    again = recipes.run("resnet_fashion", SMALL, x, y, xt, yt, lambda record: None)
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in records]     # seeded


def test_flip_tta_averages_the_probabilities_of_each_image_and_its_mirror():
    model = presets.get("resnet_fashion", seed=0, stem=[4], widths=[8], head=8, augment=False)
    x, y = _data(20, 2)
    p = model.predict(x, verbose=0)
    q = model.predict(x[:, :, ::-1], verbose=0)
    expected = float(((p + q).argmax(axis=1) == y).mean())
    assert recipes.flip_tta_accuracy(model, x, y, p) == expected
    # a mirror-symmetric batch is its own mirror: the augmentation then changes nothing
    symmetric = np.concatenate([x[:, :, :14], x[:, :, :14][:, :, ::-1]], axis=2)
    ps = model.predict(symmetric, verbose=0)
    assert recipes.flip_tta_accuracy(model, symmetric, y, ps) == float((ps.argmax(axis=1) == y).mean())


def test_the_command_line_writes_its_settings_and_one_line_per_epoch_to_the_log(tmp_path, capsys):
    import json
    log = tmp_path / "run.jsonl"
    recipes.main(["--dataset", "shapes", "--limit", "64", "--log", str(log), "--set", "epochs=2",
                  "--set", "batch_size=16", "--set", "preset.stem=[4]", "--set", "preset.widths=[8]",
                  "--set", "preset.head=8"])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0] == {"model": "resnet_fashion", "dataset": "shapes", "limit": 64,
                        "overrides": {"epochs": 2, "batch_size": 16, "preset.stem": [4], "preset.widths": [8],
                                      "preset.head": 8}}
    assert [line["epoch"] for line in lines[1:]] == [1, 2] and "flip_tta_accuracy" in lines[-1]
    assert capsys.readouterr().out.splitlines() == log.read_text().splitlines()
