"""SGD and Adam against the Keras update rules written out by hand, in float64."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import backend, optimizers
from tinynet.optimizers import SGD, Adam

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
STEPS = 5


def _gradients(seed, n, steps=STEPS):
    """A different gradient every step (mixed signs and magnitudes)."""
    gen = np.random.default_rng(seed)
    return [gen.standard_normal(n) * 10.0 ** gen.uniform(-3, 1, n) for _ in range(steps)]


def _run(optimizer, p0, grads):
    """Apply `optimizer` to float64 params on the backend; the params after every step, on the host."""
    params = backend.to_device(p0.copy(), "float64")
    history = []
    for g in grads:
        optimizer.step(params, backend.to_device(g, "float64"))
        history.append(backend.to_numpy(params).copy())
    return history


# ---- Adam -------------------------------------------------------------------------------------------
def _keras_adam(p, grads, lr, b1, b2, eps):
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        p = p - alpha * m / (np.sqrt(v) + eps)
        out.append(p)
    return out


@FAST
@given(n=st.integers(1, 20), seed=st.integers(0, 2**31),
       config=st.sampled_from([(0.001, 0.9, 0.999, 1e-7), (0.05, 0.5, 0.9, 1e-3), (0.3, 0.8, 0.99, 1e-8)]))
def test_adam_matches_keras_sequence(xb, n, seed, config):
    lr, b1, b2, eps = config
    p0, grads = np.random.default_rng(seed + 1).standard_normal(n), _gradients(seed, n)
    got = _run(Adam(lr, b1, b2, eps), p0, grads)
    for step, (a, b) in enumerate(zip(got, _keras_adam(p0, grads, lr, b1, b2, eps)), start=1):
        # tinynet updates m += (1 - b1) (g - m) (as TF does): equal to the textbook form up to rounding
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13, err_msg=f"step {step}")


def test_adam_first_step_by_hand(xb):
    # Step 1: m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(0.001) / 0.1, so
    # p1 = p0 - lr g / (|g| + eps / sqrt(0.001)): about lr * sign(g), whatever the size of g.
    p0 = np.array([1.0, -2.0, 0.5, 3.0])
    g = np.array([0.5, -4.0, 1e-3, -2e-6])
    lr = 0.001  # epsilon is Keras's 1e-7, written out below
    got = _run(Adam(learning_rate=lr), p0, [g])[0]
    by_hand = np.array([1.0 - 0.001 * 0.5 / (0.5 + 1e-7 / 0.0316227766016838),
                        -2.0 + 0.001 * 4.0 / (4.0 + 1e-7 / 0.0316227766016838),
                        0.5 - 0.001 * 1e-3 / (1e-3 + 1e-7 / 0.0316227766016838),
                        3.0 + 0.001 * 2e-6 / (2e-6 + 1e-7 / 0.0316227766016838)])
    np.testing.assert_allclose(got, by_hand, rtol=0, atol=1e-12)
    # without epsilon the first step is exactly lr * sign(g)
    no_eps = _run(Adam(learning_rate=lr, epsilon=0.0), p0, [g])[0]
    np.testing.assert_allclose(no_eps, p0 - lr * np.sign(g), rtol=0, atol=1e-12)
    assert abs(got[0] - (1.0 - lr)) < 1e-8  # "about lr * sign(g)"


# ---- SGD --------------------------------------------------------------------------------------------
def _keras_sgd(p, grads, lr, momentum, nesterov):
    velocity, out = np.zeros_like(p), []
    for g in grads:
        velocity = momentum * velocity - lr * g
        p = p + (momentum * velocity - lr * g if nesterov else velocity)
        out.append(p)
    return out


@FAST
@given(n=st.integers(1, 20), seed=st.integers(0, 2**31), lr=st.sampled_from([0.01, 0.1, 1.0]),
       kind=st.sampled_from(["plain", "momentum", "nesterov"]))
def test_sgd_matches_keras_sequence(xb, n, seed, lr, kind):
    momentum = 0.0 if kind == "plain" else 0.9
    p0, grads = np.random.default_rng(seed + 1).standard_normal(n), _gradients(seed, n)
    got = _run(SGD(lr, momentum=momentum, nesterov=kind == "nesterov"), p0, grads)
    for step, (a, b) in enumerate(zip(got, _keras_sgd(p0, grads, lr, momentum, kind == "nesterov")), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=f"step {step}")


def test_plain_sgd_by_hand(xb):
    got = _run(SGD(learning_rate=0.1), np.array([1.0, -1.0]), [np.array([2.0, -3.0]), np.array([1.0, 1.0])])
    np.testing.assert_allclose(got[0], [0.8, -0.7], rtol=0, atol=1e-15)
    np.testing.assert_allclose(got[1], [0.7, -0.8], rtol=0, atol=1e-15)


def test_momentum_by_hand(xb):
    # v1 = -0.1*2 = -0.2, p1 = 0.8;  v2 = 0.9*-0.2 - 0.1*2 = -0.38, p2 = 0.42
    plain = _run(SGD(0.1, momentum=0.9), np.array([1.0]), [np.array([2.0])] * 2)
    np.testing.assert_allclose(np.concatenate(plain), [0.8, 0.42], rtol=0, atol=1e-15)
    # nesterov: p1 = 1 + 0.9*-0.2 - 0.2 = 0.62;  p2 = 0.62 + 0.9*-0.38 - 0.2 = 0.078
    nesterov = _run(SGD(0.1, momentum=0.9, nesterov=True), np.array([1.0]), [np.array([2.0])] * 2)
    np.testing.assert_allclose(np.concatenate(nesterov), [0.62, 0.078], rtol=0, atol=1e-15)


# ---- state --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: Adam(0.01), lambda: SGD(0.1, momentum=0.9, nesterov=True)])
def test_state_survives_get_and_set(xb, make):
    grads = _gradients(0, 7, steps=6)
    p0 = np.linspace(-1, 1, 7)
    original = make()
    params = backend.to_device(p0.copy(), "float64")
    with backend.using(dtype="float64"):
        for g in grads[:3]:
            original.step(params, backend.to_device(g))
        state = original.get_state()
        assert int(state["iterations"]) == 3
        assert all(isinstance(a, np.ndarray) for a in state.values())
        copy = make()
        copy.set_state(state)
    copy_params = params.copy()
    for g in grads[3:]:
        original.step(params, backend.to_device(g))
        copy.step(copy_params, backend.to_device(g))
    assert np.array_equal(backend.to_numpy(params), backend.to_numpy(copy_params))
    # and the result is the uninterrupted Keras sequence
    want = (_keras_adam(p0, grads, 0.01, 0.9, 0.999, 1e-7) if isinstance(original, Adam)
            else _keras_sgd(p0, grads, 0.1, 0.9, True))[-1]
    np.testing.assert_allclose(backend.to_numpy(params), want, rtol=1e-12, atol=1e-13)


def test_get_state_is_a_copy(xb):
    opt = SGD(0.1, momentum=0.5)
    params = backend.to_device(np.ones(3))
    opt.step(params, backend.to_device(np.ones(3)))
    state = opt.get_state()
    opt.step(params, backend.to_device(np.ones(3)))
    np.testing.assert_array_equal(state["velocity"], [-0.1, -0.1, -0.1])  # v1 = -lr * g, not v2
    restored = SGD(0.1, momentum=0.5)
    restored.set_state(state)
    state["velocity"][...] = 42
    np.testing.assert_allclose(backend.to_numpy(restored.slots["velocity"]), [-0.1, -0.1, -0.1], rtol=1e-6)


def test_state_resets_when_the_model_changes_size(xb):
    opt = Adam()
    opt.step(backend.to_device(np.zeros(3)), backend.to_device(np.ones(3)))
    opt.step(backend.to_device(np.zeros(5)), backend.to_device(np.ones(5)))
    assert opt.iterations == 1 and opt.slots["m"].shape == (5,)


# ---- construction ----------------------------------------------------------------------------------
def test_get_by_name_case_insensitive_and_config_round_trip():
    assert type(optimizers.get("adam")) is Adam and type(optimizers.get("SGD")) is SGD
    opt = SGD(0.2, momentum=0.5, nesterov=True)
    assert optimizers.get(opt) is opt
    again = optimizers.from_config(opt.get_config())
    assert (type(again), again.learning_rate, again.momentum, again.nesterov) == (SGD, 0.2, 0.5, True)
    adam = optimizers.from_config(Adam(0.01, 0.8, 0.99, 1e-5).get_config())
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.01, 0.8, 0.99, 1e-5)


def test_keras_defaults():
    adam, sgd = Adam(), SGD()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match=r"unknown optimizer 'lbfgs'; valid optimizers are sgd, adam, rmsprop, "
                                         r"adagrad, adamw, nadam"):
        optimizers.get("lbfgs")
    with pytest.raises(TypeError, match=r"optimizer must be a name \(sgd, adam, rmsprop, adagrad, adamw, nadam\) "
                                        r"or an Optimizer, got int"):
        optimizers.get(1)
    with pytest.raises(ValueError, match=r"SGD: learning_rate must be a finite number > 0, got 0"):
        SGD(0)
    with pytest.raises(ValueError, match=r"Adam: learning_rate must be a finite number > 0, got -1"):
        Adam(-1)
    with pytest.raises(ValueError, match=r"SGD: momentum must be in \[0, 1\), got 1"):
        SGD(momentum=1)
    with pytest.raises(ValueError, match=r"Adam: beta_2 must be in \[0, 1\), got 1.0"):
        Adam(beta_2=1.0)


def test_learning_rate_must_be_a_number():
    with pytest.raises(TypeError, match=r"Adam: learning_rate must be a number, got '0.1'"):
        Adam("0.1")


@pytest.mark.parametrize("make, message", [
    (lambda: Adam(float("inf")), r"Adam: learning_rate must be a finite number > 0, got inf"),
    (lambda: SGD(float("nan")), r"SGD: learning_rate must be a finite number > 0, got nan"),
    (lambda: Adam(epsilon=float("nan")), r"Adam: epsilon must be a finite number >= 0, got nan"),
    (lambda: Adam(epsilon=-1e-7), r"Adam: epsilon must be a finite number >= 0, got -1e-07"),
    (lambda: Adam(beta_1=float("nan")), r"Adam: beta_1 must be in \[0, 1\), got nan"),
])
def test_numbers_out_of_range_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: Adam(beta_1="0.9"), r"Adam: beta_1 must be a number, got '0.9'"),
    (lambda: Adam(epsilon=None), r"Adam: epsilon must be a number, got None"),
    (lambda: SGD(momentum="high"), r"SGD: momentum must be a number, got 'high'"),
    (lambda: SGD(nesterov="yes"), r"SGD: nesterov must be True or False, got 'yes'"),
])
def test_text_where_a_number_belongs_is_a_type_error(make, message):
    with pytest.raises(TypeError, match=message):
        make()


@pytest.mark.parametrize("state, message", [
    ({"iterations": np.array(-1), "m": np.zeros(3), "v": np.zeros(3)}, r"iterations\) must be a whole number from 0 to"),
    ({"iterations": np.array(2.5), "m": np.zeros(3), "v": np.zeros(3)}, r"iterations\) must be a whole number from 0 to"),
    ({"iterations": np.array([1, 2]), "m": np.zeros(3), "v": np.zeros(3)}, r"must be a whole number from 0 to"),
    ({"iterations": np.array(3), "m": np.zeros(3, int), "v": np.zeros(3)}, r"state m must hold finite real floats, got int"),
    ({"iterations": np.array(3), "m": np.zeros(3), "v": np.zeros(3, complex)}, r"state v must hold finite real floats, got complex"),
    ({"iterations": np.array(3), "m": np.array([0.0, np.nan, 1.0]), "v": np.zeros(3)}, r"state m must hold .* NaN or inf"),
    ({"iterations": np.array(3), "m": np.zeros(3)}, r"Adam: state has m but not all of m, v"),
    ({"m": np.zeros(3), "v": np.zeros(3)}, r"Adam: the state has no step count \(iterations\)"),
    ({"iterations": np.array(2**63 - 1), "m": np.zeros(3), "v": np.zeros(3)}, r"from 0 to 9007199254740992"),
])
def test_a_crafted_optimizer_state_is_refused(state, message):
    optimizer = Adam()
    with pytest.raises(ValueError, match=message):
        optimizer.set_state(state)
    assert optimizer.iterations == 0 and optimizer.slots == {}  # nothing was taken
