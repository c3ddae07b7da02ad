"""Optimizers: trajectories against Keras 2.x's formulas written out by hand (plain Python
floats, one coordinate at a time), PyTorch where the rules coincide, exact resume from
saved state, in-place updates without allocation, hyperparameter validation."""
import json
import math
import tracemalloc

import numpy as np
import pytest

from glassnet import optimizers

# Two parameters of different shapes; the objective is sum(c * p**2) / 2, so g = c * p
# and each trajectory feeds back on itself.
P0 = [np.array([1.0, -2.0, 0.5]), np.array([[0.3, -0.7], [1.5, 2.5]])]
C = [np.array([0.5, 2.0, 3.0]), np.array([[1.0, 4.0], [0.25, 1.5]])]
STEPS = 5


def run(optimizer, steps=STEPS, params=None):
    """Apply ``steps`` updates; return the flattened parameters after every step."""
    params = [p.copy() for p in (params or P0)]
    trajectory = []
    for _ in range(steps):
        optimizer.apply(params, [c * p for c, p in zip(C, params)])
        trajectory.append(np.concatenate([p.ravel() for p in params]))
    return np.array(trajectory)


def by_hand(update, state_names, steps=STEPS):
    """Run a per-coordinate scalar ``update(p, g, state, t) -> p`` on the flat problem."""
    ps = [float(x) for p in P0 for x in p.ravel()]
    cs = [float(x) for c in C for x in c.ravel()]
    states = [{name: 0.0 for name in state_names} for _ in ps]
    trajectory = []
    for t in range(steps):
        for i in range(len(ps)):
            ps[i] = update(ps[i], cs[i] * ps[i], states[i], t)
        trajectory.append(list(ps))
    return np.array(trajectory)


def decayed(lr, decay, t):
    return lr * (1.0 / (1.0 + decay * t))


# ---------------------------------------------------------------------------
# Trajectories by hand (Keras 2.2.4 / 2.3.1 formulas)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_sgd_plain(decay):
    lr = 0.1

    def update(p, g, s, t):
        return p - decayed(lr, decay, t) * g
    np.testing.assert_allclose(run(optimizers.SGD(lr, decay=decay)), by_hand(update, []),
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_sgd_momentum(decay):
    lr, m = 0.1, 0.9

    def update(p, g, s, t):
        s["v"] = m * s["v"] - decayed(lr, decay, t) * g
        return p + s["v"]
    np.testing.assert_allclose(run(optimizers.SGD(lr, momentum=m, decay=decay)),
                               by_hand(update, ["v"]), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_sgd_nesterov_as_keras_writes_it(decay):
    lr, m = 0.1, 0.9

    def update(p, g, s, t):
        lr_t = decayed(lr, decay, t)
        s["v"] = m * s["v"] - lr_t * g
        return p + m * s["v"] - lr_t * g
    np.testing.assert_allclose(run(optimizers.SGD(lr, momentum=m, nesterov=True, decay=decay)),
                               by_hand(update, ["v"]), rtol=1e-14, atol=1e-15)


def test_seed_000_sgd_numbers():
    """SGD(lr=.05, decay=1e-6, momentum=.9, nesterov=True), worked out on paper."""
    opt = optimizers.SGD(lr=0.05, decay=1e-6, momentum=0.9, nesterov=True)
    p = np.array([1.0])
    opt.apply([p], [np.array([2.0])])
    # v = -0.05 * 2 = -0.1;  p = 1 + 0.9 * (-0.1) - 0.1 = 0.81
    assert p[0] == pytest.approx(0.81, rel=1e-15)
    opt.apply([p], [np.array([1.0])])
    # lr = 0.05 / (1 + 1e-6) = 0.04999995...; v = -0.09 - lr; p = 0.81 + 0.9 v - lr
    lr = 0.05 / 1.000001
    assert p[0] == pytest.approx(0.81 + 0.9 * (-0.09 - lr) - lr, rel=1e-15)
    assert p[0] == pytest.approx(0.634000095, rel=1e-8)
    assert opt.iterations == 2
    assert opt.current_learning_rate() == pytest.approx(0.05 / (1 + 2e-6), rel=1e-15)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_adam(amsgrad, decay):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7

    def update(p, g, s, t):
        lr_t = decayed(lr, decay, t) * (math.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1)))
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        s["vhat"] = max(s["vhat"], s["v"])
        return p - lr_t * s["m"] / (math.sqrt(s["vhat"] if amsgrad else s["v"]) + eps)
    np.testing.assert_allclose(run(optimizers.Adam(lr, decay=decay, amsgrad=amsgrad)),
                               by_hand(update, ["m", "v", "vhat"]), rtol=1e-13, atol=1e-15)


