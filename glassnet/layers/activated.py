"""A fused activation for layers that take ``activation=...`` (Conv2D, Dense).

The activation is applied in place on the pre-activation ``z`` when its backward pass can be
written from the output alone (relu, sigmoid, tanh, softmax all can), so no second buffer is kept:
the output ``y`` is all the backward pass needs, and it travels in the call's cache.
"""
from glassnet import activations


class Activated:
    """Mixin: ``self.activation`` (a name), applied after the layer's affine map."""

    def _init_activation(self, activation):
        self.activation = activations.check_name(activation, type(self).__name__)

    @property
    def is_relu(self):
        return self.activation == "relu"

    def _activate(self, z, logits=False):
        """(output, what :meth:`_deactivate` needs): with ``logits=True`` (or a linear activation) the
        pre-activation unchanged and None."""
        if logits or self.activation == "linear":
            return z, None
        y = z.clip(0, None, out=z) if self.activation == "relu" else activations.forward(self.activation, z)
        return y, y

    def _deactivate(self, y, dy, rule="vanilla"):
        """dL/dz from dL/dy and the output ``y`` of :meth:`_activate` (None: nothing to undo).
        For relu, ``y > 0`` is the same gate as ``z > 0``; ``rule`` is the ReLU backward rule."""
        if y is None:
            return dy
        return activations.backward(self.activation, dy, y, y, rule)
