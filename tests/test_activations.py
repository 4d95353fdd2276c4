"""Activations: every function's derivative against finite differences, its values against an independent
formula, its stability at large inputs; the layers that carry them (Dense, Activation, LeakyReLU, ELU),
Input and Reshape; configurations and saving."""
from __future__ import annotations

import itertools
import json
import math
import re
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import Sequential, activations, backend, gradcheck, initializers, layer as layer_module, regularizers
from tinynet.layers import (ELU, Activation, Dense, Flatten, Input, InputLayer, LeakyReLU, Linear, ReLU, Reshape,
                            Softmax)

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EACH = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6
KINKED = {"relu", "leaky_relu", "elu", "selu"}  # no derivative at 0: finite differences must not straddle it
sizes = st.integers(1, 5)
seeds = st.integers(0, 2**31)

# Klambauer et al. (2017), typed in again here rather than read from tinynet
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _gelu(x):
    return np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(x)


def _softmax(x):
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


# independent formulas, for moderate x (|x| < ~20) where the naive forms are accurate
REFERENCE = {
    "linear": lambda x: x,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
    "softmax": _softmax,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),  # Keras 3's function default slope 0.2
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)),
    "gelu": _gelu,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "silu": lambda x: x / (1 + np.exp(-x)),
}
NAMES = sorted(activations.ACTIVATIONS)