def test_adam_first_step_moves_each_coordinate_by_about_lr():
    p = np.array([0.0, 0.0, 0.0])
    optimizers.Adam().apply([p], [np.array([0.5, -3.0, 1e-3])])
    # |step| = lr * sqrt(1-b2) |g| / (sqrt(1-b2) |g| + eps): just under 0.001
    np.testing.assert_allclose(np.abs(p), 0.001, rtol=1e-2)
    assert np.all(np.abs(p) < 0.001) and p[0] < 0 < p[1]


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_rmsprop(decay):
    lr, rho, eps = 0.01, 0.9, 1e-7

    def update(p, g, s, t):
        s["a"] = rho * s["a"] + (1 - rho) * g * g
        return p - decayed(lr, decay, t) * g / (math.sqrt(s["a"]) + eps)
    np.testing.assert_allclose(run(optimizers.RMSprop(lr, decay=decay)), by_hand(update, ["a"]),
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("initial", [0.0, 0.1])
@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_adagrad(initial, decay):
    lr, eps = 0.1, 1e-7

    def update(p, g, s, t):
        if t == 0:
            s["a"] = initial
        s["a"] = s["a"] + g * g
        return p - decayed(lr, decay, t) * g / (math.sqrt(s["a"]) + eps)
    opt = optimizers.Adagrad(lr, decay=decay, initial_accumulator_value=initial)
    np.testing.assert_allclose(run(opt), by_hand(update, ["a"]), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_adadelta(decay):
    lr, rho, eps = 1.0, 0.95, 1e-7

    def update(p, g, s, t):
        s["a"] = rho * s["a"] + (1 - rho) * g * g
        u = g * math.sqrt(s["d"] + eps) / math.sqrt(s["a"] + eps)   # old d, new a
        s["d"] = rho * s["d"] + (1 - rho) * u * u
        return p - decayed(lr, decay, t) * u
    np.testing.assert_allclose(run(optimizers.Adadelta(decay=decay)),
                               by_hand(update, ["a", "d"]), rtol=1e-14, atol=1e-15)


def test_keras_defaults():
    cases = {
        "sgd": dict(learning_rate=0.01, momentum=0.0, nesterov=False, decay=0.0),
        "adagrad": dict(learning_rate=0.01, epsilon=1e-7, initial_accumulator_value=0.0),
        "adadelta": dict(learning_rate=1.0, rho=0.95, epsilon=1e-7),
        "rmsprop": dict(learning_rate=0.001, rho=0.9, epsilon=1e-7),
        "adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                     amsgrad=False),
    }
    for name, expected in cases.items():
        config = optimizers.get(name).get_config()
        for key, value in expected.items():
            assert config[key] == value, (name, key)


# ---------------------------------------------------------------------------
# PyTorch as an oracle where the rules coincide
# ---------------------------------------------------------------------------

def torch_run(torch, make, steps=STEPS):
    params = [torch.tensor(p.copy(), requires_grad=True) for p in P0]
    opt = make(params)
    trajectory = []
    for _ in range(steps):
        for p, c in zip(params, C):
            p.grad = torch.tensor(c) * p.detach()
        opt.step()
        trajectory.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    return np.array(trajectory)


def test_agrees_with_torch_where_rules_coincide():
    torch = pytest.importorskip("torch", reason="torch is the optional dev-only oracle")
    cases = [
        # Keras's Nesterov form equals torch's for a constant learning rate
        # (Keras's v is -lr times torch's buffer).
        (optimizers.SGD(0.1, momentum=0.9, nesterov=True),
         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
        (optimizers.SGD(0.1, momentum=0.9),
         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
        (optimizers.RMSprop(0.01),
         lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-7)),
        # torch's lr_decay is Keras's legacy decay.
        (optimizers.Adagrad(0.1, decay=0.3, initial_accumulator_value=0.1),
         lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.3, eps=1e-7,
                                        initial_accumulator_value=0.1)),
        (optimizers.Adadelta(),
         lambda ps: torch.optim.Adadelta(ps, lr=1.0, rho=0.95, eps=1e-7)),
        # torch puts epsilon after the bias correction; the two agree at epsilon = 0.
        (optimizers.Adam(0.01, epsilon=0.0),
         lambda ps: torch.optim.Adam(ps, lr=0.01, eps=0.0)),
        (optimizers.Adam(0.01, epsilon=0.0, amsgrad=True),
         lambda ps: torch.optim.Adam(ps, lr=0.01, eps=0.0, amsgrad=True)),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(run(ours), torch_run(torch, theirs), rtol=1e-12,
                                   atol=1e-14, err_msg=repr(ours))


# ---------------------------------------------------------------------------
# In place, dtypes, allocation
# ---------------------------------------------------------------------------

ALL = [
    lambda: optimizers.SGD(0.1),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, decay=0.01),
    lambda: optimizers.SGD(0.1, momentum=0.5),
    lambda: optimizers.Adam(0.01, decay=0.01),
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.RMSprop(0.01, decay=0.01),
    lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.1),
    lambda: optimizers.Adadelta(decay=0.01),
]


@pytest.mark.parametrize("make", ALL)
def test_updates_in_place_without_touching_gradients(make):
    opt = make()
    params = [p.copy() for p in P0]
    ids = [id(p) for p in params]
    grads = [c * p for c, p in zip(C, params)]
    saved = [g.copy() for g in grads]
    for _ in range(3):
        opt.apply(params, grads)
    assert [id(p) for p in params] == ids
    for g, g0 in zip(grads, saved):
        np.testing.assert_array_equal(g, g0)
    assert any(not np.array_equal(p, p0) for p, p0 in zip(params, P0))
    assert opt.iterations == 3


@pytest.mark.parametrize("make", ALL)
def test_float32_parameters_keep_float32_state(make):
    opt = make()
    params = [p.astype(np.float32) for p in P0]
    for _ in range(STEPS):
        opt.apply(params, [(c * p).astype(np.float32) for c, p in zip(C, params)])
    assert all(p.dtype == np.float32 for p in params)
    assert all(s.dtype == np.float32 for s in opt.get_state()[1:])
    flat = np.concatenate([p.ravel() for p in params])
    np.testing.assert_allclose(flat, run(make())[-1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", ALL)
def test_a_step_allocates_no_parameter_sized_memory(make):
    opt = make()
    params = [np.linspace(-1, 1, 200_000)]
    grads = [np.linspace(0.5, -0.5, 200_000)]
    opt.apply(params, grads)          # first step creates the slots and scratch buffers
    tracemalloc.start()
    try:
        opt.apply(params, grads)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < params[0].nbytes // 20, f"{peak} bytes allocated during one step"


# ---------------------------------------------------------------------------
# State: save and resume exactly
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make", ALL)
def test_resume_from_state_is_bit_identical(make, tmp_path):
    uninterrupted = run(make(), steps=6)

    first = make()
    params = [p.copy() for p in P0]
    for _ in range(3):
        first.apply(params, [c * p for c, p in zip(C, params)])
    # Through JSON and an .npz file, as a checkpoint would.
    config = json.loads(json.dumps(first.get_config()))
    state = first.get_state()
    np.savez(tmp_path / "opt.npz", *state)
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as data:
        loaded = [data[f"arr_{i}"] for i in range(len(state))]

    resumed = optimizers.from_config(config)
    resumed.set_state(loaded)
    assert resumed.iterations == 3
    assert resumed.get_config() == first.get_config()
    params = [p.copy() for p in params]
    rest = run(resumed, steps=3, params=params)
    np.testing.assert_array_equal(rest, uninterrupted[3:])


@pytest.mark.parametrize("make", ALL)
def test_set_state_into_an_optimizer_that_already_stepped(make):
    source = make()
    params = [p.copy() for p in P0]
    for _ in range(2):
        source.apply(params, [c * p for c, p in zip(C, params)])
    target = make()
    run(target, steps=4)                  # unrelated history, slots already exist
    target.set_state(source.get_state())
    a = run(source, steps=2, params=params)
    b = run(target, steps=2, params=params)
    np.testing.assert_array_equal(a, b)


def test_state_layout_and_copies():
    opt = optimizers.Adam()
    assert [int(s) for s in opt.get_state()] == [0]
    run(opt, steps=2)
    state = opt.get_state()
    assert state[0].dtype == np.int64 and int(state[0]) == 2
    # iterations, then m for both params, then v for both params (Keras's order)
    assert [s.shape for s in state[1:]] == [(3,), (2, 2), (3,), (2, 2)]
    state[1][...] = 123.0                 # a copy: the optimizer is unaffected
    assert not np.any(opt.get_state()[1] == 123.0)
    assert len(optimizers.SGD().get_state()) == 1                      # plain SGD: no slots
    assert len(run_and_state(optimizers.SGD(momentum=0.9))) == 3


def run_and_state(opt):
    run(opt, steps=1)
    return opt.get_state()


def test_set_state_errors():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="multiple of 2"):
        opt.set_state([np.array(1), np.zeros(3)])
    with pytest.raises(ValueError, match="iteration"):
        opt.set_state([np.array(1.5)])
    opt.set_state([np.array(1), np.zeros(4), np.zeros(4)])     # wrong shapes for P0
    with pytest.raises(ValueError, match="restored"):
        run(opt, steps=1)
    ran = optimizers.Adam()
    run(ran, steps=1)
    with pytest.raises(ValueError, match="shapes"):
        ran.set_state([np.array(1), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3)])


# ---------------------------------------------------------------------------
# Learning rate, clipping, look-up, validation
# ---------------------------------------------------------------------------

def test_learning_rate_can_be_changed_between_steps():
    opt = optimizers.SGD(0.1, decay=0.5)
    p = np.array([1.0])
    opt.apply([p], [np.array([1.0])])                 # p = 1 - 0.1
    opt.learning_rate = 0.4                            # what LearningRateScheduler does
    assert opt.current_learning_rate() == pytest.approx(0.4 / 1.5)
    opt.apply([p], [np.array([1.0])])
    assert p[0] == pytest.approx(0.9 - 0.4 / 1.5, rel=1e-15)
    assert opt.get_config()["learning_rate"] == 0.4
    opt.lr = 0.2
    assert opt.learning_rate == 0.2 and opt.lr == 0.2
    with pytest.raises(ValueError):
        opt.learning_rate = -1.0


def test_lr_alias():
    assert optimizers.SGD(lr=0.05).learning_rate == 0.05
    assert optimizers.Adam(lr=0.002).learning_rate == 0.002
    with pytest.raises(TypeError, match="alias"):
        optimizers.SGD(learning_rate=0.1, lr=0.2)


def test_clipping_like_keras():
    # Global norm of (3, 4) is 5; clipnorm=1 rescales both gradients by 1/5.
    opt = optimizers.SGD(1.0, clipnorm=1.0)
    a, b = np.array([0.0]), np.array([0.0])
    ga, gb = np.array([3.0]), np.array([4.0])
    opt.apply([a, b], [ga, gb])
    assert a[0] == pytest.approx(-0.6) and b[0] == pytest.approx(-0.8)
    assert ga[0] == 3.0
    opt = optimizers.SGD(1.0, clipnorm=10.0)          # under the norm: unchanged
    opt.apply([a], [np.array([3.0])])
    assert a[0] == pytest.approx(-3.6)
    opt = optimizers.SGD(1.0, clipvalue=0.5)
    p = np.zeros(3)
    opt.apply([p], [np.array([3.0, -0.2, -7.0])])
    np.testing.assert_allclose(p, [-0.5, 0.2, 0.5])


def test_get_names_case_insensitive_and_instances():
    for name, cls in [("sgd", optimizers.SGD), ("Adam", optimizers.Adam),
                      ("RMSprop", optimizers.RMSprop), ("ADAGRAD", optimizers.Adagrad),
                      ("adadelta", optimizers.Adadelta)]:
        assert type(optimizers.get(name)) is cls
    opt = optimizers.SGD(0.05)
    assert optimizers.get(opt) is opt
    assert optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.3}}).learning_rate \
        == 0.3
    with pytest.raises(ValueError) as info:
        optimizers.get("lion")
    for name in ["sgd", "adam", "rmsprop", "adagrad", "adadelta", "adamw"]:
        assert name in str(info.value)
    with pytest.raises(TypeError):
        optimizers.get(0.1)


