"""Can a map be trusted? Model-randomization sanity checks and deletion/insertion curves.

- :func:`sanity_check` (Adebayo et al., 2018): randomize the weights layer by layer from the top
  (on a copy of the model) and measure how much the maps change; a method whose maps survive the
  randomization explains the image, not the model.
- :func:`deletion_insertion` (Petsiuk et al., 2018): delete the most important pixels first and
  watch the score fall, or insert them into a blank image and watch it rise; compare with a
  random ordering of the pixels.
"""
import functools
import inspect
from typing import NamedTuple

import numpy as np

from glassnet.errors import describe, message
from glassnet.explain.backprop import (check_baseline, check_images, check_score,
                                       check_target, chunk_size, chunks, forward_pass, target_scores)
from glassnet.explain.cam import cam, grad_cam, grad_cam_plus_plus, guided_grad_cam
from glassnet.explain.gradients import input_gradients, integrated_gradients, saliency, smooth_grad
from glassnet.explain.occlusion import occlusion
from glassnet.explain.similarity import MEASURES, blank_maps, rank, rank_correlation, similarities  # noqa: F401
from glassnet.validation import as_generator, check_choice, check_int, check_name_choice, check_real

#: Methods :func:`sanity_check` accepts by name, each a function ``(model, images, target=..., **kwargs)``.
METHODS = {
    "input_gradients": input_gradients, "saliency": saliency, "smooth_grad": smooth_grad,
    "integrated_gradients": integrated_gradients, "grad_cam": grad_cam, "guided_grad_cam": guided_grad_cam,
    "grad_cam_plus_plus": grad_cam_plus_plus, "cam": cam, "occlusion": occlusion,
    "guided_backprop": functools.partial(input_gradients, modifier="guided"),
}


def _method(method, where):
    if callable(method):
        return method
    return METHODS[check_name_choice(method, sorted(METHODS), "method (a name, or a callable (model, images, "
                                     "target=..., **kwargs) -> maps)", where)]


def copy_model(model):
    """An independent copy of ``model`` (same architecture, names and weights)."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


class SanityCheck(NamedTuple):
    """Result of :func:`sanity_check`.

    Similarities are per measure (:data:`glassnet.explain.similarity.MEASURES`: ``spearman_abs``,
    ``spearman``, ``ssim``, ``hog``) and per image; means are over the informative (non-blank) maps.

    Attributes
    ----------
    layers : list of str
        Layer randomized at each cascade step, top first; step ``j`` has ``layers[:j + 1]`` randomized.
    correlations : ndarray (steps, N)
        The verdict's measure (``measure``, by default the signed Spearman rank correlation) of
        each image's map against its trained map along the cascade.
    mean : ndarray (steps,)
        ``correlations`` averaged over the informative maps: the cascade curve.
    passed : bool
        The verdict (see :func:`sanity_check`).
    threshold : float
        The bar on the top step's mean ``measure`` that corresponds to the verdict's limit
        (``null + limit * (1 - null)``), for plots; or the fixed bar that was passed.
    measure : str
        The verdict's measure.
    measures : dict of str -> ndarray (steps, N)
        Every measure along the cascade.
    null : dict of str -> ndarray (pairs, N)
        Similarity of the maps of independently initialized copies of the model, pair by pair:
        how alike maps are from the input's structure alone.
    null_mean : dict of str -> float
    top : dict of str -> ndarray (repeats, N)
        Similarity with only the top layer re-initialized, once per independent draw.
    excess : dict of str -> float
        ``(top - null) / (1 - null)`` per measure: the share of the similarity the input's structure
        does not explain that survives the re-initialization of the top layer.
    score : float
        ``excess[measure]``: the verdict's statistic.
    limit : float
    independent : dict of str -> ndarray (steps, N)
        Each layer of ``layers`` re-initialized alone (the others trained).
    data_randomization : dict of str -> ndarray (N,), or None
        Similarity with the maps of the same architecture trained on permuted labels (when
        ``train_data`` was given).
    data_score : float or None
        Excess similarity (``measure``) of the data randomization test.
    blank : ndarray of bool (N,)
        Images whose trained map is blank (constant): no evidence, never counted as passing.
    n_blank : int
    reason : str
        The verdict in one line.
    """
    layers: list
    correlations: np.ndarray
    mean: np.ndarray
    passed: bool
    threshold: float
    measure: str = "spearman"
    measures: dict = {}
    null: dict = {}
    null_mean: dict = {}
    top: dict = {}
    excess: dict = {}
    score: float = float("nan")
    limit: float = float("nan")
    independent: dict = {}
    data_randomization: dict = None
    data_score: float = None
    blank: np.ndarray = None
    n_blank: int = 0
    reason: str = ""


#: The verdict's limit on the excess similarity at the top (see :func:`sanity_check`).
LIMIT = 0.25


def _signature_parameters(function):
    try:
        return inspect.signature(function).parameters
    except (TypeError, ValueError):      # some callables (builtins, C functions) have no signature
        return {}


def _two_dimensional(maps, n, where):
    """Signed 2-D maps (N, H, W): channels summed (sign kept); (N, D) becomes (N, 1, D)."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim < 2 or len(maps) != n:
        raise ValueError(message(where, f"the method to return one map per image, shape ({n}, ...)",
                                 f"shape {maps.shape}"))
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    elif maps.ndim == 2:
        maps = maps[:, None, :]
    elif maps.ndim > 4:
        maps = maps.reshape(n, maps.shape[1], -1)
    return maps


