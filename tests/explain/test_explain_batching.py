"""Fixed batches (glassnet.explain.batching): an image's map depends on its batch only, so explaining
x equals concatenating the explanations of splits of x at multiples of batch_size, bit for bit."""
import inspect

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import glassnet as gn
from glassnet import explain, layers, models
from glassnet.explain.batching import DEFAULT_BATCH, image_seeds

#: A cheap configuration of every method of explain.METHODS.
CHEAP = {"input_gradients": {}, "saliency": {"modifier": "rectified"}, "guided_backprop": {},
         "smooth_grad": {"samples": 2, "seed": 4}, "integrated_gradients": {"steps": 3, "baseline": 0.5},
         "grad_cam": {}, "grad_cam_plus_plus": {}, "guided_grad_cam": {"upsample": "half_pixel"},
         "cam": {"relu": False}, "occlusion": {"window": 14, "stride": 7}}


@pytest.fixture(scope="module")
def nets():
    lenet = models.get("lenet5", seed=3)
    with_gap = gn.Sequential([layers.Conv2D(4, 5, activation="relu", input_shape=(28, 28, 1)),
                              layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax")], seed=4)
    return {"lenet": lenet, "cam": with_gap}


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(5).random((23, 28, 28, 1), dtype=np.float32)


def test_every_method_is_covered_and_takes_a_batch_size():
    assert set(CHEAP) == set(explain.METHODS)
    for function in explain.METHODS.values():
        parameter = inspect.signature(function).parameters["batch_size"]
        assert parameter.default == DEFAULT_BATCH and parameter.kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("method", sorted(CHEAP))
def test_splits_at_multiples_of_the_batch_give_the_same_bits(nets, x, method):
    net = nets["cam" if method == "cam" else "lenet"]
    function, kwargs = explain.METHODS[method], dict(CHEAP[method])
    with threadpool_limits(1):
        whole = function(net, x, batch_size=5, **kwargs)
        parts = []
        for start in (0, 10, 20):                       # splits of 10 (two batches) and a ragged 3
            own = dict(kwargs)
            if "seed" in own:
                own["seed"] = image_seeds(own["seed"], len(x))[start:start + 10]
            parts.append(function(net, x[start:start + 10], batch_size=5, **own))
    assert whole.shape[0] == len(x) and np.array_equal(whole, np.concatenate(parts))
    # the batches are the only difference between batch sizes: at most rounding apart
    np.testing.assert_allclose(function(net, x, batch_size=23, **kwargs), whole, rtol=1e-3, atol=1e-5)


def test_per_image_arguments_are_cut_with_the_batches(nets, x):
    net, target, baseline = nets["lenet"], np.arange(23) % 10, x[::-1].copy()
    attributions, gap = explain.integrated_gradients(net, x, target=target, baseline=baseline, steps=3,
                                                     return_gap=True, batch_size=4)
    one, one_gap = explain.integrated_gradients(net, x[9:10], target=target[9], baseline=baseline[9], steps=3,
                                                return_gap=True, batch_size=4)
    np.testing.assert_allclose(attributions[9:10], one, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gap[9:10], one_gap, rtol=1e-4, atol=1e-6)
    assert attributions.shape == x.shape and gap.shape == (23,)


def test_image_seeds_depend_on_the_seed_and_the_position_only():
    seeds = image_seeds(7, 10)
    assert seeds.dtype == np.int64 and (seeds >= 0).all() and len(set(seeds.tolist())) == 10
    assert np.array_equal(image_seeds(7, 4), seeds[:4]) and not np.array_equal(image_seeds(8, 4), seeds[:4])


def test_bad_batch_sizes_and_seeds_are_refused(nets, x):
    net = nets["lenet"]
    with pytest.raises(ValueError, match="batch_size as a positive int"):
        explain.saliency(net, x, batch_size=0)
    with pytest.raises(TypeError, match="batch_size as a positive int"):
        explain.grad_cam(net, x, batch_size=2.5)
    with pytest.raises(ValueError, match=r"one target per image, shape \(23,\)"):
        explain.saliency(net, x, target=[1, 2], batch_size=4)          # checked on the whole call, not per batch
    with pytest.raises(ValueError, match=r"one int >= 0 per image \(23,\)"):
        explain.smooth_grad(net, x, seed=np.arange(3), batch_size=4)
    with pytest.raises(TypeError, match="one int >= 0 per image"):
        explain.smooth_grad(net, x, seed=np.ones(23), batch_size=4)
