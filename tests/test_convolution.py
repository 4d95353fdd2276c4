"""Conv2D: forward against a naive loop, Keras's output sizes, gradients against finite differences, errors."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import Sequential, backend, gradcheck, regularizers
from tinynet.convolution import Conv2D
from tinynet.layers import Dense, Flatten
from tinynet.pooling import MaxPooling2D

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6


def _normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def keras_size(n, k, s, padding):
    """(out, pad_top) along one axis, by Keras's rules, written out here independently of the library."""
    if padding == "valid":
        return math.floor((n - k) / s) + 1, 0
    out = math.ceil(n / s)
    return out, max((out - 1) * s + k - n, 0) // 2


def naive_conv(x, W, b, strides, padding):
    """z[n, i, j, f] = b[f] + sum over the window, one output value at a time; padding pixels are zeros."""
    n, H, Wd, C = x.shape
    kh, kw, _, F = W.shape
    (oh, top), (ow, left) = keras_size(H, kh, strides[0], padding), keras_size(Wd, kw, strides[1], padding)
    z = np.zeros((n, oh, ow, F))
    for s in range(n):
        for i in range(oh):
            for j in range(ow):
                for f in range(F):
                    total = b[f]
                    for p in range(kh):
                        for q in range(kw):
                            r, c = i * strides[0] + p - top, j * strides[1] + q - left
                            if 0 <= r < H and 0 <= c < Wd:
                                total += x[s, r, c, :] @ W[p, q, :, f]
                    z[s, i, j, f] = total
    return z


def _layer_with(W, b, strides, padding, input_shape, **kwargs):
    layer = Conv2D(W.shape[3], W.shape[:2], strides=strides, padding=padding, **kwargs)
    layer.build(input_shape)
    layer.W[...] = backend.to_device(W)
    layer.b[...] = backend.to_device(b)
    return layer


# ---- forward ---------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
@pytest.mark.parametrize("kernel, channels, filters", [((3, 3), 1, 2), ((2, 2), 3, 4), ((3, 2), 2, 1), ((1, 1), 2, 3),
                                                       ((4, 4), 1, 2)])
def test_forward_equals_naive_loops(xb, kernel, channels, filters, strides, padding):
    x, W, b = _normal(0, (2, 7, 6, channels)), _normal(1, (*kernel, channels, filters)), _normal(2, filters)
    with backend.using(dtype="float64"):
        layer = _layer_with(W, b, strides, padding, x.shape[1:])
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
    want = naive_conv(x, W, b, strides, padding)
    assert y.shape == want.shape == (2, *layer.output_shape)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_same_padding_puts_the_odd_pixel_at_the_bottom():
    # height 2, kernel 2, stride 1: one row of padding, which Keras (and TensorFlow) put below the image
    layer = _layer_with(np.array([1.0, 10.0]).reshape(2, 1, 1, 1), np.zeros(1), 1, "same", (2, 1, 1))
    y = layer.forward(np.array([1.0, 2.0], np.float32).reshape(1, 2, 1, 1))
    np.testing.assert_array_equal(y.ravel(), [1 * 1 + 10 * 2, 1 * 2 + 10 * 0])


# (input size, kernel, stride, padding) -> output size, worked out by hand from Keras's rules
SIZES = [((28, 28), (3, 3), (1, 1), "valid", (26, 26)), ((28, 28), (3, 3), (1, 1), "same", (28, 28)),
         ((28, 28), (3, 3), (2, 2), "valid", (13, 13)), ((28, 28), (3, 3), (2, 2), "same", (14, 14)),
         ((7, 7), (3, 3), (2, 2), "same", (4, 4)), ((8, 8), (3, 3), (2, 2), "same", (4, 4)),
         ((5, 5), (2, 2), (2, 2), "valid", (2, 2)), ((5, 5), (5, 5), (1, 1), "valid", (1, 1)),
         ((6, 6), (4, 4), (3, 3), "valid", (1, 1)), ((5, 5), (1, 1), (3, 3), "same", (2, 2)),
         ((1, 1), (3, 3), (1, 1), "same", (1, 1)), ((7, 9), (3, 2), (2, 3), "valid", (3, 3)),
         ((7, 9), (3, 2), (2, 3), "same", (4, 3)), ((4, 4), (2, 2), (3, 3), "same", (2, 2))]


@pytest.mark.parametrize("size, kernel, strides, padding, want", SIZES)
def test_output_shape_follows_keras(size, kernel, strides, padding, want):
    assert tuple(keras_size(n, k, s, padding)[0] for n, k, s in zip(size, kernel, strides)) == want
    layer = Conv2D(5, kernel, strides=strides, padding=padding)
    assert layer.compute_output_shape((*size, 2)) == (*want, 5)
    assert layer.build((*size, 2)) == (*want, 5)
    x = np.zeros((3, *size, 2), np.float32)
    assert layer.forward(x).shape == (3, *want, 5)
    assert layer.backward(np.ones((3, *want, 5), np.float32)).shape == x.shape