def _measure(reference, maps):
    """Every measure of maps against the reference; the patch measures need maps of 4 x 4 or more."""
    if min(reference.shape[1:]) >= 4:
        return similarities(reference, maps)
    return {"spearman_abs": rank_correlation(np.abs(reference), np.abs(maps)),
            "spearman": rank_correlation(reference, maps),
            "ssim": np.full(len(maps), np.nan), "hog": np.full(len(maps), np.nan)}


def _means(values, informative):
    """Mean over the informative images of each measure (NaN when none is)."""
    return {name: float(v[..., informative].mean()) if informative.any() else float("nan")
            for name, v in values.items()}


def _excess(similarity, null):
    """(similarity - null) / (1 - null), per measure; 1 when unrelated models already agree fully."""
    return {name: (similarity[name] - null[name]) / (1 - null[name]) if null[name] < 1 - 1e-9 else 1.0
            for name in similarity}


def _stack(per_step):
    """[{measure: (N,)}] per step -> {measure: (steps, N)}."""
    return {name: np.array([step[name] for step in per_step]) for name in MEASURES}


def _fresh(model, rng):
    """The architecture of ``model`` with new weights drawn by each layer's own initializer."""
    config = model.get_config()
    config["seed"] = int(rng.integers(2 ** 31))
    return type(model).from_config(config)


def _weighted(model):
    """Indices of the layers with weights, top first."""
    return [index for index in range(len(model.layers) - 1, -1, -1) if model.layers[index].weights]


def _permuted_label_model(model, train_data, epochs, rng, where):
    """The architecture of ``model`` trained from fresh weights on (x, shuffled labels)."""
    from glassnet import optimizers

    if not isinstance(train_data, (tuple, list)) or len(train_data) != 2:
        raise TypeError(message(where, "train_data as a pair (x_train, y_train)", describe(train_data)))
    x_train = check_images(model, train_data[0], where)
    labels = np.asarray(train_data[1])
    labels = labels.argmax(axis=1) if labels.ndim == 2 else labels
    if labels.shape != (len(x_train),):
        raise ValueError(message(where, f"one label per training image ({len(x_train)},) or one-hot rows",
                                 f"labels of shape {np.shape(train_data[1])}"))
    net = _fresh(model, rng)
    net.compile(optimizer=optimizers.Adam(), loss="sparse_categorical_crossentropy")
    net.fit(x_train, rng.permutation(labels.astype(np.int64)), batch_size=32, epochs=epochs, verbose=0,
            seed=int(rng.integers(2 ** 31)))
    return net


#: how a measure is named in a verdict's reason
MEASURE_NAMES = {"spearman": "signed Spearman", "spearman_abs": "Spearman |map|", "ssim": "SSIM", "hog": "HOG"}


def _share(excess):
    """An excess similarity in words: a percentage, or none when the maps are below the null."""
    return f"{excess:.0%}" if excess > 0 else f"none ({excess:+.0%})"