@pytest.mark.parametrize("make, pattern", [
    (lambda: optimizers.SGD(-0.1), "learning_rate"),
    (lambda: optimizers.SGD(float("nan")), "learning_rate"),
    (lambda: optimizers.SGD(momentum=1.0), "momentum"),
    (lambda: optimizers.SGD(momentum=-0.1), "momentum"),
    (lambda: optimizers.SGD(decay=-1e-6), "decay"),
    (lambda: optimizers.Adam(beta_1=1.0), "beta_1"),
    (lambda: optimizers.Adam(beta_2=-0.5), "beta_2"),
    (lambda: optimizers.Adam(epsilon=-1e-8), "epsilon"),
    (lambda: optimizers.RMSprop(rho=1.5), "rho"),
    (lambda: optimizers.Adadelta(epsilon=0.0), "epsilon"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (lambda: optimizers.Adagrad(epsilon=0.0), "epsilon"),
    (lambda: optimizers.SGD(clipnorm=0.0), "clipnorm"),
])
def test_bad_hyperparameters_raise_value_error(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD("0.1"),
    lambda: optimizers.SGD(nesterov="yes"),
    lambda: optimizers.Adam(amsgrad=1),
    lambda: optimizers.SGD(0.1, 0.9, True, 0.0, momentun=0.9),
])
def test_bad_hyperparameter_types_raise_type_error(make):
    with pytest.raises(TypeError):
        make()


