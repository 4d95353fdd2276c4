"""BatchNormalization: the training and inference formulas against NumPy, moving statistics, gradients, errors."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import Sequential, backend, gradcheck
from tinynet.convolution import Conv2D
from tinynet.layers import Activation, Dense
from tinynet.normalization import BatchNormalization
from tinynet.pooling import GlobalAveragePooling2D

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6
shapes = st.sampled_from([(4,), (3, 2), (2, 3, 2), (1, 1, 3)])


def _normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def _layer(features_shape, seed, **kwargs):
    """A float64 layer built for samples of `features_shape`, with random gamma and beta (so neither is trivial)."""
    layer = BatchNormalization(**kwargs)
    layer.build(features_shape)
    for name in layer.weight_names:
        getattr(layer, name)[...] = backend.to_device(_normal(seed + len(name), features_shape[-1:]))
    return layer


# ---- forward ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 5), (3, 4, 4, 2)])
def test_training_forward_is_the_formula(xb, shape):
    x = 3 + 2 * _normal(0, shape)
    with backend.using(dtype="float64"):
        layer = _layer(shape[1:], 1)
        y = backend.to_numpy(layer.forward(backend.to_device(x), training=True))
        gamma, beta = backend.to_numpy(layer.gamma), backend.to_numpy(layer.beta)
    axes = tuple(range(len(shape) - 1))
    mean, var = x.mean(axis=axes), ((x - x.mean(axis=axes)) ** 2).mean(axis=axes)  # biased variance
    np.testing.assert_allclose(y, gamma * (x - mean) / np.sqrt(var + 1e-3) + beta, rtol=1e-12, atol=1e-12)


def test_inference_uses_the_moving_statistics(xb):
    x = _normal(0, (6, 3))
    with backend.using(dtype="float64"):
        layer = _layer((3,), 1, epsilon=0.01)
        layer.moving_mean[...] = backend.to_device(np.array([1.0, -2.0, 0.5]))
        layer.moving_variance[...] = backend.to_device(np.array([4.0, 0.25, 1.0]))
        y = backend.to_numpy(layer.forward(backend.to_device(x), training=False))
        gamma, beta = backend.to_numpy(layer.gamma), backend.to_numpy(layer.beta)
        np.testing.assert_array_equal(backend.to_numpy(layer.moving_mean), [1.0, -2.0, 0.5])  # not updated
    np.testing.assert_allclose(y, gamma * (x - [1.0, -2.0, 0.5]) / np.sqrt(np.array([4.0, 0.25, 1.0]) + 0.01) + beta,
                               rtol=1e-12)


def test_a_fresh_layer_at_inference_is_nearly_the_identity():
    x = _normal(0, (4, 3)).astype(np.float32)
    np.testing.assert_allclose(BatchNormalization().forward(x), x / np.sqrt(1 + 1e-3), rtol=1e-6)


@pytest.mark.parametrize("momentum", [0.99, 0.9, 0.0])
def test_moving_statistics_follow_the_momentum_formula(xb, momentum):
    with backend.using(dtype="float64"):
        layer = BatchNormalization(momentum=momentum)
        layer.build((2, 3))
        mean, var = np.zeros(3), np.ones(3)
        for seed in range(3):
            x = 5 + 3 * _normal(seed, (4, 2, 3))
            layer.forward(backend.to_device(x), training=True)
            mean = momentum * mean + (1 - momentum) * x.mean(axis=(0, 1))
            var = momentum * var + (1 - momentum) * x.var(axis=(0, 1))  # biased (ddof=0), as Keras
            np.testing.assert_allclose(backend.to_numpy(layer.moving_mean), mean, rtol=1e-12)
            np.testing.assert_allclose(backend.to_numpy(layer.moving_variance), var, rtol=1e-12)


def test_moving_statistics_are_written_in_place():
    # a model keeps them as views of one vector (as it does weights): the layer must write into those views
    layer = BatchNormalization()
    layer.build((3,))
    state = np.zeros(6, np.float32)
    state[3:] = 1
    layer.moving_mean, layer.moving_variance = state[:3], state[3:]
    x = _normal(0, (5, 3)).astype(np.float32)
    layer.forward(x, training=True)
    assert layer.moving_mean.base is state and layer.moving_variance.base is state
    np.testing.assert_allclose(state[:3], 0.01 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(state[3:], 0.99 + 0.01 * x.var(axis=0), rtol=1e-5)


# ---- gradients --------------------------------------------------------------------------------------
@FAST
@given(n=st.integers(3, 5), features_shape=shapes, center=st.booleans(), scale=st.booleans(), training=st.booleans(),
       seed=st.integers(0, 2**31))
def test_gradients(xb, n, features_shape, center, scale, training, seed):
    # n >= 3: with two values per feature x_hat is +-1 whatever x is, and only epsilon leaves a (tiny) gradient
    with backend.using(dtype="float64"):
        layer = _layer(features_shape, seed, center=center, scale=scale)
        if not training:  # inference: give the moving statistics values of their own
            layer.moving_mean[...] = backend.to_device(_normal(seed + 7, features_shape[-1:]))
            layer.moving_variance[...] = backend.to_device(0.5 + _normal(seed + 8, features_shape[-1:]) ** 2)
        # the check's random r (from its seed) must not be x's own numbers: y = x_hat would be a stationary point
        errors = gradcheck.check_layer(layer, 1 + 2 * _normal(seed, (n, *features_shape)), training=training,
                                       seed=seed + 1)
    assert set(errors) == {"x"} | {name for name, on in (("gamma", scale), ("beta", center)) if on}
    for name, err in errors.items():
        assert err < TOL, f"{name}: relative error {err:.2e}"


def test_backward_by_hand_matches_the_docstring():
    x, dy = _normal(0, (6, 2)), _normal(1, (6, 2))
    with backend.using(dtype="float64"):
        layer = _layer((2,), 2)
        layer.forward(x, training=True)
        dx = layer.backward(dy)
        gamma = layer.gamma.copy()
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose(layer.dbeta, dy.sum(0), rtol=1e-12)
    np.testing.assert_allclose(layer.dgamma, (dy * x_hat).sum(0), rtol=1e-12)
    want = gamma / np.sqrt(x.var(0) + 1e-3) * (dy - dy.mean(0) - x_hat * (dy * x_hat).mean(0))
    np.testing.assert_allclose(dx, want, rtol=1e-10, atol=1e-12)


def test_in_a_model_gradients_and_moving_statistics():
    x, y = _normal(0, (4, 6, 6, 1)), np.eye(3)[[0, 1, 2, 1]]
    # no bias before BatchNormalization: it would subtract any per-channel constant again (its gradient is 0)
    model = Sequential([Conv2D(3, 3, use_bias=False, input_shape=(6, 6, 1)), BatchNormalization(momentum=0.9),
                        Activation("tanh"), GlobalAveragePooling2D(), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    errors = gradcheck.check_model(model, x, y)
    assert len(errors) == 5 and max(errors.values()) < TOL, errors
    conv, bn = model.layers[:2]
    assert np.shares_memory(bn.moving_mean, model.non_trainable) and bn.count_params() == 4 * 3
    z = conv.forward(x.astype(np.float32))
    model.train_step(x, y)
    np.testing.assert_allclose(bn.moving_mean, 0.1 * z.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance, 0.9 + 0.1 * z.var(axis=(0, 1, 2)), rtol=1e-4)
    assert np.shares_memory(bn.moving_mean, model.non_trainable)


# ---- weights, state, config -------------------------------------------------------------------------------
@pytest.mark.parametrize("center, scale, names", [(True, True, ("gamma", "beta")), (False, True, ("gamma",)),
                                                  (True, False, ("beta",)), (False, False, ())])
def test_center_and_scale_choose_the_weights(center, scale, names):
    layer = BatchNormalization(center=center, scale=scale)
    assert layer.weight_names == names
    assert layer.weight_shapes((4, 4, 3)) == {name: (3,) for name in names}
    layer.build((4, 4, 3))
    assert layer.count_params() == 3 * len(names) + 2 * 3  # and the moving mean and variance, as Keras counts
    x = _normal(0, (2, 4, 4, 3)).astype(np.float32)
    y = layer.forward(x, training=True)
    if not names:  # neither: the output is x_hat itself
        np.testing.assert_allclose(y, (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-3), rtol=1e-4, atol=1e-5)


def test_state_is_created_in_build_with_its_shapes():
    layer = BatchNormalization()
    assert BatchNormalization.state_names == ("moving_mean", "moving_variance")
    assert layer.state_shapes((5, 5, 8)) == {"moving_mean": (8,), "moving_variance": (8,)}
    layer.build((5, 5, 8))
    np.testing.assert_array_equal(layer.moving_mean, np.zeros(8))
    np.testing.assert_array_equal(layer.moving_variance, np.ones(8))
    np.testing.assert_array_equal(layer.gamma, np.ones(8))
    np.testing.assert_array_equal(layer.beta, np.zeros(8))
    assert layer.moving_mean.dtype == backend.floatx() and layer.gamma.dtype == backend.floatx()
    assert "moving_mean" not in layer.weight_names


def test_config_round_trip():
    layer = BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, name="bn")
    config = layer.get_config()
    assert config == {"name": "bn", "axis": -1, "momentum": 0.9, "epsilon": 1e-5, "center": False, "scale": True}
    assert BatchNormalization.from_config(config).get_config() == config


# ---- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [-0.1, 1.0, 1.5, "0.9", None, True, float("nan")])
def test_momentum_must_be_in_0_1(momentum):
    with pytest.raises(ValueError, match=re.escape(f"bn: momentum must be a number in [0, 1), got {momentum!r}")):
        BatchNormalization(momentum=momentum, name="bn")


@pytest.mark.parametrize("epsilon", [0, -1e-3, "1e-3", None, float("nan"), float("inf")])
def test_epsilon_must_be_positive(epsilon):
    with pytest.raises(ValueError, match=re.escape(f"bn: epsilon must be a finite number > 0, got {epsilon!r}")):
        BatchNormalization(epsilon=epsilon, name="bn")


def test_only_the_last_axis():
    with pytest.raises(ValueError, match=re.escape("bn: only the last axis (axis=-1, the features or channels) can be "
                                                   "normalized, got axis=1 for inputs of shape (batch, 4, 4, 3)")):
        BatchNormalization(axis=1, name="bn").build((4, 4, 3))
    assert BatchNormalization(axis=3).build((4, 4, 3)) == (4, 4, 3)  # axis 3 of (batch, 4, 4, 3) is the last
    with pytest.raises(ValueError, match="bn: axis must be an integer, got 'last'"):
        BatchNormalization(axis="last", name="bn")


def test_wrong_input_shape_names_both():
    layer = BatchNormalization(name="bn")
    layer.build((4, 3))
    with pytest.raises(ValueError, match=re.escape("bn: expected input of shape (batch, 4, 3), got (2, 4, 5)")):
        layer.forward(np.zeros((2, 4, 5), np.float32))


@pytest.mark.parametrize("arg", ["center", "scale"])
def test_center_and_scale_must_be_bools(arg):
    with pytest.raises(TypeError, match=f"bn: {arg} must be True or False, got 'yes'"):
        BatchNormalization(name="bn", **{arg: "yes"})


def test_moving_statistics_are_saved_with_the_model_and_listed_as_keras_lists_them(tmp_path):
    gen = np.random.default_rng(5)
    x, y = 3 + 2 * gen.standard_normal((64, 4)), gen.standard_normal((64, 2))
    model = Sequential([Dense(3, input_shape=(4,)), BatchNormalization(momentum=0.5), Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    bn = model.layers[1]
    assert not np.allclose(backend.to_numpy(bn.moving_mean), 0)  # training moved them
    names = [w.shape for w in model.get_weights()]
    assert names == [(4, 3), (3,), (3,), (3,), (3,), (3,), (3, 2), (2,)]  # gamma, beta, moving_mean, moving_variance
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 6" in lines[0] and "Total params: 35" in lines[0]
    model.save(tmp_path / "bn.tinynet")
    loaded = tinynet.load_model(tmp_path / "bn.tinynet")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