def _normal(seed, shape, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def _off_kinks(x):
    """x with every |x| >= 1e-3 (kept on its side of 0)."""
    return np.where(np.abs(x) < 1e-3, np.copysign(0.5, x), x)


def _assert_grads_ok(errors, names):
    assert set(errors) == set(names)
    for name, err in errors.items():
        assert err < TOL, f"{name}: relative error {err:.2e}"


def cube(x):
    return x ** 3


@activations.backward_of(cube)
def cube_backward(dy, x, y):
    return dy * 3 * x ** 2


def test_every_activation_has_an_independent_reference():
    assert set(NAMES) == set(REFERENCE)
    assert set(NAMES) == {"linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "selu", "gelu",
                          "softplus", "silu"}
    for f in activations.ACTIVATIONS.values():
        assert callable(f.backward)


# ---- derivatives against finite differences (float64) -------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@EACH
@given(n=sizes, k=st.integers(1, 5), scale=st.sampled_from([0.3, 1.0, 3.0]), seed=seeds)
def test_activation_layer_gradient(xb, name, n, k, scale, seed):
    x = _off_kinks(_normal(seed, (n, k), scale))
    with backend.using(dtype="float64"):
        _assert_grads_ok(gradcheck.check_layer(Activation(name), x), ["x"])


@pytest.mark.parametrize("name", NAMES + [None, "swish"])
@EACH
@given(n=sizes, n_in=sizes, n_out=sizes, seed=seeds)
def test_dense_with_each_activation_gradient(xb, name, n, n_in, n_out, seed):
    x = _normal(seed, (n, n_in))
    with backend.using(dtype="float64"):
        layer = Dense(n_out, activation=name, bias_initializer="ones", seed=seed % 1000)
        layer.build((n_in,))
        z = x @ backend.to_numpy(layer.W) + backend.to_numpy(layer.b)
        assume(np.abs(z).min() > 1e-3 or name not in KINKED)
        if name == "softmax":  # adding one number to every score changes no probability, so db sums to zero and
            # can be tiny by cancellation, below what finite differences resolve: check that property instead
            errors = gradcheck.check_layer(layer, x)
            _assert_grads_ok({key: errors[key] for key in ("x", "W")}, ["x", "W"])
            assert abs(float(backend.to_numpy(layer.db).sum())) < 1e-12 * max(1.0, float(np.abs(layer.db).max()))
        else:
            _assert_grads_ok(gradcheck.check_layer(layer, x), ["x", "W", "b"])


@FAST
@given(n=sizes, k=sizes, slope=st.sampled_from([0.0, 0.01, 0.3, 0.7, 2.5]), seed=seeds)
def test_leaky_relu_layer_gradient_and_value(xb, n, k, slope, seed):
    x = _off_kinks(_normal(seed, (n, k)))
    layer = LeakyReLU(negative_slope=slope)
    with backend.using(dtype="float64"):
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
        np.testing.assert_allclose(y, np.where(x > 0, x, slope * x), rtol=1e-14, atol=0)
        _assert_grads_ok(gradcheck.check_layer(layer, x), ["x"])


@FAST
@given(n=sizes, k=sizes, alpha=st.sampled_from([0.0, 0.1, 1.0, 1.7, 4.0]), seed=seeds)
def test_elu_layer_gradient_and_value(xb, n, k, alpha, seed):
    x = _off_kinks(_normal(seed, (n, k), 2.0))
    layer = ELU(alpha=alpha)
    with backend.using(dtype="float64"):
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
        np.testing.assert_allclose(y, np.where(x > 0, x, alpha * (np.exp(x) - 1)), rtol=1e-12, atol=1e-15)
        _assert_grads_ok(gradcheck.check_layer(layer, x), ["x"])


def test_layer_defaults_are_keras_s():
    assert LeakyReLU().negative_slope == 0.3
    assert ELU().alpha == 1.0
    x = np.array([[-2.0, 3.0]])
    np.testing.assert_allclose(backend.to_numpy(LeakyReLU().forward(x)), [[-0.6, 3.0]])


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.3", True, None])
def test_leaky_relu_and_elu_refuse_bad_parameters(bad):
    with pytest.raises(ValueError, match="negative_slope must be a finite number"):
        LeakyReLU(negative_slope=bad)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        ELU(alpha=bad)


@FAST
@given(n=sizes, n_in=sizes, n_out=sizes, seed=seeds)
def test_custom_activation_in_dense(xb, n, n_in, n_out, seed):
    x = _normal(seed, (n, n_in))
    with backend.using(dtype="float64"):
        layer = Dense(n_out, activation=cube, bias_initializer="ones")
        assert layer.activation is cube
        layer.build((n_in,))
        y = backend.to_numpy(layer.forward(backend.to_device(x)))
        W, b = backend.to_numpy(layer.W), backend.to_numpy(layer.b)
        np.testing.assert_allclose(y, (x @ W + b) ** 3, rtol=1e-12, atol=1e-12)
        _assert_grads_ok(gradcheck.check_layer(layer, x), ["x", "W", "b"])
        _assert_grads_ok(gradcheck.check_layer(Activation(cube), x), ["x"])


def test_a_wrong_custom_backward_fails_the_check():
    """The checks above can fail: a derivative off by a factor 2 is caught."""
    def square(x):
        return x * x

    @activations.backward_of(square)
    def wrong(dy, x, y):
        return dy * x  # should be 2 x

    with backend.using(dtype="float64"):
        errors = gradcheck.check_layer(Activation(square), _normal(0, (3, 4)))
    assert errors["x"] == pytest.approx(0.5, rel=1e-6)


def test_backward_of_attaches_and_returns_the_backward():
    def f(x):
        return 2 * x

    def g(dy, x, y):
        return 2 * dy

    assert activations.backward_of(f)(g) is g
    assert f.backward is g


def test_callable_without_backward_is_refused():
    def no_derivative(x):
        return x * x

    for make in (lambda: Dense(3, activation=no_derivative, name="d"), lambda: Activation(no_derivative, name="d")):
        with pytest.raises(TypeError, match=r"d: the activation 'no_derivative' has no derivative.*backward_of"):
            make()


@pytest.mark.parametrize("bad", [3, 2.5, ["relu"], {"name": "relu"}])
def test_non_callable_activation_is_refused(bad):
    with pytest.raises(TypeError, match="activation must be a name such as 'relu', a function, or None"):
        Dense(3, activation=bad)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'rleu'; valid names are") as info:
        Dense(3, activation="rleu")
    for name in NAMES + ["swish"]:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown activation 'Relu'"):
        Activation("Relu")


def test_swish_is_silu_and_none_is_linear():
    assert activations.get("swish") is activations.silu
    assert Dense(2, activation="swish").activation is activations.silu
    assert activations.get(None) is activations.linear
    assert Dense(2).activation is activations.linear
    assert Dense(2).get_config()["activation"] == "linear"
    assert Dense(2, activation="swish").get_config()["activation"] == "silu"


def test_dense_without_activation_is_linear(xb):
    gen = np.random.default_rng(0)
    x = gen.standard_normal((4, 3))
    layer = Dense(2, activation=None, bias_initializer="ones")
    layer.build((3,))
    W, b = backend.to_numpy(layer.W), backend.to_numpy(layer.b)
    y = backend.to_numpy(layer.forward(backend.to_device(x, np.float32)))
    np.testing.assert_allclose(y, x @ W + b, rtol=1e-5, atol=1e-5)
    dy = gen.standard_normal((4, 2)).astype(np.float32)
    dx = backend.to_numpy(layer.backward(backend.to_device(dy)))
    np.testing.assert_allclose(dx, dy @ W.T, rtol=1e-5, atol=1e-5)


# ---- forward values against independent formulas ----------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@EACH
@given(n=sizes, k=sizes, scale=st.sampled_from([0.5, 2.0, 8.0]), seed=seeds)
def test_forward_against_reference(xb, name, n, k, scale, seed):
    x = _normal(seed, (n, k), scale)
    with backend.using(dtype="float64"):
        y = backend.to_numpy(Activation(name).forward(backend.to_device(x)))
        y_f = backend.to_numpy(activations.ACTIVATIONS[name](backend.to_device(x)))
    np.testing.assert_allclose(y, REFERENCE[name](x), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(y, y_f)


@pytest.mark.parametrize("name", NAMES)
def test_forward_known_values(name):
    """A few values worked out by hand, so a wrong reference above would show too."""
    x = np.array([[-1.0, 0.0, 2.0]])
    known = {
        "linear": [-1.0, 0.0, 2.0],
        "relu": [0.0, 0.0, 2.0],
        "sigmoid": [0.2689414213699951, 0.5, 0.8807970779778823],
        "tanh": [-0.7615941559557649, 0.0, 0.9640275800758169],
        "softmax": [0.04201006613406606, 0.11419519938459449, 0.8437947344813395],
        "leaky_relu": [-0.2, 0.0, 2.0],
        "elu": [-0.6321205588285577, 0.0, 2.0],
        "selu": [-1.1113307378125625, 0.0, 2.101401974710961],
        "gelu": [-0.15865525393145707, 0.0, 1.9544997361036416],
        "softplus": [0.31326168751822286, 0.6931471805599453, 2.1269280110429727],
        "silu": [-0.2689414213699951, 0.0, 1.7615941559557646],
    }
    with backend.using(dtype="float64"):
        y = activations.ACTIVATIONS[name](x)
    np.testing.assert_allclose(backend.to_numpy(y), [known[name]], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sigmoid", "softplus", "elu", "silu", "selu", "gelu", "tanh", "softmax"])
def test_stable_at_large_inputs(xb, name, dtype):
    x = backend.to_device(np.array([[-1000.0, 1000.0], [1000.0, -1000.0], [-1e4, 1e4]], dtype))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        f = activations.ACTIVATIONS[name]
        y = f(x)
        dx = f.backward(backend.xp().ones_like(x), x, y)
    y, dx = backend.to_numpy(y), backend.to_numpy(dx)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), (y, dx)
    assert y.dtype == np.dtype(dtype)
    limits = {  # the value at x = -1000 and x = +1000
        "sigmoid": (0.0, 1.0), "softplus": (0.0, 1000.0), "elu": (-1.0, 1000.0), "silu": (0.0, 1000.0),
        "selu": (-SELU_SCALE * SELU_ALPHA, SELU_SCALE * 1000), "gelu": (0.0, 1000.0), "tanh": (-1.0, 1.0),
        "softmax": (0.0, 1.0)}
    low, high = limits[name]
    np.testing.assert_allclose(y[0], [low, high], rtol=1e-6, atol=1e-30)


# ---- Dense options, summary --------------------------------------------------------------------
def test_dense_without_bias(xb):
    layer = Dense(4, use_bias=False)
    layer.build((3,))
    assert layer.weight_names == ("W",) and len(layer.weights()) == 1 and len(layer.gradients()) == 1
    assert not hasattr(layer, "b")
    assert layer.count_params() == 12
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(backend.to_numpy(layer.forward(backend.to_device(x))),
                               x @ backend.to_numpy(layer.W), rtol=1e-5, atol=1e-6)
    model = Sequential([Dense(4, use_bias=False, input_shape=(3,)), Dense(2, activation="tanh", use_bias=False)])
    assert model.count_params() == 3 * 4 + 4 * 2
    assert [w.shape for w in model.get_weights()] == [(3, 4), (4, 2)]
    assert Dense(4, use_bias=False).get_config()["use_bias"] is False
    with pytest.raises(TypeError, match="use_bias must be True or False"):
        Dense(4, use_bias=1)


@FAST
@given(n=sizes, n_in=sizes, n_out=sizes, name=st.sampled_from(["linear", "tanh", "sigmoid"]), seed=seeds)
def test_dense_without_bias_gradient(xb, n, n_in, n_out, name, seed):
    with backend.using(dtype="float64"):
        layer = Dense(n_out, activation=name, use_bias=False)
        layer.build((n_in,))
        _assert_grads_ok(gradcheck.check_layer(layer, _normal(seed, (n, n_in))), ["x", "W"])


@pytest.fixture
def fresh_names(monkeypatch):
    """Layer names counted from zero, as in a fresh Python session."""
    monkeypatch.setattr(layer_module, "_name_counters", defaultdict(itertools.count))


def test_summary_names_activation_layers_as_keras_does(fresh_names):
    model = Sequential([Input(shape=(3,)), Dense(4), Activation("relu"), Dense(2), Activation("softmax"), ReLU(),
                        LeakyReLU(), ELU()])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert [layer.name for layer in model.layers] == ["dense", "activation", "dense_1", "activation_1", "re_lu",
                                                      "leaky_re_lu", "elu"]
    for expected in ("dense (Dense)", "activation (Activation)", "activation_1 (Activation)", "re_lu (ReLU)",
                     "leaky_re_lu (LeakyReLU)", "elu (ELU)"):
        assert re.search(r"^" + re.escape(expected) + r"\s+\(None, \d+\)\s+\d+$", text, re.M), expected
    assert "input" not in text.lower()
    assert "Total params: 26" in text  # 3*4+4 + 4*2+2


# ---- Input --------------------------------------------------------------------------------------
def test_input_first_builds_the_model_and_is_not_a_layer(xb):
    model = Sequential([Input(shape=(4,)), Dense(3, activation="relu"), Dense(2)])
    assert model.built and model.input_shape == (4,)
    assert len(model.layers) == 2 and not any(isinstance(layer, InputLayer) for layer in model.layers)
    assert model.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    assert model.predict(np.zeros((5, 4))).shape == (5, 2)
    assert model.get_config()["input_shape"] == [4]
    later = Sequential([Input((2, 3))])
    assert not later.built
    later.add(Flatten())
    later.add(Dense(2))
    assert later.built and later.input_shape == (2, 3) and later.output_shape == (2,)
    assert isinstance(Input((4,)), InputLayer) and Input((4,)).input_shape == (4,)
    assert InputLayer(input_shape=(5,)).input_shape == (5,)


def test_input_forward_and_backward_are_identity():
    layer = Input((3,))
    x = np.arange(6.0).reshape(2, 3)
    assert layer.forward(x) is x and layer.backward(x) is x


def test_input_not_first_is_refused():
    with pytest.raises(ValueError, match=r"Input\(shape=...\) must be the model's first entry"):
        Sequential([Dense(3, input_shape=(4,)), Input((3,))])
    with pytest.raises(ValueError, match=r"Input\(shape=...\) must be the model's first entry, and only one"):
        Sequential([Input((4,)), Input((4,)), Dense(2)])
    model = Sequential([Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match="first entry"):
        model.add(Input((3,)))
    assert len(model.layers) == 1


@pytest.mark.parametrize("shape", [(0,), (-1, 3), (2.0,), "784", 784])
def test_input_refuses_bad_shapes(shape):
    with pytest.raises((ValueError, TypeError), match="shape"):
        Input(shape=shape)


def test_input_layer_needs_a_shape():
    with pytest.raises(ValueError, match=r"Input needs the shape of one sample"):
        InputLayer()


# ---- Reshape ------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_shape, target, out_shape", [
    ((12,), (3, 4), (3, 4)), ((12,), (-1, 2), (6, 2)), ((12,), (2, -1, 3), (2, 2, 3)), ((3, 4), (-1,), (12,)),
    ((2, 3, 4), (4, 6), (4, 6)), ((6,), (6,), (6,)), ((1,), (1, 1, -1), (1, 1, 1))])
def test_reshape_shapes_forward_and_backward(xb, in_shape, target, out_shape):
    layer = Reshape(target)
    assert layer.build(in_shape) == out_shape == layer.output_shape
    x = np.arange(3 * math.prod(in_shape), dtype=np.float32).reshape((3,) + in_shape)
    y = backend.to_numpy(layer.forward(backend.to_device(x)))
    assert y.shape == (3,) + out_shape
    np.testing.assert_array_equal(y, x.reshape((3,) + out_shape))  # row-major order, as NumPy (and Keras)
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    dx = backend.to_numpy(layer.backward(backend.to_device(dy)))
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx, dy.reshape(x.shape))


