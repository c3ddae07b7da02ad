"""The synthetic shapes dataset: format, determinism, ground truth, class-defining geometry."""
import time

import numpy as np
import pytest

from glassnet import datasets
from glassnet.data import synthetic

shapes = datasets.shapes


@pytest.fixture(scope="module")
def split():
    return shapes.generate(2000, seed=0)


def test_keras_format():
    (xtr, ytr), (xte, yte) = shapes.load_data(n_train=300, n_test=100, seed=0)
    assert xtr.shape == (300, 28, 28) and xte.shape == (100, 28, 28)
    assert xtr.dtype == ytr.dtype == np.uint8
    assert ytr.shape == (300,) and set(np.unique(ytr)) == set(range(10))
    np.testing.assert_array_equal(np.bincount(ytr), [30] * 10)  # balanced


def test_deterministic_by_seed_and_train_independent_of_test_size():
    a = shapes.load_data(200, 50, seed=3, return_masks=True)
    b = shapes.load_data(200, 80, seed=3, return_masks=True)
    c = shapes.load_data(200, 50, seed=4)
    for got, want in zip(a[0], b[0]):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(a[0].x, c[0][0])
    assert not np.array_equal(a[0].x[:50], a[1].x)  # train and test are different draws


def test_generator_seed_is_accepted():
    x1 = shapes.generate(20, seed=np.random.default_rng(7)).x
    x2 = shapes.generate(20, seed=np.random.default_rng(7)).x
    np.testing.assert_array_equal(x1, x2)


def test_ground_truth_masks_and_boxes(split):
    x, y, masks, boxes = split
    assert masks.dtype == bool and masks.shape == x.shape and boxes.shape == (len(x), 4)
    assert masks.sum(axis=(1, 2)).min() >= 15  # every object is visible
    for i in range(0, len(x), 37):
        y0, x0, y1, x1 = boxes[i]
        assert 0 <= y0 < y1 <= 28 and 0 <= x0 < x1 <= 28
        inside = masks[i, y0:y1, x0:x1]
        assert inside.sum() == masks[i].sum()  # the box holds the whole mask ...
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()  # ... tightly


def test_object_is_bright_and_background_dark(split):
    x, _, masks, _ = split
    assert x[masks].mean() > 150
    assert x[~masks].mean() < 40


def test_without_noise_and_distractors_the_image_is_the_mask():
    x, _, masks, _ = shapes.generate(200, seed=1, noise=0.0, distractors=0)
    np.testing.assert_array_equal(x > 0, masks)


def test_distractors_lie_outside_the_mask_and_are_not_class_defining():
    clean = shapes.generate(500, seed=2, noise=0.0, distractors=0)
    cluttered = shapes.generate(500, seed=2, noise=0.0, distractors=3)
    np.testing.assert_array_equal(clean.masks, cluttered.masks)  # same objects, same ground truth
    extra = (cluttered.x > 0) & ~cluttered.masks
    assert extra.any(axis=(1, 2)).mean() > 0.9
    # speck pixels per image do not depend on the class
    per_class = [extra[cluttered.y == k].sum(axis=(1, 2)).mean() for k in range(10)]
    assert max(per_class) < 2 * min(per_class)


def _fill_ratio(masks, boxes):
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return masks.sum(axis=(1, 2)) / areas


