"""BatchNormalization over the channel (last) axis, with Keras's defaults."""
import numpy as np

from glassnet.errors import message
from glassnet.layers.base import Layer, check_initializer, initializer_config, register
from glassnet.ops.normalization import batch_norm_backward, batch_norm_forward, inference_affine
from glassnet.validation import check_number


@register
class BatchNormalization(Layer):
    """Normalize each channel with batch statistics while training, moving ones at inference.

    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``. Statistics run over every axis but the
    last. While training, ``moving = momentum * moving + (1 - momentum) * batch`` where the moving
    variance takes the unbiased batch variance (as PyTorch and Keras's fused kernel do), and the
    normalization itself uses the biased one.

    Weights in Keras's order: gamma, beta (trainable), moving_mean, moving_variance (not trainable).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        where = "BatchNormalization"
        if axis != -1 or isinstance(axis, bool):
            raise ValueError(message(where, "axis=-1 (channels-last)", repr(axis),
                                     "Move channels to the last axis (glassnet is channels-last)."))
        self.axis = -1
        self.momentum = check_number(momentum, "momentum", where, lambda v: 0 <= v < 1, "in [0, 1)",
                                     "Keras's default is 0.99.")
        self.epsilon = check_number(epsilon, "epsilon", where, lambda v: v > 0, "> 0", "Keras's default is 1e-3.")
        self.center, self.scale = bool(center), bool(scale)
        self.initializers = dict(beta=beta_initializer, gamma=gamma_initializer,
                                 moving_mean=moving_mean_initializer, moving_variance=moving_variance_initializer)
        for key, value in self.initializers.items():
            check_initializer(value, f"{key}_initializer", where)

    def create_weights(self, input_shape):
        C = (input_shape[-1],)
        if self.scale:
            self.add_weight("gamma", C, self.initializers["gamma"])
        if self.center:
            self.add_weight("beta", C, self.initializers["beta"])
        self.add_weight("moving_mean", C, self.initializers["moving_mean"], trainable=False)
        self.add_weight("moving_variance", C, self.initializers["moving_variance"], trainable=False)

    def _vectors(self, dtype):
        """gamma and beta, ones / zeros for a layer without them (``scale`` / ``center`` False)."""
        C = self.non_trainable["moving_mean"].shape
        gamma = self.params["gamma"] if self.scale else np.ones(C, dtype=dtype)
        beta = self.params["beta"] if self.center else np.zeros(C, dtype=dtype)
        return gamma, beta

    def inference_affine(self, dtype):
        """``(scale, shift)`` per channel with the moving statistics: at inference ``y = x * scale + shift``
        (:func:`glassnet.ops.normalization.inference_affine`)."""
        gamma, beta = self._vectors(dtype)
        moving = self.non_trainable
        scale, shift, _ = inference_affine(gamma, beta, self.epsilon, moving["moving_mean"], moving["moving_variance"],
                                           dtype)
        return scale, shift

    def normalize(self, x, training=False, relu=False):
        """:meth:`apply`, with a fused ``max(y, 0)`` when ``relu`` (the engine's BatchNormalization + ReLU
        step, :class:`glassnet.engine.plan.BatchNormReLUStep`). While training, updates the moving
        statistics (as Keras does)."""
        self.ensure_built(x)
        gamma, beta = self._vectors(x.dtype)
        if not training:
            moving = self.non_trainable
            y, cache, _, _ = batch_norm_forward(x, gamma, beta, self.epsilon, moving["moving_mean"],
                                                moving["moving_variance"], relu=relu)
            return y, cache
        y, cache, mean, var = batch_norm_forward(x, gamma, beta, self.epsilon, relu=relu)
        count = x.size // x.shape[-1]
        unbiased = var * (count / max(count - 1, 1))
        for key, batch in (("moving_mean", mean), ("moving_variance", unbiased)):
            moving = self.non_trainable[key]
            moving *= self.momentum
            moving += (1 - self.momentum) * batch
        return y, cache

    def apply(self, x, training=False):
        """``(y, cache)``; while training, also updates the moving statistics (as Keras does)."""
        return self.normalize(x, training)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        # the math is in glassnet.ops.normalization; a fused ReLU's gate (cache.output) reads ``rule``
        gamma, _ = self._vectors(dy.dtype)
        dx, dgamma, dbeta = batch_norm_backward(dy, cache, gamma, need_dx, need_grads, rule)
        grads = {}
        if need_grads and self.scale:
            grads["gamma"] = dgamma
        if need_grads and self.center:
            grads["beta"] = dbeta
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **{f"{k}_initializer": initializer_config(v) for k, v in self.initializers.items()}}