@FAST
@given(n=sizes, a=sizes, b=sizes, c=st.integers(1, 3), minus=st.integers(0, 3), seed=seeds)
def test_reshape_gradient(xb, n, a, b, c, minus, seed):
    target = [b, a, c]
    if minus < 3:
        target[minus] = -1
    with backend.using(dtype="float64"):
        layer = Reshape(tuple(target))
        assert layer.build((a * b * c,)) == (b, a, c)
        _assert_grads_ok(gradcheck.check_layer(layer, _normal(seed, (n, a * b * c))), ["x"])


@pytest.mark.parametrize("target", [(0,), (-2, 3), (-1, -1), (2.0, 3), (True, 3), "12", 12, None, (3, None)])
def test_reshape_refuses_bad_target_shapes(target):
    with pytest.raises(ValueError, match=r"target_shape must be positive integers, at most one of them -1"):
        Reshape(target)


@pytest.mark.parametrize("in_shape, target", [((12,), (5,)), ((12,), (-1, 5)), ((12,), (2, 2, 2)), ((3, 4), (13,))])
def test_reshape_refuses_a_size_that_does_not_match(in_shape, target):
    with pytest.raises(ValueError, match=r"cannot reshape samples of shape .* into"):
        Reshape(target, name="r").build(in_shape)
    with pytest.raises(ValueError, match=r"r_2: cannot reshape"):
        Reshape(target, name="r_2").forward(np.zeros((2,) + in_shape))
    model = Sequential([Dense(12, input_shape=(4,))])
    with pytest.raises(ValueError, match="cannot reshape"):
        model.add(Reshape((5,)))
    assert len(model.layers) == 1


