"""Keras 3's optimizer set (RMSprop, Adagrad, Adam with AMSGrad, AdamW, Nadam), the base arguments
(weight_decay, clipnorm, clipvalue, global_clipnorm) and learning-rate schedules, each against
its formula written out here again as plain float64 loops over the elements, one step at a time."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinynet import Sequential, backend, engine, load_model, optimizers, schedules
from tinynet.layers import Activation, Dense
from tinynet.optimizers import SGD, Adagrad, Adam, AdamW, Nadam, RMSprop
from tinynet.schedules import CosineDecay, ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay

from test_optimizers import _run  # noqa: E402 - tests/ is on the path: the same stepping helper

N, STEPS = 10, 5
WEIGHTS = [slice(0, 3), slice(3, 4), slice(4, 10)]  # three weight arrays in a flat vector of N


def _problem(seed=0, n=N, steps=STEPS):
    """Start weights and a different gradient every step (mixed signs, magnitudes from 1e-3 to 10)."""
    gen = np.random.default_rng(seed)
    p0 = gen.standard_normal(n)
    return p0, [gen.standard_normal(n) * 10.0 ** gen.uniform(-3, 1, n) for _ in range(steps)]


class FakeModel:
    """Just what an optimizer asks of its model for clipnorm: where each weight array sits."""

    name = "fake"

    def weight_slices(self):
        return list(WEIGHTS)


# ---- the rules, by hand: one element at a time, in float64 -------------------------------------------
class ByHandRMSprop:
    def __init__(self, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        self.velocity, self.average, self.buffer = [0.0] * N, [0.0] * N, [0.0] * N

    def apply(self, p, g, lr, t):
        for i in range(N):
            self.velocity[i] = self.rho * self.velocity[i] + (1 - self.rho) * g[i] ** 2
            denominator = self.velocity[i] + self.epsilon
            if self.centered:
                self.average[i] = self.rho * self.average[i] + (1 - self.rho) * g[i]
                denominator -= self.average[i] ** 2
            increment = lr * g[i] / math.sqrt(denominator)
            if self.momentum > 0:
                self.buffer[i] = self.momentum * self.buffer[i] + increment
                increment = self.buffer[i]
            p[i] -= increment


class ByHandAdagrad:
    def __init__(self, initial_accumulator_value=0.1, epsilon=1e-7):
        self.accumulator, self.epsilon = [initial_accumulator_value] * N, epsilon

    def apply(self, p, g, lr, t):
        for i in range(N):
            self.accumulator[i] += g[i] ** 2
            p[i] -= lr * g[i] / math.sqrt(self.accumulator[i] + self.epsilon)


class ByHandAdam:
    def __init__(self, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
        self.b1, self.b2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        self.m, self.v, self.v_max = [0.0] * N, [0.0] * N, [0.0] * N

    def apply(self, p, g, lr, t):
        for i in range(N):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g[i]
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g[i] ** 2
            self.v_max[i] = max(self.v_max[i], self.v[i])
            v = self.v_max[i] if self.amsgrad else self.v[i]
            m_hat, v_hat = self.m[i] / (1 - self.b1 ** t), v / (1 - self.b2 ** t)
            # Keras's epsilon sits beside sqrt(v), not sqrt(v_hat): epsilon / sqrt(1 - beta_2^t) beside sqrt(v_hat)
            p[i] -= lr * m_hat / (math.sqrt(v_hat) + self.epsilon / math.sqrt(1 - self.b2 ** t))


class ByHandNadam:
    """Keras's Nadam, its momentum product kept as Keras keeps it: a running variable."""

    def __init__(self, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.b1, self.b2, self.epsilon = beta_1, beta_2, epsilon
        self.m, self.v, self.u_product = [0.0] * N, [0.0] * N, 1.0

    def apply(self, p, g, lr, t):
        u_t = self.b1 * (1 - 0.5 * 0.96 ** t)
        u_next = self.b1 * (1 - 0.5 * 0.96 ** (t + 1))
        self.u_product *= u_t
        for i in range(N):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g[i]
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g[i] ** 2
            m_hat = u_next * self.m[i] / (1 - self.u_product * u_next) + (1 - u_t) * g[i] / (1 - self.u_product)
            v_hat = self.v[i] / (1 - self.b2 ** t)
            p[i] -= lr * m_hat / (math.sqrt(v_hat) + self.epsilon)


class ByHandSGD:
    def __init__(self, momentum=0.0):
        self.momentum, self.velocity = momentum, [0.0] * N

    def apply(self, p, g, lr, t):
        for i in range(N):
            self.velocity[i] = self.momentum * self.velocity[i] - lr * g[i]
            p[i] += self.velocity[i]


def _clip_each(g, limit, pieces):
    """Keras's clipnorm (each piece on its own) or global_clipnorm (one piece): g * min(1, limit / ||g||)."""
    g = list(g)
    for piece in pieces:
        norm = math.sqrt(sum(x * x for x in g[piece]))
        if norm > limit:
            g[piece] = [x * limit / norm for x in g[piece]]
    return g


def by_hand(rule, p0, grads, lr=0.01, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
            pieces=WEIGHTS):
    """Keras 3's step by hand: clip, decay the weights, then the rule; `lr` a number or a function of the step count."""
    p, out = [float(x) for x in p0], []
    for step, g in enumerate(grads):
        rate = lr(step) if callable(lr) else lr  # a schedule sees the steps taken before this one
        g = [float(x) for x in g]
        if clipvalue is not None:
            g = [min(max(x, -clipvalue), clipvalue) for x in g]
        if clipnorm is not None:
            g = _clip_each(g, clipnorm, pieces)
        if global_clipnorm is not None:
            g = _clip_each(g, global_clipnorm, [slice(None)])
        if weight_decay is not None:
            p = [x - x * weight_decay * rate for x in p]
        rule.apply(p, g, rate, step + 1)
        out.append(np.array(p))
    return out


STAIRS = PiecewiseConstantDecay([1, 3], [0.05, 0.02, 0.01])  # a different rate at steps 0-1, 2-3, 4


def _stairs(step):
    return 0.05 if step <= 1 else 0.02 if step <= 3 else 0.01


CASES = {
    "rmsprop": (lambda: RMSprop(0.01), lambda: ByHandRMSprop(), {"lr": 0.01}),
    "rmsprop centered": (lambda: RMSprop(0.01, rho=0.8, centered=True), lambda: ByHandRMSprop(0.8, centered=True),
                         {"lr": 0.01}),
    "rmsprop momentum": (lambda: RMSprop(0.01, momentum=0.9), lambda: ByHandRMSprop(momentum=0.9), {"lr": 0.01}),
    "rmsprop centered momentum": (lambda: RMSprop(0.02, rho=0.5, momentum=0.5, epsilon=1e-3, centered=True),
                                  lambda: ByHandRMSprop(0.5, 0.5, 1e-3, True), {"lr": 0.02}),
    "adagrad": (lambda: Adagrad(0.1), lambda: ByHandAdagrad(), {"lr": 0.1}),
    "adagrad from 0": (lambda: Adagrad(0.1, initial_accumulator_value=0.0, epsilon=1e-3),
                       lambda: ByHandAdagrad(0.0, 1e-3), {"lr": 0.1}),
    "adam amsgrad": (lambda: Adam(0.01, amsgrad=True), lambda: ByHandAdam(amsgrad=True), {"lr": 0.01}),
    "adam amsgrad betas": (lambda: Adam(0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-3, amsgrad=True),
                           lambda: ByHandAdam(0.5, 0.9, 1e-3, True), {"lr": 0.05}),
    "adamw": (lambda: AdamW(0.01, weight_decay=0.1), lambda: ByHandAdam(), {"lr": 0.01, "weight_decay": 0.1}),
    "adamw default decay": (lambda: AdamW(0.5), lambda: ByHandAdam(), {"lr": 0.5, "weight_decay": 0.004}),
    "adamw amsgrad": (lambda: AdamW(0.01, weight_decay=0.1, amsgrad=True), lambda: ByHandAdam(amsgrad=True),
                      {"lr": 0.01, "weight_decay": 0.1}),
    "nadam": (lambda: Nadam(0.01), lambda: ByHandNadam(), {"lr": 0.01}),
    "nadam betas": (lambda: Nadam(0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-3), lambda: ByHandNadam(0.5, 0.9, 1e-3),
                    {"lr": 0.05}),
    "adam weight decay": (lambda: Adam(0.01, weight_decay=0.2), lambda: ByHandAdam(),
                          {"lr": 0.01, "weight_decay": 0.2}),
    "sgd weight decay": (lambda: SGD(0.1, momentum=0.9, weight_decay=0.3), lambda: ByHandSGD(0.9),
                         {"lr": 0.1, "weight_decay": 0.3}),
    "adam clipvalue": (lambda: Adam(0.01, clipvalue=0.5), lambda: ByHandAdam(), {"lr": 0.01, "clipvalue": 0.5}),
    "sgd global_clipnorm": (lambda: SGD(0.1, global_clipnorm=2.0), lambda: ByHandSGD(),
                            {"lr": 0.1, "global_clipnorm": 2.0}),
    "rmsprop clipnorm": (lambda: RMSprop(0.01, clipnorm=1.0), lambda: ByHandRMSprop(), {"lr": 0.01, "clipnorm": 1.0}),
    "adam clipnorm": (lambda: Adam(0.01, clipnorm=1.0), lambda: ByHandAdam(), {"lr": 0.01, "clipnorm": 1.0}),
    "adam schedule": (lambda: Adam(STAIRS), lambda: ByHandAdam(), {"lr": _stairs}),
    "sgd schedule": (lambda: SGD(STAIRS, momentum=0.5), lambda: ByHandSGD(0.5), {"lr": _stairs}),
    "nadam schedule": (lambda: Nadam(STAIRS), lambda: ByHandNadam(), {"lr": _stairs}),
    "adamw schedule clipnorm": (lambda: AdamW(STAIRS, weight_decay=0.5, clipnorm=1.0), lambda: ByHandAdam(),
                                {"lr": _stairs, "weight_decay": 0.5, "clipnorm": 1.0}),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_each_optimizer_follows_its_keras_rule(xb, case, seed):
    make, rule, settings = CASES[case]
    p0, grads = _problem(seed)
    optimizer, model = make(), FakeModel()
    optimizer.attach(model)  # clipnorm clips each of the model's weight arrays on its own
    got = _run(optimizer, p0, grads)
    want = by_hand(rule(), p0, grads, **settings)
    for step, (a, b) in enumerate(zip(got, want), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{case}, step {step}")
    assert optimizer.iterations == STEPS


@pytest.mark.parametrize("plain, variant", [
    (lambda: RMSprop(0.01), lambda: RMSprop(0.01, centered=True)),
    (lambda: RMSprop(0.01), lambda: RMSprop(0.01, momentum=0.9)),
    (lambda: Adam(0.01), lambda: Adam(0.01, amsgrad=True)),
    (lambda: Adam(0.01), lambda: AdamW(0.01, weight_decay=0.1)),
    (lambda: Adam(0.01), lambda: Nadam(0.01)),
    (lambda: Adagrad(0.1), lambda: Adagrad(0.1, initial_accumulator_value=1.0)),
    (lambda: Adam(0.01), lambda: Adam(0.01, clipvalue=0.5)),
    (lambda: Adam(0.01, clipnorm=1.0), lambda: Adam(0.01, global_clipnorm=1.0)),
    (lambda: Adam(0.02), lambda: Adam(STAIRS)),
])
def test_each_option_changes_the_steps_taken(plain, variant):
    """The problems above exercise every option: none of them is a no-op there (so the comparisons can fail)."""
    p0, grads = _problem()
    a, b, model = plain(), variant(), FakeModel()
    a.attach(model)
    b.attach(model)
    assert not np.allclose(_run(a, p0, grads)[-1], _run(b, p0, grads)[-1], rtol=1e-6, atol=0)


def test_clipnorm_clips_each_weight_array_and_leaves_the_callers_gradient_alone(xb):
    g = np.array([3.0, 4.0, 0.0, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # norms 5, 0.5, ~0.245 per weight array
    optimizer, model = SGD(1.0, clipnorm=1.0), FakeModel()
    optimizer.attach(model)
    params, grads = backend.to_device(np.zeros(N)), backend.to_device(g.copy())
    optimizer.step(params, grads)
    want = -np.array([0.6, 0.8, 0.0, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # only the first array is clipped
    np.testing.assert_allclose(backend.to_numpy(params), want, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(backend.to_numpy(grads), g)
    alone = SGD(1.0, clipnorm=1.0)  # no model: the whole vector is one weight, norm ~5.03
    params = backend.to_device(np.zeros(N))
    alone.step(params, grads)
    np.testing.assert_allclose(backend.to_numpy(params), -g / np.linalg.norm(g), rtol=1e-14)
    np.testing.assert_array_equal(backend.to_numpy(grads), g)


def test_a_zero_gradient_is_not_clipped_to_nan(xb):
    for optimizer in (SGD(1.0, clipnorm=1.0), SGD(1.0, global_clipnorm=1.0)):
        params = backend.to_device(np.ones(4))
        optimizer.step(params, backend.to_device(np.zeros(4)))
        np.testing.assert_array_equal(backend.to_numpy(params), np.ones(4))


# ---- which code runs: the fast twins only for the rule they stand in for -------------------------------
def test_only_plain_adam_at_a_fixed_rate_reaches_the_adam_twin(monkeypatch):
    calls = []
    monkeypatch.setattr(engine.fast, "adam_update", lambda optimizer, p, g: calls.append(type(optimizer).__name__))
    p0, grads = _problem()
    for optimizer in (Adam(amsgrad=True), Adam(STAIRS), Nadam(), RMSprop(), Adagrad(), SGD(),
                      AdamW(amsgrad=True)):
        _run(optimizer, p0, grads[:1])
    assert calls == []
    for optimizer in (Adam(), AdamW(), Adam(clipnorm=1.0)):  # decay and clipping are done in step, before update
        _run(optimizer, p0, grads[:1])
    assert calls == ["Adam", "AdamW", "Adam"]


def test_only_its_rule_says_when_a_step_is_just_the_kernel():
    assert Adam().only_its_rule() and SGD(momentum=0.9).only_its_rule()
    for optimizer in (Adam(amsgrad=True), Adam(clipnorm=1.0), Adam(clipvalue=1.0), Adam(global_clipnorm=1.0),
                      Adam(weight_decay=0.1), AdamW(), Adam(STAIRS), SGD(STAIRS), SGD(weight_decay=0.1)):
        assert not optimizer.only_its_rule(), optimizer.get_config()


def test_the_guarded_gpu_step_keeps_clipping_and_decay(xb):
    """fit's `if ok: step` on the device: an Adam that does more than its kernel takes the host path, in full."""
    if engine.fast.step_if is None:
        pytest.skip(f"the {xb} backend decides `if ok` on the host (no step_if twin)")
    xp = backend.xp()
    p0, grads = _problem()
    for make in (lambda: Adam(0.01, clipvalue=0.5), lambda: Adam(0.01, weight_decay=0.2), lambda: Adam(STAIRS)):
        guarded, plain = make(), make()
        params, want = backend.to_device(p0.copy(), "float64"), backend.to_device(p0.copy(), "float64")
        for g in grads:
            engine.fast.step_if(xp.ones((), dtype=bool), guarded, params, backend.to_device(g, "float64"))
            plain.step(want, backend.to_device(g, "float64"))
        engine.fast.step_if(xp.zeros((), dtype=bool), guarded, params, backend.to_device(grads[0], "float64"))
        np.testing.assert_allclose(backend.to_numpy(params), backend.to_numpy(want), rtol=1e-12, atol=1e-14)
        assert guarded.iterations == STEPS


# ---- schedules ---------------------------------------------------------------------------------------
STEPS_TO_CHECK = [0, 1, 5, 9, 10, 11, 50, 99, 100, 101, 250, 1000]


@pytest.mark.parametrize("schedule, formula", [
    (ExponentialDecay(0.1, 100, 0.5), lambda s: 0.1 * 0.5 ** (s / 100)),
    (ExponentialDecay(0.1, 100, 0.5, staircase=True), lambda s: 0.1 * 0.5 ** (s // 100)),
    (InverseTimeDecay(0.1, 10, 0.5), lambda s: 0.1 / (1 + 0.5 * s / 10)),
    (InverseTimeDecay(0.1, 10, 0.5, staircase=True), lambda s: 0.1 / (1 + 0.5 * (s // 10))),
    (CosineDecay(0.1, 100), lambda s: 0.1 * 0.5 * (1 + math.cos(math.pi * min(s, 100) / 100))),
    (CosineDecay(0.1, 100, alpha=0.1), lambda s: 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 100) / 100)) + 0.1)),
    (CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10),
     lambda s: 0.2 * s / 10 if s < 10 else 0.2 * 0.5 * (1 + math.cos(math.pi * min(s - 10, 100) / 100))),
    (CosineDecay(0.05, 50, alpha=0.2, warmup_target=0.1, warmup_steps=100),
     lambda s: 0.05 + 0.05 * s / 100 if s < 100 else 0.1 * (0.8 * 0.5 * (1 + math.cos(math.pi * min(s - 100, 50) / 50))
                                                            + 0.2)),
])
def test_each_schedule_follows_its_keras_formula(schedule, formula):
    for step in STEPS_TO_CHECK:
        assert schedule(step) == pytest.approx(formula(step), rel=1e-13, abs=1e-16), step


def test_schedules_at_their_corners_by_hand():
    pieces = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [pieces(s) for s in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]  # a boundary is inclusive
    assert ExponentialDecay(0.1, 100, 0.5, staircase=True)(199) == 0.05
    assert ExponentialDecay(0.1, 100, 0.5)(200) == pytest.approx(0.025)
    assert InverseTimeDecay(1.0, 10, 1.0, staircase=True)(29) == 1 / 3
    cosine = CosineDecay(0.1, 100, alpha=0.1)
    assert (cosine(0), cosine(50), cosine(100), cosine(200)) == pytest.approx((0.1, 0.055, 0.01, 0.01))
    warm = CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10)
    assert (warm(0), warm(5), warm(10), warm(60), warm(110), warm(500)) == pytest.approx((0, 0.1, 0.2, 0.1, 0, 0))


def test_the_learning_rate_is_the_schedule_at_the_steps_taken():
    optimizer = SGD(ExponentialDecay(0.1, 2, 0.5))
    params = np.zeros(3)
    rates = []
    for _ in range(4):
        rates.append(optimizer.learning_rate)
        optimizer.step(params, np.ones(3))
    assert rates == pytest.approx([0.1, 0.1 * 0.5 ** 0.5, 0.05, 0.05 * 0.5 ** 0.5])
    np.testing.assert_allclose(params, -sum(rates) * np.ones(3), rtol=1e-14)  # each step used the rate read before it


# ---- the learning-rate setter ------------------------------------------------------------------------
def test_a_number_rate_can_be_set_between_steps():
    optimizer, params = SGD(0.1), np.zeros(2)
    optimizer.step(params, np.ones(2))
    optimizer.learning_rate = 0.5
    optimizer.step(params, np.ones(2))
    np.testing.assert_allclose(params, [-0.6, -0.6], rtol=1e-15)
    assert optimizer.get_config()["learning_rate"] == 0.5
    with pytest.raises(ValueError, match=r"SGD: learning_rate must be a finite number > 0, got -1"):
        optimizer.learning_rate = -1
    with pytest.raises(TypeError, match=r"SGD: learning_rate must be a number, got '0.1'"):
        optimizer.learning_rate = "0.1"
    assert optimizer.learning_rate == 0.5
    optimizer.learning_rate = STAIRS  # a schedule may replace a number, as in Keras
    assert optimizer.learning_rate == STAIRS(2)


def test_a_number_cannot_replace_a_schedule():
    optimizer = Adam(ExponentialDecay(0.01, 10, 0.9))
    with pytest.raises(TypeError, match=r"Adam: the learning rate follows a schedule \(ExponentialDecay\), so it "
                                        r"cannot be set to a number \(got 0.1\)"):
        optimizer.learning_rate = 0.1
    assert optimizer.learning_rate == 0.01


# ---- configuration and state ---------------------------------------------------------------------------
CONFIGURED = [
    lambda: RMSprop(0.02, rho=0.8, momentum=0.5, epsilon=1e-5, centered=True, clipnorm=2.0),
    lambda: Adagrad(CosineDecay(0.1, 20, alpha=0.1, warmup_target=0.2, warmup_steps=2),
                    initial_accumulator_value=0.5, epsilon=1e-6, clipvalue=0.3),
    lambda: Adam(ExponentialDecay(0.01, 3, 0.5, staircase=True), beta_1=0.8, amsgrad=True, global_clipnorm=1.5),
    lambda: AdamW(InverseTimeDecay(0.01, 2, 0.5), weight_decay=0.01, beta_2=0.99, epsilon=1e-6, amsgrad=True),
    lambda: Nadam(PiecewiseConstantDecay([2, 4], [0.03, 0.02, 0.01]), beta_1=0.7, beta_2=0.95, weight_decay=0.05),
    lambda: SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01, clipvalue=1.0),
]


@pytest.mark.parametrize("make", CONFIGURED)
def test_config_round_trips_through_json(make):
    optimizer = make()
    config = optimizer.get_config()
    again = optimizers.from_config(json.loads(json.dumps(config)))
    assert type(again) is type(optimizer) and again.get_config() == config
    assert again.slot_names == optimizer.slot_names  # what a model file holds is worked out from this
    assert [again.learning_rate] == [optimizer.learning_rate]


@pytest.mark.parametrize("make", CONFIGURED)
def test_state_round_trip_continues_identically(xb, make):
    p0, grads = _problem(steps=6)
    original, model = make(), FakeModel()
    original.attach(model)
    params = backend.to_device(p0.copy(), "float64")
    for g in grads[:3]:
        original.step(params, backend.to_device(g, "float64"))
    state = original.get_state()
    assert set(state) == {"iterations", *original.slot_names} and int(state["iterations"]) == 3
    copy = optimizers.from_config(original.get_config())
    copy.attach(model)
    copy.set_state(state)
    copy_params = params.copy()
    for g in grads[3:]:
        original.step(params, backend.to_device(g, "float64"))
        copy.step(copy_params, backend.to_device(g, "float64"))
    np.testing.assert_array_equal(backend.to_numpy(copy_params), backend.to_numpy(params))
    for key, value in original.get_state().items():
        np.testing.assert_array_equal(copy.get_state()[key], value, err_msg=key)


@pytest.mark.parametrize("make", [lambda: RMSprop(ExponentialDecay(0.01, 4, 0.5), momentum=0.5, centered=True,
                                                  clipnorm=1.0),
                                  lambda: Adam(0.01, amsgrad=True, weight_decay=0.01)])
def test_a_saved_model_keeps_its_optimizer(tmp_path, make):
    """A model file holds the slots that slot_names lists for the optimizer its configuration describes."""
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((32, 4)).astype(np.float32), np.eye(3, dtype=np.float32)[np.arange(32) % 3]
    model = Sequential([Dense(5, input_shape=(4,)), Activation("relu"), Dense(3), Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=make())
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    assert again.optimizer.get_config() == model.optimizer.get_config()
    for key, value in model.optimizer.get_state().items():
        np.testing.assert_array_equal(again.optimizer.get_state()[key], value, err_msg=key)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    again.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_nadam_recomputes_its_momentum_product_after_going_back():
    """Nadam keeps no u_product slot: set back to an earlier step, the same instance repeats the same steps."""
    p0, grads = _problem(steps=6)
    optimizer, params = Nadam(0.05), p0.copy()
    for g in grads[:2]:
        optimizer.step(params, g)
    state, saved = optimizer.get_state(), params.copy()
    assert set(state) == {"iterations", "m", "v"}
    for g in grads[2:]:
        optimizer.step(params, g)
    first = params.copy()
    optimizer.set_state(state)
    params = saved
    for g in grads[2:]:
        optimizer.step(params, g)
    np.testing.assert_array_equal(params, first)
    np.testing.assert_allclose(first, by_hand(ByHandNadam(), p0, grads, lr=0.05)[-1], rtol=1e-10)


def test_slot_names_follow_the_arguments_as_in_keras():
    assert RMSprop().slot_names == ("velocity",)
    assert RMSprop(momentum=0.5, centered=True).slot_names == ("velocity", "momentum", "average_gradient")
    assert Adagrad().slot_names == ("accumulator",)
    assert Adam().slot_names == ("m", "v") and Adam(amsgrad=True).slot_names == ("m", "v", "velocity_hat")
    assert AdamW().slot_names == ("m", "v") and Nadam().slot_names == ("m", "v")
    assert SGD().slot_names == ("velocity",)


def test_adagrad_starts_its_accumulator_at_the_initial_value_again_after_a_reset():
    optimizer, params = Adagrad(0.1, initial_accumulator_value=0.25), np.zeros(3)
    optimizer.step(params, np.array([1.0, 2.0, 0.0]))
    np.testing.assert_array_equal(optimizer.slots["accumulator"], [1.25, 4.25, 0.25])
    optimizer.set_state({"iterations": np.array(0)})  # what a model does when its weights change size
    optimizer.step(params, np.array([0.0, 0.0, 1.0]))
    np.testing.assert_array_equal(optimizer.slots["accumulator"], [0.25, 0.25, 1.25])


def test_keras_defaults():
    rms, ada, adam, adamw, nadam = RMSprop(), Adagrad(), Adam(), AdamW(), Nadam()
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon, rms.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    assert (ada.learning_rate, ada.initial_accumulator_value, ada.epsilon) == (0.001, 0.1, 1e-7)
    assert adam.amsgrad is False and adam.weight_decay is None
    assert (adamw.learning_rate, adamw.weight_decay, adamw.beta_1, adamw.beta_2, adamw.epsilon, adamw.amsgrad) == (
        0.001, 0.004, 0.9, 0.999, 1e-7, False)
    assert (nadam.learning_rate, nadam.beta_1, nadam.beta_2, nadam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    for optimizer in (rms, ada, adam, nadam, SGD()):
        assert (optimizer.weight_decay, optimizer.clipnorm, optimizer.clipvalue, optimizer.global_clipnorm) == (
            None, None, None, None)


def test_every_name_gives_its_optimizer_in_any_case():
    for name, cls in [("sgd", SGD), ("Adam", Adam), ("RMSprop", RMSprop), ("adagrad", Adagrad), ("AdamW", AdamW),
                      ("NADAM", Nadam)]:
        assert type(optimizers.get(name)) is cls
    assert optimizers.schedules is schedules


# ---- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, error, message", [
    (lambda: RMSprop(rho=1.0), ValueError, r"RMSprop: rho must be in \[0, 1\), got 1.0"),
    (lambda: RMSprop(rho=-0.1), ValueError, r"RMSprop: rho must be in \[0, 1\), got -0.1"),
    (lambda: RMSprop(momentum=1), ValueError, r"RMSprop: momentum must be in \[0, 1\), got 1"),
    (lambda: RMSprop(epsilon=-1e-7), ValueError, r"RMSprop: epsilon must be a finite number >= 0, got -1e-07"),
    (lambda: RMSprop(centered="yes"), TypeError, r"RMSprop: centered must be True or False, got 'yes'"),
    (lambda: Adagrad(float("nan")), ValueError, r"Adagrad: learning_rate must be a finite number > 0, got nan"),
    (lambda: Adagrad(initial_accumulator_value=-1), ValueError,
     r"Adagrad: initial_accumulator_value must be a finite number >= 0, got -1"),
    (lambda: Adam(amsgrad=1), TypeError, r"Adam: amsgrad must be True or False, got 1"),
    (lambda: AdamW(weight_decay=-0.1), ValueError, r"AdamW: weight_decay must be a finite number >= 0, got -0.1"),
    (lambda: AdamW(weight_decay=None), TypeError, r"AdamW: weight_decay must be a number, got None"),
    (lambda: Nadam(beta_1=1.0), ValueError, r"Nadam: beta_1 must be in \[0, 1\), got 1.0"),
    (lambda: Nadam(-0.001), ValueError, r"Nadam: learning_rate must be a finite number > 0, got -0.001"),
    (lambda: SGD(weight_decay=float("inf")), ValueError, r"SGD: weight_decay must be a finite number >= 0, got inf"),
    (lambda: Adam(clipnorm=0), ValueError, r"Adam: clipnorm must be a finite number > 0, got 0"),
    (lambda: Adam(clipvalue=-1.0), ValueError, r"Adam: clipvalue must be a finite number > 0, got -1.0"),
    (lambda: RMSprop(global_clipnorm="1"), TypeError, r"RMSprop: global_clipnorm must be a number, got '1'"),
    (lambda: Adam(clipnorm=1.0, global_clipnorm=2.0), ValueError,
     r"Adam: set at most one of clipnorm, clipvalue and global_clipnorm, got clipnorm=1.0, global_clipnorm=2.0"),
    (lambda: SGD(clipvalue=1.0, clipnorm=3.0), ValueError,
     r"SGD: set at most one of clipnorm, clipvalue and global_clipnorm, got clipnorm=3.0, clipvalue=1.0"),
    (lambda: ExponentialDecay(0.1, 0, 0.5), ValueError, r"ExponentialDecay: decay_steps must be a finite number > 0, "
                                                         r"got 0"),
    (lambda: ExponentialDecay(0.1, 10, 0.5, staircase="no"), TypeError,
     r"ExponentialDecay: staircase must be True or False, got 'no'"),
    (lambda: InverseTimeDecay(0.1, 10, -1), ValueError, r"InverseTimeDecay: decay_rate must be a finite number >= 0, "
                                                         r"got -1"),
    (lambda: CosineDecay(0.1, -5), ValueError, r"CosineDecay: decay_steps must be a finite number > 0, got -5"),
    (lambda: CosineDecay(0.1, 5, alpha=2), ValueError, r"CosineDecay: alpha must be in \[0, 1\], got 2"),
    (lambda: CosineDecay(float("inf"), 5), ValueError,
     r"CosineDecay: initial_learning_rate must be a finite number >= 0, got inf"),
    (lambda: PiecewiseConstantDecay([10, 20], [1.0, 0.5]), ValueError,
     r"PiecewiseConstantDecay: values must have one more entry than boundaries, got 2 boundaries \[10, 20\] and 2 "
     r"values \[1.0, 0.5\]"),
    (lambda: PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]), ValueError,
     r"PiecewiseConstantDecay: boundaries must be strictly increasing, got \[20, 10\]"),
    (lambda: PiecewiseConstantDecay([10, 10], [1.0, 0.5, 0.1]), ValueError,
     r"PiecewiseConstantDecay: boundaries must be strictly increasing, got \[10, 10\]"),
    (lambda: optimizers.get("lbfgs"), ValueError,
     r"unknown optimizer 'lbfgs'; valid optimizers are sgd, adam, rmsprop, adagrad, adamw, nadam"),
    (lambda: optimizers.from_config({"name": "lbfgs"}), ValueError, r"unknown optimizer 'lbfgs'; valid optimizers"),
    (lambda: schedules.deserialize({"class_name": "StepDecay", "config": {}}), ValueError,
     r"unknown learning-rate schedule 'StepDecay'; known are ExponentialDecay, PiecewiseConstantDecay"),
])
def test_bad_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---- against torch.optim, where the two write the same formula -------------------------------------------
def _torch_run(make, p0, grads):
    torch = pytest.importorskip("torch", reason="torch is optional: the comparison with torch.optim needs it")
    was = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # else torch keeps its step count and NAdam's mu product in float32
    try:
        param = torch.nn.Parameter(torch.tensor(p0))
        optimizer = make(torch, [param])
        history = []
        for g in grads:
            param.grad = torch.tensor(g)
            optimizer.step()
            history.append(param.detach().numpy().copy())
    finally:
        torch.set_default_dtype(was)
    return history


# torch adds epsilon outside the square root (RMSprop, Adagrad) or beside sqrt(v_hat) (Adam, AdamW), where
# Keras puts it inside the root or beside sqrt(v): the formulas coincide at epsilon = 0. torch's NAdam places
# epsilon as Keras does, and its momentum_decay=1.0 gives Keras's 0.96^t (torch's default 0.004 would not).
TORCH_PAIRS = {
    "rmsprop": (lambda: RMSprop(0.01, epsilon=0.0),
                lambda torch, ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=0.0)),
    "rmsprop centered momentum": (lambda: RMSprop(0.01, rho=0.8, momentum=0.9, epsilon=0.0, centered=True),
                                  lambda torch, ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.8, eps=0.0, momentum=0.9,
                                                                        centered=True)),
    "adagrad": (lambda: Adagrad(0.1, initial_accumulator_value=0.1, epsilon=0.0),
                lambda torch, ps: torch.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.1, eps=0.0)),
    "adam amsgrad": (lambda: Adam(0.01, beta_1=0.8, beta_2=0.9, epsilon=0.0, amsgrad=True),
                     lambda torch, ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), eps=0.0, amsgrad=True)),
    "adamw": (lambda: AdamW(0.01, weight_decay=0.1, epsilon=0.0),
              lambda torch, ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, eps=0.0)),
    "nadam": (lambda: Nadam(0.01, beta_1=0.9, beta_2=0.99, epsilon=1e-3),
              lambda torch, ps: torch.optim.NAdam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-3, momentum_decay=1.0)),
}


@pytest.mark.parametrize("pair", TORCH_PAIRS)
def test_the_same_steps_as_torch_optim(pair):
    ours, theirs = TORCH_PAIRS[pair]
    p0, grads = _problem()
    want = _torch_run(theirs, p0, grads)
    for step, (a, b) in enumerate(zip(_run(ours(), p0, grads), want), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{pair}, step {step}")
