"""A fused activation for layers that take ``activation=...`` (Conv2D, Dense).

The activation is applied in place on the pre-activation ``z`` when its backward pass can be
written from the output alone (relu, sigmoid, tanh, softmax all can), so no second buffer is kept.
"""
from glassnet import activations


class Activated:
    """Mixin: ``self.activation`` (a name) with ``relu_rule`` for explanations."""

    relu_rule = "vanilla"

    def _init_activation(self, activation):
        self.activation = activations.check_name(activation, type(self).__name__)

    @property
    def is_relu(self):
        return self.activation == "relu"

    def _activate(self, z, logits=False):
        """Apply the activation; with ``logits=True`` return the pre-activation unchanged."""
        if logits or self.activation == "linear":
            self._y = None
            return z
        if self.activation == "relu":
            self._y = z.clip(0, None, out=z)
        else:
            self._y = activations.forward(self.activation, z)
        return self._y

    def _deactivate(self, dy):
        """dL/dz from dL/dy. For relu, ``y > 0`` is the same gate as ``z > 0``."""
        if self._y is None:
            return dy
        return activations.backward(self.activation, dy, self._y, self._y, self.relu_rule)
