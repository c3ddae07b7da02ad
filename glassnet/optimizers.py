"""Optimizers with Keras's update rules: SGD (momentum, Nesterov), Adagrad, Adadelta, RMSprop, Adam.

The formulas, the defaults and the legacy ``decay`` follow classic multi-backend
Keras 2.2.4 / 2.3.1 (``keras/optimizers.py``), the Keras that seed 000's scripts
use (``SGD(lr=0.05, decay=1e-6, momentum=0.9, nesterov=True)``), except where
Keras 3 changed a rule: RMSprop and Adagrad follow Keras 3 by default (epsilon
inside the square root, Adagrad's accumulator starting at 0.1 with rate 0.001),
and one explicit argument each gives back Keras 2's recipe. Model files saved
before that change load with the rule they were trained with. With
``t = iterations`` counted *before* the step (0 on the first step):

``decay`` (all optimizers)
    ``lr_t = lr / (1 + decay * t)``  (so the first step uses ``lr`` itself).
SGD
    no momentum: ``p -= lr_t * g``;
    momentum: ``v = momentum * v - lr_t * g``; then ``p += v``, or with
    ``nesterov=True`` Keras's form ``p += momentum * v - lr_t * g``.
Adagrad (Keras 3: ``learning_rate=0.001``, ``epsilon=1e-7``, accumulator starts at 0.1)
    ``a += g**2``; ``p -= lr_t * g / sqrt(a + epsilon)``.
    Keras 2.2/2.3 (seed 000's Keras) started at 0 with ``learning_rate=0.01`` and put epsilon
    outside the root: ``Adagrad(0.01, initial_accumulator_value=0.0, epsilon_inside_sqrt=False)``.
Adadelta (``learning_rate=1.0``, ``rho=0.95``, ``epsilon=1e-7``)
    ``a = rho a + (1 - rho) g**2``;
    ``u = g sqrt(d + epsilon) / sqrt(a + epsilon)`` (new ``a``, old ``d``);
    ``p -= lr_t * u``; ``d = rho d + (1 - rho) u**2``.
RMSprop (``learning_rate=0.001``, ``rho=0.9``, ``epsilon=1e-7``)
    ``a = rho a + (1 - rho) g**2``; ``p -= lr_t * g / sqrt(a + epsilon)`` as in Keras 3;
    ``epsilon_inside_sqrt=False`` gives Keras 2's (and PyTorch's) ``g / (sqrt(a) + epsilon)``.
Adam (``learning_rate=0.001``, ``beta_1=0.9``, ``beta_2=0.999``, ``epsilon=1e-7``)
    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g**2``;
    ``alpha = lr_t * sqrt(1 - b2**(t+1)) / (1 - b1**(t+1))``;
    ``p -= alpha * m / (sqrt(v) + epsilon)`` (``amsgrad`` uses ``max`` of all v).
    Epsilon sits outside the bias correction, as in Keras (PyTorch adds it to
    ``sqrt(v_hat)``, so the two agree only for ``epsilon=0``).

Keras 3 additions:

``learning_rate`` as a schedule (:mod:`glassnet.schedules`, also ``optimizers.schedules``)
    ``lr = schedule(iterations)`` before every update (then the legacy ``decay``, if any).
``weight_decay`` (SGD, Adam; AdamW is Adam with ``weight_decay=0.004`` by default)
    Keras 3's decoupled rule, before the update: ``p = p - p * weight_decay * lr`` with this step's
    ``lr`` (Loshchilov & Hutter's AdamW; not an L2 term added to the gradient).

Every update runs in place on the parameter arrays, in the order Keras writes
the expressions, reusing per-parameter scratch buffers (no allocation per step).
``clipnorm`` / ``clipvalue`` clip the gradients first, as in Keras.
"""
import math

import numpy as np

from . import schedules
from .errors import describe, message
from .ops.parallel import over_rows
from .validation import check_flag, check_real

#: Keras's default fuzz factor (``keras.backend.epsilon()``).
EPSILON = 1e-7


def _number(owner, name, value, **bounds):
    """A real hyperparameter within ``bounds`` (see :func:`glassnet.validation.check_real`), as a float."""
    return check_real(value, name, f"{owner}({name}=...)", fix=f"Choose a finite {name} in that range.", **bounds)


