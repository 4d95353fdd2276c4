"""The gradient checker itself (it must be able to fail), and whole-model gradient checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import Sequential, backend, gradcheck
from tinynet.layers import Activation, Dense, Dropout
from tinynet.losses import CategoricalCrossentropy

TOL = 1e-6


class DoubledDx(Dense):
    """A Dense layer with a bug: its backward returns twice the correct dL/dx."""

    def backward(self, dy):
        dx = super().backward(dy)
        return None if dx is None else 2 * dx


class ForgetsBias(Dense):
    """A Dense layer with a bug: it never fills db."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.db[...] = 0
        return dx


def _data(n=6, features=4, classes=3, seed=0):
    gen = np.random.default_rng(seed)
    labels = np.arange(n) % classes  # every class present
    return gen.standard_normal((n, features)), labels, np.eye(classes)[labels]


def _small_model(loss, first=Dense, second=Dense, rate=0.3, dropout_seed=None):
    model = Sequential([first(5, input_shape=(4,), bias_initializer="ones"), Activation("relu"),
                        Dropout(rate, seed=dropout_seed), second(3), Activation("softmax")])
    model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
    return model


# ---- the checker's building blocks ---------------------------------------------------------------
def test_numerical_gradient_of_a_known_function():
    a = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]])
    before = a.copy()
    grad = gradcheck.numerical_gradient(lambda: float((a ** 3).sum()), a)
    np.testing.assert_allclose(grad, 3 * before ** 2, rtol=1e-8, atol=1e-7)  # rounding: ulp(f) / eps ~ 1e-8
    assert np.array_equal(a, before)  # nudged in place and restored


def test_numerical_gradient_refuses_non_contiguous_arrays():
    a = np.zeros((3, 4))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        gradcheck.numerical_gradient(lambda: 0.0, a)


def test_relative_error_definition():
    assert gradcheck.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == pytest.approx(0.5 / 2.5)
    assert gradcheck.relative_error(np.array([-4.0, 0.0]), np.array([-4.0, 1.0])) == pytest.approx(1 / 4)
    assert gradcheck.relative_error(np.zeros(3), np.zeros(3)) == 0.0


# ---- it catches wrong backward passes -------------------------------------------------------------
def test_check_layer_catches_a_doubled_input_gradient(xb):
    with backend.using(dtype="float64"):
        layer = DoubledDx(3)
        layer.build((4,))
        errors = gradcheck.check_layer(layer, _data()[0])
    assert errors["x"] == pytest.approx(0.5, rel=1e-6)  # |2g - g| / |2g|
    assert errors["W"] < TOL and errors["b"] < TOL


def test_check_layer_catches_a_missing_bias_gradient(xb):
    with backend.using(dtype="float64"):
        layer = ForgetsBias(3)
        layer.build((4,))
        errors = gradcheck.check_layer(layer, _data()[0])
    assert errors["b"] == pytest.approx(1.0)
    assert errors["x"] < TOL and errors["W"] < TOL


def test_check_model_catches_a_bug_inside_the_network(xb):
    x, _, y = _data()
    with backend.using(dtype="float64"):
        model = _small_model("categorical_crossentropy", second=DoubledDx)
        errors = gradcheck.check_model(model, x, y)
    first, last = model.layers[0].name, model.layers[3].name
    # the bug doubles what flows back into the first layer: its gradients are off by a factor 2
    assert errors[f"{first}.W"] == pytest.approx(0.5, rel=1e-5)
    assert errors[f"{last}.W"] < TOL and errors[f"{last}.b"] < TOL


# ---- whole models ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dropout_seed", [None, 5])
@pytest.mark.parametrize("loss, sparse", [("categorical_crossentropy", False),
                                          ("sparse_categorical_crossentropy", True)])
