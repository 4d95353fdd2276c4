"""Pooling layers: forward against naive loops, gradients against finite differences, the tie rule, errors."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import backend, gradcheck
from tinynet.pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6


def _normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def _distinct(seed, shape):
    """Values 0.1 apart in random order: no ties, so each window's maximum is far from the others."""
    return 0.1 * np.random.default_rng(seed).permutation(math.prod(shape)).reshape(shape) - 1.0


def naive_pool(x, pool, strides, padding, reduce):
    """reduce() of the real (unpadded) pixels of each window, one output value at a time (Keras's rules)."""
    n, H, W, C = x.shape
    sizes = []
    for size, k, s in zip((H, W), pool, strides):
        if padding == "valid":
            sizes.append((math.floor((size - k) / s) + 1, 0))
        else:
            out = math.ceil(size / s)
            sizes.append((out, max((out - 1) * s + k - size, 0) // 2))
    (oh, top), (ow, left) = sizes
    y = np.zeros((n, oh, ow, C))
    for s in range(n):
        for i in range(oh):
            for j in range(ow):
                for c in range(C):
                    values = [x[s, r, q, c] for r in range(i * strides[0] - top, i * strides[0] - top + pool[0])
                              for q in range(j * strides[1] - left, j * strides[1] - left + pool[1])
                              if 0 <= r < H and 0 <= q < W]
                    y[s, i, j, c] = reduce(values)
    return y


CASES = [((2, 2), None, "valid"), ((2, 2), None, "same"), ((3, 3), (2, 2), "valid"), ((3, 3), (2, 2), "same"),
         ((2, 3), (1, 2), "valid"), ((3, 2), (3, 1), "same"), ((2, 2), (3, 3), "valid"), ((1, 1), (2, 2), "same"),
         ((3, 3), (1, 1), "same")]


# ---- forward -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, reduce", [(MaxPooling2D, max), (AveragePooling2D, np.mean)])
@pytest.mark.parametrize("pool, strides, padding", CASES)
def test_forward_equals_naive_loops(xb, cls, reduce, pool, strides, padding):
    x = _normal(0, (2, 7, 6, 3))
    layer = cls(pool, strides=strides, padding=padding)
    with backend.using(dtype="float64"):
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
    want = naive_pool(x, pool, strides or pool, padding, reduce)
    assert y.shape == want.shape == (2, *layer.output_shape)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_average_same_padding_leaves_padding_out_of_the_mean():
    # 3x3 image, 2x2 windows with stride 2: the bottom-right window holds one real pixel and three of padding
    layer = AveragePooling2D(padding="same")
    y = layer.forward(np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1))
    np.testing.assert_allclose(y[0, :, :, 0], [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8]])


def test_max_same_padding_never_picks_the_padding():
    layer = MaxPooling2D(padding="same")
    y = layer.forward(-np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1))  # all negative: a zero pad would win
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3], [-7, -9]])


@pytest.mark.parametrize("size, pool, strides, padding, want", [
    ((28, 28), (2, 2), None, "valid", (14, 14)), ((26, 26), (2, 2), None, "valid", (13, 13)),
    ((11, 11), (2, 2), None, "valid", (5, 5)), ((11, 11), (2, 2), None, "same", (6, 6)),
    ((7, 9), (3, 2), (2, 3), "valid", (3, 3)), ((7, 9), (3, 2), (2, 3), "same", (4, 3)),
    ((1, 1), (2, 2), None, "same", (1, 1))])
def test_output_shape_follows_keras(size, pool, strides, padding, want):
    for cls in (MaxPooling2D, AveragePooling2D):
        layer = cls(pool, strides=strides, padding=padding)
        assert layer.compute_output_shape((*size, 4)) == (*want, 4)
        assert layer.forward(np.zeros((2, *size, 4), np.float32)).shape == (2, *want, 4)


# ---- gradients -------------------------------------------------------------------------------------
pools = st.tuples(st.integers(1, 3), st.integers(1, 3))
strides_or_none = st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3)))


@FAST
@given(n=st.integers(1, 2), extra=st.tuples(st.integers(0, 3), st.integers(0, 3)), channels=st.integers(1, 3),
       pool=pools, strides=strides_or_none, padding=st.sampled_from(["valid", "same"]), seed=st.integers(0, 2**31))
def test_max_pooling_gradient(xb, n, extra, channels, pool, strides, padding, seed):
    x = _distinct(seed, (n, pool[0] + extra[0], pool[1] + extra[1], channels))
    with backend.using(dtype="float64"):
        errors = gradcheck.check_layer(MaxPooling2D(pool, strides, padding), x)
    assert errors["x"] < TOL, errors


@FAST
@given(n=st.integers(1, 2), extra=st.tuples(st.integers(0, 3), st.integers(0, 3)), channels=st.integers(1, 3),
       pool=pools, strides=strides_or_none, padding=st.sampled_from(["valid", "same"]), seed=st.integers(0, 2**31))
def test_average_pooling_gradient(xb, n, extra, channels, pool, strides, padding, seed):
    x = _normal(seed, (n, pool[0] + extra[0], pool[1] + extra[1], channels))
    with backend.using(dtype="float64"):
        errors = gradcheck.check_layer(AveragePooling2D(pool, strides, padding), x)
    assert errors["x"] < TOL, errors


