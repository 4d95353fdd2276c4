"""Regression and binary losses, label smoothing, the fused activation + loss path, bad arguments, a loss of
one's own: values against NumPy written out here (Keras's formulas), gradients against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import Sequential, activations, backend, gradcheck, losses, optimizers, regularizers
from tinynet.layers import Activation, Dense, Input

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6
KERAS_EPSILON = 1e-7
sizes = st.integers(1, 5)
seeds = st.integers(0, 2**31)
cases = dict(n=sizes, k=sizes, seed=seeds)


# ---- Keras's formulas, per sample (mean over the last axis), then the mean over the batch ---------------
def ref_mse(p, y):
    return np.mean(np.mean((p - y) ** 2, axis=-1))


def ref_mae(p, y):
    return np.mean(np.mean(np.abs(p - y), axis=-1))


def ref_huber(p, y, delta):
    e = np.abs(p - y)
    per_element = np.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2)
    return np.mean(np.mean(per_element, axis=-1))


def ref_bce(p, y, smoothing=0.0):
    y = y * (1 - smoothing) + 0.5 * smoothing
    p = np.clip(p, KERAS_EPSILON, 1 - KERAS_EPSILON)
    return np.mean(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)), axis=-1))


def ref_bce_logits(z, y, smoothing=0.0):
    """Through the probabilities, the naive way (accurate for moderate z)."""
    y = y * (1 - smoothing) + 0.5 * smoothing
    s = 1 / (1 + np.exp(-z))
    return np.mean(np.mean(-(y * np.log(s) + (1 - y) * np.log(1 - s)), axis=-1))


def ref_cce(p, y, smoothing=0.0):
    k = p.shape[-1]
    y = y * (1 - smoothing) + smoothing / k
    return np.mean(-np.sum(y * np.log(np.clip(p, KERAS_EPSILON, 1 - KERAS_EPSILON)), axis=-1))


def ref_cce_logits(z, y, smoothing=0.0):
    e = np.exp(z)
    return ref_cce(e / e.sum(axis=-1, keepdims=True), y, smoothing)


def _one_hot(labels, k):
    return np.eye(k)[labels]


def _data(seed, n, k):
    gen = np.random.default_rng(seed)
    return gen, gen.standard_normal((n, k)), gen.standard_normal((n, k))


def _value(loss, y_pred, y_true, from_logits=None):
    return float(backend.to_numpy(loss.forward(backend.to_device(y_pred), backend.to_device(y_true), from_logits)))


def _away(e, points, margin=1e-3):
    """e moved so that |e - point| >= margin for each point (keeps finite differences off a kink)."""
    for point in points:
        close = np.abs(e - point) < margin
        e = np.where(close, point + np.where(e >= point, 2 * margin, -2 * margin), e)
    return e


# ---- values --------------------------------------------------------------------------------------------
@FAST
@given(**cases, delta=st.sampled_from([0.1, 0.5, 1.0, 2.0, 7.5]))
def test_regression_values(xb, n, k, seed, delta):
    _, p, y = _data(seed, n, k)
    assert _value(losses.MeanSquaredError(), p, y) == pytest.approx(ref_mse(p, y), rel=1e-12)
    assert _value(losses.MeanAbsoluteError(), p, y) == pytest.approx(ref_mae(p, y), rel=1e-12)
    assert _value(losses.Huber(delta), p, y) == pytest.approx(ref_huber(p, y, delta), rel=1e-12)
    assert _value(losses.Huber(), p, y) == pytest.approx(ref_huber(p, y, 1.0), rel=1e-12)


def test_regression_values_by_hand():
    p, y = np.array([[1.0, 2.0], [0.0, -3.0]]), np.array([[0.0, 2.5], [2.0, -3.0]])
    # errors: 1, -0.5, -2, 0
    assert _value(losses.MeanSquaredError(), p, y) == pytest.approx((1 + 0.25 + 4 + 0) / 4)
    assert _value(losses.MeanAbsoluteError(), p, y) == pytest.approx((1 + 0.5 + 2 + 0) / 4)
    # delta 1: 0.5, 0.125, 1 * 2 - 0.5 = 1.5, 0
    assert _value(losses.Huber(1.0), p, y) == pytest.approx((0.5 + 0.125 + 1.5 + 0) / 4)
    # delta 0.5: 0.5 - 0.125 = 0.375, 0.125, 1 - 0.125 = 0.875, 0
    assert _value(losses.Huber(0.5), p, y) == pytest.approx((0.375 + 0.125 + 0.875) / 4)


@FAST
@given(**cases, smoothing=st.sampled_from([0.0, 0.1, 0.5, 1.0]), soft=st.booleans())
def test_binary_crossentropy_values(xb, n, k, seed, smoothing, soft):
    gen, z, _ = _data(seed, n, k)
    y = gen.uniform(0, 1, (n, k)) if soft else gen.integers(0, 2, (n, k)).astype(float)
    p = gen.uniform(0.02, 0.98, (n, k))
    assert _value(losses.BinaryCrossentropy(label_smoothing=smoothing), p, y) == \
        pytest.approx(ref_bce(p, y, smoothing), rel=1e-12)
    assert _value(losses.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing), z, y) == \
        pytest.approx(ref_bce_logits(z, y, smoothing), rel=1e-10)
    # the model passes from_logits=True when the net ends in a sigmoid (the fused path)
    assert _value(losses.BinaryCrossentropy(label_smoothing=smoothing), z, y, from_logits=True) == \
        pytest.approx(ref_bce_logits(z, y, smoothing), rel=1e-10)


def test_binary_crossentropy_by_hand():
    p, y = np.array([[0.8, 0.4]]), np.array([[1.0, 0.0]])
    want = -(np.log(0.8) + np.log(0.6)) / 2
    assert _value(losses.BinaryCrossentropy(), p, y) == pytest.approx(want, rel=1e-12)
    # smoothing 0.2: targets 0.9 and 0.1
    want = -(0.9 * np.log(0.8) + 0.1 * np.log(0.2) + 0.1 * np.log(0.4) + 0.9 * np.log(0.6)) / 2
    assert _value(losses.BinaryCrossentropy(label_smoothing=0.2), p, y) == pytest.approx(want, rel=1e-12)
    # clipped like Keras: p = 0 and 1 give -log(1e-7) for the wrong side, no inf
    value = _value(losses.BinaryCrossentropy(), np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))
    assert value == pytest.approx(-np.log(KERAS_EPSILON), rel=1e-6)


@FAST
@given(**cases, smoothing=st.sampled_from([0.05, 0.1, 0.3, 1.0]))
def test_categorical_label_smoothing_values(xb, n, k, seed, smoothing):
    gen, z, _ = _data(seed, n, k + 1)
    k += 1
    labels = gen.integers(0, k, n)
    y = _one_hot(labels, k)
    p = gen.uniform(1, 3, (n, k))
    p /= p.sum(axis=1, keepdims=True)
    with backend.using(dtype="float64"):
        for loss, target in ((losses.CategoricalCrossentropy, y), (losses.SparseCategoricalCrossentropy, labels)):
            assert _value(loss(label_smoothing=smoothing), p, target) == \
                pytest.approx(ref_cce(p, y, smoothing), rel=1e-12)
            assert _value(loss(from_logits=True, label_smoothing=smoothing), z, target) == \
                pytest.approx(ref_cce_logits(z, y, smoothing), rel=1e-10)
            assert _value(loss(label_smoothing=smoothing), z, target, from_logits=True) == \
                pytest.approx(ref_cce_logits(z, y, smoothing), rel=1e-10)


def test_categorical_targets_take_the_scores_dtype():
    """Under the default float32 floatx, a float64 y_pred (a float64 model loaded by load_model) should be scored
    against float64 targets, as MSE and BCE do (Loss.targets)."""
    z = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5]])
    y = _one_hot(np.array([2, 0]), 3)
    got = _value(losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), z, y)
    assert got == pytest.approx(ref_cce_logits(z, y, 0.1), rel=1e-12)


def test_label_smoothing_by_hand():
    # k = 4, smoothing 0.2: targets 0.05 and 0.85
    p = np.array([[0.1, 0.2, 0.3, 0.4]])
    want = -(0.05 * np.log(0.1) + 0.05 * np.log(0.2) + 0.05 * np.log(0.3) + 0.85 * np.log(0.4))
    with backend.using(dtype="float64"):
        assert _value(losses.CategoricalCrossentropy(label_smoothing=0.2), p, np.array([[0, 0, 0, 1.0]])) == \
            pytest.approx(want, rel=1e-12)
        assert _value(losses.SparseCategoricalCrossentropy(label_smoothing=0.2), p, np.array([3])) == \
            pytest.approx(want, rel=1e-12)


# ---- gradients (float64) ---------------------------------------------------------------------------------
@FAST
@given(**cases, delta=st.sampled_from([0.1, 0.5, 1.0, 2.0]))
def test_regression_gradients(xb, n, k, seed, delta):
    _, p, y = _data(seed, n, k)
    p = y + _away(p - y, [0.0, -delta, delta])  # |p - y| away from 0 (MAE's kink) and delta (Huber's joint)
    for loss in (losses.MeanSquaredError(), losses.MeanAbsoluteError(), losses.Huber(delta)):
        err = gradcheck.check_loss(loss, p, y)["y_pred"]
        assert err < TOL, f"{loss.name}: {err:.2e}"


@FAST
@given(n=sizes, seed=seeds)
def test_regression_gradients_for_column_targets(xb, n, seed):
    gen, p, _ = _data(seed, n, 1)
    y = gen.standard_normal(n)  # (n,) targets for a one-output network
    p = y[:, None] + _away(p - y[:, None], [0.0, -1.0, 1.0])
    for loss in (losses.MeanSquaredError(), losses.MeanAbsoluteError(), losses.Huber()):
        assert gradcheck.check_loss(loss, p, y)["y_pred"] < TOL


def test_gradients_by_hand():
    p, y = np.array([[1.0, 2.0], [0.0, -3.0]]), np.array([[0.0, 2.5], [2.0, -3.0]])
    cases = [(losses.MeanSquaredError(), [[0.5, -0.25], [-1.0, 0.0]]),
             (losses.MeanAbsoluteError(), [[0.25, -0.25], [-0.25, 0.0]]),
             (losses.Huber(1.0), [[0.25, -0.125], [-0.25, 0.0]])]
    for loss, want in cases:
        loss.forward(p, y)
        np.testing.assert_allclose(backend.to_numpy(loss.backward()), want, rtol=1e-12)


@FAST
@given(**cases, smoothing=st.sampled_from([0.0, 0.1, 0.6]), soft=st.booleans())
def test_binary_crossentropy_gradients(xb, n, k, seed, smoothing, soft):
    gen, z, _ = _data(seed, n, k)
    y = gen.uniform(0, 1, (n, k)) if soft else gen.integers(0, 2, (n, k)).astype(float)
    p = gen.uniform(0.05, 0.95, (n, k))
    assert gradcheck.check_loss(losses.BinaryCrossentropy(label_smoothing=smoothing), p, y)["y_pred"] < TOL
    logits = losses.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing)
    assert gradcheck.check_loss(logits, 2 * z, y)["y_pred"] < TOL
    fused = losses.BinaryCrossentropy(label_smoothing=smoothing)
    assert gradcheck.check_loss(fused, 2 * z, y, from_logits=True)["y_pred"] < TOL


@FAST
@given(**cases, smoothing=st.sampled_from([0.1, 0.5, 1.0]), from_logits=st.booleans())
def test_label_smoothing_gradients(xb, n, k, seed, smoothing, from_logits):
    k += 1
    gen, z, _ = _data(seed, n, k)
    labels = gen.integers(0, k, n)
    p = gen.uniform(1, 3, (n, k))
    p /= p.sum(axis=1, keepdims=True)
    y_pred = z if from_logits else p
    for loss, target in ((losses.CategoricalCrossentropy, _one_hot(labels, k)),
                         (losses.SparseCategoricalCrossentropy, labels)):
        err = gradcheck.check_loss(loss(from_logits=from_logits, label_smoothing=smoothing), y_pred, target)
        assert err["y_pred"] < TOL


# ---- targets of shape (n,) for one output -----------------------------------------------------------------
VECTOR_CASES = [(losses.MeanSquaredError(), ref_mse), (losses.MeanAbsoluteError(), ref_mae),
                (losses.Huber(0.5), lambda p, y: ref_huber(p, y, 0.5)), (losses.BinaryCrossentropy(), ref_bce),
                (losses.BinaryCrossentropy(from_logits=True), ref_bce_logits),
                (losses.BinaryCrossentropy(label_smoothing=0.2), lambda p, y: ref_bce(p, y, 0.2))]


@pytest.mark.parametrize("loss, ref", VECTOR_CASES,
                         ids=[f"{loss.name}-{i}" for i, (loss, _) in enumerate(VECTOR_CASES)])
def test_vector_targets_for_one_output(xb, loss, ref):
    gen = np.random.default_rng(3)
    p = gen.uniform(0.1, 0.9, (7, 1))
    y = gen.integers(0, 2, 7).astype(float)
    as_vector = _value(loss, p, y)
    grad = backend.to_numpy(loss.backward())
    assert grad.shape == (7, 1)
    as_column = _value(loss, p, y[:, None])
    assert as_vector == as_column
    np.testing.assert_array_equal(grad, backend.to_numpy(loss.backward()))
    assert as_column == pytest.approx(ref(p, y[:, None]), rel=1e-12)
    # (n, n) broadcasting would score every prediction against every target: a different number
    assert as_column != pytest.approx(ref(p, y[None, :]), rel=1e-3)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_crossentropy"])
def test_vector_targets_in_a_model(xb, loss):
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((12, 3)), gen.integers(0, 2, 12).astype(float)
    model = Sequential([Input((3,)), Dense(4, activation="tanh"), Dense(1, activation="sigmoid")])
    model.compile(loss=loss, optimizer="sgd")
    as_vector, as_column = model.evaluate(x, y, verbose=0), model.evaluate(x, y[:, None], verbose=0)
    assert as_vector == pytest.approx(as_column, rel=1e-6)
    p = model.predict(x).astype(np.float64)
    ref = {"mse": ref_mse, "mae": ref_mae, "huber": lambda p, y: ref_huber(p, y, 1.0), "binary_crossentropy": ref_bce}
    assert as_vector == pytest.approx(ref[loss](p, y[:, None]), rel=1e-5)
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(np.isfinite(history.history["loss"]))


# ---- stability ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy_from_logits_is_stable(xb, dtype):
    z = np.array([[1e4, -1e4], [-1e4, 1e4], [1e4, 0.0]], dtype)
    y = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype)
    for loss, kwargs in ((losses.BinaryCrossentropy(from_logits=True), {}),
                         (losses.BinaryCrossentropy(), {"from_logits": True})):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value = _value(loss, z.astype(dtype), y, **kwargs)
        grad = backend.to_numpy(loss.backward())
        # per element: 0, 0 | 1e4, 1e4 | 1e4, log 2
        want = (0 + 0 + 1e4 + 1e4 + 1e4 + np.log(2)) / 6
        assert np.isfinite(value) and value == pytest.approx(want, rel=1e-6)
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad, np.array([[0, 0], [-1, 1], [1, -0.5]]) / 6, atol=1e-7)


def test_fused_binary_model_with_huge_scores_is_finite(xb):
    model = Sequential([Input((1,)), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    model.set_weights([np.array([[1e4]]), np.array([0.0])])
    x, y = np.array([[1.0], [-1.0], [1.0]]), np.array([1.0, 0.0, 0.0])
    loss = float(backend.to_numpy(model.forward_loss(x, y)))
    assert loss == pytest.approx(1e4 / 3, rel=1e-6)  # the probabilities would have been clipped to ~16.1 / 3
    model.backward()
    assert np.all(np.isfinite(backend.to_numpy(model.grads)))


# ---- the fused path: sigmoid + binary cross-entropy, softmax + categorical --------------------------------
class UnfusedBCE(losses.BinaryCrossentropy):
    """Binary cross-entropy that never takes the sigmoid over: the model runs the sigmoid's own backward."""

    def fuses(self, activation):
        return False


