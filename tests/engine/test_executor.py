"""The planning pass and the executor (glassnet.engine): steps chosen at build time, per-call tapes,
gradients of a tensor read by several steps summed, stops, captures and released caches."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers
from glassnet.engine import Graph, Node, backprop, make_plan, run
from glassnet.engine.plan import ConvPoolStep, ConvStep, LayerStep
from glassnet.testing import numerical_gradient, relative_error


def chain(dtype="float64"):
    return gn.Sequential([
        layers.Conv2D(3, 3, activation="relu", input_shape=(8, 8, 2), dtype=dtype),
        layers.Conv2D(4, 3, padding="same", activation="relu", dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(3, dtype=dtype),
        layers.Softmax(dtype=dtype),
    ], seed=0)


def images(n=3, shape=(8, 8, 2), seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + shape)


def test_the_plan_fuses_the_pair_moves_the_gate_and_stops_at_the_logits():
    model = chain()
    fused = model.plan(logits=True, fuse=True)
    assert [type(step) for step in fused.steps] == [ConvStep, ConvPoolStep, LayerStep, LayerStep]
    assert fused.gates_below == {1: 0} and fused.outputs == (5,)          # the Softmax is left out
    plain = model.plan(logits=False, fuse=False)
    assert [type(step) for step in plain.steps] == [ConvStep, ConvStep] + [LayerStep] * 4
    assert plain.gates_below == {1: 0} and plain.outputs == (6,)
    assert model.plan(logits=True, fuse=True) is fused                   # made once per kind


def test_a_fused_softmax_runs_with_logits_and_a_read_tensor_is_never_fused():
    dense = layers.Dense(3, activation="softmax", dtype="float64")
    conv = layers.Conv2D(2, 3, activation="relu", dtype="float64")
    pool = layers.MaxPooling2D(2, dtype="float64")
    flat = layers.Flatten(dtype="float64")
    # conv's output is a graph output as well as the pool's input: the pair cannot fuse
    graph = Graph((Node(conv, (0,), 1), Node(pool, (1,), 2), Node(flat, (2,), 3), Node(dense, (3,), 4)), (0,),
                  (4, 1))
    plan = make_plan(graph, logits=True, fuse=True)
    assert not any(isinstance(step, ConvPoolStep) for step in plan.steps)
    assert plan.steps[-1].logits and plan.outputs == (4, 1)


def test_run_computes_only_what_the_targets_need_and_keeps_what_is_asked():
    model = chain()
    plan = model.plan()
    x = images()
    tape = run(plan, [x], targets=[2], capture=[1], keep=False)
    assert tape.ran == [True, True, False, False, False, False]
    assert set(tape.values) == {1, 2} and all(cache is None for cache in tape.caches)
    np.testing.assert_array_equal(tape.values[2], model.layers[1](model.layers[0](x)))


def test_backprop_matches_finite_differences_and_releases_the_caches():
    model = chain()
    plan = model.plan(logits=True, fuse=True)
    x = images()
    r = np.random.default_rng(2).standard_normal((3, 3))
    tape = run(plan, [x], training=True)
    seen = []
    result = backprop(tape, {5: r}, wrt=[0], observe=lambda step, dxs, grads: seen.append(step))
    assert seen == list(plan.steps[::-1]) and all(cache is None for cache in tape.caches)

    def loss():
        return float(np.sum(run(plan, [x]).values[5] * r))
    assert relative_error(result.slots[0], numerical_gradient(loss, x)) < 1e-7
    kernel = model.layers[1].params["kernel"]
    assert relative_error(result.weights[model.layers[1]]["kernel"], numerical_gradient(loss, kernel)) < 1e-7


def test_need_grads_false_computes_no_weight_gradients_and_stop_stays_above():
    model = chain()
    plan = model.plan(fuse=False)
    x = images()
    tape = run(plan, [x])
    result = backprop(tape, {6: np.ones((3, 3))}, wrt=[2], stop=[2], need_grads=False)
    assert result.slots[2].shape == (3, 6, 6, 4)
    assert all(grads == {} for grads in result.weights.values())
    assert model.layers[0] not in result.weights and model.layers[1] not in result.weights


def test_a_tensor_read_by_several_steps_gets_the_sum_of_their_gradients():
    """x -> Dense a -> h; h -> Dense b -> out1; h -> Dense c -> out2; h is also an output."""
    a, b, c = (layers.Dense(n, activation=act, dtype="float64", seed=i)
               for i, (n, act) in enumerate([(4, "tanh"), (3, None), (2, "sigmoid")]))
    graph = Graph((Node(a, (0,), 1), Node(b, (1,), 2), Node(c, (1,), 3)), (0,), (2, 3, 1))
    for layer, shape in ((a, (5,)), (b, (4,)), (c, (4,))):
        layer.build(shape)
    plan = make_plan(graph)
    x = np.random.default_rng(3).standard_normal((6, 5))
    seeds = {slot: np.random.default_rng(10 + slot).standard_normal(shape)
             for slot, shape in ((2, (6, 3)), (3, (6, 2)), (1, (6, 4)))}

    def loss():
        values = run(plan, [x]).values
        return float(sum(np.sum(values[slot] * seed) for slot, seed in seeds.items()))
    result = backprop(run(plan, [x], training=True), seeds, wrt=[0])
    assert relative_error(result.slots[0], numerical_gradient(loss, x)) < 1e-7
    assert relative_error(result.weights[a]["kernel"], numerical_gradient(loss, a.params["kernel"])) < 1e-7


def test_a_layer_called_twice_sums_its_weight_gradients():
    shared = layers.Dense(3, activation="tanh", dtype="float64", seed=0)
    shared.build((3,))
    graph = Graph((Node(shared, (0,), 1), Node(shared, (1,), 2)), (0,), (2,))
    plan = make_plan(graph)
    x = np.random.default_rng(4).standard_normal((4, 3))
    r = np.random.default_rng(5).standard_normal((4, 3))

    def loss():
        return float(np.sum(run(plan, [x]).values[2] * r))
    result = backprop(run(plan, [x], training=True), {2: r}, wrt=[0])
    assert relative_error(result.weights[shared]["kernel"], numerical_gradient(loss, shared.params["kernel"])) < 1e-7
    assert relative_error(result.slots[0], numerical_gradient(loss, x)) < 1e-7


def test_the_stateful_api_sits_on_the_executor():
    model = chain()
    x = images()
    with pytest.raises(RuntimeError, match="forward pass first"):
        gn.Sequential([layers.Dense(2, input_shape=(3,))]).backward(np.ones((1, 2)))
    out = model.forward(x, training=True, logits=True)
    dx = model.backward(np.ones_like(out))
    plan = model.plan(logits=True, fuse=True)
    expected = backprop(run(plan, [x], training=True), {5: np.ones_like(out)}, wrt=[0]).slots[0]
    np.testing.assert_array_equal(dx, expected)


def test_layers_declare_their_geometry_and_the_grad_cam_grid_reads_it():
    conv = layers.Conv2D(2, 3, strides=2, padding="same")
    assert conv.geometry((8, 8)) == ((3, 3), (2, 2), ((0, 1), (0, 1)))
    assert layers.MaxPooling2D(2).geometry((6, 6)) == ((2, 2), (2, 2), ((0, 0), (0, 0)))
    assert layers.ZeroPadding2D(1).geometry((4, 4)).pads == ((1, 1), (1, 1))
    assert layers.Cropping2D(((1, 0), (2, 0))).geometry((6, 6)).pads == ((-1, 0), (-2, 0))
    assert layers.DepthwiseConv2D(3, dilation_rate=2).geometry((9, 9)).kernel == (5, 5)
    assert layers.ReLU().geometry((4, 4)) is None
    from glassnet.explain import receptive_field_grid
    model = gn.Sequential([layers.ZeroPadding2D(1, input_shape=(8, 8, 1)), layers.Conv2D(2, 3, strides=2),
                           layers.ReLU(), layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(2)])
    # padding 1, then a 3x3 stride-2 window: cell j at -1 + 1 + 2 j; a 2x2 pooling: 0.5 + 2 u
    assert receptive_field_grid(model, 1) == ((0.0, 2.0), (0.0, 2.0))
    assert receptive_field_grid(model, 3) == ((1.0, 4.0), (1.0, 4.0))
    assert receptive_field_grid(model, 5) is None
