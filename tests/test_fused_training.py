"""Training steps fuse Conv2D(relu) + MaxPooling2D (glassnet.ops.conv2d_maxpool_forward), and a convolution applies
the ReLU gate of the convolution below it; everything else sees the layers one by one."""
import numpy as np
import pytest

import glassnet as gn
import glassnet.ops
from glassnet import explain, layers
from glassnet.engine import backprop, plan as planning, run
from glassnet.ops.conv import plan as conv_plans
from glassnet.testing import check_model_gradients


def _net(dtype="float64", seed=0, pool=2, pool_strides=None, second_activation="relu"):
    return gn.Sequential([
        layers.Conv2D(3, 3, activation="relu", input_shape=(9, 9, 2), dtype=dtype),
        layers.Conv2D(4, 3, padding="same", activation=second_activation, dtype=dtype),
        layers.MaxPooling2D(pool, strides=pool_strides, dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(3, activation="softmax", dtype=dtype)], seed=seed)


@pytest.fixture
def fused_calls(monkeypatch):
    """(name of the convolution, training, type of the plan) of each fused Conv2D + MaxPooling2D pass."""
    calls = []
    real = glassnet.ops.conv2d_maxpool_forward
    names = {}
    real_apply = planning.ConvPoolStep.apply

    def apply(self, xs, training):
        names["conv"] = self.layer.name
        return real_apply(self, xs, training)

    def fused(*args, record_winners=True, **kwargs):
        y, cache = real(*args, record_winners=record_winners, **kwargs)
        calls.append((names["conv"], record_winners, type(cache.plan) if cache is not None else None))
        return y, cache
    monkeypatch.setattr(glassnet.ops, "conv2d_maxpool_forward", fused)
    monkeypatch.setattr(planning.ConvPoolStep, "apply", apply)
    return calls


def _no_fusion(monkeypatch):
    monkeypatch.setattr(layers.Conv2D, "pools_with", lambda self, pool: False)


def _images(n=5, seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 9, 9, 2)).astype(dtype), rng.integers(0, 3, n)