class UnfusedCCE(losses.CategoricalCrossentropy):
    def fuses(self, activation):
        return False


class UnfusedSparse(losses.SparseCategoricalCrossentropy):
    def fuses(self, activation):
        return False


def _fused_problem(kind, smoothing, seed):
    gen = np.random.default_rng(seed)
    n, features = 7, 3
    x = gen.standard_normal((n, features))
    if kind == "binary":
        k, y = 2, gen.integers(0, 2, (n, 2)).astype(float)
        fused, unfused = losses.BinaryCrossentropy(label_smoothing=smoothing), UnfusedBCE(label_smoothing=smoothing)
        last = "sigmoid"
    elif kind == "categorical":
        k, labels = 4, gen.integers(0, 4, n)
        y = _one_hot(labels, k)
        fused = losses.CategoricalCrossentropy(label_smoothing=smoothing)
        unfused = UnfusedCCE(label_smoothing=smoothing)
        last = "softmax"
    else:
        k, y = 4, gen.integers(0, 4, n)
        fused, unfused = (losses.SparseCategoricalCrossentropy(label_smoothing=smoothing),
                          UnfusedSparse(label_smoothing=smoothing))
        last = "softmax"
    return x, y, k, fused, unfused, last


def _make(k, last, loss, regularized, seed, separate):
    reg = regularizers.L2(0.05) if regularized else None
    tail = [Dense(k, kernel_regularizer=reg), Activation(last)] if separate else \
        [Dense(k, activation=last, kernel_regularizer=reg)]
    model = Sequential([Input((3,)), Dense(5, activation="tanh", kernel_regularizer=reg, bias_initializer="ones",
                                           seed=seed)] + tail)
    model.compile(loss=loss, optimizer="sgd")
    return model


