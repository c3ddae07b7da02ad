"""Learning-rate schedules with Keras 3's names, formulas and configs (``keras.optimizers.schedules``).

A schedule is a function of the optimizer's step ``t`` (``iterations``: 0 on the first update) passed as an
optimizer's ``learning_rate``; the optimizer evaluates it before every update, so the rate changes per
batch, not per epoch. Also reachable as ``glassnet.optimizers.schedules``.

CosineDecay(initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0)
    Without warm-up: ``lr(t) = lr0 * ((1 - alpha) * c + alpha)`` with ``c = (1 + cos(pi * min(t, T) / T)) / 2``.
    With ``warmup_target``: linear from ``lr0`` to ``warmup_target`` over ``warmup_steps``, then the cosine
    decay from ``warmup_target`` over ``decay_steps``.
ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase=False)
    ``lr(t) = lr0 * decay_rate ** (t / decay_steps)`` (the exponent floored with ``staircase``).
PiecewiseConstantDecay(boundaries, values)
    ``values[0]`` while ``t <= boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < t <= boundaries[i]``,
    ``values[-1]`` after the last boundary.
"""
import inspect
import math

from glassnet.errors import describe, message
from glassnet.validation import check_config, check_flag, check_int, check_list, check_real, check_text


def _rate(owner, name, value, positive=False, allow_none=False):
    """A learning rate (or a fraction of one): a finite real >= 0 (> 0 with ``positive``), None too
    with ``allow_none``. TypeError for a non-number, ValueError for a negative or non-finite one."""
    if value is None and allow_none:
        return None
    return check_real(value, name, f"{owner}({name}=...)", low=0, low_open=positive,
                      fix=f"Pass a finite {name}, e.g. {name}=0.1.")


def _steps(owner, name, value, positive=True, fix=None):
    """A number of optimizer steps (batches): an int > 0 (>= 0 unless ``positive``). TypeError for a
    non-int (2.5, "10"), ValueError for one below the minimum."""
    return check_int(value, name, f"{owner}({name}=...)", minimum=1 if positive else 0,
                     fix=fix or f"For example {name}=epochs * batches_per_epoch.")


def _name(owner, value):
    return check_text(value, "name", f"{owner}(name=...)")


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float``; ``get_config`` / ``from_config`` as Keras's."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        """The schedule ``get_config()`` described; TypeError for a non-dict, ValueError for a key that
        is no argument of ``cls``."""
        keys = [key for key in inspect.signature(cls.__init__).parameters if key != "self"]
        return cls(**check_config(config, f"{cls.__name__}.from_config", keys,
                                  f"Pass what {cls.__name__}(...).get_config() returns."))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warm-up (Loshchilov & Hutter's SGDR without restarts).

    Parameters
    ----------
    initial_learning_rate : float >= 0
    decay_steps : int > 0
        Steps (batches) of the decay, after the warm-up.
    alpha : float >= 0
        Final rate as a fraction of the decay's starting rate.
    warmup_target : float >= 0, optional
        Rate reached at the end of the warm-up (None: no warm-up).
    warmup_steps : int >= 0
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = _rate("CosineDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps("CosineDecay", "decay_steps", decay_steps)
        self.alpha = _rate("CosineDecay", "alpha", alpha)
        self.name = _name("CosineDecay", name)
        self.warmup_target = _rate("CosineDecay", "warmup_target", warmup_target, allow_none=True)
        self.warmup_steps = _steps("CosineDecay", "warmup_steps", warmup_steps, positive=False)

    def _decayed(self, step, start):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decayed(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return (self.warmup_target - self.initial_learning_rate) * fraction + self.initial_learning_rate
        return self._decayed(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored exponent with ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = _rate("ExponentialDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate = _rate("ExponentialDecay", "decay_rate", decay_rate, positive=True)
        self.staircase = check_flag(staircase, "staircase", "ExponentialDecay(staircase=...)")
        self.name = _name("ExponentialDecay", name)

    def __call__(self, step):
        exponent = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(exponent) if self.staircase else exponent)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """Constant rates between step boundaries: ``values`` has one more entry than ``boundaries`` (increasing)."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        where = "PiecewiseConstantDecay"
        fix = "For example boundaries=[1000, 2000], values=[0.1, 0.01, 0.001]."
        boundaries = check_list(boundaries, "boundaries", f"{where}(boundaries=...)", fix)
        values = check_list(values, "values", f"{where}(values=...)", fix)
        if len(values) != len(boundaries) + 1:
            raise ValueError(message(where, "one more value than boundaries", f"{len(boundaries)} boundaries and "
                                     f"{len(values)} values", fix))
        self.boundaries = [_steps(where, "boundaries", b, positive=False, fix=fix) for b in boundaries]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(message(where, "strictly increasing boundaries", repr(boundaries)))
        self.values = [_rate(where, "values", v) for v in values]
        self.name = _name(where, name)

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


_CLASSES = {cls.__name__: cls for cls in (CosineDecay, ExponentialDecay, PiecewiseConstantDecay)}


def serialize(schedule):
    """``{"class_name": ..., "config": {...}}``, JSON-friendly (what optimizers' configs and saved models hold)."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """Rebuild a schedule from :func:`serialize`'s dict (Keras 3's serialized form, with its extra keys, too)."""
    where, fix = "schedules.deserialize", "Pass what schedules.serialize(schedule) returns."
    if not isinstance(config, dict):
        raise TypeError(message(where, "a dict {'class_name': ..., 'config': {...}}", describe(config), fix))
    if config.get("class_name") not in _CLASSES:
        raise ValueError(message(where, f"a dict with 'class_name' among {sorted(_CLASSES)}", describe(config), fix))
    return _CLASSES[config["class_name"]].from_config(config.get("config", {}))


__all__ = ["LearningRateSchedule", "CosineDecay", "ExponentialDecay", "PiecewiseConstantDecay", "serialize",
           "deserialize"]