def test_weights_use_keras_layout():
    layer = Conv2D(8, (3, 2), input_shape=(10, 12, 3))
    assert layer.weight_shapes((10, 12, 3)) == {"W": (3, 2, 3, 8), "b": (8,)}
    layer.build((10, 12, 3))
    assert layer.W.shape == (3, 2, 3, 8) and layer.b.shape == (8,) and layer.count_params() == 3 * 2 * 3 * 8 + 8
    limit = math.sqrt(6 / (3 * 2 * 3 + 3 * 2 * 8))  # Glorot: fans count the receptive field
    assert np.abs(layer.W).max() <= limit and np.abs(layer.W).max() > 0.8 * limit
    assert Conv2D(8, 3, use_bias=False).weight_shapes((5, 5, 2)) == {"W": (3, 3, 2, 8)}


def test_seed_gives_the_same_kernel():
    a, b = Conv2D(4, 3, seed=3), Conv2D(4, 3, seed=3)
    a.build((5, 5, 2))
    b.build((5, 5, 2))
    np.testing.assert_array_equal(a.W, b.W)


# ---- gradients ------------------------------------------------------------------------------------
@FAST
@given(n=st.integers(1, 2), channels=st.integers(1, 3), filters=st.integers(1, 3), kh=st.integers(1, 3),
       kw=st.integers(1, 3), extra_h=st.integers(0, 3), extra_w=st.integers(0, 3), sh=st.integers(1, 2),
       sw=st.integers(1, 2), padding=st.sampled_from(["valid", "same"]), use_bias=st.booleans(),
       seed=st.integers(0, 2**31))
def test_gradients(xb, n, channels, filters, kh, kw, extra_h, extra_w, sh, sw, padding, use_bias, seed):
    with backend.using(dtype="float64"):
        layer = Conv2D(filters, (kh, kw), strides=(sh, sw), padding=padding, use_bias=use_bias,
                       bias_initializer="random_normal")  # a nonzero bias, so db is not trivially checked
        x = _normal(seed, (n, kh + extra_h, kw + extra_w, channels))
        errors = gradcheck.check_layer(layer, x)
    assert set(errors) == {"x", "W", "b"} if use_bias else {"x", "W"}
    for name, err in errors.items():
        assert err < TOL, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_activation_inside_conv2d(xb, activation):
    x, W, b = _normal(0, (2, 5, 5, 2)), _normal(1, (3, 3, 2, 3)), _normal(2, 3)
    with backend.using(dtype="float64"):
        layer = _layer_with(W, b, 1, "same", x.shape[1:], activation=activation)
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
        z = naive_conv(x, W, b, (1, 1), "same")
        np.testing.assert_allclose(y, np.tanh(z) if activation == "tanh" else 1 / (1 + np.exp(-z)), rtol=1e-12)
        errors = gradcheck.check_layer(layer, x)
    assert max(errors.values()) < TOL, errors


def test_relu_inside_conv2d_forward(xb):
    x, W, b = _normal(3, (2, 6, 6, 1)), _normal(4, (3, 3, 1, 2)), _normal(5, 2)
    with backend.using(dtype="float64"):
        layer = _layer_with(W, b, 2, "valid", x.shape[1:], activation="relu")
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
    np.testing.assert_allclose(y, np.maximum(naive_conv(x, W, b, (2, 2), "valid"), 0), rtol=1e-12)


def test_overlapping_windows_add_their_gradients():
    # a 3x3 image, a 2x2 kernel of ones, stride 1: the centre pixel is in all four windows
    layer = _layer_with(np.ones((2, 2, 1, 1)), np.zeros(1), 1, "valid", (3, 3, 1))
    layer.forward(np.zeros((1, 3, 3, 1), np.float32))
    dx = layer.backward(np.ones((1, 2, 2, 1), np.float32))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_first_layer_skips_dx_but_fills_dW():
    x = _normal(0, (2, 5, 5, 1)).astype(np.float32)
    layer = Conv2D(2, 3)
    y = layer.forward(x)
    layer.needs_input_grad = False
    assert layer.backward(np.ones_like(y)) is None
    dW = layer.dW.copy()
    layer.needs_input_grad = True
    assert layer.backward(np.ones_like(y)).shape == x.shape
    np.testing.assert_array_equal(layer.dW, dW)
    assert np.abs(dW).sum() > 0


