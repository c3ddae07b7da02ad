"""Keras 3's optimizer additions: AdamW, ``weight_decay`` (decoupled) on SGD and Adam, and learning-rate
schedules (CosineDecay, ExponentialDecay, PiecewiseConstantDecay) as ``learning_rate=``.

Steps are compared with real Keras 3 (KERAS_BACKEND=torch, a dev-only oracle) on the same float32 start
and gradients; formulas are also checked by hand, and configs survive JSON and a saved model.
"""
import json
import math

import numpy as np
import pytest

import glassnet as gn
from glassnet import optimizers, schedules


def _problem(seed=0, steps=8):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(5).astype("float32")]
    grads = [[rng.standard_normal(p.shape).astype("float32") for p in params] for _ in range(steps)]
    return params, grads


def _run_ours(optimizer, params, grads):
    params = [p.astype("float64") for p in params]
    for step in grads:
        optimizer.apply(params, [g.astype("float64") for g in step])
    return params


def _run_keras(keras, optimizer, params, grads):
    variables = [keras.Variable(p) for p in params]
    for step in grads:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in step], variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


CASES = {
    "adamw": lambda m: m.AdamW(learning_rate=0.01, weight_decay=0.1),
    "adamw_defaults": lambda m: m.AdamW(),
    "adam_weight_decay_amsgrad": lambda m: m.Adam(learning_rate=0.02, weight_decay=0.05, amsgrad=True),
    "sgd_weight_decay": lambda m: m.SGD(learning_rate=0.1, weight_decay=0.2),
    "sgd_nesterov_weight_decay": lambda m: m.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_cosine_weight_decay": lambda m: m.SGD(learning_rate=m.schedules.CosineDecay(0.1, 5, alpha=0.1),
                                               momentum=0.9, weight_decay=0.05),
    "adamw_cosine_warmup": lambda m: m.AdamW(learning_rate=m.schedules.CosineDecay(0.0, 4, warmup_target=0.02,
                                                                                   warmup_steps=3)),
    "adam_exponential_staircase": lambda m: m.Adam(learning_rate=m.schedules.ExponentialDecay(0.01, 2, 0.5,
                                                                                              staircase=True)),
    "sgd_piecewise": lambda m: m.SGD(learning_rate=m.schedules.PiecewiseConstantDecay([1, 4], [0.1, 0.05, 0.01])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_steps_match_keras3(keras, name):
    params, grads = _problem()
    ours = _run_ours(CASES[name](optimizers), params, grads)
    theirs = _run_keras(keras, CASES[name](keras.optimizers), params, grads)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)       # Keras computes in float32


def test_weight_decay_is_decoupled_and_matters(keras):
    """The Keras comparison could not pass with the decay ignored, nor with it added to the gradient (L2)."""
    params, grads = _problem(steps=3)
    theirs = _run_keras(keras, keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.5), params, grads)
    no_decay = _run_ours(optimizers.Adam(learning_rate=0.01), params, grads)
    l2 = [p.astype("float64") for p in params]
    adam = optimizers.Adam(learning_rate=0.01)
    for step in grads:
        adam.apply(l2, [g + 0.5 * p for g, p in zip(step, l2)])
    for candidate in (no_decay, l2):
        assert max(np.abs(a - b).max() for a, b in zip(candidate, theirs)) > 1e-4


def test_sgd_weight_decay_by_hand():
    p = np.array([1.0, -2.0, 4.0])
    g = np.array([0.5, 0.5, -1.0])
    optimizers.SGD(learning_rate=0.1, weight_decay=0.3).apply([p], [g])
    np.testing.assert_allclose(p, np.array([1.0, -2.0, 4.0]) * (1 - 0.03) - 0.1 * g, rtol=1e-15)


@pytest.mark.parametrize("make", [
    lambda m: m.CosineDecay(0.1, 10),
    lambda m: m.CosineDecay(0.1, 7, alpha=0.2),
    lambda m: m.CosineDecay(0.01, 6, warmup_target=0.1, warmup_steps=4, alpha=0.05),
    lambda m: m.ExponentialDecay(0.1, 3, 0.7),
    lambda m: m.ExponentialDecay(0.1, 3, 0.7, staircase=True),
    lambda m: m.PiecewiseConstantDecay([2, 5, 9], [1.0, 0.5, 0.1, 0.01]),
], ids=["cosine", "cosine_alpha", "cosine_warmup", "exponential", "exponential_staircase", "piecewise"])
def test_schedule_values_match_keras3(keras, make):
    ours, theirs = make(schedules), make(keras.optimizers.schedules)
    for step in range(14):
        assert ours(step) == pytest.approx(float(keras.ops.convert_to_numpy(theirs(step))), rel=1e-6, abs=1e-9)
    assert ours.get_config() == theirs.get_config()


