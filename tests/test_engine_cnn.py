"""The convolution and pooling twins (engine/cpu.py) against the textbook lines they replace.

Each comparison runs the same layer with the twins on and off on random inputs: integer values
(so windows have tied maxima, and the first in window order must get the whole gradient), odd
sizes (13x13 pooled by 2 with padding "valid" drops the last row and column), -0.0, infinities
and NaN. Pooling and im2col must equal the textbook to the bit; where a twin splits or transposes
a matrix product, BLAS may round the same dot products differently: within 1e-6 in float32.
Pooling whose windows overlap or are padded must fall back to the textbook lines.
A twin the active backend does not have is skipped with a visible reason (the GPU has none of these).
"""
from __future__ import annotations

import contextlib
import math
import zlib

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend, convolution, engine
from tinynet.layers import Conv2D, Dense, Flatten
from tinynet.pooling import AveragePooling2D, MaxPooling2D

from test_engine import _twin_or_skip, fast_mode  # noqa: E402 - tests/ is on the path, as for the other test modules

POOLS = [MaxPooling2D, AveragePooling2D]
TWINS = {MaxPooling2D: ("max_pool_forward", "max_pool_backward"),
         AveragePooling2D: ("avg_pool_forward", "avg_pool_backward")}


def _same_bits(a, b):
    """Equal to the bit: the same shape, dtype and bytes (so -0.0 is not 0.0, and NaN must meet NaN)."""
    a, b = backend.to_numpy(a), backend.to_numpy(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    unsigned = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(unsigned), np.ascontiguousarray(b).view(unsigned))


def _images(gen, shape, kind):
    """Random images: "ties" small integers (many tied maxima, zeros of both signs), "normal", or "special"
    (integers with +-inf and NaN sprinkled in)."""
    if kind == "normal":
        return gen.standard_normal(shape)
    x = gen.integers(-3, 4, shape).astype(np.float64)
    x[gen.random(shape) < 0.1] = -0.0
    if kind == "special":
        x.flat[gen.choice(x.size, 6, replace=False)] = [np.inf, -np.inf, np.nan, np.inf, -np.inf, np.nan]
    return x