def test_apply_errors():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="one gradient per parameter"):
        opt.apply([np.zeros(3)], [])
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(TypeError, match="float"):
        opt.apply([np.zeros(3, dtype=int)], [np.zeros(3)])
    read_only = np.zeros(3)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        opt.apply([read_only], [np.zeros(3)])
    opt.apply([np.zeros(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="same 1 parameters"):
        opt.apply([np.zeros(3), np.zeros(2)], [np.ones(3), np.ones(2)])
    assert opt.iterations == 1


def test_config_is_json_and_round_trips():
    for make in ALL:
        opt = make()
        config = opt.get_config()
        assert config["class_name"] == type(opt).__name__
        rebuilt = optimizers.from_config(json.loads(json.dumps(config)))
        assert type(rebuilt) is type(opt) and rebuilt.get_config() == config
    clipped = optimizers.RMSprop(clipnorm=2.0, clipvalue=1.0)
    assert optimizers.from_config(clipped.get_config()).get_config() == clipped.get_config()


@pytest.mark.parametrize("make", ALL)
def test_updates_split_between_threads_equal_one_thread(make, monkeypatch):
    """A large parameter is updated in contiguous shares on glassnet's worker threads (every rule is
    elementwise): the result is the same, bit for bit, as on one thread; a strided parameter
    stays on one thread and is still updated in place."""
    from glassnet import ops
    monkeypatch.setattr("glassnet.ops.parallel.MIN_PARALLEL_BYTES", 0)
    rng = np.random.default_rng(4)
    start = [rng.standard_normal((37, 5)), rng.standard_normal(101), rng.standard_normal((8, 6))[:, ::2]]
    grads = [[rng.standard_normal(p.shape) for p in start] for _ in range(3)]
    results = {}
    for threads in (1, 3):
        monkeypatch.setattr(ops, "NUM_THREADS", threads)
        opt, params = make(), [p.copy() for p in start[:2]] + [np.zeros((8, 6))[:, ::2]]
        params[2][...] = start[2]
        for step in grads:
            opt.apply(params, step)
        results[threads] = params
    for one, split in zip(results[1], results[3]):
        np.testing.assert_array_equal(split, one)
    assert not np.array_equal(results[3][2], start[2])                # the strided one moved too
