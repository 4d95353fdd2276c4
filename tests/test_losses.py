"""Cross-entropy losses: values against an independent NumPy derivation, gradients against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import backend, gradcheck, losses

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6
KERAS_EPSILON = 1e-7  # Keras clips probabilities to [1e-7, 1 - 1e-7]


def _problem(seed, n, k):
    """Random scores z (n, k), integer labels and their one-hot matrix, built without tinynet."""
    gen = np.random.default_rng(seed)
    z = 2 * gen.standard_normal((n, k))
    labels = gen.integers(0, k, n)
    one_hot = np.zeros((n, k))
    one_hot[np.arange(n), labels] = 1
    return z, labels, one_hot


def _probabilities(seed, n, k):
    """Positive rows summing to 1, each entry in [0.05, 0.95]: far from the clip bounds."""
    p = np.random.default_rng(seed).uniform(1, 3, (n, k))
    return p / p.sum(axis=1, keepdims=True)


def _log_softmax(z):
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def _loss(loss, y_pred, y_true, from_logits=None):
    return float(backend.to_numpy(loss.forward(backend.to_device(y_pred), backend.to_device(y_true), from_logits)))


cases = dict(n=st.integers(1, 6), k=st.integers(2, 6), seed=st.integers(0, 2**31))


# ---- gradients (float64) ---------------------------------------------------------------------
@FAST
@given(**cases)
def test_categorical_gradient_on_probabilities(xb, n, k, seed):
    _, _, y = _problem(seed, n, k)
    err = gradcheck.check_loss(losses.CategoricalCrossentropy(), _probabilities(seed, n, k), y)["y_pred"]
    assert err < TOL


@FAST
@given(**cases)
def test_categorical_gradient_on_logits(xb, n, k, seed):
    z, _, y = _problem(seed, n, k)
    assert gradcheck.check_loss(losses.CategoricalCrossentropy(from_logits=True), z, y)["y_pred"] < TOL


@FAST
@given(**cases, from_logits=st.booleans())
def test_sparse_gradient(xb, n, k, seed, from_logits):
    z, labels, _ = _problem(seed, n, k)
    y_pred = z if from_logits else _probabilities(seed, n, k)
    err = gradcheck.check_loss(losses.SparseCategoricalCrossentropy(from_logits=from_logits), y_pred, labels)
    assert err["y_pred"] < TOL


@FAST
@given(**cases)
def test_fused_gradient_is_softmax_minus_targets_over_n(xb, n, k, seed):
    z, _, y = _problem(seed, n, k)
    loss = losses.CategoricalCrossentropy()
    _loss(loss, z, y, from_logits=True)  # the model passes from_logits=True when the net ends in softmax
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(backend.to_numpy(loss.backward()), (p - y) / n, rtol=1e-12, atol=1e-15)


# ---- values ------------------------------------------------------------------------------------
@FAST
@given(**cases)
def test_values_match_the_definition(xb, n, k, seed):
    z, labels, y = _problem(seed, n, k)
    p = _probabilities(seed, n, k)
    want_probs = -np.mean([np.log(p[i, labels[i]]) for i in range(n)])
    want_logits = -np.mean([_log_softmax(z)[i, labels[i]] for i in range(n)])
    assert _loss(losses.CategoricalCrossentropy(), p, y) == pytest.approx(want_probs, rel=1e-12)
    assert _loss(losses.SparseCategoricalCrossentropy(), p, labels) == pytest.approx(want_probs, rel=1e-12)
    assert _loss(losses.CategoricalCrossentropy(from_logits=True), z, y) == pytest.approx(want_logits, rel=1e-12)
    assert _loss(losses.SparseCategoricalCrossentropy(from_logits=True), z, labels) == pytest.approx(want_logits, rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_stay_finite(xb, dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4 - 1], [3.0, 1e4, -1e4]])
    labels = np.array([1, 2, 1])  # two badly wrong rows (loss ~2e4) and one almost-right one
    y = np.eye(3)[labels]
    loss = losses.CategoricalCrossentropy(from_logits=True)
    value = float(backend.to_numpy(loss.forward(backend.to_device(z, dtype), backend.to_device(y, dtype))))
    grad = backend.to_numpy(loss.backward())
    want = -np.mean(_log_softmax(z)[np.arange(3), labels])  # np.logaddexp.reduce: exact for any finite z
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(want, rel=1e-6 if dtype == "float32" else 1e-12)
    p = np.exp(_log_softmax(z))
    np.testing.assert_allclose(grad, (p - y) / 3, atol=1e-7)


def test_probabilities_are_clipped_like_keras(xb):
    p = np.array([[0.0, 1.0], [1.0, 0.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    loss = losses.CategoricalCrossentropy()
    value = _loss(loss, p, y)
    want = (-np.log(KERAS_EPSILON) - np.log(1 - KERAS_EPSILON)) / 2
    assert value == pytest.approx(want, rel=1e-12)
    # outside the clip range the clip is flat: no gradient flows
    assert np.array_equal(backend.to_numpy(loss.backward()), np.zeros((2, 2)))


def test_sparse_accepts_column_labels(xb):
    z, labels, _ = _problem(0, 5, 3)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert _loss(loss, z, labels[:, None]) == _loss(loss, z, labels)


# ---- target checks and lookup -------------------------------------------------------------------
def test_categorical_target_checks():
    loss = losses.CategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"categorical_crossentropy: expected one-hot targets of shape \(4, 3\), "
                                         r"got \(4,\) \(integer labels\? use loss='sparse_categorical_crossentropy'"):
        loss.check_targets(np.zeros(4), 4, 3)
    with pytest.raises(ValueError, match=r"expected one-hot targets of shape \(4, 3\), got \(4, 5\)"):
        loss.check_targets(np.zeros((4, 5)), 4, 3)
    with pytest.raises(ValueError, match=r"x has 4 samples but y has 3"):
        loss.check_targets(np.zeros((3, 3)), 4, 3)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got values from -1 to 2"):
        loss.check_targets(np.array([[0, 1, 0], [2, 0, -1]]), 2, 3)


def test_sparse_target_checks():
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: expected integer labels of shape \(4,\), "
                                         r"got \(4, 3\) \(one-hot targets\? use loss='categorical_crossentropy'\)"):
        loss.check_targets(np.zeros((4, 3)), 4, 3)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2 for 3 classes, got values from -1 to 1"):
        loss.check_targets(np.array([0, -1, 1]), 3, 3)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2 for 3 classes, got values from 0 to 3"):
        loss.check_targets(np.array([0, 3, 1]), 3, 3)
    with pytest.raises(ValueError, match=r"labels must be whole numbers"):
        loss.check_targets(np.array([0.0, 1.5]), 2, 3)
    loss.check_targets(np.array([0.0, 2.0]), 2, 3)  # whole-number floats are fine


def test_get_by_name_or_instance():
    assert type(losses.get("categorical_crossentropy")) is losses.CategoricalCrossentropy
    assert type(losses.get("sparse_categorical_crossentropy")) is losses.SparseCategoricalCrossentropy
    instance = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get(instance) is instance
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; valid losses are mean_squared_error, mean_absolute_error, "
                                         r"huber, binary_crossentropy, categorical_crossentropy, "
                                         r"sparse_categorical_crossentropy, mse, mae"):
        losses.get("hinge")
    with pytest.raises(TypeError, match=r"loss must be a name .* got int"):
        losses.get(3)