@pytest.mark.parametrize("separate", [False, True], ids=["Dense(activation)", "Activation layer"])
@pytest.mark.parametrize("regularized", [False, True], ids=["plain", "l2"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("kind", ["binary", "categorical", "sparse"])
def test_fused_path_matches_unfused_and_finite_differences(xb, kind, smoothing, regularized, separate):
    x, y, k, fused_loss, unfused_loss, last = _fused_problem(kind, smoothing, 5)
    with backend.using(dtype="float64"):
        fused = _make(k, last, fused_loss, regularized, 5, separate)
        unfused = _make(k, last, unfused_loss, regularized, 5, separate)
        unfused.set_weights(fused.get_weights())
        assert fused.fused_activation() and not unfused.fused_activation()
        loss_f = float(backend.to_numpy(fused.forward_loss(x, y)))
        fused.backward()
        loss_u = float(backend.to_numpy(unfused.forward_loss(x, y)))
        unfused.backward()
        assert loss_f == pytest.approx(loss_u, rel=1e-12)
        np.testing.assert_allclose(backend.to_numpy(fused.grads), backend.to_numpy(unfused.grads),
                                   rtol=1e-9, atol=1e-12)
        # the outputs the loss scored are the probabilities predict gives
        probabilities = fused.predict(x)
        np.testing.assert_allclose(backend.to_numpy(fused.predictions()), probabilities, rtol=1e-12)
        # the value: NumPy's cross-entropy of predict's outputs, plus the penalties
        targets = _one_hot(y, k) if kind == "sparse" else y
        want = (ref_bce if kind == "binary" else ref_cce)(probabilities, targets, smoothing)
        if regularized:
            want += sum(0.05 * np.sum(w ** 2) for w in fused.get_weights()[::2])  # the two kernels
        assert loss_f == pytest.approx(want, rel=1e-10)
        errors = gradcheck.check_model(fused, x, y)
    assert len(errors) == 4 and max(errors.values()) < TOL, errors


@pytest.mark.parametrize("kind", ["binary", "categorical"])
def test_fused_gradient_is_probabilities_minus_targets(xb, kind):
    """dL/dz = (p - y) / (n k) for sigmoid + binary (the mean is over every output), (p - y) / n for softmax."""
    gen = np.random.default_rng(2)
    x = gen.standard_normal((6, 3))
    k = 3
    y = gen.integers(0, 2, (6, k)).astype(float) if kind == "binary" else _one_hot(gen.integers(0, k, 6), k)
    with backend.using(dtype="float64"):
        model = Sequential([Input((3,)), Dense(k, activation="sigmoid" if kind == "binary" else "softmax")])
        model.compile(loss="binary_crossentropy" if kind == "binary" else "categorical_crossentropy")
        model.forward_loss(x, y)
        model.backward()
        p = model.predict(x)
    dz = (p - y) / (6 * k if kind == "binary" else 6)
    np.testing.assert_allclose(backend.to_numpy(model.layers[0].dW), x.T @ dz, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(model.layers[0].db), dz.sum(axis=0), rtol=1e-10, atol=1e-14)


def test_fusion_only_for_the_matching_pairs():
    sig, soft = activations.sigmoid, activations.softmax
    assert losses.BinaryCrossentropy().fuses(sig) and not losses.BinaryCrossentropy().fuses(soft)
    assert not losses.BinaryCrossentropy(from_logits=True).fuses(sig)
    assert losses.CategoricalCrossentropy().fuses(soft) and not losses.CategoricalCrossentropy().fuses(sig)
    assert losses.SparseCategoricalCrossentropy().fuses(soft)
    assert not losses.CategoricalCrossentropy(from_logits=True).fuses(soft)
    for loss in (losses.MeanSquaredError(), losses.MeanAbsoluteError(), losses.Huber()):
        assert not loss.fuses(sig) and not loss.fuses(soft)


def test_mse_after_sigmoid_is_not_fused_and_gradient_checks(xb):
    gen = np.random.default_rng(1)
    x, y = gen.standard_normal((6, 3)), gen.uniform(0, 1, (6, 2))
    with backend.using(dtype="float64"):
        model = Sequential([Input((3,)), Dense(4, activation="relu"), Dense(2, activation="sigmoid")])
        model.compile(loss="mse")
        assert not model.fused_activation()
        errors = gradcheck.check_model(model, x, y)
        loss = float(backend.to_numpy(model.forward_loss(x, y)))
        assert loss == pytest.approx(ref_mse(model.predict(x), y), rel=1e-12)
    assert max(errors.values()) < TOL, errors


# ---- bad arguments and targets -----------------------------------------------------------------------------
def _binary_model():
    model = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    return model


@pytest.mark.parametrize("y", [np.array([0.0, 1.0, 1.5, 0.0]), np.array([[0.0], [-0.1], [1.0], [0.0]])])
def test_binary_targets_outside_zero_one(y):
    model, x = _binary_model(), np.zeros((4, 3))
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0)):
        with pytest.raises(ValueError, match=r"binary_crossentropy: targets must lie in \[0, 1\] .* got values from"):
            call()