def _reason(passed, score, limit, top_layer, measure, n_blank, n, data_score, fixed):
    """The verdict in one line."""
    blanks = f"; {n_blank} of {n} maps blank (no evidence)" if n_blank else ""
    if n_blank == n:
        return f"fails: all {n} maps are blank (constant), so they cannot show that they depend on the model"
    if 2 * n_blank > n:
        return f"fails: {n_blank} of {n} maps are blank (constant): too few carry evidence"
    verdict = "passes" if passed else "fails"
    if fixed is not None:
        return (f"{verdict}: {MEASURE_NAMES[measure]} {fixed[0]:.2f} with the top layer re-initialized, "
                f"{'<' if passed else '>='} the fixed threshold {fixed[1]:.2f}{blanks}")
    kept = (f"re-initializing the top layer {top_layer!r} leaves {_share(score)} of the maps' "
            f"{MEASURE_NAMES[measure]} similarity above the null")
    data = "" if data_score is None else f", training on permuted labels {_share(data_score)}"
    return f"{verdict}: {kept}{data} (limit {limit:.0%}){blanks}"


def sanity_check(model, images, method="grad_cam", target=None, threshold=None, seed=0, absolute=None,
                 measure="spearman", limit=LIMIT, repeats=5, null_models=3, independent=True, train_data=None,
                 data_epochs=1, **kwargs):
    """Model and data randomization tests of a saliency method (Adebayo et al., 2018).

    On copies of ``model`` (the model itself is never touched):

    - **cascade**: re-initialize one more layer at each step, from the top (the logits) down, with
      fresh draws from each layer's own initializer, and compare each image's map with its map from
      the trained model;
    - **null**: compare the maps of ``null_models`` independently initialized copies with each
      other, pair by pair: how alike two maps are from the input's structure alone;
    - **independent**: re-initialize each layer alone;
    - **data randomization** (with ``train_data``): train the architecture on permuted labels and
      compare its maps with the trained model's.

    Similarity is measured as in the paper: Spearman rank correlation of the absolute and of the
    signed maps, SSIM and HOG similarity (:mod:`glassnet.explain.similarity`).

    The rule. A method claims to explain the class score, so its maps must change once the
    layer that computes that score, the top one, is re-initialized. The *excess similarity*
    ``(s_top - s_null) / (1 - s_null)`` is the share of the similarity that the input's structure
    does not explain and that survives the re-initialization (0: the maps are no more alike than
    those of unrelated models; 1: unchanged); ``s_top`` is the mean over ``repeats`` independent
    draws of the top layer and over the images, ``s_null`` the mean over the null's pairs. The
    method **passes** when the excess similarity of ``measure`` is below ``limit`` (and, with
    ``train_data``, so is the data randomization test's). Maps that are blank on the trained model
    (constant, e.g. an all-zero Grad-CAM) are left out of every mean and counted in ``n_blank``;
    when more than half of the maps are blank the method fails: a blank map can never show that
    it depends on the model.

    Why. The paper (Inception v3 on ImageNet, its Figs. 2 and 4) finds that guided
    backpropagation and guided Grad-CAM keep their maps after the logits and several blocks under
    them are re-initialized, while the gradient, SmoothGrad and Grad-CAM lose them at the logits;
    and that on MNIST a network trained on permuted labels gives different gradient and Grad-CAM
    maps but the same guided-backpropagation maps. The rule glassnet had before (mean Spearman
    of ``|map|`` below 0.5 with *every* layer re-initialized) contradicted it: on ``make demo``'s
    LeNet-5 guided backpropagation's cascade read 0.84 0.80 0.64 0.47 0.40 and passed, since
    re-initializing every layer down to the first changes any map, and its verdict flipped with
    the dataset. A raw similarity means nothing without the null either: two random LeNet-5s'
    integrated-gradients maps agree at Spearman 0.99 of ``|map|`` on MNIST digits (``|x|``
    dominates them and the background is zero), their gradients at 0.7, their Grad-CAMs near 0.

    The numbers behind the measure and the limit: on LeNet-5s trained on 3,000-4,000 MNIST digits
    or Fashion-MNIST images (three seeds, 24-64 test images;
    ``tests/explain/test_explain_trust_paper.py``), re-initializing the logits layer leaves
    guided backpropagation 80-89% of its above-null signed-Spearman similarity and guided
    Grad-CAM 28-62%, against -6% to 20% for the gradient, SmoothGrad, Grad-CAM, integrated
    gradients and occlusion (Grad-CAM the highest of these: the trained layers under its map still
    place it on the object); the limit of 25% sits between them. The signed measure separates
    them best: magnitude measures keep more whatever the method (the trained lower layers shape
    ``|gradient|``), e.g. Spearman ``|map|`` keeps 41% for the vanilla gradient on one MNIST model.
    The data randomization test at a small budget (2,000 permuted-label images, two epochs) gives
    null-level similarity for every method there, guided backpropagation included (the network
    it trains has new lower layers too), so it does not separate the methods at that budget; a
    method must still pass it when it is run.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    method : str or callable
        A name among :data:`METHODS` or ``f(model, images, target=..., **kwargs)`` returning maps
        (N, H, W) or (N, H, W, C) (channels are summed, signs kept).
    target : None, int or array_like (N,)
        Fixed on the trained model (None: its predicted classes), then used for every copy.
    threshold : float, optional
        A fixed bar on the top step's mean Spearman correlation instead of the calibrated rule
        (not recommended: a raw similarity means little without the null).
    seed : int or numpy.random.Generator
        Source of every random weight, permutation and of the method's own noise (when it takes a
        ``seed``): one seed, one result.
    absolute : bool, optional
        Shorthand for ``measure="spearman_abs"`` (True) or ``"spearman"`` (False).
    measure : {"spearman", "spearman_abs", "ssim", "hog"}
        The verdict's measure (all four are reported in ``measures``).
    limit : float in (0, 1)
        Largest excess similarity that passes.
    repeats : int
        Independent draws of the top layer the verdict averages over.
    null_models : int (>= 2)
        Independently initialized copies for the null (all their pairs are compared).
    independent : bool
        Also run the independent (one layer at a time) randomization.
    train_data : (x_train, y_train), optional
        Run the data randomization test: the architecture trained from fresh weights on these
        images with their labels permuted (Adam, batch 32, ``data_epochs`` epochs).
    data_epochs : int
    **kwargs
        Passed to the method (e.g. ``layer=...`` for Grad-CAM).

    Returns
    -------
    SanityCheck
    """
    where = "explain.sanity_check"
    x = check_images(model, images, where)
    explain = _method(method, where)
    target = check_target(model, target, len(x), where)
    threshold, limit, measure = _check_rule(threshold, limit, absolute, measure, where)
    repeats, data_epochs = check_int(repeats, "repeats", where, 1), check_int(data_epochs, "data_epochs", where, 1)
    null_models = check_int(null_models, "null_models", where, minimum=2,
                            fix="The null compares pairs of randomized copies.")
    rng = as_generator(seed, where)
    layers = _weighted(model)
    if not layers:
        raise ValueError(message(where, "a model with weights to randomize", "no layer with weights"))
    if target is None:
        target = target_scores(model, x, None)[1]
    if "seed" in _signature_parameters(explain) and "seed" not in kwargs:
        kwargs["seed"] = int(rng.integers(2 ** 31))  # the same noise for every copy

    def maps_of(net):
        return _two_dimensional(explain(net, x, target=target, **kwargs), len(x), where)

    tests = _Randomizations(model, layers, maps_of, rng)
    data = None
    cascade = tests.cascade()
    top, null = tests.top(repeats, cascade), tests.null(null_models)
    alone = tests.independent() if independent else {}
    if train_data is not None:
        data = tests.compared(_permuted_label_model(model, train_data, data_epochs, rng, where))
    informative = ~tests.blank
    null_mean = _means(null, informative)
    excess = _excess(_means(top, informative), null_mean)
    data_score = None if data is None else _excess(_means(data, informative), null_mean)[measure]
    correlations = cascade[measure]
    mean = correlations[:, informative].mean(axis=1) if informative.any() else np.full(len(layers), np.nan)
    n_blank = int(tests.blank.sum())
    enough = bool(2 * n_blank <= len(x) and informative.any())
    if threshold is None:
        passed = enough and excess[measure] < limit and (data_score is None or data_score < limit)
        bar, fixed = null_mean[measure] + limit * (1 - null_mean[measure]), None
    else:
        top_mean = _means(top, informative)[measure]
        passed, bar, fixed = enough and top_mean < threshold, threshold, (top_mean, threshold)
    names = [model.layers[index].name for index in layers]
    reason = _reason(passed, excess[measure], limit, names[0], measure, n_blank, len(x), data_score, fixed)
    return SanityCheck(names, correlations, mean, bool(passed), float(bar), measure, cascade, null, null_mean, top,
                       excess, float(excess[measure]), float(limit), alone, data, data_score, tests.blank, n_blank,
                       reason)


