"""The checks moved to glassnet.validation: a wrong type raises TypeError, a wrong value of the right type
ValueError, both with glassnet's message (what was expected; what was received)."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import callbacks, initializers, layers, metrics, presets


def _two_input_model():
    a, b = gn.Input((4,), name="a"), gn.Input((4,), name="b")
    model = gn.Model([a, b], layers.Dense(2, seed=0)(layers.Add()([a, b])))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _fit_on(items):
    model = gn.Sequential([gn.Input((3,)), layers.Dense(2, seed=0)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(iter(items), steps_per_epoch=1, epochs=1, verbose=0)


def _scheduled_fit(rate):
    model = gn.Sequential([gn.Input((3,)), layers.Dense(2, seed=0)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(np.zeros((4, 3)), np.zeros(4, dtype=int), epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: rate)])


XY = (np.zeros((2, 3), dtype="float32"), np.zeros(2, dtype=int))

PAIRS = {   # name: (a call with a wrong type, a call with a wrong value)
    "TopKCategoricalAccuracy(k)": (lambda: metrics.TopKCategoricalAccuracy(k="5"),
                                   lambda: metrics.TopKCategoricalAccuracy(k=0)),
    "VarianceScaling(scale)": (lambda: initializers.VarianceScaling(scale="2"),
                               lambda: initializers.VarianceScaling(scale=0.0)),
    "Reshape(target_shape)": (lambda: layers.Reshape((7, 7.0)), lambda: layers.Reshape((-1, -1))),
    "PReLU(shared_axes)": (lambda: layers.PReLU(shared_axes=[1.0]), lambda: layers.PReLU(shared_axes=[0, 1])),
    "shapes.load_data(n_classes)": (lambda: gn.datasets.shapes.load_data(5, 5, n_classes=3.0),
                                    lambda: gn.datasets.shapes.load_data(5, 5, n_classes=12)),
    "models.get(name)": (lambda: presets.get(3), lambda: presets.get("lenet_7")),
    "LearningRateScheduler value": (lambda: _scheduled_fit(None), lambda: _scheduled_fit(-0.5)),
    "generator items": (lambda: _fit_on([XY[0]]), lambda: _fit_on([XY + XY])),
    "several inputs as one array": (lambda: _two_input_model().predict(np.zeros((2, 4))),
                                    lambda: _two_input_model().predict([np.zeros((2, 4))])),
    "merge on one tensor": (lambda: layers.Add()(gn.Input((4,))), lambda: layers.Add()([gn.Input((4,))])),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_wrong_type_is_type_error_and_wrong_value_is_value_error(name):
    wrong_type, wrong_value = PAIRS[name]
    with pytest.raises(TypeError, match="expects") as error:
        wrong_type()
    assert "; got " in str(error.value)
    with pytest.raises(ValueError, match="expects"):
        wrong_value()