def test_wrong_target_width():
    model = Sequential([Input((3,)), Dense(2)])
    model.compile(loss="mse")
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"mean_squared_error: expected targets of shape \(4, 2\), got \(4, 3\) "
                                         r"\(the network has 2 outputs\)"):
        model.fit(x, np.zeros((4, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"expected targets of shape \(4, 2\), got \(4,\)"):
        model.evaluate(x, np.zeros(4), verbose=0)  # no broadcasting of (n,) over 2 outputs
    with pytest.raises(ValueError, match=r"expected targets of shape \(4, 2\), got \(3, 2\)"):
        model.fit(x, np.zeros((3, 2)), verbose=0)
    one = Sequential([Input((3,)), Dense(1)])
    one.compile(loss="mae")
    with pytest.raises(ValueError, match=r"mean_absolute_error: expected targets of shape \(4, 1\) or \(4,\), "
                                         r"got \(4, 4\)"):
        one.fit(x, np.zeros((4, 4)), verbose=0)
    with pytest.raises(ValueError, match="targets contain NaN or inf"):
        one.fit(x, np.array([0.0, np.nan, 1.0, 2.0]), verbose=0)


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), float("inf"), "0.1", True, None])
@pytest.mark.parametrize("cls", [losses.BinaryCrossentropy, losses.CategoricalCrossentropy,
                                 losses.SparseCategoricalCrossentropy])