def test_reshape_in_a_model_trains(xb):
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((16, 6)), gen.integers(0, 3, 16)
    with backend.using(dtype="float64"):
        model = Sequential([Input((6,)), Reshape((2, -1)), Flatten(), Dense(4, activation="tanh"), Reshape((2, 2)),
                            Reshape((-1,)), Dense(3, activation="softmax")])
        assert [layer.output_shape for layer in model.layers] == [(2, 3), (6,), (4,), (2, 2), (4,), (3,)]
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        errors = gradcheck.check_model(model, x, y)
    assert max(errors.values()) < TOL, errors


# ---- configurations and saving ------------------------------------------------------------------
def _new_layers():
    return [
        InputLayer(shape=(2, 3)), Activation("tanh"), Activation("swish"), ReLU(), Softmax(), Linear(),
        LeakyReLU(negative_slope=0.15), ELU(alpha=0.5), Reshape((3, -1)),
        Dense(3, activation="elu", use_bias=False, kernel_initializer="he_normal",
              kernel_regularizer=regularizers.L2(0.02), seed=7),
        Dense(5, activation="gelu", kernel_initializer=initializers.RandomNormal(stddev=0.3),
              bias_initializer=initializers.Constant(0.25), kernel_regularizer=regularizers.L1L2(l1=0.01, l2=0.03),
              bias_regularizer="l1", seed=3),
    ]