def test_each_class_has_its_geometry(split):
    x, y, masks, boxes = split
    names = synthetic.CLASS_NAMES
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    fill = _fill_ratio(masks, boxes)
    cy, cx = (boxes[:, 0] + boxes[:, 2] - 1) // 2, (boxes[:, 1] + boxes[:, 3] - 1) // 2
    centre = masks[np.arange(len(y)), cy, cx]
    by = {name: y == k for k, name in enumerate(names)}
    assert fill[by["square"]].min() > 0.99
    assert 0.7 < fill[by["circle"]].mean() < 0.85                  # pi / 4
    assert 0.4 < fill[by["triangle"]].mean() < 0.65
    assert (width[by["horizontal bar"]] > 2 * height[by["horizontal bar"]]).all()
    assert (height[by["vertical bar"]] > 2 * width[by["vertical bar"]]).all()
    for hollow in ("ring", "frame"):
        assert not centre[by[hollow]].any()
    for crossing in ("plus", "x"):
        assert centre[by[crossing]].all()
    assert fill[by["frame"]].mean() > fill[by["ring"]].mean()
    # the corner is an L: its bottom-left pixel is set, its top-right one is not
    c = by["corner"]
    assert masks[c, boxes[c, 2] - 1, boxes[c, 1]].all() and not masks[c, boxes[c, 0], boxes[c, 3] - 1].any()


def test_classes_subset_and_image_size():
    (x, y), _ = shapes.load_data(100, 10, n_classes=3, image_size=40)
    assert x.shape == (100, 40, 40) and set(np.unique(y)) == {0, 1, 2}


@pytest.mark.parametrize("kwargs, pattern, error", [
    (dict(n_classes=11), "n_classes", ValueError), (dict(n_classes=1), "n_classes", ValueError),
    (dict(image_size=8), "image_size", ValueError), (dict(noise=-1), "noise", ValueError),
    (dict(distractors=-2), "distractors", ValueError), (dict(scale=(0.4, 0.2)), "scale", ValueError),
    (dict(scale=(0.1, 0.2, 0.3)), "scale", ValueError), (dict(scale=(0.01, 0.2)), "scale", ValueError),
    (dict(n_train=-5), "n_train as a non-negative int", ValueError),
    (dict(scale=0.3), "scale", TypeError), (dict(n_test=2.5), "n_test as a non-negative int", TypeError),
    (dict(n_classes="3"), "n_classes", TypeError), (dict(noise="low"), "noise", TypeError),
    (dict(scale=("a", 0.2)), "scale", TypeError),
])
def test_bad_arguments_are_explained(kwargs, pattern, error):
    with pytest.raises(error, match=pattern):
        shapes.load_data(**{"n_train": 10, "n_test": 10, **kwargs})


def test_bad_seed_is_explained():
    with pytest.raises(TypeError, match="seed"):
        shapes.load_data(10, 10, seed="zero")


def test_generation_is_fast():
    start = time.perf_counter()
    shapes.load_data(6000, 1000, seed=0)
    assert time.perf_counter() - start < 3.0  # ~0.2 s on an idle core


def test_pointing_game_with_an_oracle_heatmap(split):
    # The ground-truth use: a heatmap peaking on the object scores 1, one peaking elsewhere 0.
    x, _, masks, _ = split
    smooth = masks.astype(float) + 0.01 * np.random.default_rng(0).random(masks.shape)
    peaks = smooth.reshape(len(x), -1).argmax(axis=1)
    assert masks.reshape(len(x), -1)[np.arange(len(x)), peaks].all()
    anti = (~masks).astype(float) + 0.01 * np.random.default_rng(1).random(masks.shape)
    peaks = anti.reshape(len(x), -1).argmax(axis=1)
    assert not masks.reshape(len(x), -1)[np.arange(len(x)), peaks].any()


@pytest.mark.slow
def test_a_small_cnn_learns_it_to_95_percent():
    import glassnet as gn
    from glassnet import layers, optimizers

    (xtr, ytr), (xte, yte) = shapes.load_data(6000, 1000, seed=0)
    xtr, xte = xtr[..., None] / np.float32(255), xte[..., None] / np.float32(255)
    model = gn.Sequential([
        layers.Conv2D(16, 3, activation="relu", input_shape=(28, 28, 1)), layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(xtr, ytr, batch_size=64, epochs=6, verbose=0, seed=0)
    _, accuracy = model.evaluate(xte, yte)
    assert accuracy > 0.95