def _check_rule(threshold, limit, absolute, measure, where):
    """Validated (threshold or None, limit, measure name) of :func:`sanity_check`."""
    if threshold is not None:
        threshold = check_real(threshold, "threshold (a rank correlation)", where, low=-1, high=1)
    limit = check_real(limit, "limit (a share of the above-null similarity)", where, low=0, high=1)
    if absolute is not None:
        measure = "spearman_abs" if absolute else "spearman"
    return threshold, limit, check_choice(measure, MEASURES, "measure", where)


class _Randomizations:
    """The model randomization tests of one method on one batch: maps of re-initialized copies vs the trained maps.

    Every copy's weights come from ``_fresh(model, rng)``, drawn in a fixed order, so one seed gives one result.
    Each test returns ``{measure: (steps, N)}``.
    """

    def __init__(self, model, layers, maps_of, rng):
        self.model, self.layers, self.maps_of, self.rng = model, layers, maps_of, rng
        self.reference = maps_of(copy_model(model))
        self.blank = blank_maps(self.reference)

    def compared(self, net):
        """Every measure of ``net``'s maps against the trained maps."""
        return _measure(self.reference, self.maps_of(net))

    def _with(self, indices, fresh, net=None):
        """``net`` (default a copy of the model) with the layers at ``indices`` taken from ``fresh``."""
        net = copy_model(self.model) if net is None else net
        for index in indices:
            net.layers[index].set_weights(fresh.layers[index].get_weights())
        return net

    def cascade(self):
        """One more layer re-initialized at each step, top first."""
        net, fresh, steps = copy_model(self.model), _fresh(self.model, self.rng), []
        for index in self.layers:
            steps.append(self.compared(self._with([index], fresh, net)))
        return _stack(steps)

    def top(self, repeats, cascade):
        """The top layer alone re-initialized, ``repeats`` independent draws: the cascade's first step and more."""
        first = {name: values[0] for name, values in cascade.items()}
        draws = [first] + [self.compared(self._with(self.layers[:1], _fresh(self.model, self.rng)))
                           for _ in range(repeats - 1)]
        return _stack(draws)

    def null(self, copies):
        """Every pair of ``copies`` independently initialized models, compared with each other."""
        maps = [self.maps_of(_fresh(self.model, self.rng)) for _ in range(copies)]
        return _stack([_measure(maps[i], maps[j]) for i in range(copies) for j in range(i + 1, copies)])

    def independent(self):
        """Each layer alone re-initialized, the others trained."""
        fresh = _fresh(self.model, self.rng)
        return _stack([self.compared(self._with([index], fresh)) for index in self.layers])


