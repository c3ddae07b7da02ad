"""Conv2D + BatchNormalization (+ ReLU) folded into one convolution in inference plans (predict,
explanations): the layers' values and input gradients, never in a training plan, never hiding a slot an
explanation reads."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers
from glassnet.engine import backprop, run
from glassnet.engine.plan import ConvBatchNormStep

from tests.engine.test_fused_steps import images, residual, step_types


def trained(model, dtype):
    """The model after a few training steps, so that the moving statistics, gamma and beta are not their
    initial values (a fold of ones and zeros would hide a mistake)."""
    model.compile(optimizer=gn.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    x = images(8).astype(dtype)
    model.fit(x, np.arange(8) % 3, epochs=3, batch_size=4, verbose=0, seed=0)
    return model




def test_inference_plans_fold_and_training_plans_do_not():
    model = residual()
    folded = step_types(model.plan(logits=True, fuse=True, inference=True))
    assert folded.count(ConvBatchNormStep) == 3
    assert ConvBatchNormStep not in step_types(model.plan(logits=True, fuse=True))
    assert ConvBatchNormStep not in step_types(model.plan(logits=True, fuse=False, inference=True))
    step = model.plan(logits=True, fuse=True, inference=True).steps[0]
    with pytest.raises(RuntimeError, match="inference plans only"):
        step.apply([images().astype("float64")], training=True)


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 2e-5)])
def test_predict_folded_equals_the_layers_one_by_one(dtype, tolerance):
    model = trained(residual(dtype), dtype)
    x = images(5, seed=3).astype(dtype)
    unfused = model.plan(logits=False, fuse=False)
    expected = run(unfused, [x], keep=False).values[unfused.outputs[0]]
    np.testing.assert_allclose(model.predict(x), expected, rtol=tolerance, atol=tolerance)


def test_a_convolution_with_bias_into_a_normalization_without_scale_or_center_folds_exactly():
    inputs = gn.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, padding="same", dtype="float64", seed=5)(inputs)
    x = layers.BatchNormalization(scale=False, center=False, momentum=0.5, dtype="float64")(x)
    outputs = layers.Dense(3, dtype="float64", seed=7)(layers.GlobalAveragePooling2D(dtype="float64")(x))
    model = trained(gn.Model(inputs, outputs), "float64")
    assert step_types(model.plan(fuse=True, inference=True)).count(ConvBatchNormStep) == 1
    x = images(4, seed=2)
    unfused = model.plan(fuse=False)
    np.testing.assert_allclose(model.predict(x), run(unfused, [x], keep=False).values[unfused.outputs[0]],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule", ["vanilla", "guided", "rectified"])
def test_input_gradients_through_the_fold_equal_the_layers_one_by_one(rule):
    model = trained(residual(), "float64")
    x = images(3, seed=4)
    seed = np.random.default_rng(0).standard_normal((3, 3))
    grads = []
    for plan in (model.plan(logits=True, fuse=True, exposed=(), rule=rule, inference=True),
                 model.plan(logits=True, fuse=False)):
        tape = run(plan, [x], capture=plan.inputs)
        grads.append(backprop(tape, {plan.outputs[0]: seed}, rule=rule, wrt=plan.inputs,
                              need_grads=False).slots[plan.inputs[0]])
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_explanations_on_a_folded_network_equal_the_unfolded_ones(monkeypatch):
    model = trained(residual(), "float64")
    x = images(3, seed=6)
    conv_index = next(i for i, layer in enumerate(model.layers) if isinstance(layer, layers.Conv2D))
    got = [explain.saliency(model, x, target=1), explain.METHODS["guided_backprop"](model, x, target=1),
           explain.grad_cam(model, x, target=1, layer=conv_index)]
    # the same calls with every fold refused: the plans of the layers one by one (BN + ReLU still fused)
    monkeypatch.setattr("glassnet.engine.plan._norm_reader", lambda *args: None)
    model._plans.clear()
    expected = [explain.saliency(model, x, target=1), explain.METHODS["guided_backprop"](model, x, target=1),
                explain.grad_cam(model, x, target=1, layer=conv_index)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_an_exposed_convolution_output_is_not_folded_away():
    model = residual()
    conv_slot = model.plan().steps[0].outputs[0]
    plan = model.plan(logits=True, fuse=True, exposed={conv_slot}, inference=True)
    assert not isinstance(plan.steps[0], ConvBatchNormStep)
    assert conv_slot in plan.producer
