"""BatchNormalization + ReLU and Add + ReLU as planned steps: chosen only where the ReLU alone reads a plain
(slope-free, uncapped) ReLU input, and exactly the unfused layers' values and gradients otherwise."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers
from glassnet.engine import backprop, run
from glassnet.engine.plan import AddReLUStep, BatchNormReLUStep, LayerStep
from glassnet.testing import numerical_gradient, relative_error


def residual(dtype="float64", last_relu=None, seed=0):
    """Input -> Conv-BN-ReLU -> Conv-BN, + a Conv-BN projection -> Add -> ReLU -> GAP -> Dense."""
    inputs = gn.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, padding="same", use_bias=False, dtype=dtype, seed=seed)(inputs)
    x = layers.ReLU(dtype=dtype)(layers.BatchNormalization(momentum=0.5, dtype=dtype)(x))
    y = layers.BatchNormalization(dtype=dtype)(layers.Conv2D(4, 3, padding="same", dtype=dtype, seed=seed + 1)(x))
    shortcut = layers.BatchNormalization(dtype=dtype)(layers.Conv2D(4, 1, dtype=dtype, seed=seed + 2)(x))
    z = (last_relu or layers.ReLU(dtype=dtype))(layers.Add(dtype=dtype)([y, shortcut]))
    outputs = layers.Dense(3, dtype=dtype, seed=seed + 3)(layers.GlobalAveragePooling2D(dtype=dtype)(z))
    return gn.Model(inputs, outputs)


def images(n=4, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 6, 6, 2))


def step_types(plan):
    return [type(step) for step in plan.steps]


def test_training_and_predict_plans_fuse_and_explanations_do_not():
    model = residual()
    fused = step_types(model.plan(logits=True, fuse=True))
    assert fused.count(BatchNormReLUStep) == 1 and fused.count(AddReLUStep) == 1
    assert not {BatchNormReLUStep, AddReLUStep} & set(step_types(model.plan(logits=True, fuse=False)))


@pytest.mark.parametrize("relu", [lambda: layers.LeakyReLU(0.1, dtype="float64"),
                                  lambda: layers.ReLU(max_value=6.0, dtype="float64")])
def test_a_relu_with_a_slope_or_a_cap_is_not_fused(relu):
    assert AddReLUStep not in step_types(residual(last_relu=relu()).plan(logits=True, fuse=True))


def test_a_normalization_read_twice_is_not_fused():
    inputs = gn.Input((4, 4, 2))
    bn = layers.BatchNormalization(dtype="float64")(inputs)
    merged = layers.Add(dtype="float64")([layers.ReLU(dtype="float64")(bn), bn])
    model = gn.Model(inputs, layers.GlobalAveragePooling2D(dtype="float64")(merged))
    assert step_types(model.plan(fuse=True))[:2] == [LayerStep, LayerStep]


def _pass(model, fuse, training, rule="vanilla"):
    """Output, input gradient and weight gradients of one pass from a fixed output gradient."""
    plan = model.plan(logits=True, fuse=fuse)
    x = images()
    tape = run(plan, [x], training=training)
    out = tape.values[plan.outputs[0]]
    seed = np.random.default_rng(2).standard_normal(out.shape)
    grads = backprop(tape, {plan.outputs[0]: seed}, rule=rule, wrt=plan.inputs)
    weights = {(model.layers.index(layer), key): value for layer, found in grads.weights.items()
               for key, value in found.items()}
    return out, grads.slots[plan.inputs[0]], weights


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("rule", ["vanilla", "guided", "rectified"])
def test_fused_steps_give_the_layers_values_and_gradients(training, rule):
    fused_model, plain_model = residual(), residual()
    fused = _pass(fused_model, True, training, rule)
    plain = _pass(plain_model, False, training, rule)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused[1], plain[1], rtol=1e-10, atol=1e-12)
    assert fused[2].keys() == plain[2].keys()
    for key in fused[2]:
        np.testing.assert_allclose(fused[2][key], plain[2][key], rtol=1e-10, atol=1e-12, err_msg=str(key))
    for a, b in zip(fused_model.get_weights(), plain_model.get_weights()):   # the moving statistics too
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_the_fused_training_pass_matches_finite_differences():
    model = residual()
    plan = model.plan(logits=True, fuse=True)
    x = images()
    weights = np.random.default_rng(3).standard_normal((x.shape[0], 3))
    saved = [w.copy() for w in model.get_weights()]

    def loss():
        model.set_weights(saved)            # the training pass moves the moving statistics: undo it
        return float((run(plan, [x], training=True, keep=False).values[plan.outputs[0]] * weights).sum())

    tape = run(plan, [x], training=True)
    analytic = backprop(tape, {plan.outputs[0]: weights}, wrt=plan.inputs).slots[plan.inputs[0]]
    assert relative_error(analytic, numerical_gradient(loss, x)) < 1e-6