@contextlib.contextmanager
def _calls_to(name):
    """Count the calls to the CPU's fast twin `name` (bound again at each switch of the twins)."""
    from tinynet.engine import cpu
    calls = []
    twin = getattr(cpu, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return twin(*args, **kwargs)
    setattr(cpu, name, counted)
    try:
        yield calls
    finally:
        setattr(cpu, name, twin)
        engine.set_fast(engine.is_fast())


# ---- pooling ---------------------------------------------------------------------------------------
TILED = [((2, 2), (13, 13)), ((2, 2), (26, 26)), ((2, 2), (11, 10)), ((3, 2), (7, 9)), ((2, 3), (8, 8)),
         ((1, 1), (5, 4)), ((3, 3), (3, 5))]


def _pool_both_ways(cls, pool, strides, padding, x, dy_of):
    """y and dx of a fresh `cls` layer, twins on then off (numpy results); dy = dy_of(y's shape), drawn once."""
    results, dy = [], None
    for on in (True, False):
        with fast_mode(on):
            layer = cls(pool, strides=strides, padding=padding)
            y = layer.forward(backend.to_device(x))
            dy = dy_of(y.shape) if dy is None else dy
            dx = layer.backward(backend.to_device(dy))
            results.append((backend.to_numpy(y), backend.to_numpy(dx)))
    return results


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 * inf, in both
@pytest.mark.parametrize("cls", POOLS)
@pytest.mark.parametrize("pool, size", TILED)
@pytest.mark.parametrize("kind", ["ties", "normal", "special"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("images_a_piece", [None, 1, 2])
def test_pooling_twins_equal_the_textbook_to_the_bit(xb, monkeypatch, cls, pool, size, kind, dtype, images_a_piece):
    """images_a_piece: max pooling's twins take the batch a few images at a time (None: all 3 at once here)."""
    for name in TWINS[cls]:
        _twin_or_skip(name)
    gen = np.random.default_rng(zlib.crc32(repr((pool, size, kind)).encode()))
    x = _images(gen, (3, *size, 5), kind).astype(dtype)
    if images_a_piece:
        from tinynet.engine import cpu
        monkeypatch.setattr(cpu, "POOL_PIECE_BYTES", images_a_piece * x[:1].nbytes)

    def dy_of(shape):
        dy = _images(gen, shape, kind).astype(dtype)
        dy[0, 0, 0, 0] = -0.0  # a window's maximum that gets -0.0: the textbook gives it 0 + -0.0 = +0.0
        return dy

    with backend.using(dtype=dtype), _calls_to(TWINS[cls][0]) as forward_calls, \
            _calls_to(TWINS[cls][1]) as backward_calls:
        (y_fast, dx_fast), (y_text, dx_text) = _pool_both_ways(cls, pool, None, "valid", x, dy_of)
    assert forward_calls and backward_calls  # the twins did run
    assert dx_fast.shape == x.shape
    _same_bits(y_fast, y_text)
    _same_bits(dx_fast, dx_text)
    oh, ow = size[0] // pool[0], size[1] // pool[1]
    assert not dx_fast[:, oh * pool[0]:].any() and not dx_fast[:, :, ow * pool[1]:].any()  # dropped rows get 0


def test_max_pooling_twin_gives_a_tied_window_s_gradient_to_its_first_maximum(xb):
    _twin_or_skip("max_pool_backward")
    x = np.array([[5, 5], [5, 1]], np.float32).reshape(1, 2, 2, 1)   # three tied maxima: the first, (0, 0), wins
    x2 = np.array([[0, 7], [7, 7]], np.float32).reshape(1, 2, 2, 1)  # (0, 1) comes before the row below
    with fast_mode(True):
        for image, want in ((x, [[3, 0], [0, 0]]), (x2, [[0, 3], [0, 0]])):
            layer = MaxPooling2D(2)
            layer.forward(backend.to_device(image))
            dx = layer.backward(backend.to_device(np.full((1, 1, 1, 1), 3, np.float32)))
            np.testing.assert_array_equal(backend.to_numpy(dx)[0, :, :, 0], want)


@pytest.mark.parametrize("cls", POOLS)
@pytest.mark.parametrize("pool, strides, padding", [((2, 2), None, "same"), ((2, 2), (1, 1), "valid"),
                                                    ((3, 3), (2, 2), "valid"), ((2, 2), (3, 3), "valid"),
                                                    ((3, 3), None, "same"), ((2, 3), (2, 2), "valid")])
def test_overlapping_or_padded_windows_take_the_textbook_lines(xb, cls, pool, strides, padding):
    for name in TWINS[cls]:
        _twin_or_skip(name)
    gen = np.random.default_rng(7)
    x = _images(gen, (2, 13, 11, 3), "ties").astype(np.float32)
    with _calls_to(TWINS[cls][0]) as forward_calls, _calls_to(TWINS[cls][1]) as backward_calls:
        (y_fast, dx_fast), (y_text, dx_text) = _pool_both_ways(
            cls, pool, strides, padding, x, lambda shape: _images(gen, shape, "ties").astype(np.float32))
    assert not forward_calls and not backward_calls
    _same_bits(y_fast, y_text)
    _same_bits(dx_fast, dx_text)


def test_a_pooling_layer_switches_between_twin_and_textbook_from_one_forward_to_the_next(xb):
    for name in TWINS[MaxPooling2D]:
        _twin_or_skip(name)
    gen = np.random.default_rng(8)
    x, dy = _images(gen, (2, 9, 9, 3), "ties"), _images(gen, (2, 4, 4, 3), "ties")
    layer, dxs = MaxPooling2D(2), []
    for on in (True, False, True):
        with fast_mode(on):
            layer.forward(backend.to_device(x.astype(np.float32)))
            dxs.append(layer.backward(backend.to_device(dy.astype(np.float32))))
    _same_bits(dxs[0], dxs[1])
    _same_bits(dxs[2], dxs[1])


# ---- im2col ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, window, strides", [((3, 13, 13, 32), (3, 3), (1, 1)), ((2, 28, 28, 1), (3, 3), (1, 1)),
                                                     ((2, 9, 8, 3), (2, 3), (2, 1)), ((2, 11, 12, 4), (3, 2), (3, 2)),
                                                     ((1, 5, 5, 2), (5, 5), (1, 1)), ((2, 7, 7, 3), (1, 1), (2, 3)),
                                                     ((2, 13, 13, 5), (2, 2), (2, 2))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_im2col_twin_equals_the_textbook_to_the_bit(xb, shape, window, strides, dtype):
    _twin_or_skip("im2col")
    gen = np.random.default_rng(3)
    image = backend.to_device(_images(gen, (shape[0], shape[1] + 1, shape[2] + 1, shape[3]), "special").astype(dtype))
    # the whole image, and part of it: a view with other strides, as a user's sliced batch may be
    for x in (image[:, :-1, :-1], image[:, 1:, 1:].copy()):
        out = tuple((n - k) // s + 1 for n, k, s in zip(shape[1:3], window, strides))
        results = []
        for on in (True, False):
            with fast_mode(on):
                results.append(convolution.im2col(x, window, strides, out))
        fast, textbook = results
        _same_bits(fast, textbook)
        matrix = fast.reshape(-1, math.prod(fast.shape[3:]))  # as Conv2D reads it: a view, not another copy
        assert np.shares_memory(matrix, fast)


def _close(a, b, dtype):
    """Equal but for the rounding of products that BLAS may sum in another order: within 1e-6 (float32) or
    1e-12 (float64) of the largest value, element by element."""
    a, b = backend.to_numpy(a), backend.to_numpy(b)
    tol = 1e-6 if dtype == "float32" else 1e-12
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * float(np.abs(b).max()))


@pytest.mark.parametrize("strides, padding", [((1, 1), "valid"), ((1, 1), "same"), ((2, 2), "same"), ((2, 1), "valid")])
@pytest.mark.parametrize("channels", [1, 3, 8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_with_the_twins_equals_the_textbook(xb, strides, padding, channels, dtype):
    """im2col's twin moves the same values (tested to the bit above); conv_input_gradient's products may round
    differently, its col2im sums in the textbook's order."""
    for name in ("im2col", "conv_input_gradient"):
        _twin_or_skip(name)
    gen = np.random.default_rng(4)
    x, W, b = (gen.standard_normal((3, 13, 12, channels)), gen.standard_normal((3, 3, channels, 4)),
               gen.standard_normal(4))
    dy = None
    results = []
    with backend.using(dtype=dtype), _calls_to("conv_input_gradient") as calls:
        for on in (True, False):
            with fast_mode(on):
                layer = Conv2D(4, 3, strides=strides, padding=padding)
                layer.build((13, 12, channels))
                layer.W[...], layer.b[...] = backend.to_device(W.astype(dtype)), backend.to_device(b.astype(dtype))
                layer.needs_input_grad = True
                y = layer.forward(backend.to_device(x.astype(dtype)))
                dy = gen.standard_normal(y.shape).astype(dtype) if dy is None else dy
                dx = layer.backward(backend.to_device(dy))
                results.append([y, dx, layer.dW.copy(), layer.db.copy()])
    assert calls == ["conv_input_gradient"]
    for a, b_ in zip(*results):
        _close(a, b_, dtype)
    _same_bits(results[0][3], results[1][3])  # db: the textbook's own sum


# ---- a whole convnet ---------------------------------------------------------------------------------
def test_training_the_mnist_convnet_with_the_twins_equals_the_textbook(xb):
    """Keras's simple MNIST convnet, shrunk: conv 3x3, pool 2 (26 -> 13), conv 3x3, pool 2 (11 -> 5, one row and
    column dropped), dense; three Adam steps on images of small integers (ties in every pooling layer)."""
    for name in ("im2col", "conv_input_gradient", "max_pool_forward", "max_pool_backward"):
        _twin_or_skip(name)
    gen = np.random.default_rng(6)
    x = gen.integers(0, 3, (16, 28, 28, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[gen.integers(0, 10, 16)]
    weights = []
    for on in (True, False):
        with fast_mode(on):
            tinynet.set_seed(9)
            model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(2),
                                Conv2D(6, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                                Dense(10, activation="softmax")])
            model.compile(loss="categorical_crossentropy", optimizer="adam")
            for step in range(3):
                model.train_on_batch(x[step * 4:step * 4 + 8], y[step * 4:step * 4 + 8])
            weights.append(model.get_weights())
    for a, b in zip(*weights):
        _close(a, b, "float32")


@pytest.mark.parametrize("layer_class", [MaxPooling2D, AveragePooling2D])
def test_twins_switched_off_between_forward_and_backward_still_give_the_gradient(layer_class):
    gen = np.random.default_rng(4)
    x, dy = gen.standard_normal((2, 6, 6, 3)), gen.standard_normal((2, 3, 3, 3))
    with fast_mode(False):
        textbook = layer_class()
        textbook.forward(x)
        want = textbook.backward(dy)
    layer = layer_class()
    with fast_mode(True):
        layer.forward(x)
    with fast_mode(False):  # the backward still pairs with the forward that ran
        np.testing.assert_array_equal(layer.backward(dy), want)