def test_cosine_decay_formula():
    schedule = schedules.CosineDecay(0.2, 100, alpha=0.1)
    assert schedule(0) == pytest.approx(0.2)
    assert schedule(50) == pytest.approx(0.2 * (0.9 * 0.5 + 0.1))
    assert schedule(100) == schedule(1000) == pytest.approx(0.02)
    assert schedule(25) == pytest.approx(0.2 * (0.9 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.1))


def test_a_schedule_drives_the_rate_per_step_and_is_not_settable():
    optimizer = optimizers.SGD(learning_rate=schedules.PiecewiseConstantDecay([1], [0.5, 0.1]))
    p = np.zeros(1)
    rates = []
    for _ in range(3):
        rates.append(optimizer.learning_rate)
        before = p.copy()
        optimizer.apply([p], [np.ones(1)])
        assert before - p == pytest.approx(rates[-1])
    assert rates == [0.5, 0.5, 0.1]
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        optimizer.learning_rate = 0.01


@pytest.mark.parametrize("make", [
    lambda: optimizers.AdamW(weight_decay=-1.0),
    lambda: optimizers.AdamW(weight_decay=None),
    lambda: optimizers.SGD(weight_decay=float("inf")),
    lambda: schedules.CosineDecay(0.1, 0),
    lambda: schedules.CosineDecay(-0.1, 10),
    lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-1),
    lambda: schedules.ExponentialDecay(0.1, 10, 0.0),
    lambda: schedules.PiecewiseConstantDecay([3, 2], [1.0, 0.5, 0.1]),
    lambda: schedules.PiecewiseConstantDecay([3], [1.0]),
    lambda: schedules.deserialize({"class_name": "Nope"}),
])
def test_bad_arguments_raise_glassnets_error(make):
    with pytest.raises(ValueError, match="expects"):
        make()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="expects"):
        optimizers.SGD(weight_decay="0.1")
    with pytest.raises(TypeError, match="expects"):
        schedules.CosineDecay("0.1", 10)
    with pytest.raises(TypeError, match="expects"):
        schedules.PiecewiseConstantDecay(3, [1.0, 2.0])


def test_configs_round_trip_through_json():
    for optimizer in (optimizers.AdamW(learning_rate=schedules.CosineDecay(0.01, 50, warmup_target=0.1,
                                                                           warmup_steps=5)),
                      optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4),
                      optimizers.get("adamw")):
        config = json.loads(json.dumps(optimizer.get_config()))
        clone = optimizers.get(config)
        assert type(clone) is type(optimizer) and clone.get_config() == optimizer.get_config()
    assert optimizers.schedules is schedules
    assert optimizers.SGD(0.1).get_config().get("weight_decay") is None


def test_saved_model_resumes_with_its_schedule_and_weight_decay(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 6)).astype("float32"), rng.integers(0, 3, 40)

    def build():
        model = gn.Sequential([gn.layers.Dense(3, activation="softmax", input_shape=(6,))], seed=0)
        model.compile(optimizer=optimizers.AdamW(schedules.CosineDecay(0.05, 20), weight_decay=0.1),
                      loss="sparse_categorical_crossentropy")
        return model

    straight = build()
    straight.fit(x, y, batch_size=10, epochs=4, verbose=0, shuffle=False)
    first = build()
    first.fit(x, y, batch_size=10, epochs=2, verbose=0, shuffle=False)
    first.save(tmp_path / "half.npz")
    resumed = gn.load_model(tmp_path / "half.npz")
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    assert resumed.optimizer.learning_rate == first.optimizer.learning_rate < 0.05
    resumed.fit(x, y, batch_size=10, epochs=4, initial_epoch=2, verbose=0, shuffle=False)
    for a, b in zip(resumed.layers[0].get_weights(), straight.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