def test_max_pooling_ties_go_to_the_first_maximum_in_window_order(xb):
    # one 2x2 window per image; the first maximum reading row by row, left to right, gets all of dy
    x = np.array([[[1, 1], [1, 1]], [[0, 3], [3, 1]], [[2, 0], [0, 2]], [[0, 0], [5, 5]]], np.float32)[..., None]
    layer = MaxPooling2D()
    layer.forward(backend.to_device(x))
    dx = backend.to_numpy(layer.backward(backend.to_device(np.full((4, 1, 1, 1), 7.0, np.float32))))[..., 0]
    np.testing.assert_array_equal(dx, [[[7, 0], [0, 0]], [[0, 7], [0, 0]], [[7, 0], [0, 0]], [[0, 0], [7, 0]]])


def test_overlapping_max_windows_add_their_gradients(xb):
    # windows [1, 5] and [5, 2] share their maximum: it gets both gradients
    x = backend.to_device(np.array([1, 5, 2], np.float32).reshape(1, 1, 3, 1))
    layer = MaxPooling2D((1, 2), strides=1)
    np.testing.assert_array_equal(backend.to_numpy(layer.forward(x)).ravel(), [5, 5])
    dx = layer.backward(backend.to_device(np.array([10, 100], np.float32).reshape(1, 1, 2, 1)))
    np.testing.assert_array_equal(backend.to_numpy(dx).ravel(), [0, 110, 0])


def test_average_pooling_shares_dy_among_real_pixels_only():
    layer = AveragePooling2D(padding="same")
    layer.forward(np.zeros((1, 3, 3, 1), np.float32))
    dx = layer.backward(np.array([4, 8, 12, 16], np.float32).reshape(1, 2, 2, 1))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 1, 4], [1, 1, 4], [6, 6, 16]])


# ---- global average pooling ---------------------------------------------------------------------------
@FAST
@given(n=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4), c=st.integers(1, 3), keepdims=st.booleans(),
       seed=st.integers(0, 2**31))
def test_global_average_pooling(xb, n, h, w, c, keepdims, seed):
    x = _normal(seed, (n, h, w, c))
    layer = GlobalAveragePooling2D(keepdims=keepdims)
    assert layer.build((h, w, c)) == ((1, 1, c) if keepdims else (c,))
    with backend.using(dtype="float64"):
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
        np.testing.assert_allclose(y, x.mean(axis=(1, 2), keepdims=keepdims), rtol=1e-12)
        dy = _normal(seed + 1, y.shape)
        dx = backend.to_numpy(layer.backward(backend.to_device(dy)))
        np.testing.assert_allclose(dx, np.broadcast_to(dy.reshape(n, 1, 1, c) / (h * w), x.shape), rtol=1e-12)
        errors = gradcheck.check_layer(layer, x)
    assert errors["x"] < TOL, errors


def test_global_average_pooling_needs_images():
    with pytest.raises(ValueError, match=re.escape("gap: GlobalAveragePooling2D expects images of shape (batch, "
                                                   "height, width, channels), got per-sample shape (28, 28); "
                                                   "add Reshape((28, 28, 1))")):
        GlobalAveragePooling2D(name="gap").build((28, 28))


# ---- config and errors --------------------------------------------------------------------------------
def test_strides_default_to_pool_size_and_config_round_trips():
    for cls in (MaxPooling2D, AveragePooling2D):
        layer = cls(3, name="pool")
        assert layer.strides == (3, 3)
        config = layer.get_config()
        assert config == {"name": "pool", "pool_size": [3, 3], "strides": [3, 3], "padding": "valid"}
        assert cls.from_config(config).get_config() == config
    assert GlobalAveragePooling2D(name="gap").get_config() == {"name": "gap", "keepdims": False}
    assert MaxPooling2D().weight_shapes((4, 4, 1)) == {} and MaxPooling2D().weight_names == ()


@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match=re.escape("pool: pool_size must be a positive integer or a pair of them such "
                                                   "as (3, 3), got 0")):
        cls(0, name="pool")
    with pytest.raises(ValueError, match=re.escape("pool: strides must be a positive integer or a pair of them such "
                                                   "as (3, 3), got (1, 2, 3)")):
        cls(2, strides=(1, 2, 3), name="pool")
    with pytest.raises(ValueError, match=re.escape("pool: unknown padding 'full'; valid values are 'valid', 'same'")):
        cls(2, padding="full", name="pool")
    with pytest.raises(ValueError, match=re.escape("pool: pool_size (3, 3) is larger than the input's height and width "
                                                   "(2, 5) with padding='valid'")):
        cls(3, name="pool").build((2, 5, 1))
    with pytest.raises(ValueError, match=re.escape("pool: expected input of shape (batch, 4, 4, 2), got (1, 4, 4)")):
        layer = cls(name="pool")
        layer.build((4, 4, 2))
        layer.forward(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape("got per-sample shape (784,); for 28x28 images with one channel "
                                                   "add Reshape((28, 28, 1))")):
        cls(name="pool").build((784,))