class DeletionInsertion(NamedTuple):
    """Result of :func:`deletion_insertion`.

    Attributes
    ----------
    fractions : ndarray (steps + 1,)
        Fraction of pixels deleted (or inserted) at each point of the curves.
    deletion, insertion : ndarray (N, steps + 1)
        Target score along the curves for the given maps.
    random_deletion, random_insertion : ndarray (N, steps + 1)
        The same for a random pixel order.
    deletion_auc, insertion_auc, random_deletion_auc, random_insertion_auc : ndarray (N,)
        Areas under the curves (trapezoid rule over the fraction). A good map has
        ``deletion_auc < random_deletion_auc`` and ``insertion_auc > random_insertion_auc``.
    """
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    random_deletion: np.ndarray
    random_insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    random_deletion_auc: np.ndarray
    random_insertion_auc: np.ndarray


def _check_maps(maps, x, where):
    """Pixel importance (N, H * W) from maps (N, H, W) or (N, H, W, C) (channels summed)."""
    array = np.asarray(maps)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(message(where, "maps as a numeric array", describe(maps)))
    if array.shape == x.shape:
        array = array.sum(axis=-1)
    if array.shape != x.shape[:3]:
        raise ValueError(message(where, f"maps of shape {x.shape[:3]} or {x.shape}", f"shape {array.shape}",
                                 "Pass one map per image, at the input's resolution (upsample=True)."))
    if not np.isfinite(array).all():
        raise ValueError(message(where, "finite maps", "NaN or inf entries"))
    return array.reshape(len(x), -1).astype(np.float64)


