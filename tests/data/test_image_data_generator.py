"""ImageDataGenerator: normalization statistics, ZCA, exact flips and shifts, reproducibility, iteration."""
import math

import numpy as np
import pytest

from glassnet.preprocessing import ImageDataGenerator

SEED_000 = dict(featurewise_center=True, samplewise_center=False, featurewise_std_normalization=True,
                samplewise_std_normalization=False, zca_whitening=False, rotation_range=20,
                width_shift_range=0.2, height_shift_range=0.2, horizontal_flip=True, vertical_flip=False)


@pytest.fixture(scope="module")
def digits():
    """Blob images with per-channel offsets, uint8, NHWC (N=300, 16x16x3)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    cy, cx = rng.uniform(4, 12, (2, 300, 1, 1))
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    x = blob[..., None] * np.array([200.0, 120.0, 60.0]) + np.array([10.0, 40.0, 80.0])
    x = x + rng.normal(0, 5, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8), rng.integers(0, 10, 300)


def _epoch(iterator):
    batches = [next(iterator) for _ in range(len(iterator))]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_featurewise_center_and_std_make_batches_mean_zero_std_one(digits):
    x, y = digits
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True).fit(x)
    assert gen.mean.shape == (1, 1, 3) and gen.std.shape == (1, 1, 3)
    np.testing.assert_allclose(gen.mean.ravel(), x.mean(axis=(0, 1, 2)), rtol=1e-5)
    xb, _ = _epoch(gen.flow(x, y, batch_size=64, seed=0))
    assert xb.dtype == np.float32 and xb.shape == x.shape
    np.testing.assert_allclose(xb.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(xb.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_seed_000_configuration_runs_and_stays_normalized(digits):
    x, y = digits
    gen = ImageDataGenerator(**SEED_000)
    gen.fit(x)
    it = gen.flow(x, y, batch_size=100, seed=1)
    xb, yb = next(it)
    assert xb.shape == (100, 16, 16, 3) and xb.dtype == np.float32 and yb.shape == (100,)
    # geometric augmentation with nearest fill roughly preserves the statistics
    xe, _ = _epoch(it)
    assert np.all(np.abs(xe.mean(axis=(0, 1, 2))) < 0.15)
    assert np.all(np.abs(xe.std(axis=(0, 1, 2)) - 1) < 0.15)


def test_samplewise_center_and_std(digits):
    x, _ = digits
    gen = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True)
    out = gen.standardize(x[:20])
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-3)


def test_rescale_comes_first_and_input_is_not_modified(digits):
    x, _ = digits
    before = x.copy()
    out = ImageDataGenerator(rescale=1 / 255).standardize(x[:5])
    np.testing.assert_allclose(out, x[:5] / 255, rtol=1e-6)
    np.testing.assert_array_equal(x, before)
    centred = ImageDataGenerator(rescale=1 / 255, featurewise_center=True).fit(x)
    np.testing.assert_allclose(centred.mean.ravel(), (x / 255).mean(axis=(0, 1, 2)), rtol=1e-5)


def test_single_image_standardize_and_transform(digits):
    x, _ = digits
    gen = ImageDataGenerator(featurewise_center=True, horizontal_flip=True).fit(x)
    np.testing.assert_allclose(gen.standardize(x[3]), gen.standardize(x[3:4])[0])
    assert gen.random_transform(x[3], seed=0).shape == (16, 16, 3)


def test_zca_whitened_data_has_identity_covariance():
    rng = np.random.default_rng(0)
    D, N = 18, 5000  # 3x3x2 images
    mixing = rng.normal(size=(D, D)) + 3 * np.eye(D)
    flat = rng.normal(size=(N, D)) @ mixing.T           # strongly correlated, zero mean per pixel
    x = flat.reshape(N, 3, 3, 2).astype(np.float32)
    with pytest.warns(UserWarning, match="featurewise_center"):
        gen = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e-6)
    gen.fit(x)
    assert np.abs(np.cov(flat, rowvar=False) - np.eye(D)).max() > 1  # far from white before
    white = gen.standardize(x).reshape(N, D).astype(np.float64)
    np.testing.assert_allclose(white.T @ white / N, np.eye(D), atol=2e-3)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(D), atol=2e-2)
    pc = gen.principal_components
    np.testing.assert_allclose(pc, pc.T, atol=1e-5)       # ZCA (symmetric), not PCA whitening


def test_zca_epsilon_damps_small_directions():
    x = np.random.default_rng(1).normal(size=(2000, 2, 2, 1)).astype(np.float32) * 0.01
    tight = ImageDataGenerator(zca_whitening=True, featurewise_center=True, zca_epsilon=1e-9)
    loose = ImageDataGenerator(zca_whitening=True, featurewise_center=True, zca_epsilon=1.0)
    white_tight = tight.fit(x).standardize(x)
    white_loose = loose.fit(x).standardize(x)
    assert abs(white_tight.std() - 1) < 0.05 and white_loose.std() < 0.05


@pytest.mark.parametrize("option, axis", [("horizontal_flip", 2), ("vertical_flip", 1)])
def test_flips_are_exact_and_about_half(digits, option, axis):
    x, y = digits
    gen = ImageDataGenerator(**{option: True})
    out, _ = _epoch(gen.flow(x, y, batch_size=50, shuffle=False, seed=3))
    same = np.all(out == x, axis=(1, 2, 3))
    flipped = np.all(out == np.flip(x, axis=axis), axis=(1, 2, 3))
    assert np.all(same | flipped)
    assert 0.35 < flipped.mean() < 0.65


def test_integer_shift_is_an_exact_translation():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 10, 12, 1)).astype(np.float32)
    out = ImageDataGenerator(width_shift_range=3, fill_mode="nearest").random_transform(x, seed=0)
    shifts = []
    for i in range(len(x)):
        for s in range(-2, 3):
            # content moves by -s columns, edges repeat (nearest)
            cols = np.clip(np.arange(12) + s, 0, 11)
            if np.array_equal(out[i], x[i][:, cols]):
                shifts.append(s)
                break
        else:
            pytest.fail(f"image {i} is not an integer column shift of its input")
    assert len(set(shifts)) >= 4


def test_fraction_shift_moves_content_by_up_to_that_fraction():
    x = np.zeros((200, 20, 20, 1), np.float32)
    x[:, 8:12, 8:12] = 1
    out = ImageDataGenerator(height_shift_range=0.25, fill_mode="constant").random_transform(x, seed=0)
    rows = (out[..., 0] > 0.5).any(axis=2)
    centres = np.array([np.flatnonzero(r).mean() for r in rows])
    offsets = centres - 9.5
    assert np.abs(offsets).max() <= 5.01 and np.abs(offsets).max() > 4 and abs(offsets.mean()) < 0.6


@pytest.mark.parametrize("zoom, area_ratio", [((2.0, 2.0), 0.25), ((0.5, 0.5), 4.0)])
def test_zoom_follows_keras_semantics(zoom, area_ratio):
    x = np.zeros((1, 31, 31, 1), np.float32)
    x[0, 11:20, 11:20] = 1  # 9x9 square in the centre
    out = ImageDataGenerator(zoom_range=zoom, fill_mode="constant").random_transform(x, seed=0)
    assert (out > 0.5).sum() / 81 == pytest.approx(area_ratio, rel=0.25)


def test_rotation_keeps_a_centred_disc_and_turns_a_bar():
    yy, xx = np.mgrid[:21, :21] - 10
    disc = (yy ** 2 + xx ** 2 <= 36).astype(np.float32)[None, ..., None]
    bar = ((abs(yy) <= 1) & (abs(xx) <= 8)).astype(np.float32)[None, ..., None]
    gen = ImageDataGenerator(rotation_range=90, fill_mode="constant")
    rot_disc = gen.random_transform(np.repeat(disc, 20, 0), seed=0)
    rot_bar = gen.random_transform(np.repeat(bar, 20, 0), seed=0)
    disc_change = np.abs(rot_disc - disc).sum(axis=(1, 2, 3))
    bar_change = np.abs(rot_bar - bar).sum(axis=(1, 2, 3))
    assert disc_change.max() < 25                      # only the rim's interpolation changes
    assert np.median(bar_change) > 4 * np.median(disc_change)
    np.testing.assert_allclose(rot_bar.sum(axis=(1, 2, 3)), bar.sum(), rtol=0.15)  # area is kept


@pytest.mark.parametrize("order", [0, 1, 3])
def test_images_of_a_batch_never_mix(order):
    x = np.stack([np.zeros((12, 12, 2)), np.full((12, 12, 2), 7.0)] * 4).astype(np.float32)
    gen = ImageDataGenerator(rotation_range=40, zoom_range=0.3, width_shift_range=0.2, fill_mode="nearest",
                             interpolation_order=order)
    out = gen.random_transform(x, seed=0)
    np.testing.assert_allclose(out[0::2], 0, atol=1e-5)
    np.testing.assert_allclose(out[1::2], 7, atol=1e-4)


@pytest.mark.parametrize("mode", ["nearest", "constant", "reflect", "wrap"])
def test_fill_modes(mode):
    x = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
    gen = ImageDataGenerator(width_shift_range=[4], fill_mode=mode, cval=-1)
    out = gen.random_transform(x, seed=0)[0, ..., 0]
    src = x[0, ..., 0]
    cols = np.arange(8) + 4 if np.array_equal(out[:, :4], src[:, 4:]) else np.arange(8) - 4
    moved = cols[(cols >= 0) & (cols < 8)]
    inside = (cols >= 0) & (cols < 8)
    np.testing.assert_array_equal(out[:, inside], src[:, moved])
    outside = out[:, ~inside]
    if mode == "constant":
        assert np.all(outside == -1)
    elif mode == "nearest":
        edge = 7 if cols[-1] > 7 else 0
        assert np.all(outside == src[:, [edge]])
    elif mode == "wrap":
        np.testing.assert_array_equal(outside, src[:, cols[~inside] % 8])
    else:  # reflect: abcd|dcba
        reflected = np.where(cols[~inside] < 0, -cols[~inside] - 1, 15 - cols[~inside])
        np.testing.assert_array_equal(outside, src[:, reflected])


def test_same_seed_same_batches_different_seed_different(digits):
    x, y = digits
    gen = ImageDataGenerator(**SEED_000).fit(x)
    a = [next(gen.flow(x, y, batch_size=32, seed=5)) for _ in range(1)][0]
    it1, it2, it3 = (gen.flow(x, y, batch_size=32, seed=s) for s in (5, 5, 6))
    for _ in range(3):
        (x1, y1), (x2, y2), (x3, y3) = next(it1), next(it2), next(it3)
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
        assert not np.array_equal(x1, x3)
    np.testing.assert_array_equal(a[0], gen.flow(x, y, batch_size=32, seed=5).__next__()[0])


def test_iterator_epochs_cover_every_sample_once(digits):
    x, _ = digits
    y = np.arange(len(x))
    it = ImageDataGenerator().flow(x, y, batch_size=64, seed=0)
    assert len(it) == math.ceil(300 / 64) == 5
    sizes, seen = [], []
    for _ in range(len(it)):
        xb, yb = next(it)
        sizes.append(len(xb))
        seen.append(yb)
        np.testing.assert_array_equal(xb, x[yb].astype(np.float32))  # images travel with their labels
    assert sizes == [64, 64, 64, 64, 44]
    first = np.concatenate(seen)
    assert sorted(first) == list(range(300)) and not np.array_equal(first, np.arange(300))
    second = np.concatenate([next(it)[1] for _ in range(len(it))])
    assert sorted(second) == list(range(300)) and not np.array_equal(first, second)  # reshuffled


def test_iterator_without_shuffle_keeps_order_and_without_y_yields_x(digits):
    x, _ = digits
    it = ImageDataGenerator().flow(x, batch_size=100, shuffle=False)
    batch = next(it)
    assert isinstance(batch, np.ndarray)
    np.testing.assert_array_equal(batch, x[:100].astype(np.float32))
    assert iter(it) is it


def test_sample_weight_is_yielded(digits):
    x, y = digits
    w = np.linspace(0, 1, len(x))
    xb, yb, wb = next(ImageDataGenerator().flow(x, y, batch_size=10, shuffle=False, sample_weight=w))
    np.testing.assert_array_equal(wb, w[:10])


def test_fit_with_augment_rounds(digits):
    x, _ = digits
    gen = ImageDataGenerator(featurewise_center=True, horizontal_flip=True)
    gen.fit(x, augment=True, rounds=2, seed=0)
    # flips do not change the per-channel mean
    np.testing.assert_allclose(gen.mean.ravel(), x.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_float64_dtype(digits):
    x, y = digits
    xb, _ = next(ImageDataGenerator(dtype="float64").flow(x, y, batch_size=4))
    assert xb.dtype == np.float64


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("shape, pattern", [
    ((10, 28, 28), r"x\[\.\.\., None\]"),
    ((10, 1, 28, 28), "transpose"),
    ((10, 3, 32, 32), "looks channels-first"),
    ((28, 28), "rank 2"),
])
def test_bad_image_shapes_are_explained(shape, pattern):
    gen = ImageDataGenerator()
    with pytest.raises(ValueError, match=pattern):
        gen.flow(np.zeros(shape))
    with pytest.raises(ValueError, match=pattern):
        gen.fit(np.zeros(shape))


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(fill_mode="mirror"), "fill_mode"), (dict(zoom_range=-0.2), "zoom_range"),
    (dict(zoom_range=(0, 1)), "zoom_range"), (dict(zoom_range=(0.5, 1, 2)), "zoom_range"),
    (dict(rotation_range=-5), "rotation_range"), (dict(height_shift_range=-0.1), "height_shift_range"),
    (dict(width_shift_range=[]), "width_shift_range"), (dict(dtype="int32"), "dtype"),
    (dict(interpolation_order=7), "order"),
])
def test_bad_option_values_are_explained(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ImageDataGenerator(**kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(width_shift_range="wide"), "width_shift_range"), (dict(rescale="1/255"), "rescale"),
    (dict(interpolation_order=1.0), "order"), (dict(fill_mode=0), "fill_mode"), (dict(zoom_range="big"), "zoom"),
    (dict(rotation_range=True), "rotation_range"), (dict(width_shift_range=["a"]), "width_shift_range"),
])
def test_bad_option_types_are_type_errors(kwargs, pattern):
    with pytest.raises(TypeError, match=pattern):
        ImageDataGenerator(**kwargs)


def test_flow_argument_errors(digits):
    x, y = digits
    gen = ImageDataGenerator()
    with pytest.raises(ValueError, match=r"one entry per image \(300\); got 299"):
        gen.flow(x, y[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        gen.flow(x, y, batch_size=0)
    with pytest.raises(ValueError, match="at least one image"):
        gen.flow(x[:0])
    with pytest.raises(TypeError, match="seed"):
        gen.flow(x, y, seed="abc")


def test_featurewise_without_fit_says_to_call_fit(digits):
    x, y = digits
    it = ImageDataGenerator(featurewise_center=True).flow(x, y)
    with pytest.raises(RuntimeError, match=r"call datagen.fit\(x_train\)"):
        next(it)


def test_statistics_from_other_image_sizes_are_refused(digits):
    x, _ = digits
    gen = ImageDataGenerator(zca_whitening=True, featurewise_center=True).fit(x[:50, :4, :4])
    with pytest.raises(ValueError, match="ZCA"):
        gen.standardize(x[:2])
    centred = ImageDataGenerator(featurewise_center=True).fit(x[..., :1])
    with pytest.raises(ValueError, match="channel"):
        centred.standardize(x[:2])


def test_implied_options_follow_keras():
    with pytest.warns(UserWarning):
        gen = ImageDataGenerator(featurewise_std_normalization=True)
    assert gen.featurewise_center
    with pytest.warns(UserWarning):
        gen = ImageDataGenerator(samplewise_std_normalization=True)
    assert gen.samplewise_center
    with pytest.warns(UserWarning):
        gen = ImageDataGenerator(zca_whitening=True, featurewise_center=True, featurewise_std_normalization=True)
    assert not gen.featurewise_std_normalization


def test_model_fit_trains_from_flow():
    import glassnet as gn
    from glassnet import layers, optimizers

    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    model = gn.Sequential([layers.Flatten(input_shape=(8, 8, 1)), layers.Dense(2, activation="softmax")], seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x, y)[0]
    gen = ImageDataGenerator(horizontal_flip=True)  # the label depends on top vs bottom: flips keep it
    history = model.fit(gen.flow(x, y, batch_size=16, seed=0), epochs=10, verbose=0, seed=0,
                        steps_per_epoch=4)
    assert len(history.history["loss"]) == 10
    loss, accuracy = model.evaluate(x, y)
    assert loss < 0.7 * before and accuracy > 0.75


def test_geometric_options_without_scipy_say_how_to_install_it(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "scipy", None)                     # as if SciPy were not installed
    x = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ImportError, match=r'glassnet\[data\]'):
        ImageDataGenerator(rotation_range=20).random_transform(x, seed=0)
    flipped = ImageDataGenerator(horizontal_flip=True).random_transform(x, seed=0)   # flips need no SciPy
    assert flipped.shape == x.shape