def test_label_smoothing_outside_zero_one(cls, bad):
    with pytest.raises(ValueError, match=rf"{cls.name}: label_smoothing must be a number in \[0, 1\]"):
        cls(label_smoothing=bad)


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), True, "1.0", None])
def test_huber_delta_must_be_positive(bad):
    with pytest.raises(ValueError, match=r"Huber: delta must be a finite number > 0"):
        losses.Huber(bad)


@pytest.mark.parametrize("bad", [1, 0, "True", None, 1.0])
@pytest.mark.parametrize("cls", [losses.BinaryCrossentropy, losses.CategoricalCrossentropy,
                                 losses.SparseCategoricalCrossentropy])
def test_from_logits_must_be_a_bool(cls, bad):
    with pytest.raises(TypeError, match=rf"{cls.name}: from_logits must be True or False"):
        cls(from_logits=bad)


def test_names_and_configs():
    for name, cls in [("mse", losses.MeanSquaredError), ("mean_squared_error", losses.MeanSquaredError),
                      ("MeanSquaredError", losses.MeanSquaredError), ("mae", losses.MeanAbsoluteError),
                      ("huber", losses.Huber), ("Huber", losses.Huber),
                      ("binary_crossentropy", losses.BinaryCrossentropy),
                      ("BinaryCrossentropy", losses.BinaryCrossentropy)]:
        assert type(losses.get(name)) is cls
    assert losses.get("huber").delta == 1.0
    for loss in (losses.Huber(2.5), losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
                 losses.CategoricalCrossentropy(label_smoothing=0.3), losses.SparseCategoricalCrossentropy(True, 0.05),
                 losses.MeanAbsoluteError()):
        again = losses.from_config(loss.get_config())
        assert type(again) is type(loss) and vars(again) == vars(loss)
    assert losses.Huber(2.5).get_config() == {"name": "huber", "delta": 2.5}
    assert losses.BinaryCrossentropy(True, 0.1).get_config() == {"name": "binary_crossentropy", "from_logits": True,
                                                                 "label_smoothing": 0.1}