def _orders_to_ranks(order):
    """ranks[n, pixel] = position of the pixel in image n's order."""
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    return ranks


def _auc(curves):
    """Trapezoid area under curves sampled at equally spaced fractions in [0, 1]."""
    steps = curves.shape[1] - 1
    return (curves.sum(axis=1) - (curves[:, 0] + curves[:, -1]) / 2) / steps


def deletion_insertion(model, images, maps, target=None, steps=20, baseline=0.0, score="probability", seed=0):
    """Deletion and insertion curves and their AUCs, for the maps and for a random pixel order.

    Pixels are taken in decreasing order of importance (ties in raster order); at point ``k`` the
    first ``round(k / steps * H * W)`` of them are set to ``baseline`` (deletion) or copied from
    the image into an all-``baseline`` canvas (insertion), every channel of a pixel together.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    maps : array_like (N, H, W) or (N, H, W, C)
        Importance of each pixel (channels are summed).
    target : None, int or array_like (N,)
        None: the predicted class of each image.
    steps : int
        Points on each curve after the start.
    baseline : float, array (H, W, C) or (N, H, W, C)
        Value of a deleted pixel.
    score : {"probability", "logits"}
        The metric is defined on probabilities (bounded, comparable across images), so that is
        the default here, unlike the attribution methods.
    seed : int or numpy.random.Generator
        Source of the random order.

    Returns
    -------
    DeletionInsertion
    """
    where = "explain.deletion_insertion"
    x = check_images(model, images, where)
    if x.ndim != 4:
        raise ValueError(message(where, "a model on images (N, H, W, C)", f"input shape {x.shape}"))
    importance = _check_maps(maps, x, where)
    target = check_target(model, target, len(x), where)
    steps = check_int(steps, "steps", where, minimum=1)
    score = check_score(score, where)
    base = check_baseline(baseline, x, where)
    rng = as_generator(seed, where)
    N, H, W, C = x.shape
    target = target_scores(model, x, target, score)[1]
    counts = np.rint(np.linspace(0, H * W, steps + 1)).astype(np.int64)
    ranks = np.stack([_orders_to_ranks(np.argsort(-importance, axis=1, kind="stable")),
                      _orders_to_ranks(np.argsort(rng.random((N, H * W)), axis=1))])  # (2, N, HW)
    # curve c of image n at point k: c = 2 * order + kind (kind 0 deletion, 1 insertion)
    total = N * 4 * (steps + 1)
    scores = np.empty(total)
    for part in chunks(total, chunk_size(model)):
        flat = np.arange(part.start, part.stop)
        n, rest = flat // (4 * (steps + 1)), flat % (4 * (steps + 1))
        curve, k = rest // (steps + 1), rest % (steps + 1)
        order, insertion = curve // 2, curve % 2
        taken = (ranks[order, n] < counts[k][:, None]).reshape(-1, H, W, 1)
        # deletion: taken pixels become baseline; insertion: only taken pixels come from the image
        batch = np.where(taken != insertion[:, None, None, None].astype(bool), base[n], x[n])
        out = forward_pass(model, batch, score == "logits")[0]
        scores[flat] = out[np.arange(len(flat)), target[n]]
    curves = scores.reshape(N, 2, 2, steps + 1)
    fractions = counts / (H * W)
    return DeletionInsertion(fractions, curves[:, 0, 0], curves[:, 0, 1], curves[:, 1, 0], curves[:, 1, 1],
                             _auc(curves[:, 0, 0]), _auc(curves[:, 0, 1]), _auc(curves[:, 1, 0]),
                             _auc(curves[:, 1, 1]))
