"""Adebayo et al. (2018), "Sanity Checks for Saliency Maps": their qualitative table, on LeNet-5s trained here.

The paper finds guided backpropagation and guided Grad-CAM insensitive to the re-initialization of
the top layers (their maps explain the image, not the model), while the vanilla gradient,
SmoothGrad and Grad-CAM change. ``explain.sanity_check`` must say the same on a LeNet-5 trained
on real MNIST digits and on one trained on Fashion-MNIST (a few thousand images, two epochs).
The slow variant adds seeds, integrated gradients, occlusion and the data randomization test.
"""
import numpy as np
import pytest

from glassnet import datasets, explain, models, optimizers

#: method name -> options, grouped by the paper's verdict
INSENSITIVE = {"guided_backprop": {}, "guided_grad_cam": {}}
SENSITIVE = {"input_gradients": {}, "smooth_grad": {"samples": 10}, "grad_cam": {}}
#: not in the paper's cascade figure; where they land here is recorded in the slow test
OTHERS = {"integrated_gradients": {"steps": 20}, "occlusion": {"window": 4}}
TRAIN_IMAGES, TEST_IMAGES = 3000, 24


def _data(name):
    """(x_train, y_train, x_test) as float32 in [0, 1]: real MNIST digits (the t10k set split) or Fashion-MNIST."""
    if name == "mnist":
        x, y = datasets.mnist.load_t10k()
        x = x[..., None].astype(np.float32) / 255
        return x[:TRAIN_IMAGES * 2], y[:TRAIN_IMAGES * 2].astype(np.int64), x[9000:]
    try:
        (x_train, y_train), (x_test, _) = datasets.fashion_mnist.load_data(download=False)
    except datasets.DatasetNotFoundError as error:
        pytest.skip(f"Fashion-MNIST files not installed (Debian package dataset-fashion-mnist): {error}")
    scale = lambda x: x[..., None].astype(np.float32) / 255  # noqa: E731
    return scale(x_train[:TRAIN_IMAGES * 2]), y_train[:TRAIN_IMAGES * 2].astype(np.int64), scale(x_test[:1000])


def _lenet(name, seed, n_train=TRAIN_IMAGES, epochs=2):
    x_train, y_train, x_test = _data(name)
    model = models.lenet5(seed=seed)
    model.compile(optimizers.Adam(), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train[:n_train], y_train[:n_train], batch_size=32, epochs=epochs, verbose=0, seed=seed)
    return model, x_train, y_train, x_test


@pytest.fixture(scope="module", params=["mnist", "fashion"])
def lenet(request):
    return request.param, _lenet(request.param, seed=0)


def _verdicts(model, x, methods, seed, **options):
    return {name: explain.sanity_check(model, x, name, seed=seed, **options, **kwargs)
            for name, kwargs in methods.items()}


def _table(label, results):
    return "\n".join(f"{label} {name:20s} {'passes' if r.passed else 'fails ':6s} excess {r.score:+.2f} "
                     f"cascade {' '.join(f'{v:+.2f}' for v in r.mean)} null {r.null_mean['spearman']:+.2f}"
                     for name, r in results.items())


def test_the_papers_table_on_lenet5(lenet):
    name, (model, _, _, x_test) = lenet
    results = _verdicts(model, x_test[:TEST_IMAGES], {**INSENSITIVE, **SENSITIVE}, seed=0, independent=False)
    print("\n" + _table(name, results))
    for method in INSENSITIVE:                    # clear of the limit, not on its edge
        assert not results[method].passed, (name, method, results[method].reason)
        assert results[method].score > explain.trust.LIMIT + 0.05
    for method in SENSITIVE:
        assert results[method].passed, (name, method, results[method].reason)
        assert results[method].score < explain.trust.LIMIT - 0.1
    # guided backprop's curve: the maps survive the top layers and go only once the first convolutions do
    guided = results["guided_backprop"].mean
    assert guided[0] > 0.7 and guided[-1] < guided[0] - 0.3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "fashion"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_papers_table_over_seeds_with_data_randomization(name, seed):
    """More seeds, 64 images, the data randomization test, and integrated gradients and occlusion.

    Integrated gradients and occlusion pass: their |map| similarity is high for any two models
    (``x`` multiplies IG, and occluding a blank background changes no model's score), but the null
    takes that into account and their signed maps change with the top layer.
    """
    model, x_train, y_train, x_test = _lenet(name, seed, n_train=4000)
    results = _verdicts(model, x_test[:64], {**INSENSITIVE, **SENSITIVE, **OTHERS}, seed=seed,
                        train_data=(x_train[4000:6000], y_train[4000:6000]), data_epochs=2)
    print("\n" + _table(f"{name} seed {seed}", results))
    for method in INSENSITIVE:
        assert not results[method].passed, (name, method, results[method].reason)
    for method in {**SENSITIVE, **OTHERS}:
        assert results[method].passed, (name, method, results[method].reason)
    for method in OTHERS:
        assert results[method].null_mean["spearman_abs"] > 0.6     # input structure alone
