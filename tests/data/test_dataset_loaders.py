"""MNIST / Fashion-MNIST loaders: search order, formats, validation, Debian's package, the real t10k digits."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from glassnet import datasets
from glassnet.data import fashion_mnist, mnist

T10K_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mnist-t10k"

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _write_set(directory, n_train=12, n_test=5, gz=True, seed=0, names=None):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)]
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(names or mnist.STEMS, arrays):
        datasets.save_idx(directory / (stem + (".gz" if gz else "")), array)
    return arrays


def _assert_same(result, arrays):
    (xtr, ytr), (xte, yte) = result
    for got, want in zip((xtr, ytr, xte, yte), arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_load_from_given_folder(tmp_path, empty_home, gz):
    arrays = _write_set(tmp_path / "given", gz=gz)
    _assert_same(datasets.mnist.load_data(tmp_path / "given", download=False), arrays)


def test_kaggle_dotted_names_are_found(tmp_path, empty_home):
    names = [s.replace("-idx", ".idx") for s in mnist.STEMS]
    arrays = _write_set(tmp_path / "kaggle", gz=False, names=names)
    _assert_same(datasets.mnist.load_data(str(tmp_path / "kaggle")), arrays)


def test_keras_npz_is_accepted(tmp_path, empty_home):
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 10, 4).astype(np.uint8),
              rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), rng.integers(0, 10, 2).astype(np.uint8)]
    np.savez(tmp_path / "mnist.npz", x_train=arrays[0], y_train=arrays[1], x_test=arrays[2], y_test=arrays[3])
    _assert_same(datasets.mnist.load_data(tmp_path / "mnist.npz"), arrays)


def test_given_folder_missing_files_names_them(tmp_path, empty_home):
    _write_set(tmp_path / "given")
    os.remove(tmp_path / "given" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(datasets.DatasetNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        datasets.mnist.load_data(tmp_path / "given")


def test_given_path_that_does_not_exist(tmp_path, empty_home):
    with pytest.raises(datasets.DatasetNotFoundError, match="does not exist"):
        datasets.mnist.load_data(tmp_path / "nowhere")


def test_given_single_file_asks_for_its_folder(tmp_path, empty_home):
    _write_set(tmp_path / "given")
    with pytest.raises(datasets.DatasetNotFoundError, match="Pass the folder"):
        datasets.mnist.load_data(tmp_path / "given" / "train-images-idx3-ubyte.gz")


def test_cache_under_glassnet_data(empty_home):
    arrays = _write_set(empty_home / "mnist", seed=5)
    assert mnist.data_home() == empty_home
    _assert_same(datasets.mnist.load_data(download=False), arrays)


def test_default_cache_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GLASSNET_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mnist.data_home() == tmp_path / ".glassnet" / "datasets"


def test_mismatched_images_and_labels_are_reported(tmp_path, empty_home):
    _write_set(tmp_path / "bad")
    datasets.save_idx(tmp_path / "bad" / "train-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match="expected 12 integer labels"):
        datasets.mnist.load_data(tmp_path / "bad")


def test_wrong_image_size_is_reported(tmp_path, empty_home):
    _write_set(tmp_path / "bad")
    datasets.save_idx(tmp_path / "bad" / "t10k-images-idx3-ubyte.gz", np.zeros((5, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, 28, 28\).*\(5, 32, 32\)"):
        datasets.mnist.load_data(tmp_path / "bad")


def test_out_of_range_labels_are_reported(tmp_path, empty_home):
    _write_set(tmp_path / "bad")
    datasets.save_idx(tmp_path / "bad" / "t10k-labels-idx1-ubyte.gz", np.full(5, 12, np.uint8))
    with pytest.raises(ValueError, match=r"labels in 0..9"):
        datasets.mnist.load_data(tmp_path / "bad")


def test_corrupt_cached_file_raises_instead_of_being_skipped(empty_home):
    _write_set(empty_home / "mnist")
    (empty_home / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bgarbage")
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        datasets.mnist.load_data(download=False)


def test_fashion_cache_comes_before_the_system_folder(empty_home):
    arrays = _write_set(empty_home / "fashion-mnist", seed=9)
    _assert_same(datasets.fashion_mnist.load_data(download=False), arrays)


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian package dataset-fashion-mnist is not installed "
                                                "(apt-get install -y dataset-fashion-mnist)")
def test_fashion_mnist_from_debian_package_offline(empty_home):
    (xtr, ytr), (xte, yte) = datasets.fashion_mnist.load_data(download=False)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert xtr.dtype == ytr.dtype == np.uint8
    # Fashion-MNIST is exactly balanced: 6000 / 1000 images per class
    np.testing.assert_array_equal(np.bincount(ytr, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(yte, minlength=10), [1000] * 10)
    # clothing fills more of the frame than digits do, and the first training image is an ankle boot
    assert xtr[:1000].mean() > 60
    assert fashion_mnist.CLASS_NAMES[ytr[0]] == "Ankle boot"
    assert not (empty_home / "fashion-mnist").exists()  # nothing downloaded, nothing copied


def test_fashion_mnist_is_a_distinct_spec():
    assert fashion_mnist.FASHION_MNIST.system_dirs == (str(DEBIAN),)
    assert set(fashion_mnist.FASHION_MNIST.checksums) == set(mnist.FILENAMES)
    assert fashion_mnist.FASHION_MNIST.checksums != mnist.MNIST.checksums
    assert all(len(v) == 64 for v in mnist.MNIST.checksums.values())


def test_load_t10k_reads_the_fixture_digits():
    x, y = datasets.mnist.load_t10k()
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert x.dtype == y.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10))
    assert mnist.t10k_dir() == T10K_FIXTURE


def test_load_t10k_looks_only_at_the_variable_and_the_cache(tmp_path, monkeypatch):
    """Without $GLASSNET_MNIST_T10K the only place searched is the MNIST cache: no folder of a
    development layout (beside the repository or the working folder) is ever a candidate."""
    monkeypatch.delenv("GLASSNET_MNIST_T10K")
    monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert mnist._t10k_candidates(None) == [tmp_path / "cache" / "mnist"]
    assert mnist.t10k_dir() is None
    with pytest.raises(datasets.DatasetNotFoundError, match="GLASSNET_MNIST_T10K"):
        datasets.mnist.load_t10k()
    shutil.copytree(T10K_FIXTURE, tmp_path / "cache" / "mnist")
    assert mnist.t10k_dir() == tmp_path / "cache" / "mnist"


def test_load_t10k_honours_env_and_path(tmp_path, monkeypatch):
    arrays = _write_set(tmp_path / "t", n_test=3)
    monkeypatch.setenv("GLASSNET_MNIST_T10K", str(tmp_path / "t"))
    x, y = datasets.mnist.load_t10k()
    np.testing.assert_array_equal(x, arrays[2])
    x, y = datasets.mnist.load_t10k(path=tmp_path / "t")
    np.testing.assert_array_equal(y, arrays[3])
    with pytest.raises(datasets.DatasetNotFoundError, match="GLASSNET_MNIST_T10K"):
        datasets.mnist.load_t10k(path=tmp_path / "nothing")


def test_public_namespace():
    for name in ("mnist", "fashion_mnist", "shapes"):
        assert callable(getattr(datasets, name).load_data)
    assert callable(datasets.load_idx) and callable(datasets.save_idx)
