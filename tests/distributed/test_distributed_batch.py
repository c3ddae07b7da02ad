"""glassnet.distributed predict / evaluate / explain on a real 2-process LocalCluster: results equal
the single-process call bit for bit, every input kind, every output kind, bad input refused."""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from glassnet import explain
from glassnet import distributed as gd


def test_predict_equals_model_predict_bit_for_bit(client, model, images):
    got = gd.predict(model, images, client=client, chunk_size=40)       # rounded up to 64 = 2 batches of 32
    with threadpool_limits(1):
        expected = model.predict(images, batch_size=32)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_evaluate_equals_model_evaluate_bit_for_bit(client, model, images):
    labels = np.random.default_rng(1).integers(0, 10, len(images))
    got = gd.evaluate(model, images, labels, client=client, chunk_size=32)
    with threadpool_limits(1):
        expected = model.evaluate(images, labels, batch_size=32)
    assert got == expected                                               # 100 = 3 x 32 + 4: a ragged last batch


#: A cheap configuration of every explanation method (keys: explain.METHODS).
CHEAP = {"input_gradients": {}, "saliency": {"modifier": "guided"}, "guided_backprop": {},
         "smooth_grad": {"samples": 3, "seed": 5}, "integrated_gradients": {"steps": 6, "baseline": 0.25},
         "grad_cam": {}, "grad_cam_plus_plus": {"upsample": False}, "guided_grad_cam": {},
         "cam": {}, "occlusion": {"window": 7, "target": 3}}


@pytest.fixture(scope="module")
def cam_model():
    """CAM needs GlobalAveragePooling2D -> Dense at the top."""
    import glassnet as gn
    from glassnet import layers
    return gn.Sequential([layers.Conv2D(6, 5, activation="relu", input_shape=(28, 28, 1)), layers.MaxPooling2D(2),
                          layers.Conv2D(8, 3, activation="relu"), layers.GlobalAveragePooling2D(),
                          layers.Dense(10, activation="softmax")], seed=2)


def test_every_explain_method_is_covered():
    assert set(CHEAP) == set(explain.METHODS)


@pytest.mark.parametrize("method", sorted(CHEAP))
def test_explain_equals_the_plain_call_bit_for_bit(client, model, cam_model, images, method):
    """30 images in batches of 8, chunks of 16 (a ragged last chunk of 14, its last batch of 6): the
    distributed maps are the single-process call's, bit for bit, with one BLAS thread as on a worker."""
    net, x = (cam_model if method == "cam" else model), images[:30]
    got = gd.explain(net, x, method, client=client, chunk_size=10, batch_size=8, **CHEAP[method])  # 10 -> 16
    with threadpool_limits(1):
        expected = explain.METHODS[method](net, x, batch_size=8, **CHEAP[method])
    assert got.shape == expected.shape and got.dtype == expected.dtype and np.array_equal(got, expected)


def test_explain_with_the_default_batch_equals_the_plain_call(client, model, images):
    x = np.concatenate([images, images[:40]])                            # 140 images: chunks of 128 and 12
    got = gd.explain(model, x, "integrated_gradients", client=client, chunk_size=100, steps=3)
    with threadpool_limits(1):
        expected = explain.integrated_gradients(model, x, steps=3)
    assert np.array_equal(got, expected)


def test_a_chunk_alone_or_inside_a_batch(client, model, images):
    """The result of a chunk does not depend on the chunks around it, the worker, or the order."""
    x = images[:24]
    whole = gd.explain(model, x, "integrated_gradients", client=client, chunk_size=8, steps=5, batch_size=8)
    alone = gd.explain(model, x[8:16], "integrated_gradients", client=client, chunk_size=8, steps=5, batch_size=8)
    assert np.array_equal(whole[8:16], alone)


def test_per_image_targets_baselines_and_seeds_follow_the_chunks(client, model, images):
    x, target, baseline = images[:20], np.arange(20) % 10, images[20:40][::-1]
    got = gd.explain(model, x, "smooth_grad", client=client, chunk_size=8, batch_size=4, samples=3, seed=5,
                     target=target)
    with threadpool_limits(1):
        expected = explain.smooth_grad(model, x, samples=3, seed=5, target=target, batch_size=4)
        # the image's own noise: the second chunk alone, given its images' seeds, in one process
        part = explain.smooth_grad(model, x[8:16], samples=3, seed=explain.batching.image_seeds(5, 20)[8:16],
                                   target=target[8:16], batch_size=4)
    assert np.array_equal(got, expected) and np.array_equal(got[8:16], part)
    again = gd.explain(model, x, "smooth_grad", client=client, chunk_size=8, batch_size=4, samples=3, seed=5,
                       target=target)
    assert np.array_equal(got, again)
    got = gd.explain(model, x, "integrated_gradients", client=client, chunk_size=8, batch_size=8, steps=4,
                     baseline=baseline, target=target)
    with threadpool_limits(1):
        expected = explain.integrated_gradients(model, x, steps=4, baseline=baseline, target=target, batch_size=8)
    assert np.array_equal(got, expected)


