"""datasets.image_dataset_from_directory: a folder of class sub-folders of real MNIST digits as PNG / JPEG."""
import os

import numpy as np
import pytest

import glassnet as gn
from glassnet.datasets import image_dataset_from_directory

Image = pytest.importorskip("PIL.Image", reason="Pillow (the viz extra) is not installed")

CLASSES = ("zero", "one", "two")


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """60 real t10k digits of each of the classes 0, 1, 2, as PNG files in class folders (a few JPEGs)."""
    x, y = gn.datasets.mnist.load_t10k()
    root = tmp_path_factory.mktemp("digits")
    for label, name in enumerate(CLASSES):
        os.makedirs(root / name)
        for k, index in enumerate(np.flatnonzero(y == label)[:60]):
            suffix = ".jpg" if k % 10 == 9 else ".png"
            Image.fromarray(x[index]).save(root / name / f"{k:03d}{suffix}")
    return root


def test_batches_shapes_labels_and_class_names(digits_folder):
    ds = image_dataset_from_directory(digits_folder, image_size=(28, 28), color_mode="grayscale", batch_size=32,
                                      shuffle=False)
    assert ds.class_names == sorted(CLASSES) == ["one", "two", "zero"]     # alphanumeric, as Keras
    assert len(ds) == 6 and len(ds.file_paths) == 180
    x, y = ds[0]
    assert x.shape == (32, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0 <= x.min() and x.max() > 200                                 # pixel values in [0, 255], not rescaled
    # Without shuffling the files come class by class, sorted: the first 60 are "one" (label 0).
    labels = np.concatenate([batch[1] for batch in ds])
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 60))
    png = ds.file_paths[0]
    np.testing.assert_array_equal(x[0, ..., 0], np.asarray(Image.open(png), dtype=np.float32))


def test_color_modes_resizing_label_modes_and_class_order(digits_folder):
    ds = image_dataset_from_directory(digits_folder, image_size=(14, 20), color_mode="rgb", batch_size=5,
                                      label_mode="categorical", class_names=list(CLASSES), shuffle=False)
    x, y = ds[0]
    assert x.shape == (5, 14, 20, 3) and y.shape == (5, 3)
    assert ds.class_names == list(CLASSES) and y[0].tolist() == [1.0, 0.0, 0.0]      # "zero" first, as asked
    np.testing.assert_array_equal(x[..., 0], x[..., 2])                       # gray digits in RGB
    single = image_dataset_from_directory(digits_folder, image_size=(8, 8), color_mode="grayscale",
                                          batch_size=None, label_mode=None, shuffle=False)
    assert single[0].shape == (8, 8, 1)
    with pytest.raises(ValueError, match="exactly the sub-folders"):
        image_dataset_from_directory(digits_folder, class_names=["zero", "one"])
    with pytest.raises(ValueError, match="exactly 2 classes"):
        image_dataset_from_directory(digits_folder, label_mode="binary")


def test_validation_split_is_disjoint_reproducible_and_keras_sized(digits_folder):
    options = dict(image_size=(28, 28), color_mode="grayscale", validation_split=0.2, seed=7)
    train, val = image_dataset_from_directory(digits_folder, subset="both", **options)
    assert len(val.file_paths) == int(0.2 * 180) == 36 and len(train.file_paths) == 144
    assert not set(train.file_paths) & set(val.file_paths)
    again = image_dataset_from_directory(digits_folder, subset="validation", **options)
    assert again.file_paths == val.file_paths
    other = image_dataset_from_directory(digits_folder, subset="validation", **{**options, "seed": 8})
    assert other.file_paths != val.file_paths
    with pytest.raises(ValueError, match="seed"):
        image_dataset_from_directory(digits_folder, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="subset"):
        image_dataset_from_directory(digits_folder, validation_split=0.2, seed=1)


def test_a_folder_dataset_trains_a_small_net_above_chance(digits_folder):
    options = dict(image_size=(28, 28), color_mode="grayscale", batch_size=16, validation_split=0.25, seed=0)
    train, val = image_dataset_from_directory(digits_folder, subset="both", **options)
    model = gn.Sequential([gn.layers.InputLayer(shape=(28, 28, 1)), gn.layers.Flatten(),
                           gn.layers.Dense(3, activation="softmax")], seed=0)
    # pixels arrive in [0, 255] (as from Keras), hence the small learning rate
    model.compile(gn.optimizers.SGD(1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, epochs=4, validation_data=None, verbose=0, seed=0)
    loss, accuracy = model.evaluate(val)
    assert accuracy > 0.8 > 1 / 3                                             # chance is 1/3
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_reads_lazily_and_reports_bad_files_by_path(digits_folder, tmp_path):
    import shutil
    folder = tmp_path / "copy"
    shutil.copytree(digits_folder, folder)
    (folder / "one" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="broken.png"):
        image_dataset_from_directory(folder, image_size=(28, 28))
    with pytest.warns(RuntimeWarning, match="broken.png"):
        ds = image_dataset_from_directory(folder, image_size=(28, 28), shuffle=False, skip_bad_files=True)
    assert len(ds.file_paths) == 180 and ds.skipped_files[0].endswith("broken.png")
    (folder / "one" / "broken.png").unlink()
    # Pixels are decoded only when a batch is asked for: a file cut short afterwards shows up then, by path.
    victim = ds.file_paths[40]
    with open(victim, "r+b") as handle:
        handle.truncate(60)
    strict = image_dataset_from_directory(folder / "one", labels=None, image_size=(28, 28), shuffle=False)
    index = strict.file_paths.index(victim) // 32
    with pytest.raises(ValueError, match=os.path.basename(victim)):
        strict[index]
    with pytest.warns(RuntimeWarning, match=os.path.basename(victim)):
        x, _ = ds[1]
    assert len(x) == 31


def test_bad_arguments_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        image_dataset_from_directory(tmp_path / "missing")
    with pytest.raises(ValueError, match="image files"):
        image_dataset_from_directory(tmp_path)
    with pytest.raises(ValueError, match="color_mode"):
        image_dataset_from_directory(tmp_path, color_mode="gray")
    with pytest.raises(TypeError, match="image_size"):                 # Keras's image_size is a pair
        image_dataset_from_directory(tmp_path, image_size=28)
    with pytest.raises(ValueError, match="image_size"):
        image_dataset_from_directory(tmp_path, image_size=(28, 28, 1))
    with pytest.raises(TypeError, match="batch_size"):
        image_dataset_from_directory(tmp_path, batch_size=32.0)
    with pytest.raises(TypeError, match="validation_split"):
        image_dataset_from_directory(tmp_path, validation_split="0.2")


def test_load_img_and_img_to_array_as_keras_utils(digits_folder):
    path = sorted((digits_folder / "two").glob("*.png"))[0]
    image = gn.utils.load_img(path, color_mode="grayscale", target_size=(14, 10))
    array = gn.utils.img_to_array(image)
    assert array.shape == (14, 10, 1) and array.dtype == np.float32
    expected = np.asarray(Image.open(path).convert("L").resize((10, 14), Image.NEAREST), dtype=np.float32)
    np.testing.assert_array_equal(array[..., 0], expected)
    assert gn.utils.img_to_array(gn.utils.load_img(path)).shape == (28, 28, 3)
    with pytest.raises(ValueError, match="not-there.png"):
        gn.utils.load_img(digits_folder / "not-there.png")
