"""Weight initializers with Keras's names and formulas.

Fans follow Keras: a dense kernel (in, out) has fan_in = in, fan_out = out; a conv kernel
(KH, KW, C_in, C_out) has fan_in = KH*KW*C_in and fan_out = KH*KW*C_out.
Truncated normals redraw values beyond two standard deviations, and their scale is divided
by 0.87962566 (the standard deviation of a unit normal truncated at +-2), as Keras does.
"""
import numpy as np

from glassnet.errors import message
from glassnet.validation import check_real

_TRUNC_STD = 0.87962566103423978


def compute_fans(shape):
    """(fan_in, fan_out) of a weight shape."""
    if len(shape) < 2:
        size = int(np.prod(shape)) if len(shape) else 1
        return size, size
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng, shape, std, dtype):
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2.0
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2.0
    return (values * std).astype(dtype)


class Initializer:
    """Base class: ``init(shape, dtype, rng) -> ndarray``."""

    def __call__(self, shape, dtype="float32", rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        return self.sample(tuple(shape), np.dtype(dtype), rng)

    def get_config(self):
        return {"class_name": type(self).__name__, "config": dict(vars(self))}


class Zeros(Initializer):
    def sample(self, shape, dtype, rng):
        return np.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def sample(self, shape, dtype, rng):
        return np.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def sample(self, shape, dtype, rng):
        return np.full(shape, self.value, dtype=dtype)


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape, dtype, rng):
        return (self.mean + self.stddev * rng.standard_normal(shape)).astype(dtype)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape, dtype, rng):
        return rng.uniform(self.minval, self.maxval, shape).astype(dtype)


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: variance = scale / fan, drawn from a truncated normal or a uniform."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(message("VarianceScaling", "mode 'fan_in', 'fan_out' or 'fan_avg'", repr(mode),
                                     "He uses 'fan_in', Glorot 'fan_avg'."))
        if distribution not in ("truncated_normal", "uniform", "untruncated_normal"):
            raise ValueError(message("VarianceScaling", "distribution 'truncated_normal', 'uniform' or "
                                     "'untruncated_normal'", repr(distribution),
                                     "Use 'uniform' for Glorot/He uniform, 'truncated_normal' for the normal ones."))
        scale = check_real(scale, "scale", "VarianceScaling", low=0, low_open=True, fix="Glorot uses 1.0, He 2.0.")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def sample(self, shape, dtype, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape).astype(dtype)
        if self.distribution == "untruncated_normal":
            return (np.sqrt(variance) * rng.standard_normal(shape)).astype(dtype)
        return _truncated_normal(rng, shape, np.sqrt(variance) / _TRUNC_STD, dtype)

    def get_config(self):
        return {"class_name": "VarianceScaling", "config": dict(vars(self))}


def GlorotUniform():
    return VarianceScaling(1.0, "fan_avg", "uniform")


def GlorotNormal():
    return VarianceScaling(1.0, "fan_avg", "truncated_normal")


def HeNormal():
    return VarianceScaling(2.0, "fan_in", "truncated_normal")


def HeUniform():
    return VarianceScaling(2.0, "fan_in", "uniform")


def LecunNormal():
    return VarianceScaling(1.0, "fan_in", "truncated_normal")


def LecunUniform():
    return VarianceScaling(1.0, "fan_in", "uniform")


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "normal": RandomNormal, "random_normal": RandomNormal,
    "uniform": RandomUniform, "random_uniform": RandomUniform,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
}
_CLASSES = {cls.__name__: cls for cls in (Zeros, Ones, Constant, RandomNormal, RandomUniform, VarianceScaling)}


def get(identifier):
    """An initializer from a name (``"glorot_uniform"``, ``"he_normal"``, ...), a config dict or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        try:
            return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
        except TypeError as error:
            raise ValueError(message("initializers.get", f"a valid config for {identifier['class_name']}",
                                     repr(identifier.get("config")), str(error))) from None
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(message("initializers.get", f"one of {sorted(_BY_NAME)} or an Initializer",
                             repr(identifier), "Check the spelling of the initializer name."))


def serialize(initializer):
    return initializer.get_config()