@pytest.mark.parametrize("index", range(len(_new_layers())))
def test_config_round_trip(index):
    layer = _new_layers()[index]
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config  # what a model file stores
    again = type(layer).from_config(json.loads(json.dumps(config)))
    assert type(again) is type(layer)
    assert again.get_config() == config
    for attribute in ("activation", "negative_slope", "alpha", "target_shape", "input_shape", "use_bias", "units"):
        if hasattr(layer, attribute):
            assert getattr(again, attribute) == getattr(layer, attribute), attribute
    if isinstance(layer, Dense):
        assert set(again.regularizers) == set(layer.regularizers)
        for name, reg in layer.regularizers.items():
            assert type(again.regularizers[name]) is type(reg)
            assert again.regularizers[name].get_config() == reg.get_config()
        assert type(again.kernel_initializer) is type(layer.kernel_initializer)
        assert again.kernel_initializer.get_config() == layer.kernel_initializer.get_config()
        assert again.bias_initializer.get_config() == layer.bias_initializer.get_config()
        layer.build((4,))
        again.build((4,))  # same seed and initializers: the same weights
        for a, b in zip(layer.weights(), again.weights()):
            np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))


def test_config_values():
    assert LeakyReLU(negative_slope=0.15, name="l").get_config() == {"name": "l", "negative_slope": 0.15}
    assert ELU(alpha=0.5, name="e").get_config() == {"name": "e", "alpha": 0.5}
    assert Reshape((3, -1), name="r").get_config() == {"name": "r", "target_shape": [3, -1]}
    assert Activation("swish", name="a").get_config() == {"name": "a", "activation": "silu"}
    assert InputLayer(shape=(2, 3), name="i").get_config() == {"name": "i", "shape": [2, 3]}
    assert ReLU(name="r").get_config() == {"name": "r"}
    config = Dense(3, activation="elu", kernel_regularizer=regularizers.L2(0.02), name="d").get_config()
    assert config["activation"] == "elu"
    assert config["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.02}}
    assert config["bias_regularizer"] is None


def test_saved_model_with_new_layers_predicts_the_same(xb, tmp_path):
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((20, 2, 3)), gen.integers(0, 3, 20)
    model = Sequential([
        Input(shape=(2, 3)), Reshape((-1,)),
        Dense(8, activation="elu", kernel_initializer="he_uniform", kernel_regularizer=regularizers.L2(0.01),
              bias_regularizer="l1"),
        LeakyReLU(negative_slope=0.1), Dense(6, use_bias=False, activation="swish"), ELU(alpha=0.5),
        Activation("gelu"), Reshape((3, 2)), Flatten(), ReLU(), Dense(3, activation="softmax")], name="net")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.tinynet"
    model.save(path)
    loaded = tinynet.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert loaded.layers[1].regularizers.keys() == {"W", "b"}
    assert loaded.layers[3].use_bias is False and loaded.layers[3].activation is activations.silu
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)  # the penalties came back too
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