def _flag(owner, name, value):
    return check_flag(value, name, f"{owner}({name}=...)")


class Optimizer:
    """Base class: state handling, legacy decay, clipping and the update loop.

    Parameters
    ----------
    learning_rate : float >= 0
    decay : float >= 0
        Keras's legacy time decay: ``lr / (1 + decay * iterations)``.
    clipnorm : float > 0, optional
        Rescale all gradients when their global L2 norm exceeds it.
    clipvalue : float > 0, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    lr : float, optional
        Old Keras alias of ``learning_rate``.

    Attributes
    ----------
    iterations : int
        Steps applied so far.
    learning_rate : float
        Base learning rate (settable, e.g. by ``LearningRateScheduler``).
    """

    #: Learning rate used when none is given (subclasses override).
    default_learning_rate = 0.01
    #: Names of the per-parameter state arrays, in :meth:`get_state` order.
    slot_names = ()
    #: Scratch arrays per parameter that one update needs (not part of the state).
    scratch_count = 1

    def __init__(self, learning_rate=None, decay=0.0, clipnorm=None, clipvalue=None, lr=None):
        owner = type(self).__name__
        if learning_rate is None:
            learning_rate = self.default_learning_rate
        if lr is not None:
            if learning_rate != self.default_learning_rate and learning_rate != lr:
                raise TypeError(message(owner, "one of learning_rate= or its alias lr=",
                                        f"learning_rate={learning_rate!r} and lr={lr!r}"))
            learning_rate = lr
        self.learning_rate = learning_rate
        self.decay = _number(owner, "decay", decay, low=0.0)
        self.clipnorm = None if clipnorm is None else _number(owner, "clipnorm", clipnorm,
                                                             low=0.0, low_open=True)
        self.clipvalue = None if clipvalue is None else _number(owner, "clipvalue", clipvalue,
                                                               low=0.0, low_open=True)
        self.iterations = 0
        self._slots = None      # {slot name: [array per parameter]}, created on first apply
        self._pending = None    # state from set_state() waiting for the first apply
        self._scratch = None

    # -- hyperparameters ---------------------------------------------------
    #: The LearningRateSchedule given as ``learning_rate`` (None: a constant rate).
    schedule = None
    #: Keras 3's decoupled weight decay (None: off); see the module notes.
    weight_decay = None
    _decay_step = 0.0       # weight_decay * lr of the step being applied

    @property
    def learning_rate(self):
        """Base learning rate (before legacy decay); with a schedule, its value at the current step."""
        if self.schedule is not None:
            return float(self.schedule(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        owner = type(self).__name__
        if self.schedule is not None:
            raise TypeError(message(f"{owner}.learning_rate", "no new value: it follows the LearningRateSchedule "
                                    f"{self.schedule!r} given at construction", describe(value),
                                    "Use a constant learning_rate to set it from callbacks, or a new optimizer."))
        if isinstance(value, dict):
            value = schedules.deserialize(value)
        if isinstance(value, schedules.LearningRateSchedule):
            self.schedule = value
            return
        self._learning_rate = _number(owner, "learning_rate", value, low=0.0)

    def _init_weight_decay(self, weight_decay):
        """Validate and keep ``weight_decay`` (None or a real >= 0)."""
        if weight_decay is not None:
            self.weight_decay = _number(type(self).__name__, "weight_decay", weight_decay, low=0.0)

    lr = property(lambda self: self.learning_rate,
                  lambda self, value: setattr(self, "learning_rate", value),
                  doc="Old Keras alias of :attr:`learning_rate`.")

    def current_learning_rate(self):
        """Learning rate of the next step: ``lr / (1 + decay * iterations)``."""
        if self.decay > 0:
            return self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))
        return self.learning_rate

    # -- the step ------------------------------------------------------------
    def apply(self, params, grads):
        """Update ``params`` in place from ``grads`` and advance :attr:`iterations`.

        Parameters
        ----------
        params : list of ndarray
            Float arrays, modified in place (never replaced). Same order every call.
        grads : list of ndarray
            Gradients of the loss, one per parameter, same shapes. Not modified.
        """
        params, grads = list(params), list(grads)
        self._check(params, grads)
        if self._slots is None:
            self._create_slots(params)
        grads = self._clip(grads)
        lr = self.current_learning_rate()
        step = self._step_factors(lr)
        self._decay_step = self.weight_decay * lr if self.weight_decay else 0.0
        for i, (param, grad) in enumerate(zip(params, grads)):
            slots = [self._slots[name][i] for name in self.slot_names]
            self._update_in_shares(param, grad, slots, self._scratch[i], step)
        self.iterations += 1

    def _update_in_shares(self, param, grad, slots, scratch, step):
        """:meth:`_update`, on contiguous shares of a large parameter spread over glassnet's worker
        threads (every update is elementwise; keras_mnist's weights: 2.5 ms per step on one thread,
        nearly all of it its 1.2M-weight Dense kernel)."""
        if not all(a.flags.c_contiguous for a in [param, *slots, *scratch]):
            self._decayed_update(param, grad, slots, scratch, step)
            return
        param, slots, scratch = param.reshape(-1), [a.reshape(-1) for a in slots], [a.reshape(-1) for a in scratch]
        grad = np.ravel(grad)

        def update_share(share):
            self._decayed_update(param[share], grad[share], [a[share] for a in slots], [a[share] for a in scratch],
                                 step)

        over_rows(update_share, param.size, param.nbytes)

    def _decayed_update(self, param, grad, slots, scratch, step):
        """:meth:`_update` after Keras 3's decoupled weight decay ``p -= p * (weight_decay * lr)``."""
        if self._decay_step:
            param -= np.multiply(param, self._decay_step, out=scratch[0])
        self._update(param, grad, slots, scratch, step)

    def _step_factors(self, lr):
        """Scalars shared by all parameters in this step (Adam adds bias correction)."""
        return lr

    def _update(self, param, grad, slots, scratch, step):
        raise NotImplementedError

    def _slot_initial_value(self, name):
        return 0.0

    def _check(self, params, grads):
        owner = f"{type(self).__name__}.apply"
        if len(params) != len(grads):
            raise ValueError(message(owner, "one gradient per parameter",
                                     f"{len(params)} parameters and {len(grads)} gradients"))
        for i, (param, grad) in enumerate(zip(params, grads)):
            if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
                raise TypeError(message(owner, f"parameter {i} as a float NumPy array",
                                        describe(param)))
            if not param.flags.writeable:
                raise ValueError(message(owner, f"parameter {i} writable (updated in place)",
                                         "a read-only array", "Pass a copy: p.copy()."))
            grad_shape = getattr(grad, "shape", None)
            if grad_shape != param.shape:
                raise ValueError(message(owner, f"gradient {i} of shape {param.shape} "
                                         "(its parameter's)", describe(grad)))
        if self._slots is not None and self._param_shapes != [p.shape for p in params]:
            raise ValueError(message(owner, f"the same {len(self._param_shapes)} parameters as "
                                     f"on the first step (shapes {self._param_shapes})",
                                     f"shapes {[p.shape for p in params]}",
                                     "Use one optimizer per model."))

    def _create_slots(self, params):
        pending, self._pending = self._pending, None
        self._slots = {}
        for k, name in enumerate(self.slot_names):
            fill = self._slot_initial_value(name)
            arrays = [np.full(p.shape, fill, dtype=p.dtype) for p in params]
            if pending is not None:
                saved = pending[k * len(params):(k + 1) * len(params)]
                if len(pending) != len(self.slot_names) * len(params) or any(
                        s.shape != a.shape for s, a in zip(saved, arrays)):
                    self._slots = None
                    self._pending = pending
                    raise ValueError(message(
                        f"{type(self).__name__}.apply", "parameters matching the restored "
                        "optimizer state", f"{len(params)} parameters of shapes "
                        f"{[p.shape for p in params]} for state arrays of shapes "
                        f"{[s.shape for s in pending]}"))
                for array, value in zip(arrays, saved):
                    array[...] = value
            self._slots[name] = arrays
        self._param_shapes = [p.shape for p in params]
        self._scratch = [[np.empty_like(p) for _ in range(self.scratch_count)] for p in params]

    def _clip(self, grads):
        """Keras's gradient clipping: global-norm rescale, then element-wise clip (new arrays)."""
        if self.clipnorm is not None:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            if norm >= self.clipnorm:
                grads = [g * (self.clipnorm / norm) for g in grads]
        if self.clipvalue is not None:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    # -- state -----------------------------------------------------------------
    def get_state(self):
        """Copies of the state: ``[iterations]`` then each slot for every parameter.

        Order: iterations (0-d int64), then all arrays of the first slot kind (one per
        parameter, in ``apply`` order), then the next kind (Keras's weight order).
        """
        state = [np.array(self.iterations, dtype=np.int64)]
        if self._slots is not None:
            for name in self.slot_names:
                state.extend(a.copy() for a in self._slots[name])
        elif self._pending is not None:
            state.extend(a.copy() for a in self._pending)
        return state

    def set_state(self, state):
        """Restore :meth:`get_state`'s list so training continues exactly.

        Before the first :meth:`apply` the slot arrays are kept and checked against
        the parameters on that call.
        """
        owner = f"{type(self).__name__}.set_state"
        state = list(state)
        if not state:
            raise ValueError(message(owner, "[iterations, *slots] from get_state()",
                                     "an empty list"))
        iterations = np.asarray(state[0])
        if iterations.shape != () or iterations.dtype.kind not in "iu" or iterations < 0:
            raise ValueError(message(owner, "a non-negative integer iteration count first",
                                     describe(iterations)))
        arrays = [np.array(a, copy=True) for a in state[1:]]
        if arrays and (not self.slot_names or len(arrays) % len(self.slot_names)):
            raise ValueError(message(owner, f"a multiple of {len(self.slot_names)} slot arrays "
                                     f"({', '.join(self.slot_names) or 'none'} per parameter)",
                                     f"{len(arrays)} arrays"))
        if self._slots is not None and arrays:
            current = [a for name in self.slot_names for a in self._slots[name]]
            if [a.shape for a in arrays] != [a.shape for a in current]:
                raise ValueError(message(owner, f"arrays of shapes {[a.shape for a in current]}",
                                         f"shapes {[a.shape for a in arrays]}"))
            for target, value in zip(current, arrays):
                target[...] = value
        else:
            # No slots yet (or a state saved before the first step): rebuild lazily.
            self._slots = None
            self._pending = arrays or None
        self.iterations = int(iterations)

    # -- configuration -------------------------------------------------------
    def _hyperparameters(self):
        rate = self.learning_rate if self.schedule is None else schedules.serialize(self.schedule)
        config = {"learning_rate": rate, "decay": self.decay}
        if self.weight_decay is not None:
            config["weight_decay"] = self.weight_decay
        return config

    def get_config(self):
        """JSON-able dict with ``class_name`` and the hyperparameters."""
        config = {"class_name": type(self).__name__, **self._hyperparameters()}
        if self.clipnorm is not None:
            config["clipnorm"] = self.clipnorm
        if self.clipvalue is not None:
            config["clipvalue"] = self.clipvalue
        return config

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "class_name")
        return f"{type(self).__name__}({args})"