def test_compile_warns_about_a_sigmoid_before_a_logits_loss():
    model = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    with pytest.warns(UserWarning, match="ends in a sigmoid, but the loss binary_crossentropy has from_logits=True"):
        model.compile(loss=losses.BinaryCrossentropy(from_logits=True))
    assert not model.fused_activation()


# ---- a loss of one's own ------------------------------------------------------------------------------------
class HalfSquaredError(losses.Loss):
    """L = mean of (p - y)^2 / 2;  dL/dp = (p - y) / (n k)"""

    name = "half_squared_error"

    def forward(self, y_pred, y_true, from_logits=None):
        error = y_pred - self.targets(y_true, y_pred)
        self.grad = error / error.size
        return 0.5 * (error * error).mean()


def test_custom_loss_trains(xb):
    gen = np.random.default_rng(0)
    x = gen.standard_normal((64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    model = Sequential([Input((3,)), Dense(1)])
    loss = HalfSquaredError()
    model.compile(loss=loss, optimizer=optimizers.SGD(learning_rate=0.1), metrics=["mse"])
    assert model.loss is loss and not model.fused_activation()
    before = model.evaluate(x, y, verbose=0)
    assert before[0] == pytest.approx(0.5 * ref_mse(model.predict(x).astype(np.float64), y), rel=1e-5)
    history = model.fit(x, y[:, 0], epochs=10, batch_size=16, verbose=0)  # (n,) targets reshaped by Loss.targets
    losses_seen = history.history["loss"]
    assert losses_seen[-1] < 0.01 * losses_seen[0]
    after = model.evaluate(x, y, verbose=0)
    assert after[0] < 0.01 * before[0]
    assert after[1] == pytest.approx(2 * after[0], rel=1e-4)  # mse = 2 * half the squared error


def test_custom_loss_gradient_checks(xb):
    gen = np.random.default_rng(1)
    x, y = gen.standard_normal((5, 3)), gen.standard_normal((5, 2))
    assert gradcheck.check_loss(HalfSquaredError(), gen.standard_normal((5, 2)), y)["y_pred"] < TOL
    with backend.using(dtype="float64"):
        model = Sequential([Input((3,)), Dense(4, activation="tanh"), Dense(2)])
        model.compile(loss=HalfSquaredError())
        errors = gradcheck.check_model(model, x, y)
    assert max(errors.values()) < TOL


def test_a_loss_without_forward_says_so():
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(loss=losses.Loss())
    with pytest.raises(NotImplementedError):
        model.forward_loss(np.zeros((2, 3)), np.zeros(2))