def test_model_gradients(xb, loss, sparse, dropout_seed):
    x, labels, one_hot = _data()
    with backend.using(dtype="float64"):
        model = _small_model(loss, dropout_seed=dropout_seed)
        errors = gradcheck.check_model(model, x, labels if sparse else one_hot, training=True, seed=3)
    names = [f"{layer.name}.{w}" for layer in model.layers for w in layer.weight_names]
    assert sorted(errors) == sorted(names) and len(names) == 4
    for name, err in errors.items():
        assert err < TOL, f"{name}: {err:.2e}"


def test_model_gradients_with_a_logits_loss(xb):
    """A network that ends in scores, with the softmax inside the loss (from_logits=True)."""
    x, _, y = _data()
    with backend.using(dtype="float64"):
        model = Sequential([Dense(5, input_shape=(4,), bias_initializer="ones"), Activation("relu"), Dense(3),
                            Activation("linear")])
        model.compile(loss=CategoricalCrossentropy(from_logits=True))
        errors = gradcheck.check_model(model, x, y)
    assert len(errors) == 4 and max(errors.values()) < TOL


def test_check_model_leaves_weights_and_dtype_alone(xb):
    x, _, y = _data()
    model = _small_model("categorical_crossentropy")
    before = model.get_weights()
    dtype = model.params.dtype
    gradcheck.check_model(model, x, y)
    assert model.params.dtype == dtype == np.float32
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), features=st.integers(1, 5), hidden=st.integers(1, 6), classes=st.integers(2, 5),
       seed=st.integers(0, 2**16))
def test_whole_model_gradients_on_random_shapes(n, features, hidden, classes, seed):
    gen = np.random.default_rng(seed)
    with backend.using(dtype="float64"):
        model = Sequential([Dense(hidden, input_shape=(features,), bias_initializer="ones", seed=seed),
                            Activation("relu"), Dropout(0.25), Dense(classes, seed=seed + 1), Activation("softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        errors = gradcheck.check_model(model, gen.standard_normal((n, features)), gen.integers(0, classes, n), seed=seed)
    assert max(errors.values()) < TOL, errors


def test_weightless_first_layers_train_and_check(xb):
    from tinynet.layers import Flatten
    gen = np.random.default_rng(0)
    x, labels = gen.standard_normal((8, 2, 3)), np.arange(8) % 3
    with backend.using(dtype="float64"):
        model = Sequential([Flatten(input_shape=(2, 3)), Dropout(0.2), Dense(5), Activation("relu"),
                            Dense(3), Activation("softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        model.fit(x, labels, epochs=2, verbose=0)
        errors = gradcheck.check_model(model, x, labels)
    assert max(errors.values()) < TOL, errors


def test_check_layer_works_on_a_model_s_first_layer(xb):
    with backend.using(dtype="float64"):
        model = _small_model("categorical_crossentropy")
        errors = gradcheck.check_layer(model.layers[0], np.random.default_rng(1).standard_normal((3, 4)))
    assert max(errors.values()) < TOL, errors


class Scaled(Dense):
    """A layer of one's own with a constructor argument that its get_config does not record."""

    def __init__(self, units, factor, **kwargs):
        super().__init__(units, **kwargs)
        self.factor = factor

    def forward(self, x, training=False):
        return self.factor * super().forward(x, training)

    def backward(self, dy):
        return super().backward(self.factor * dy)


def test_check_model_works_on_layers_of_one_s_own_and_draws_nothing_from_the_global_stream(xb):
    x, _, y = _data()
    with backend.using(dtype="float64"):
        model = Sequential([Scaled(5, 3.0, input_shape=(4,), bias_initializer="ones"), Activation("relu"),
                            Dense(3), Activation("softmax")])
        model.compile(loss="categorical_crossentropy")
        backend.set_seed(11)
        errors = gradcheck.check_model(model, x, y)
        after_check = backend.rng().random(3)
    backend.set_seed(11)
    assert np.array_equal(after_check, backend.rng().random(3))  # the global stream is where it was
    assert len(errors) == 4 and max(errors.values()) < TOL, errors