def _scaled_gradient_over_root(param, grad, denominator_source, eps, scale, scratch, eps_inside=False):
    """``param -= scale * grad / (sqrt(denominator_source) + eps)`` in Keras's order, or with
    ``eps_inside`` Keras 3's ``scale * grad / sqrt(denominator_source + eps)``."""
    denom, work = scratch[0], scratch[1]
    if eps_inside:
        np.add(denominator_source, eps, out=denom)
        np.sqrt(denom, out=denom)
    else:
        np.sqrt(denominator_source, out=denom)
        denom += eps
    np.multiply(grad, scale, out=work)
    work /= denom
    param -= work


def _decay_average(average, rho, grad, scratch):
    """``average = rho * average + (1 - rho) * grad**2`` in place."""
    average *= rho
    np.square(grad, out=scratch)
    scratch *= 1.0 - rho
    average += scratch


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and legacy decay.

    Parameters
    ----------
    learning_rate : float >= 0, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
        Keras's form: ``v = m v - lr g; p += m v - lr g``.
    decay : float >= 0, default 0
    weight_decay : float >= 0, optional
        Keras 3's decoupled weight decay ``p -= p * weight_decay * lr`` before each update.
    """

    default_learning_rate = 0.01

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, decay=0.0, *,
                 lr=None, clipnorm=None, clipvalue=None, weight_decay=None):
        super().__init__(learning_rate, decay, clipnorm, clipvalue, lr)
        self._init_weight_decay(weight_decay)
        self.momentum = _number("SGD", "momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.nesterov = _flag("SGD", "nesterov", nesterov)
        # Like Keras, plain SGD keeps no velocity.
        self.slot_names = ("momentums",) if self.momentum > 0 else ()
        self.scratch_count = 2 if self.nesterov else 1

    def _update(self, param, grad, slots, scratch, lr):
        lr_grad = np.multiply(grad, lr, out=scratch[0])
        if not slots:
            param -= lr_grad
            return
        velocity = slots[0]
        velocity *= self.momentum
        velocity -= lr_grad                      # v = m v - lr g
        if self.nesterov:
            param += np.multiply(velocity, self.momentum, out=scratch[1])
            param -= lr_grad                     # p = p + m v - lr g
        else:
            param += velocity                    # p = p + v

    def _hyperparameters(self):
        return {**super()._hyperparameters(), "momentum": self.momentum,
                "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """Adagrad: per-coordinate steps shrink with the sum of squared gradients.

    Parameters
    ----------
    learning_rate : float >= 0, default 0.001 (Keras 3; Keras 2.2/2.3 used 0.01)
    epsilon : float >= 0, default 1e-7 (None means 1e-7)
    decay : float >= 0, default 0
    initial_accumulator_value : float >= 0, default 0.1 (Keras 3; Keras 2.2/2.3 started at 0)
    epsilon_inside_sqrt : bool, default True
        Keras 3's ``g / sqrt(a + epsilon)``; False gives Keras 2's ``g / (sqrt(a) + epsilon)``.
        Seed 000's Keras 2 Adagrad is ``Adagrad(0.01, initial_accumulator_value=0.0,
        epsilon_inside_sqrt=False)``.
    """

    default_learning_rate = 0.001
    slot_names = ("accumulators",)
    scratch_count = 2

    def __init__(self, learning_rate=0.001, epsilon=None, decay=0.0,
                 initial_accumulator_value=0.1, *, lr=None, clipnorm=None, clipvalue=None,
                 epsilon_inside_sqrt=True):
        super().__init__(learning_rate, decay, clipnorm, clipvalue, lr)
        self.epsilon_inside_sqrt = _flag("Adagrad", "epsilon_inside_sqrt", epsilon_inside_sqrt)
        self.epsilon = _number("Adagrad", "epsilon", EPSILON if epsilon is None else epsilon,
                               low=0.0)
        self.initial_accumulator_value = _number("Adagrad", "initial_accumulator_value",
                                                 initial_accumulator_value, low=0.0)
        if self.epsilon == 0 and self.initial_accumulator_value == 0:
            raise ValueError(message("Adagrad", "epsilon > 0 or initial_accumulator_value > 0",
                                     "both 0", "A zero gradient would divide 0 by 0."))

    def _slot_initial_value(self, name):
        return self.initial_accumulator_value

    def _update(self, param, grad, slots, scratch, lr):
        accumulator = slots[0]
        accumulator += np.square(grad, out=scratch[0])        # a = a + g^2
        _scaled_gradient_over_root(param, grad, accumulator, self.epsilon, lr, scratch, self.epsilon_inside_sqrt)

    def _hyperparameters(self):
        return {**super()._hyperparameters(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon_inside_sqrt": self.epsilon_inside_sqrt}


class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of running RMS of updates to RMS of gradients.

    Parameters
    ----------
    learning_rate : float >= 0, default 1.0 (Keras 2.2/2.3; tf.keras uses 0.001)
    rho : float in [0, 1), default 0.95
    epsilon : float > 0, default 1e-7
    decay : float >= 0, default 0
    """

    default_learning_rate = 1.0
    slot_names = ("accumulators", "delta_accumulators")
    scratch_count = 2

    def __init__(self, learning_rate=1.0, rho=0.95, epsilon=None, decay=0.0, *,
                 lr=None, clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, decay, clipnorm, clipvalue, lr)
        self.rho = _number("Adadelta", "rho", rho, low=0.0, high=1.0, high_open=True)
        # epsilon 0 would make the first update sqrt(0) * ... = 0 forever.
        self.epsilon = _number("Adadelta", "epsilon", EPSILON if epsilon is None else epsilon,
                               low=0.0, low_open=True)

    def _update(self, param, grad, slots, scratch, lr):
        accumulator, delta_accumulator = slots
        step, work = scratch
        _decay_average(accumulator, self.rho, grad, work)      # a = rho a + (1-rho) g^2
        np.add(delta_accumulator, self.epsilon, out=step)
        np.sqrt(step, out=step)
        np.multiply(grad, step, out=step)                       # g sqrt(d + eps)
        np.add(accumulator, self.epsilon, out=work)
        step /= np.sqrt(work, out=work)                         # u = ... / sqrt(a + eps)
        param -= np.multiply(step, lr, out=work)                # p = p - lr u
        _decay_average(delta_accumulator, self.rho, step, work)  # d = rho d + (1-rho) u^2

    def _hyperparameters(self):
        return {**super()._hyperparameters(), "rho": self.rho, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running RMS of recent gradients.

    Parameters
    ----------
    learning_rate : float >= 0, default 0.001
    rho : float in [0, 1), default 0.9
    epsilon : float >= 0, default 1e-7
    decay : float >= 0, default 0
    epsilon_inside_sqrt : bool, default True
        Keras 3's ``g / sqrt(a + epsilon)``; False gives Keras 2's (and PyTorch's)
        ``g / (sqrt(a) + epsilon)``.
    """

    default_learning_rate = 0.001
    slot_names = ("accumulators",)
    scratch_count = 2

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=None, decay=0.0, *,
                 lr=None, clipnorm=None, clipvalue=None, epsilon_inside_sqrt=True):
        super().__init__(learning_rate, decay, clipnorm, clipvalue, lr)
        self.epsilon_inside_sqrt = _flag("RMSprop", "epsilon_inside_sqrt", epsilon_inside_sqrt)
        self.rho = _number("RMSprop", "rho", rho, low=0.0, high=1.0, high_open=True)
        self.epsilon = _number("RMSprop", "epsilon", EPSILON if epsilon is None else epsilon,
                               low=0.0)

    def _update(self, param, grad, slots, scratch, lr):
        _decay_average(slots[0], self.rho, grad, scratch[0])  # a = rho a + (1-rho) g^2
        _scaled_gradient_over_root(param, grad, slots[0], self.epsilon, lr, scratch, self.epsilon_inside_sqrt)

    def _hyperparameters(self):
        return {**super()._hyperparameters(), "rho": self.rho, "epsilon": self.epsilon,
                "epsilon_inside_sqrt": self.epsilon_inside_sqrt}


class Adam(Optimizer):
    """Adam with Keras's bias-corrected step size (and optional AMSGrad).

    Parameters
    ----------
    learning_rate : float >= 0, default 0.001
    beta_1, beta_2 : float in [0, 1), defaults 0.9 and 0.999
    epsilon : float >= 0, default 1e-7
    decay : float >= 0, default 0
    amsgrad : bool, default False
    weight_decay : float >= 0, optional
        Keras 3's decoupled weight decay (see :class:`AdamW`).
    """

    default_learning_rate = 0.001
    scratch_count = 2

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
                 decay=0.0, amsgrad=False, *, lr=None, clipnorm=None, clipvalue=None, weight_decay=None):
        super().__init__(learning_rate, decay, clipnorm, clipvalue, lr)
        self._init_weight_decay(weight_decay)
        self.beta_1 = _number("Adam", "beta_1", beta_1, low=0.0, high=1.0, high_open=True)
        self.beta_2 = _number("Adam", "beta_2", beta_2, low=0.0, high=1.0, high_open=True)
        self.epsilon = _number("Adam", "epsilon", EPSILON if epsilon is None else epsilon,
                               low=0.0)
        self.amsgrad = _flag("Adam", "amsgrad", amsgrad)
        self.slot_names = ("ms", "vs", "vhats") if self.amsgrad else ("ms", "vs")

    def _step_factors(self, lr):
        t = self.iterations + 1
        return lr * (math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t))

    def _update(self, param, grad, slots, scratch, lr_t):
        m, v = slots[0], slots[1]
        m *= self.beta_1
        m += np.multiply(grad, 1.0 - self.beta_1, out=scratch[0])   # m = b1 m + (1-b1) g
        _decay_average(v, self.beta_2, grad, scratch[0])            # v = b2 v + (1-b2) g^2
        if self.amsgrad:
            v = np.maximum(slots[2], v, out=slots[2])               # vhat = max(vhat, v)
        _scaled_gradient_over_root(param, m, v, self.epsilon, lr_t, scratch)

    def _hyperparameters(self):
        return {**super()._hyperparameters(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), Keras 3's ``AdamW``.

    Before each Adam update every parameter shrinks by ``p -= p * weight_decay * lr`` (``lr``: this
    step's rate, from the schedule if there is one), instead of an L2 term entering the moments.

    Parameters
    ----------
    learning_rate : float >= 0 or LearningRateSchedule, default 0.001
    weight_decay : float >= 0, default 0.004 (Keras 3's)
    beta_1, beta_2, epsilon, amsgrad, decay
        As :class:`Adam`.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=None,
                 amsgrad=False, decay=0.0, *, lr=None, clipnorm=None, clipvalue=None):
        if weight_decay is None:
            raise ValueError(message("AdamW", "weight_decay as a float >= 0", "None",
                                     "Use Adam for no weight decay, or the default weight_decay=0.004."))
        super().__init__(learning_rate, beta_1, beta_2, epsilon, decay, amsgrad, lr=lr, clipnorm=clipnorm,
                         clipvalue=clipvalue, weight_decay=weight_decay)


# ---------------------------------------------------------------------------
# Look-up and serialization
# ---------------------------------------------------------------------------

_CLASSES = {cls.__name__.lower(): cls for cls in (SGD, Adagrad, Adadelta, RMSprop, Adam, AdamW)}


def get(identifier):
    """Return an optimizer for a name (any case), a config dict or an instance.

    ``"sgd"``, ``"adagrad"``, ``"adadelta"``, ``"rmsprop"``, ``"adam"`` give the
    optimizer with Keras's defaults.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return from_config(identifier)
    if isinstance(identifier, str):
        return _class_for(identifier, "optimizers.get")()
    raise TypeError(message("optimizers.get", "an optimizer name or a glassnet Optimizer",
                            describe(identifier), "E.g. optimizer='adam' or "
                            "optimizers.SGD(learning_rate=0.05, momentum=0.9)."))


def _class_for(name, where):
    cls = _CLASSES.get(str(name).lower())
    if cls is None:
        raise ValueError(message(where, f"one of {', '.join(map(repr, _CLASSES))}",
                                 repr(name), "Check the spelling of the optimizer name."))
    return cls


#: What a configuration written before glassnet followed Keras 3 (no ``epsilon_inside_sqrt`` key)
#: meant: the Keras 2 rule it was trained with.
_SAVED_BEFORE_KERAS3 = {"RMSprop": {"epsilon_inside_sqrt": False}, "Adagrad": {"epsilon_inside_sqrt": False}}


def from_saved_config(config):
    """:func:`from_config` for a configuration read from a model file: an older file's RMSprop or
    Adagrad keeps the Keras 2 rule it was trained with, so training resumes on the same trajectory."""
    if isinstance(config, dict) and "config" not in config:
        legacy = _SAVED_BEFORE_KERAS3.get(str(config.get("class_name")), {})
        config = {**legacy, **config}
    return from_config(config)


def from_config(config):
    """Rebuild an optimizer from :meth:`Optimizer.get_config` (or Keras's
    ``{"class_name": ..., "config": {...}}``). The state is restored separately
    with :meth:`Optimizer.set_state`."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(message("optimizers.from_config", "a dict with a 'class_name' key",
                                 describe(config)))
    kwargs = dict(config.get("config", {}))
    kwargs.update({k: v for k, v in config.items() if k not in ("class_name", "config")})
    kwargs.pop("name", None)
    cls = _class_for(config["class_name"], "optimizers.from_config")
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise TypeError(message("optimizers.from_config", f"{cls.__name__}'s arguments",
                                f"{sorted(kwargs)} ({error})")) from None