def test_results_written_chunk_by_chunk_to_npy_and_zarr(client, model, images, tmp_path):
    x = images[:20]
    in_memory = gd.explain(model, x, "grad_cam", client=client, chunk_size=6, batch_size=6)
    npy = gd.explain(model, x, "grad_cam", client=client, chunk_size=6, batch_size=6, out=tmp_path / "maps.npy")
    assert isinstance(npy, np.memmap) and np.array_equal(np.load(tmp_path / "maps.npy"), in_memory)
    assert sorted(os.listdir(tmp_path)) == ["maps.npy"]                  # the partial file was renamed
    store = gd.explain(model, x, "grad_cam", client=client, chunk_size=6, batch_size=6, out=str(tmp_path / "maps.zarr"))
    assert type(store).__module__.startswith("dask.array") and np.array_equal(store.compute(), in_memory)


def test_dask_array_idx_file_and_image_folder_inputs(client, model, images, tmp_path):
    import dask.array as da
    from PIL import Image

    from glassnet.datasets import save_idx
    pixels = (images[:12, ..., 0] * 255).round().astype(np.uint8)
    scaled = pixels[..., None].astype(np.float32) / np.float32(255)
    with threadpool_limits(1):
        expected = model.predict(scaled, batch_size=32)
    lazy = da.from_array(scaled, chunks=(5, 28, 28, 1))
    assert np.array_equal(gd.predict(model, lazy, client=client, chunk_size=32), expected)
    save_idx(tmp_path / "images-idx3-ubyte.gz", pixels)
    assert np.array_equal(gd.predict(model, str(tmp_path / "images-idx3-ubyte.gz"), client=client), expected)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, picture in enumerate(pixels):
        Image.fromarray(picture).save(folder / f"{i:02d}.png")
    assert np.array_equal(gd.predict(model, str(folder), client=client), expected)
    labels = np.arange(12) % 10
    save_idx(tmp_path / "labels-idx1-ubyte", labels.astype(np.uint8))
    with threadpool_limits(1):
        expected_values = model.evaluate(scaled, labels, batch_size=32)
    got = gd.evaluate(model, str(tmp_path / "images-idx3-ubyte.gz"), str(tmp_path / "labels-idx1-ubyte"),
                      client=client)
    assert got == expected_values


def test_a_path_missing_on_the_worker_names_the_worker_and_the_path(client, model, tmp_path):
    missing = str(tmp_path / "nowhere-idx3-ubyte")
    with pytest.raises(FileNotFoundError, match=r"worker tcp://127\.0\.0\.1:\d+ cannot find .*nowhere-idx3-ubyte"):
        gd.predict(model, missing, client=client)


def test_bad_arguments_are_refused(client, model, images, tmp_path):
    with pytest.raises(ValueError, match="method as one of"):
        gd.explain(model, images, "no_such_method", client=client)
    with pytest.raises(TypeError, match="keyword arguments of explain.grad_cam"):
        gd.explain(model, images, "grad_cam", client=client, steps=3)
    with pytest.raises(ValueError, match="batch_size as a positive int"):
        gd.explain(model, images, "grad_cam", client=client, batch_size=0)
    with pytest.raises(ValueError, match=r"\.npy or \.zarr"):
        gd.predict(model, images, client=client, out=str(tmp_path / "maps.txt"))
    with pytest.raises(ValueError, match="one label per image"):
        gd.evaluate(model, images, np.zeros(3, int), client=client)
    with pytest.raises(TypeError, match="a glassnet model or the path"):
        gd.predict(object(), images, client=client)
    with pytest.raises(TypeError, match="client as None"):
        gd.predict(model, images, client=3)


def test_progress_bar_and_callback(client, model, images):
    seen = []
    gd.predict(model, images, client=client, chunk_size=32, progress=lambda done, total: seen.append((done, total)))
    done = [count for count, _ in seen]
    steps = sorted(np.diff([0] + done))                                   # chunks arrive in any order
    assert [total for _, total in seen] == [100] * 4 and done[-1] == 100 and steps == [4, 32, 32, 32]


def test_progress_true_shows_a_bar(client, model, images, capsys):
    gd.predict(model, images, client=client, chunk_size=32, progress=True)
    bar = capsys.readouterr().err
    assert "predict" in bar and "100/100" in bar


def test_the_model_bytes_in_the_task_graph_raise_no_large_graph_warning(client, model, images, recwarn):
    import dask
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "100kB"}):   # LeNet-5's file: 250 kB
        gd.predict(model, images[:8], client=client, chunk_size=8, batch_size=8)
    assert not [warning for warning in recwarn if "large graph" in str(warning.message)]