def test_kernel_regularizer_adds_its_gradient():
    x = _normal(0, (2, 5, 5, 2)).astype(np.float32)
    plain, penalized = Conv2D(3, 3, seed=1), Conv2D(3, 3, seed=1, kernel_regularizer=regularizers.L2(0.1))
    for layer in (plain, penalized):
        layer.backward(np.ones_like(layer.forward(x)))
    np.testing.assert_allclose(penalized.dW - plain.dW, 2 * 0.1 * plain.W, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(penalized.penalty(), 0.1 * np.sum(plain.W.astype(np.float64) ** 2), rtol=1e-5)
    assert plain.penalty() is None


def test_in_a_model_gradients_match_finite_differences(xb):
    x, y = _normal(0, (3, 6, 6, 1)), np.eye(2)[[0, 1, 1]]
    model = Sequential([Conv2D(2, 3, activation="tanh", padding="same", input_shape=(6, 6, 1)), MaxPooling2D(),
                        Conv2D(3, 2, activation="tanh"), Flatten(), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    assert model.layers[0].needs_input_grad is False and model.layers[2].needs_input_grad is True
    errors = gradcheck.check_model(model, x, y)
    assert len(errors) == 6 and max(errors.values()) < TOL, errors


# ---- config -----------------------------------------------------------------------------------------
def test_config_round_trip():
    layer = Conv2D(4, 3, strides=2, padding="SAME", activation="relu", use_bias=False, kernel_initializer="he_normal",
                   kernel_regularizer="l2", seed=7, name="conv")
    config = layer.get_config()
    assert config == {"name": "conv", "filters": 4, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same",
                      "activation": "relu", "use_bias": False, "kernel_initializer": "he_normal",
                      "bias_initializer": "zeros", "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
                      "bias_regularizer": None, "seed": 7}
    assert Conv2D.from_config(config).get_config() == config


# ---- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, hint", [((28, 28), "Reshape((28, 28, 1))"), ((784,), "Reshape((28, 28, 1))"),
                                         ((10,), "Reshape((height, width, channels))"),
                                         ((2, 3, 4, 5), "Reshape((height, width, channels))")])
def test_images_without_channels_suggest_reshape(shape, hint):
    expected = f"conv: Conv2D expects images of shape (batch, height, width, channels), got per-sample shape {shape}"
    with pytest.raises(ValueError, match=re.escape(expected) + ".*" + re.escape(hint)):
        Conv2D(3, 3, name="conv").build(shape)


def test_wrong_input_names_expected_and_received_shapes():
    layer = Conv2D(3, 3, name="conv")
    layer.build((28, 28, 1))
    with pytest.raises(ValueError, match=re.escape("conv: expected input of shape (batch, 28, 28, 1), "
                                                   "got (2, 28, 28, 3)")):
        layer.forward(np.zeros((2, 28, 28, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape("conv: expected input of shape (batch, 28, 28, 1), got (2, 28, 28); "
                                                   "add Reshape((28, 28, 1))")):
        layer.forward(np.zeros((2, 28, 28), np.float32))


def test_kernel_larger_than_input_is_refused_at_build():
    with pytest.raises(ValueError, match=re.escape("conv: kernel_size (5, 5) is larger than the input's height and "
                                                   "width (4, 6) with padding='valid'; use a smaller kernel_size or "
                                                   "padding='same'")):
        Conv2D(2, 5, name="conv").build((4, 6, 1))
    assert Conv2D(2, 5, padding="same").build((4, 6, 1)) == (4, 6, 2)


@pytest.mark.parametrize("filters", [0, -2, 2.5, True, "8", None])
def test_filters_must_be_a_positive_int(filters):
    with pytest.raises(ValueError, match="conv: filters must be a positive integer, got " + re.escape(repr(filters))):
        Conv2D(filters, 3, name="conv")


@pytest.mark.parametrize("arg", ["kernel_size", "strides"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3", (3,), (3, 0), (1, 2, 3), None])
def test_kernel_size_and_strides_must_be_positive_ints(arg, value):
    kwargs = {"kernel_size": 3, arg: value}
    with pytest.raises(ValueError, match=re.escape(f"conv: {arg} must be a positive integer or a pair of them such as "
                                                   f"(3, 3), got {value!r}")):
        Conv2D(2, name="conv", **kwargs)


@pytest.mark.parametrize("padding", ["full", "causal", "", None, 1])
def test_unknown_padding_lists_the_valid_ones(padding):
    with pytest.raises(ValueError, match=re.escape(f"conv: unknown padding {padding!r}; "
                                                   f"valid values are 'valid', 'same'")):
        Conv2D(2, 3, padding=padding, name="conv")


def test_pairs_and_ints_are_the_same():
    a, b = Conv2D(2, 3, strides=2), Conv2D(2, [3, 3], strides=(2, 2))
    assert (a.kernel_size, a.strides) == (b.kernel_size, b.strides) == ((3, 3), (2, 2))