def test_training_fuses_the_pair_and_gives_the_unfused_gradients(monkeypatch, fused_calls, fused_method):
    x, y = _images()
    fused, separate = _net(), _net()
    for model in (fused, separate):
        model.compile(gn.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    for _ in range(3):
        fused.train_on_batch(x, y)
    assert [call[:2] for call in fused_calls] == [(fused.layers[1].name, True)] * 3
    assert (fused_calls[0][2] is conv_plans.PoolWindowsPlan) == (fused_method == "windows")
    _no_fusion(monkeypatch)
    for _ in range(3):
        separate.train_on_batch(x, y)
    assert len(fused_calls) == 3
    for a, b in zip(fused.get_weights(), separate.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_fit_with_a_smaller_last_batch_matches_the_unfused_layers(monkeypatch, fused_calls, fused_method):
    """Batches of 4, 4 and 2: the kept matrices and blocks change with the batch size."""
    x, y = _images(10)
    fused, separate = _net(), _net()
    for model in (fused, separate):
        model.compile(gn.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    fused.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert len(fused_calls) == 6
    _no_fusion(monkeypatch)
    separate.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(fused.get_weights(), separate.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_fused_training_step_passes_the_finite_difference_check(fused_calls, fused_method):
    x, _ = _images(3)
    errors = check_model_gradients(_net(), x, training=True)
    assert fused_calls and max(errors.values()) < 1e-7


def test_a_convolution_without_activation_fuses_too(fused_calls, fused_method):
    x, _ = _images(3)
    errors = check_model_gradients(_net(second_activation=None), x, training=True)
    assert fused_calls and max(errors.values()) < 1e-7


@pytest.mark.parametrize("kwargs", [dict(pool_strides=1), dict(second_activation="tanh")])
def test_pairs_that_cannot_fuse_run_as_two_layers(fused_calls, kwargs):
    x, _ = _images(2)
    model = _net(**kwargs)
    model.forward(x, training=True)
    assert fused_calls == []


def test_predict_and_evaluate_fuse_without_winners_and_match_the_layers(fused_calls):
    x, y = _images()
    model = _net()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.train_on_batch(x, y)
    del fused_calls[:]
    loss = model.evaluate(x, y, batch_size=5)[0]
    predicted = model.predict(x, batch_size=2)
    assert [call[:2] for call in fused_calls] == [(model.layers[1].name, False)] * 4
    for layer in model.layers[1:3]:                          # after predict, nothing to differentiate
        with pytest.raises(RuntimeError, match="forward pass first"):
            layer.backward(np.ones((5, 3, 3, 4)))
    np.testing.assert_allclose(predicted, model.forward(x), rtol=1e-12)        # the two layers, unfused
    assert loss == pytest.approx(float(model.loss(y, model.forward(x))), rel=1e-12)


def test_explanations_fuse_unless_they_read_the_pair_inside_and_work_after_training(monkeypatch, fused_calls):
    x, y = _images()
    model = _net()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    del fused_calls[:]
    saliency = explain.saliency(model, x[:2])
    # an explanation's forward pass is not training, but its backward pass needs the winners
    assert [call[:2] for call in fused_calls] == [(model.layers[1].name, True)]
    del fused_calls[:]
    cam = explain.grad_cam(model, x[:2], layer=model.layers[1].name)
    assert fused_calls == []             # Grad-CAM reads the convolution's own output: the pair runs unfused
    assert saliency.shape == (2, 9, 9) and np.isfinite(saliency).all() and cam.shape[0] == 2
    _no_fusion(monkeypatch)
    model._plans.clear()                 # plans are made once per kind: make them again, unfused
    del fused_calls[:]
    np.testing.assert_allclose(saliency, explain.saliency(model, x[:2]), rtol=1e-12)
    assert fused_calls == []


def test_backward_cannot_stop_inside_a_fused_pair():
    x, _ = _images(2)
    model = _net()
    out = model.forward(x, training=True)
    with pytest.raises(RuntimeError, match="fused pair"):
        model.backward(np.ones_like(out), stop=2)
    model.forward(x, training=False)                            # an unfused pass: any stop works
    assert model.backward(np.ones_like(out), stop=2).shape == (2, 7, 7, 4)


def _gate_net(upper_strides=1, pool=True, dtype="float64"):
    return gn.Sequential([
        layers.Conv2D(3, 3, activation="relu", input_shape=(9, 9, 2), dtype=dtype),
        layers.Conv2D(4, 3, strides=upper_strides, padding="same", activation="relu", dtype=dtype)]
        + ([layers.MaxPooling2D(2, dtype=dtype)] if pool else [])
        + [layers.Flatten(dtype=dtype), layers.Dense(3, activation="softmax", dtype=dtype)], seed=0)


@pytest.fixture
def gate_calls(monkeypatch):
    """The gate options (those set) each convolution step's backward pass (plain or fused) received."""
    calls = []
    for step in (planning.ConvStep, planning.ConvPoolStep):
        real = step.vjp

        def spy(self, cache, dys, rule, need_dx, need_grads, gate_input=False, output_gated=False, _real=real):
            options = {name: True for name, on in (("gate_input", gate_input), ("gated", output_gated)) if on}
            calls.append((self.layer.name, options))
            return _real(self, cache, dys, rule, need_dx, need_grads, gate_input, output_gated)
        monkeypatch.setattr(step, "vjp", spy)
    return calls


def _backward_without_gate_moves(model, x, dy, stop=0):
    with pytest.MonkeyPatch.context() as patch:
        for step in (planning.ConvStep, planning.ConvPoolStep):
            patch.setattr(step, "gates_input", False)          # plans made now move no gate
        model._plans.clear()
        model.forward(x, training=True)
        dx = model.backward(dy, stop=stop)
    model._plans.clear()
    return dx, [np.array(grad) for layer in model.trainable_layers() for grad in layer.grads.values()]


@pytest.mark.parametrize("kwargs", [dict(), dict(pool=False), dict(upper_strides=2, pool=False),
                                    dict(upper_strides=2)],
                         ids=["rows-fused", "rows", "im2col", "im2col-fused"])
def test_the_upper_convolution_applies_the_lower_relu_gate(gate_calls, kwargs):
    x, _ = _images(4)
    model = _gate_net(**kwargs)
    dy = np.random.default_rng(2).standard_normal(model.forward(x, training=True).shape)
    expected_dx, expected_grads = _backward_without_gate_moves(model, x, dy)
    del gate_calls[:]
    model.forward(x, training=True)
    dx = model.backward(dy)
    lower, upper = model.layers[0].name, model.layers[1].name
    assert gate_calls == [(upper, {"gate_input": True}), (lower, {"gated": True})]
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-14)
    grads = [grad for layer in model.trainable_layers() for grad in layer.grads.values()]
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kwargs", [dict(), dict(upper_strides=2, pool=False)], ids=["rows-fused", "im2col"])
def test_a_gate_moved_between_convolutions_passes_the_finite_difference_check(gate_calls, kwargs):
    x, _ = _images(3)
    errors = check_model_gradients(_gate_net(**kwargs), x, training=True)
    assert ("gate_input", True) in [item for _, options in gate_calls for item in options.items()]
    assert max(errors.values()) < 1e-7


def test_the_gradient_returned_at_a_stop_is_never_gated(gate_calls):
    x, _ = _images(3)
    model = _gate_net(pool=False)
    dy = np.random.default_rng(3).standard_normal(model.forward(x, training=True).shape)
    expected, _ = _backward_without_gate_moves(model, x, dy, stop=1)
    del gate_calls[:]
    model.forward(x, training=True)
    np.testing.assert_allclose(model.backward(dy, stop=1), expected, rtol=1e-12, atol=1e-14)
    assert gate_calls == [(model.layers[1].name, {})]
    assert (expected[model.layers[0].forward(x) == 0] != 0).any()     # ungated: the gate would change it


def _rule_input_gradient(model, x, seed, rule):
    plan = model.plan(fuse=True)
    tape = run(plan, [x])
    return backprop(tape, {plan.outputs[0]: seed}, rule=rule, wrt=[0], need_grads=False).slots[0]


@pytest.mark.parametrize("row_blocks", [False, True], ids=["image_blocks", "row_blocks"])
@pytest.mark.parametrize("upper_strides", [1, 2])
@pytest.mark.parametrize("rule", ["guided", "rectified"])
def test_a_gate_moves_under_an_explanation_rule_too(monkeypatch, gate_calls, rule, upper_strides, row_blocks):
    """The upper convolution applies the lower one's ReLU under the call's rule: the same input gradient
    as each layer on its own, also where row blocks of one image overlap (the rule then runs after the
    blocks: it needs the complete gradient's sign)."""
    x, _ = _images(2)
    model = _gate_net(upper_strides=upper_strides, pool=False)
    seed = np.random.default_rng(3).standard_normal((2, 3))
    if row_blocks:
        monkeypatch.setattr("glassnet.ops.conv.plan.BLOCK_BYTES", 4000)     # two output rows of the upper layer a block
    moved = _rule_input_gradient(model, x, seed, rule)
    assert gate_calls == [(model.layers[1].name, {"gate_input": True}), (model.layers[0].name, {"gated": True})]
    with pytest.MonkeyPatch.context() as patch:
        for step in (planning.ConvStep, planning.ConvPoolStep):
            patch.setattr(step, "gates_input", False)          # plans made now move no gate
        model._plans.clear()
        separate = _rule_input_gradient(model, x, seed, rule)
    model._plans.clear()
    np.testing.assert_allclose(moved, separate, rtol=1e-12, atol=1e-14)
    assert np.abs(moved - _rule_input_gradient(model, x, seed, "vanilla")).max() > 1e-3     # the rule matters
