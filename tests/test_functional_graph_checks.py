"""Graph construction errors (issue 20, item 1 and "Bad input"): each mistake is a clear glassnet error
naming the layers and shapes, and a failed construction leaves nothing half-built behind. Also a
float64 finite-difference check of a graph where the input itself feeds several layers."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers
from glassnet.testing import check_model_gradients


def test_a_disconnected_output_names_the_input_its_shape_and_the_path():
    x, stray = gn.Input((4,), name="x_in"), gn.Input((3,), name="stray")
    branch = layers.Dense(4, name="from_stray")(stray)
    out = layers.Add(name="join")([layers.Dense(4, name="from_x")(x), branch])
    with pytest.raises(ValueError) as info:
        gn.Model(x, out)
    text = str(info.value)
    for fragment in ("'stray'", "(None, 3)", "'from_stray' -> 'join'", "['x_in']", "Add 'stray' to inputs"):
        assert fragment in text, text


def test_a_tensor_from_another_graph_is_refused():
    first_in = gn.Input((5,), name="first_in")
    head = layers.Dense(2, name="first_head")
    first_out = head(first_in)
    first = gn.Model(first_in, first_out)
    second_in = gn.Input((5,), name="second_in")
    # a layer of the first model may be called again (shared weights) ...
    assert gn.Model(second_in, head(second_in)).count_params() == first.count_params()
    # ... but a tensor of the first graph cannot be used in the second
    with pytest.raises(ValueError, match=r"'first_in' of shape \(None, 5\).*another graph.*'first_head'"):
        gn.Model(second_in, layers.Concatenate(name="mix")([layers.Dense(2)(second_in), first_out]))


def test_an_input_nothing_uses_names_it_and_its_shape():
    x, spare = gn.Input((4,), name="used"), gn.Input((2, 2, 1), name="spare")
    with pytest.raises(ValueError, match=r"inputs \['spare'\] of shapes \[\(None, 2, 2, 1\)\] that nothing uses"):
        gn.Model([x, spare], layers.Dense(1)(x))


@pytest.mark.parametrize("merge, shapes, fragments", [
    (layers.Add, [(4,), (5,)], ["(None, 4)", "(None, 5)"]),
    (layers.Multiply, [(2, 2, 3), (2, 2, 4)], ["(None, 2, 2, 3)", "(None, 2, 2, 4)"]),
    (layers.Concatenate, [(3, 3, 2), (4, 3, 2)], ["axis", "(None, 3, 3, 2)", "(None, 4, 3, 2)"]),
])
def test_mismatched_merge_shapes_name_the_layer_and_both_shapes(merge, shapes, fragments):
    inputs = [gn.Input(shape) for shape in shapes]
    with pytest.raises(ValueError) as info:
        merge(name="the_merge")(inputs)
    text = str(info.value)
    assert "'the_merge'" in text and all(fragment in text for fragment in fragments), text


@pytest.mark.parametrize("outputs", [np.zeros((1, 2)), layers.Dense(2), "y", 3, [None], {"a": np.ones(1)}],
                         ids=["array", "layer", "str", "int", "list-of-None", "dict-of-array"])
def test_a_model_of_non_tensors_is_a_type_error(outputs):
    x = gn.Input((4,))
    with pytest.raises(TypeError, match="symbolic tensor"):
        gn.Model(x, outputs)
    with pytest.raises(TypeError, match="symbolic tensor"):
        gn.Model(outputs, layers.Dense(2)(x))


@pytest.mark.parametrize("layer, shape, expected", [
    (lambda: layers.Conv2D(2, 3, name="bad_rank"), (10,), r"\(N, H, W, C\).*\(None, 10\)"),
    (lambda: layers.MaxPooling2D(name="bad_rank"), (4, 4), r"\(N, H, W, C\).*\(None, 4, 4\)"),
    (lambda: layers.GlobalAveragePooling2D(name="bad_rank"), (8,), r"\(None, 8\)"),
])
def test_a_layer_called_on_a_tensor_of_the_wrong_rank(layer, shape, expected):
    with pytest.raises(ValueError, match=r"'bad_rank'.*" + expected):
        layer()(gn.Input(shape))


class _FailsAfterItsWeights(layers.Dense):
    """A Dense whose first build fails after its weights were created (a bug, or a check that needs
    them): the case where a half-built layer could be left behind."""
    fail = True

    def compute_output_shape(self, input_shape):
        if self.fail:
            raise ValueError("compute_output_shape failed on purpose")
        return super().compute_output_shape(input_shape)


def test_a_build_that_fails_leaves_no_weights_and_no_rng_draws():
    layer = _FailsAfterItsWeights(3, seed=7, name="fragile")
    with pytest.raises(ValueError, match="on purpose"):
        layer(gn.Input((4,)))
    assert not layer.built and layer.params == {} and layer.grads == {} and getattr(layer, "calls", 0) == 0
    layer.fail = False
    x = gn.Input((4,))
    model = gn.Model(x, layer(x))
    fresh = layers.Dense(3, seed=7).build((None, 4))
    for got, want in zip(layer.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(got, want)           # the draws a fresh layer makes
    assert model.summary(print_fn=lambda line: None) is None


def test_a_shared_layer_works_after_failed_constructions():
    shared = layers.Dense(3, activation="tanh", seed=0, name="shared")
    left, right = gn.Input((4,), name="left"), gn.Input((4,), name="right")
    out_left = shared(left)
    weights = shared.get_weights()
    with pytest.raises(ValueError, match="features"):
        shared(gn.Input((5,), name="wide"))                   # a call the built layer cannot take
    with pytest.raises(ValueError, match="nothing uses"):
        gn.Model([left, right], out_left)                     # a failed Model(...)
    with pytest.raises(ValueError, match="one per-example shape"):
        layers.Add()([out_left, gn.Input((2,))])
    assert shared.calls == 1                                  # the failed call was not counted
    for got, want in zip(shared.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    model = gn.Model([left, right], layers.Subtract()([out_left, shared(right)]))
    lines = []
    model.summary(print_fn=lines.append)
    assert any(line.strip().endswith("right[0][0]") for line in lines)
    assert any(line.strip().endswith("shared[1][0]") for line in lines)
    a, b = np.random.default_rng(0).random((2, 3, 4))
    kernel, bias = weights
    np.testing.assert_allclose(model.predict([a, b]), np.tanh(a @ kernel + bias) - np.tanh(b @ kernel + bias),
                               rtol=1e-5)


def test_gradients_of_an_input_feeding_several_layers_are_summed():
    """x feeds a conv, a pooling path and the final Add directly: dL/dx sums all three (float64)."""
    dtype = "float64"
    x = gn.Input((5, 5, 2))
    conv = layers.Conv2D(2, 3, padding="same", activation="tanh", dtype=dtype, seed=0)(x)
    pooled = layers.UpSampling2D(dtype=dtype)(layers.AveragePooling2D(dtype=dtype)(layers.ZeroPadding2D(
        ((0, 1), (0, 1)), dtype=dtype)(x)))
    pooled = layers.Cropping2D(((0, 1), (0, 1)), dtype=dtype)(pooled)
    summed = layers.Add(dtype=dtype)([conv, pooled, x])
    both = layers.Concatenate(dtype=dtype)([summed, layers.Conv2D(1, 1, dtype=dtype, seed=1)(x)])
    model = gn.Model(x, layers.Dense(3, dtype=dtype, seed=2)(layers.Flatten(dtype=dtype)(both)))
    errors = check_model_gradients(model, np.random.default_rng(3).standard_normal((2, 5, 5, 2)))
    assert "x" in errors and len(errors) == 1 + 3 * 2 and max(errors.values()) < 1e-7
