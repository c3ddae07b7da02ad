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
import math
import numbers

from glassnet.errors import describe, message


def _real(owner, name, value, positive=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message(f"{owner}({name}=...)", "a real number", describe(value)))
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(message(f"{owner}({name}=...)", f"a finite number {'> 0' if positive else '>= 0'}",
                                 repr(value)))
    return value


def _steps(owner, name, value, positive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (1 if positive else 0):
        raise ValueError(message(f"{owner}({name}=...)", f"an int {'> 0' if positive else '>= 0'} (optimizer steps, "
                                 "i.e. batches)", repr(value), "For example decay_steps=epochs * batches_per_epoch."))
    return int(value)


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float``; ``get_config`` / ``from_config`` as Keras's."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

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
        self.initial_learning_rate = _real("CosineDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps("CosineDecay", "decay_steps", decay_steps)
        self.alpha = _real("CosineDecay", "alpha", alpha)
        self.name = name
        self.warmup_target = _real("CosineDecay", "warmup_target", warmup_target, allow_none=True)
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
        self.initial_learning_rate = _real("ExponentialDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate = _real("ExponentialDecay", "decay_rate", decay_rate, positive=True)
        if not isinstance(staircase, bool):
            raise TypeError(message("ExponentialDecay(staircase=...)", "True or False", describe(staircase)))
        self.staircase = staircase
        self.name = name

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
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError(message(where, "boundaries and values as lists", f"{describe(boundaries)} and "
                                    f"{describe(values)}", "For example boundaries=[1000, 2000], "
                                    "values=[0.1, 0.01, 0.001]."))
        if len(values) != len(boundaries) + 1:
            raise ValueError(message(where, "one more value than boundaries", f"{len(boundaries)} boundaries and "
                                     f"{len(values)} values"))
        self.boundaries = [_steps(where, "boundaries", b, positive=False) for b in boundaries]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(message(where, "strictly increasing boundaries", repr(boundaries)))
        self.values = [_real(where, "values", v) for v in values]
        self.name = name

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
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(message("schedules.deserialize", f"a dict with 'class_name' among {sorted(_CLASSES)}",
                                 describe(config), "Pass what schedules.serialize(schedule) returns."))
    return _CLASSES[config["class_name"]].from_config(dict(config.get("config", {})))


__all__ = ["LearningRateSchedule", "CosineDecay", "ExponentialDecay", "PiecewiseConstantDecay", "serialize",
           "deserialize"]
