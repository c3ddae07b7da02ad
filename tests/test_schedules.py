"""glassnet.schedules' argument checks (through glassnet.validation): TypeError for a wrong type,
ValueError for a wrong value, each a glassnet message saying what was expected and received."""
import json

import numpy as np
import pytest

from glassnet import schedules

SCHEDULES = {
    "CosineDecay": lambda **kw: schedules.CosineDecay(**{"initial_learning_rate": 0.1, "decay_steps": 10, **kw}),
    "ExponentialDecay": lambda **kw: schedules.ExponentialDecay(**{"initial_learning_rate": 0.1, "decay_steps": 10,
                                                                   "decay_rate": 0.5, **kw}),
    "PiecewiseConstantDecay": lambda **kw: schedules.PiecewiseConstantDecay(**{"boundaries": [2, 5],
                                                                               "values": [0.1, 0.05, 0.01], **kw}),
}

WRONG_TYPES = [
    ("CosineDecay", "initial_learning_rate", "0.1"),
    ("CosineDecay", "initial_learning_rate", True),
    ("CosineDecay", "decay_steps", 2.5),
    ("CosineDecay", "decay_steps", "10"),
    ("CosineDecay", "alpha", None),
    ("CosineDecay", "warmup_target", "0.5"),
    ("CosineDecay", "warmup_steps", 1.0),
    ("CosineDecay", "name", 3),
    ("ExponentialDecay", "initial_learning_rate", [0.1]),
    ("ExponentialDecay", "decay_steps", None),
    ("ExponentialDecay", "decay_rate", "half"),
    ("ExponentialDecay", "staircase", 1),
    ("ExponentialDecay", "name", None),
    ("PiecewiseConstantDecay", "boundaries", 3),
    ("PiecewiseConstantDecay", "boundaries", [2.0, 5]),
    ("PiecewiseConstantDecay", "values", 0.1),
    ("PiecewiseConstantDecay", "values", [0.1, "0.05", 0.01]),
    ("PiecewiseConstantDecay", "name", b"name"),
]

WRONG_VALUES = [
    ("CosineDecay", "initial_learning_rate", -0.1),
    ("CosineDecay", "initial_learning_rate", float("nan")),
    ("CosineDecay", "decay_steps", 0),
    ("CosineDecay", "alpha", float("inf")),
    ("CosineDecay", "warmup_target", -1.0),
    ("CosineDecay", "warmup_steps", -1),
    ("ExponentialDecay", "initial_learning_rate", -1),
    ("ExponentialDecay", "decay_steps", -3),
    ("ExponentialDecay", "decay_rate", 0.0),
    ("PiecewiseConstantDecay", "boundaries", [5, 2]),
    ("PiecewiseConstantDecay", "boundaries", [-1, 2]),
    ("PiecewiseConstantDecay", "values", [0.1, 0.05]),
    ("PiecewiseConstantDecay", "values", [0.1, -0.05, 0.01]),
]


@pytest.mark.parametrize("cls, argument, value", WRONG_TYPES)
def test_a_wrong_type_raises_type_error_naming_the_argument(cls, argument, value):
    with pytest.raises(TypeError, match=rf"{cls}\({argument}=\.\.\.\) expects") as error:
        SCHEDULES[cls](**{argument: value})
    assert "received" in str(error.value) or "got" in str(error.value)


@pytest.mark.parametrize("cls, argument, value", WRONG_VALUES)
def test_a_wrong_value_raises_value_error(cls, argument, value):
    with pytest.raises(ValueError, match=rf"{cls}.* expects"):
        SCHEDULES[cls](**{argument: value})


@pytest.mark.parametrize("cls", sorted(SCHEDULES))
def test_numpy_scalars_are_accepted_and_configs_round_trip(cls):
    schedule = SCHEDULES[cls]()
    config = json.loads(json.dumps(schedule.get_config()))
    clone = type(schedule).from_config(config)
    assert clone.get_config() == schedule.get_config()
    assert [clone(t) for t in range(12)] == [schedule(t) for t in range(12)]
    restored = schedules.deserialize(json.loads(json.dumps(schedules.serialize(schedule))))
    assert type(restored) is type(schedule) and restored.get_config() == schedule.get_config()
    if cls != "PiecewiseConstantDecay":
        numpy_args = SCHEDULES[cls](initial_learning_rate=np.float32(0.25), decay_steps=np.int64(10))
        assert numpy_args.initial_learning_rate == 0.25 and type(numpy_args.decay_steps) is int


@pytest.mark.parametrize("cls", sorted(SCHEDULES))
def test_from_config_checks_its_dict(cls):
    schedule_cls = type(SCHEDULES[cls]())
    with pytest.raises(TypeError, match=rf"{cls}.from_config expects a config dict"):
        schedule_cls.from_config([("decay_steps", 10)])
    with pytest.raises(ValueError, match=r"unknown keys \['decay_step'\]"):
        schedule_cls.from_config({**SCHEDULES[cls]().get_config(), "decay_step": 10})
    with pytest.raises(TypeError, match=rf"{cls}\(name=\.\.\.\) expects"):
        schedule_cls.from_config({**SCHEDULES[cls]().get_config(), "name": 7})


def test_deserialize_checks_type_then_class_name():
    with pytest.raises(TypeError, match="schedules.deserialize expects"):
        schedules.deserialize("CosineDecay")
    with pytest.raises(ValueError, match="class_name"):
        schedules.deserialize({"class_name": "CyclicDecay", "config": {}})
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.deserialize({"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1,
                                                                        "decay_steps": 0}})
