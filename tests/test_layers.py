"""Layers: forward math against plain NumPy, backward passes against finite differences, dropout statistics."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import backend, gradcheck
from tinynet.layers import Activation, Dense, Dropout, Flatten, Linear, ReLU, Softmax

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6
sizes = st.integers(1, 6)
seeds = st.integers(0, 2**31)


def _normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def _assert_grads_ok(errors, names):
    assert set(errors) == set(names)
    for name, err in errors.items():
        assert err < TOL, f"{name}: relative error {err:.2e}"


# ---- gradient checks (float64) ------------------------------------------------------------
@FAST
@given(n=sizes, n_in=sizes, n_out=sizes, seed=seeds)
def test_dense_gradients(xb, n, n_in, n_out, seed):
    with backend.using(dtype="float64"):
        layer = Dense(n_out, bias_initializer="ones")  # nonzero bias, so db is not trivially checked
        layer.build((n_in,))
        _assert_grads_ok(gradcheck.check_layer(layer, _normal(seed, (n, n_in))), ["x", "W", "b"])


@FAST
@given(n=sizes, k=sizes, seed=seeds)
def test_relu_gradient(xb, n, k, seed):
    x = _normal(seed, (n, k))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink at 0
    with backend.using(dtype="float64"):
        _assert_grads_ok(gradcheck.check_layer(ReLU(), x), ["x"])


@FAST
@given(n=sizes, k=st.integers(2, 6), seed=seeds)
def test_softmax_own_backward(xb, n, k, seed):
    with backend.using(dtype="float64"):
        # unit-scale scores: a saturated softmax has gradients below what finite differences resolve
        _assert_grads_ok(gradcheck.check_layer(Softmax(), _normal(seed, (n, k))), ["x"])


@FAST
@given(n=sizes, k=sizes, seed=seeds)
def test_linear_gradient(xb, n, k, seed):
    with backend.using(dtype="float64"):
        _assert_grads_ok(gradcheck.check_layer(Linear(), _normal(seed, (n, k))), ["x"])


@FAST
@given(n=sizes, a=sizes, b=sizes, seed=seeds)
def test_flatten_gradient_and_shape(xb, n, a, b, seed):
    x = _normal(seed, (n, a, b))
    layer = Flatten()
    assert layer.build((a, b)) == (a * b,)
    y = layer.forward(backend.to_device(x))
    assert np.array_equal(backend.to_numpy(y), x.reshape(n, a * b))
    with backend.using(dtype="float64"):
        _assert_grads_ok(gradcheck.check_layer(layer, x), ["x"])


@FAST
@given(n=sizes, k=sizes, rate=st.floats(0.05, 0.9), seed=seeds, own_seed=st.booleans())
def test_dropout_gradient_in_training(xb, n, k, rate, seed, own_seed):
    layer = Dropout(rate, seed=seed if own_seed else None)
    with backend.using(dtype="float64"):
        _assert_grads_ok(gradcheck.check_layer(layer, _normal(seed, (n, k)), training=True, seed=seed), ["x"])


# ---- forward math vs NumPy ------------------------------------------------------------------
@FAST
@given(n=sizes, n_in=sizes, n_out=sizes, seed=seeds)
def test_dense_forward_is_xW_plus_b(xb, n, n_in, n_out, seed):
    layer = Dense(n_out)
    assert layer.build((n_in,)) == (n_out,)
    assert layer.W.shape == (n_in, n_out) and layer.b.shape == (n_out,)
    W, b, x = _normal(seed, (n_in, n_out)), _normal(seed + 1, n_out), _normal(seed + 2, (n, n_in))
    layer.W[...] = backend.to_device(W)
    layer.b[...] = backend.to_device(b)
    y = backend.to_numpy(layer.forward(backend.to_device(x, backend.floatx())))
    want = np.einsum("ni,io->no", x, W) + b
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_dense_rejects_wrong_input_width(xb):
    layer = Dense(3, name="hidden")
    layer.build((4,))
    with pytest.raises(ValueError, match=r"hidden: expected input of shape \(batch, 4\), got \(2, 5\)"):
        layer.forward(backend.to_device(np.zeros((2, 5), np.float32)))


def test_dense_needs_flat_input():
    with pytest.raises(ValueError, match=r"hidden: Dense expects flat inputs .* got per-sample shape \(28, 28\); add a Flatten"):
        Dense(3, name="hidden").build((28, 28))


@pytest.mark.parametrize("units", [0, -2, 2.5, True, "8"])
def test_dense_units_must_be_a_positive_int(units):
    with pytest.raises(ValueError, match="units must be a positive integer, got " + re.escape(repr(units))):
        Dense(units)


@FAST
@given(n=sizes, k=sizes, seed=seeds)
def test_relu_forward(xb, n, k, seed):
    x = _normal(seed, (n, k))
    y = backend.to_numpy(ReLU().forward(backend.to_device(x)))
    assert np.array_equal(y, np.where(x > 0, x, 0.0))


@FAST
@given(n=sizes, k=st.integers(1, 6), seed=seeds, scale=st.sampled_from([1.0, 50.0, 1e4]))
def test_softmax_forward(xb, n, k, seed, scale):
    x = scale * _normal(seed, (n, k))
    p = backend.to_numpy(Softmax().forward(backend.to_device(x)))
    shifted = x - x.max(axis=1, keepdims=True)
    want = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-300)


def test_linear_is_the_identity(xb):
    x = backend.to_device(_normal(0, (3, 4)))
    assert np.array_equal(backend.to_numpy(Linear().forward(x)), backend.to_numpy(x))
    layer = Linear()
    layer.forward(x)
    assert np.array_equal(backend.to_numpy(layer.backward(x)), backend.to_numpy(x))


@pytest.mark.parametrize("name, cls", [("relu", ReLU), ("softmax", Softmax), ("linear", Linear)])
def test_activation_by_name_computes_what_its_layer_class_does(xb, name, cls):
    x = backend.to_device(_normal(1, (3, 4)))
    by_name, by_class = Activation(name), cls()
    assert by_name.activation is by_class.activation
    np.testing.assert_array_equal(backend.to_numpy(by_name.forward(x)), backend.to_numpy(by_class.forward(x)))


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"activation(_\d+)?: unknown activation 'tanhh'; valid names are linear, relu, "
                                         r"sigmoid, tanh, softmax, leaky_relu, elu, selu, gelu, softplus, silu, swish"):
        Activation("tanhh")


def test_default_names_are_snake_case_and_unique():
    a, b = Dense(2), Dense(2)
    assert a.name.startswith("dense") and b.name.startswith("dense") and a.name != b.name
    assert Dropout(0.1).name.startswith("dropout")
    assert Dense(2, name="mine").name == "mine"


# ---- dropout --------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 0.9])
def test_dropout_statistics(xb, rate):
    shape = (1000, 1000)
    size = shape[0] * shape[1]
    layer = Dropout(rate)
    y = backend.to_numpy(layer.forward(backend.xp().ones(shape, backend.floatx()), training=True))
    dropped = y == 0
    # the fraction zeroed is Binomial(size, rate) / size: within 5 standard errors
    assert abs(dropped.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / size)
    # kept units are scaled by 1 / (1 - rate), so the mean stays 1 (per-unit variance rate / (1 - rate))
    np.testing.assert_allclose(y[~dropped], 1 / (1 - rate), rtol=1e-4)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(rate / (1 - rate) / size)
    # backward applies the same mask
    dx = backend.to_numpy(layer.backward(backend.xp().ones(shape, backend.floatx())))
    assert np.array_equal(dx, y)


@pytest.mark.parametrize("rate, training", [(0.5, False), (0.0, True), (0.0, False)])
def test_dropout_is_the_identity_at_inference_or_rate_zero(xb, rate, training):
    x = backend.to_device(_normal(0, (50, 20)))
    layer = Dropout(rate)
    assert np.array_equal(backend.to_numpy(layer.forward(x, training=training)), backend.to_numpy(x))
    assert np.array_equal(backend.to_numpy(layer.backward(x)), backend.to_numpy(x))


def test_dropout_masks_replay_with_the_global_seed(xb):
    x = backend.xp().ones((64, 64), backend.floatx())
    layer = Dropout(0.5)

    def mask(seed):
        with backend.seeded(seed):
            return backend.to_numpy(layer.forward(x, training=True))

    assert np.array_equal(mask(1), mask(1))
    assert not np.array_equal(mask(1), mask(2))
    # consecutive batches get fresh masks
    first, second = (backend.to_numpy(layer.forward(x, training=True)) for _ in range(2))
    assert not np.array_equal(first, second)


def test_dropout_layer_seed_gives_the_same_mask(xb):
    x = backend.to_device(np.ones((64, 64), np.float32))
    same = [backend.to_numpy(Dropout(0.5, seed=11).forward(x, training=True)) for _ in range(2)]
    other = backend.to_numpy(Dropout(0.5, seed=12).forward(x, training=True))
    assert np.array_equal(same[0], same[1])
    assert not np.array_equal(same[0], other)


def test_dropout_rate_just_below_one_still_works():
    y = Dropout(0.999995, seed=0).forward(np.ones((4, 4), np.float32), training=True)
    assert np.all(np.isfinite(y))


def test_dense_builds_itself_on_first_call_like_keras():
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    layer = Dense(4)
    y = layer.forward(x)
    np.testing.assert_allclose(y, x @ layer.W + layer.b, rtol=1e-6)
    assert layer.W.shape == (3, 4)


def test_input_shape_must_be_a_tuple_and_input_dim_is_accepted():
    with pytest.raises(TypeError, match=r"input_shape must be a tuple such as \(784,\), got 784"):
        Dense(10, input_shape=784)
    assert Dense(10, input_dim=784).input_shape == (784,)
    assert Dropout(0.2, input_shape=(5,)).input_shape == (5,)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.5", True, None])
def test_dropout_rate_must_be_in_0_1(rate):
    with pytest.raises(ValueError, match=re.escape(f"dropout rate must be a number in [0, 1), got {rate!r}")):
        Dropout(rate)


# ---- initializers (used by Dense) ------------------------------------------------------------
def test_glorot_uniform_bounds_and_spread():
    layer = Dense(300, seed=0)
    layer.build((200,))
    w = backend.to_numpy(layer.W).astype(np.float64)
    limit = np.sqrt(6 / (200 + 300))
    assert np.abs(w).max() <= limit * (1 + 1e-6)
    assert abs(w.std() - limit / np.sqrt(3)) < 0.01 * limit  # std of U(-a, a) is a / sqrt(3)
    assert abs(w.mean()) < 0.01 * limit
    assert np.array_equal(backend.to_numpy(layer.b), np.zeros(300))


def test_he_normal_is_truncated_at_two_std():
    layer = Dense(300, kernel_initializer="he_normal", seed=0)
    layer.build((200,))
    w = backend.to_numpy(layer.W).astype(np.float64)
    target_std = np.sqrt(2 / 200)  # He: Var = 2 / fan_in, with the truncation compensated
    assert abs(w.std() - target_std) < 0.02 * target_std
    # a unit normal truncated at +-2 has variance 1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2))
    phi2 = math.exp(-2) / math.sqrt(2 * math.pi)
    truncated_std = math.sqrt(1 - 4 * phi2 / math.erf(2 / math.sqrt(2)))
    underlying_std = target_std / truncated_std
    assert np.abs(w).max() <= 2 * underlying_std * (1 + 1e-6)
    assert np.abs(w).max() > 1.9 * underlying_std  # truncated at 2 std, not earlier


def test_unknown_initializer_names_layer_and_valid_names():
    with pytest.raises(ValueError, match=r"hidden: unknown initializer 'bogus'; valid names are glorot_uniform, he_normal, zeros, ones"):
        Dense(3, kernel_initializer="bogus", name="hidden")
