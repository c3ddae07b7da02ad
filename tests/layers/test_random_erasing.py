"""RandomErasing: Keras 3's arguments and draws (checked against real Keras 3 in distribution), rectangles that
are erased exactly, a gradient that is zero on them, the identity at inference."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers


def _erased_boxes(mask):
    """(rows, cols) of each image's erased pixels, checking that they form one rectangle."""
    boxes = []
    for image in mask:
        rows, cols = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
        if len(rows):
            assert image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and image.sum() == len(rows) * len(cols)
        boxes.append((len(rows), len(cols)))
    return np.array(boxes)


def test_each_erased_image_holds_one_filled_rectangle_and_the_rest_is_untouched():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (300, 10, 12, 2)).astype("float32")          # no zeros of its own
    y = layers.RandomErasing(1.0, fill_value=0.0, value_range=(0, 1), seed=3).forward(x, training=True)
    erased = y == 0
    assert np.array_equal(erased[..., 0], erased[..., 1])                   # every channel of a pixel
    np.testing.assert_array_equal(y[~erased], x[~erased])
    boxes = _erased_boxes(erased[..., 0])
    hit = boxes[:, 0] > 0
    assert 0.4 < hit.mean() < 0.6                        # factor=1.0: p ~ U(0, 1), so half of the images
    # sides of sqrt(0.02 .. 0.33) of 10 rows and 12 columns: 1.4-5.7 rows, 1.7-6.9 columns, whole pixels counted
    assert boxes[hit, 0].max() <= 6 and boxes[hit, 1].max() <= 7
    assert (boxes[hit].prod(axis=1) / (10 * 12)).max() <= 0.33 + 0.1


def test_the_draws_match_keras_3_in_distribution(keras):
    """Fraction of erased images and the mean side lengths of the rectangles, ours against Keras's own layer
    (KERAS_BACKEND=torch) on 3,000 images: the same arguments give the same augmentation."""
    x = np.ones((3000, 16, 20, 1), dtype="float32")
    for factor, scale in [(1.0, (0.02, 0.33)), ((0.8, 0.8), (0.1, 0.5))]:
        kwargs = dict(factor=factor, scale=scale, fill_value=0.0, value_range=(0, 1))
        ours = layers.RandomErasing(**kwargs, seed=1).forward(x, training=True)
        theirs = keras.ops.convert_to_numpy(keras.layers.RandomErasing(**kwargs, seed=1)(x, training=True))
        ours_boxes, their_boxes = _erased_boxes(ours[..., 0] == 0), _erased_boxes(theirs[..., 0] == 0)
        ours_hit, their_hit = ours_boxes[:, 0] > 0, their_boxes[:, 0] > 0
        assert abs(ours_hit.mean() - their_hit.mean()) < 0.05
        np.testing.assert_allclose(ours_boxes[ours_hit].mean(axis=0), their_boxes[their_hit].mean(axis=0), rtol=0.06)


def test_noise_fill_stays_inside_the_value_range():
    x = np.full((64, 8, 8, 3), 0.5, dtype="float32")
    y = layers.RandomErasing(1.0, value_range=(0, 1), seed=2).forward(x, training=True)
    assert y.min() >= 0 and y.max() <= 1 and (y != 0.5).any()
    assert len(np.unique(y[y != 0.5])) > 10                                  # noise, not one value


def test_the_gradient_is_dy_outside_the_rectangles_and_zero_inside():
    rng = np.random.default_rng(4)
    x = rng.uniform(0.1, 1.0, (20, 6, 7, 2))
    layer = layers.RandomErasing((1.0, 1.0), scale=(0.2, 0.6), fill_value=0.0, value_range=(0, 1), seed=5,
                                 dtype="float64")
    y, cache = layer.apply(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx, grads = layer.vjp(cache, dy)
    np.testing.assert_array_equal(dx, np.where(y == 0, 0.0, dy))
    assert grads == {} and (y == 0).any()
    # a loop over the images and pixels, the reference: the erased pixels are the mask's
    for n in range(len(x)):
        for i in range(6):
            for j in range(7):
                assert (y[n, i, j] == 0).all() == bool(cache[n, i, j, 0])


def test_inference_is_the_identity_and_the_config_round_trips(tmp_path):
    x = np.random.default_rng(6).random((4, 8, 8, 1)).astype("float32")
    layer = layers.RandomErasing(0.5, scale=(0.1, 0.2), fill_value=0.0, value_range=(0, 1), seed=7)
    assert layer.forward(x) is x
    twin = layers.RandomErasing.from_config(layer.get_config())
    assert (twin.factor, twin.scale, twin.fill_value, twin.value_range) == ((0.0, 0.5), (0.1, 0.2), 0.0, (0.0, 1.0))
    model = gn.Sequential([layers.RandomErasing(fill_value=0.0, value_range=(0, 1), input_shape=(8, 8, 1)),
                           layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(gn.load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_keras_file_with_random_erasing_opens_in_keras_3_and_back(keras, tmp_path):
    x = np.random.default_rng(8).random((3, 8, 8, 1)).astype("float32")
    model = gn.Sequential([layers.RandomErasing(0.7, scale=(0.05, 0.3), fill_value=0.0, value_range=(0, 1), seed=3,
                                                input_shape=(8, 8, 1)), layers.Flatten(), layers.Dense(2, seed=1)])
    model.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    erasing = theirs.layers[0]
    assert type(erasing).__name__ == "RandomErasing" and tuple(erasing.scale) == (0.05, 0.3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x, training=False)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    back = gn.load_model(tmp_path / "m.keras")
    assert back.layers[0].factor == (0.0, 0.7) and back.layers[0].fill_value == 0.0


def test_a_keras_3_file_with_random_erasing_opens_with_its_settings(keras, tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.RandomErasing(0.6, scale=(0.05, 0.2), value_range=(0, 1), seed=4)(inputs)
    theirs = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    theirs.save(tmp_path / "k.keras")
    ours = gn.load_model(tmp_path / "k.keras")
    erasing = next(layer for layer in ours.layers if isinstance(layer, layers.RandomErasing))
    assert (erasing.factor, erasing.scale, erasing.fill_value, erasing.value_range) == ((0.0, 0.6), (0.05, 0.2),
                                                                                        None, (0.0, 1.0))
    x = np.random.default_rng(9).random((3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs(x, training=False)),
                               rtol=1e-5, atol=1e-6)
