"""Explanations run the fused plan of training and predict (a Conv2D + MaxPooling2D pair as one step,
the pooled gradient under the call's ReLU rule) and give the maps of the unfused, layer-by-layer plan."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers
from glassnet.engine.plan import ConvPoolStep
from glassnet.explain import backprop

from explain_nets import images


def pooled_net(seed=0, dtype="float64", windows=True):
    """keras_mnist in small: Conv(relu) -> Conv(relu) -> MaxPool -> Dropout -> Flatten -> Dense(relu) ->
    Dense(softmax). ``windows``: few enough filters for the one-row-per-window fused strategy."""
    filters = 6 if windows else 20
    return gn.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1), dtype=dtype),
        layers.Conv2D(filters, 3, activation="relu", dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype),
        layers.Dropout(0.25, dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(16, activation="relu", dtype=dtype),
        layers.Dense(5, activation="softmax", dtype=dtype),
    ], seed=seed)


def unfused(monkeypatch):
    """Make explanations plan as they did before: every layer its own step."""
    monkeypatch.setattr(backprop, "_scores_plan",
                        lambda model, logits, exposed=None, rule="vanilla": model.plan(logits=logits, fuse=False))


METHODS = [
    (explain.input_gradients, {}),
    (explain.input_gradients, {"modifier": "guided"}),
    (explain.input_gradients, {"modifier": "rectified"}),
    (explain.input_gradients, {"score": "probability"}),
    (explain.grad_cam, {}),
    (explain.grad_cam, {"layer": 1}),
    (explain.guided_grad_cam, {}),
    (explain.integrated_gradients, {"steps": 4}),
    (explain.occlusion, {"window": 3}),
]


@pytest.mark.parametrize("windows", [True, False], ids=["few_filters", "many_filters"])
@pytest.mark.parametrize("method, kwargs", METHODS, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_fused_plan_gives_the_unfused_maps(monkeypatch, method, kwargs, windows):
    model = pooled_net(windows=windows)
    x = images(6, (12, 12, 1), seed=1, dtype="float64") - 0.3
    fused = method(model, x, **kwargs)
    unfused(monkeypatch)
    np.testing.assert_allclose(fused, method(model, x, **kwargs), rtol=1e-10, atol=1e-12)


def _steps(model, **kwargs):
    return [type(step).__name__ for step in backprop._scores_plan(model, True, **kwargs).steps]


def test_the_explanation_plan_fuses_only_what_it_may():
    model = pooled_net()
    model.build((None, 12, 12, 1))
    conv_output, source = model.layer_slot(1), model.input_slots[0]
    assert "ConvPoolStep" in _steps(model, exposed=[source])
    assert "ConvPoolStep" in _steps(model, exposed=[source], rule="guided")
    # the rectified rule routes the gradient of all-negative windows differently: unfused
    assert "ConvPoolStep" not in _steps(model, exposed=[source], rule="rectified")
    # a captured convolution output must exist as a tensor
    assert "ConvPoolStep" not in _steps(model, exposed=[conv_output, source])
    # training and predict plans are other objects: their fused step records winners only in training
    explain_step = next(s for s in backprop._scores_plan(model, True, exposed=[source]).steps
                        if isinstance(s, ConvPoolStep))
    predict_step = next(s for s in model.plan(True, fuse=True).steps if isinstance(s, ConvPoolStep))
    assert explain_step.record and not predict_step.record
    # an image's explanation has the same bits in any batch: no products over a block's pooling windows
    assert not explain_step.windows and predict_step.windows
    # Grad-CAM on the pooled output's reader: its backward pass stops above the pair, which records nothing
    cam_step = next(s for s in backprop._scores_plan(model, True, exposed=[model.layer_slot(3)]).steps
                    if isinstance(s, ConvPoolStep))
    assert not cam_step.record


def test_fused_step_refuses_the_rectified_rule():
    model = pooled_net()
    x = images(2, (12, 12, 1), seed=2, dtype="float64")
    plan = backprop._scores_plan(model, True, exposed=[model.input_slots[0]])
    tape = gn.engine.run(plan, [x])
    seed = np.ones((2, 5))
    with pytest.raises(ValueError, match="rectified"):
        gn.engine.backprop(tape, {plan.outputs[0]: seed}, rule="rectified", wrt=[model.input_slots[0]],
                           need_grads=False)
