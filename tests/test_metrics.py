"""Metrics: each function against a hand computation, how "accuracy" is resolved, and what fit and evaluate
report (Keras's names, values equal to NumPy over predict's outputs)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import Sequential, backend, losses, metrics
from tinynet.layers import Dense, Input

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _run(function, y_true, y_pred, **kwargs):
    out = function(backend.to_device(np.asarray(y_true)), backend.to_device(np.asarray(y_pred)), **kwargs)
    return backend.to_numpy(out)


# ---- the functions, by hand ---------------------------------------------------------------------
def test_binary_accuracy_by_hand(xb):
    y_true = [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    y_pred = [[0.7, 0.5, 0.2], [0.1, 0.9, 0.51], [0.5, 0.99, 0.0]]  # 0.5 is not above the threshold 0.5
    # decided: [1, 0, 0] [0, 1, 1] [0, 1, 0]
    np.testing.assert_allclose(_run(metrics.binary_accuracy, y_true, y_pred), [2 / 3, 2 / 3, 2 / 3])
    # threshold 0.15: decided [1, 1, 1] [0, 1, 1] [1, 1, 0]
    np.testing.assert_allclose(_run(metrics.binary_accuracy, y_true, y_pred, threshold=0.15), [2 / 3, 2 / 3, 1.0])
    # one output, targets of shape (n,) or (n, 1)
    p = [[0.2], [0.8], [0.6], [0.4]]
    for y in ([0.0, 1.0, 0.0, 0.0], [[0.0], [1.0], [0.0], [0.0]]):
        out = _run(metrics.binary_accuracy, y, p)
        assert out.shape == (4,)
        np.testing.assert_array_equal(out, [1.0, 1.0, 0.0, 1.0])


def test_categorical_accuracy_by_hand(xb):
    y_true = np.eye(3)[[0, 1, 2, 1, 0]]
    y_pred = [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2], [0.4, 0.4, 0.2]]
    # a tie goes to the first highest output (argmax), as in Keras: row 4 predicts class 0
    np.testing.assert_array_equal(_run(metrics.categorical_accuracy, y_true, y_pred), [1, 0, 1, 0, 1])
    # scores work as well as probabilities (only the order matters)
    np.testing.assert_array_equal(_run(metrics.categorical_accuracy, y_true, [[3.0, -1, 2], [0, 5, -9], [1, 2, 3],
                                                                              [7, 7, 7], [-1, -2, -3]]),
                                  [1, 1, 1, 0, 1])


def test_sparse_categorical_accuracy_by_hand(xb):
    y_pred = [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]
    want = [1, 0, 1, 0]
    for labels in ([0, 1, 2, 1], [[0], [1], [2], [1]], [0.0, 1.0, 2.0, 1.0], np.array([0, 1, 2, 1], np.uint8)):
        out = _run(metrics.sparse_categorical_accuracy, labels, y_pred)
        assert out.shape == (4,)
        np.testing.assert_array_equal(out, want)


def test_top_k_categorical_accuracy_by_hand(xb):
    y_pred = [[0.1, 0.5, 0.3, 0.1], [0.1, 0.5, 0.3, 0.1], [0.1, 0.5, 0.3, 0.1], [0.3, 0.3, 0.3, 0.1]]
    y_true = np.eye(4)[[3, 2, 1, 2]]
    # outputs above the true one's: 2, 1, 0, 0 (the tie in row 4 does not count against it)
    expected = {1: [0, 0, 1, 1], 2: [0, 1, 1, 1], 3: [1, 1, 1, 1], 5: [1, 1, 1, 1]}
    for k, want in expected.items():
        np.testing.assert_array_equal(_run(metrics.top_k_categorical_accuracy, y_true, y_pred, k=k), want)
    # the tie at the top: class 3 of row 1 ties with class 0 (0.1), both below 0.5 and 0.3
    np.testing.assert_array_equal(_run(metrics.top_k_categorical_accuracy, np.eye(4)[[0]], [[0.1, 0.5, 0.3, 0.1]],
                                       k=2), [0])
    # Keras's default k is 5: with 7 classes, a true class ranked 6th misses
    p = [[0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]
    np.testing.assert_array_equal(_run(metrics.top_k_categorical_accuracy, np.eye(7)[[4]], p), [1])
    np.testing.assert_array_equal(_run(metrics.top_k_categorical_accuracy, np.eye(7)[[5]], p), [0])


def test_regression_metrics_by_hand(xb):
    y_true = [[0.0, 2.5], [2.0, -3.0]]
    y_pred = [[1.0, 2.0], [0.0, -3.0]]
    np.testing.assert_allclose(_run(metrics.mean_squared_error, y_true, y_pred), [(1 + 0.25) / 2, 4 / 2])
    np.testing.assert_allclose(_run(metrics.mean_absolute_error, y_true, y_pred), [(1 + 0.5) / 2, 2 / 2])
    out = _run(metrics.mean_squared_error, [1.0, 2.0, 3.0], [[1.5], [2.0], [0.0]])  # (n,) against (n, 1)
    np.testing.assert_allclose(out, [0.25, 0.0, 9.0])


@FAST
@given(n=st.integers(1, 8), k=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_functions_against_numpy(xb, n, k, seed):
    gen = np.random.default_rng(seed)
    p = gen.standard_normal((n, k))
    labels = gen.integers(0, k, n)
    y = np.eye(k)[labels]
    rank = (p > p[np.arange(n), labels][:, None]).sum(axis=1)  # how many outputs beat the true one
    np.testing.assert_array_equal(_run(metrics.categorical_accuracy, y, p), p.argmax(1) == labels)
    np.testing.assert_array_equal(_run(metrics.sparse_categorical_accuracy, labels, p), p.argmax(1) == labels)
    for top in (1, 2, 3):
        np.testing.assert_array_equal(_run(metrics.top_k_categorical_accuracy, y, p, k=top), rank < top)
    np.testing.assert_allclose(_run(metrics.mean_squared_error, y, p), ((p - y) ** 2).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(_run(metrics.mean_absolute_error, y, p), np.abs(p - y).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(_run(metrics.binary_accuracy, y, p), ((p > 0.5) == y).mean(axis=1), rtol=1e-12)


# ---- metrics.get --------------------------------------------------------------------------------
def _functions(found):
    return [metric.function for metric in found]


@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_accuracy_is_resolved_as_keras_does(name):
    get = metrics.get
    bce, cce, sparse, mse = (losses.BinaryCrossentropy(), losses.CategoricalCrossentropy(),
                             losses.SparseCategoricalCrossentropy(), losses.MeanSquaredError())
    assert _functions(get([name], bce, 1)) == [metrics.binary_accuracy]
    assert _functions(get([name], bce, 4)) == [metrics.categorical_accuracy]  # Keras 3 looks at the outputs only
    assert _functions(get([name], mse, 1)) == [metrics.binary_accuracy]
    assert _functions(get([name], losses.Huber(), 1)) == [metrics.binary_accuracy]
    assert _functions(get([name], sparse, 5)) == [metrics.sparse_categorical_accuracy]
    assert _functions(get([name], losses.SparseCategoricalCrossentropy(from_logits=True), 5)) == \
        [metrics.sparse_categorical_accuracy]
    assert _functions(get([name], cce, 5)) == [metrics.categorical_accuracy]
    assert _functions(get([name], mse, 3)) == [metrics.categorical_accuracy]
    assert [m.name for m in get([name], cce, 5)] == [name]  # logged under the name given, as Keras 3 does


def test_get_names_and_functions():
    found = metrics.get(["mae", "mse", "mean_squared_error", "mean_absolute_error", "categorical_accuracy",
                         "sparse_categorical_accuracy", "top_k_categorical_accuracy", "binary_accuracy"],
                        losses.CategoricalCrossentropy(), 3)
    assert [m.name for m in found] == ["mae", "mse", "mean_squared_error", "mean_absolute_error",
                                       "categorical_accuracy", "sparse_categorical_accuracy",
                                       "top_k_categorical_accuracy", "binary_accuracy"]
    assert _functions(found) == [metrics.mean_absolute_error, metrics.mean_squared_error, metrics.mean_squared_error,
                                 metrics.mean_absolute_error, metrics.categorical_accuracy,
                                 metrics.sparse_categorical_accuracy, metrics.top_k_categorical_accuracy,
                                 metrics.binary_accuracy]
    assert metrics.get(None) == [] and metrics.get([]) == []
    existing = metrics.Metric("mine", metrics.mean_squared_error)
    assert metrics.get([existing])[0] is existing


def test_get_wants_a_list():
    with pytest.raises(TypeError, match=r"metrics must be a list .*\['accuracy'\].*got 'accuracy'"):
        metrics.get("accuracy")


@pytest.mark.parametrize("bad", ["accuracy_score", "MSE", "f1", 3])
def test_unknown_metrics_list_the_valid_ones(bad):
    with pytest.raises(ValueError, match=rf"unknown metric {bad!r}; valid metrics are") as info:
        metrics.get([bad], losses.MeanSquaredError(), 1)
    for name in ["accuracy", "acc", "mse", "mae", *metrics.FUNCTIONS]:
        assert name in str(info.value)
    model = Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(loss="mse", metrics=[bad])


# ---- fit and evaluate ----------------------------------------------------------------------------
def _top_k(p, labels, k=5):
    return (p > p[np.arange(len(labels)), labels][:, None]).sum(axis=1) < k


def _softmax_problem(seed=0, n=60, features=4, k=7):
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((n, features))
    labels = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0) + gen.integers(0, 2, n) * (k - 4)  # learnable, all k used
    return x, labels % k, np.eye(k)[labels % k]


def test_fit_and_evaluate_report_keras_names_and_numpy_values(xb):
    x, labels, y = _softmax_problem()
    x_val, labels_val, y_val = _softmax_problem(seed=1, n=25)
    model = Sequential([Input((4,)), Dense(8, activation="relu"), Dense(7, activation="softmax")])
    names = ["mae", "mse", "accuracy", "top_k_categorical_accuracy"]
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=names)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x_val, y_val))
    assert list(history.history) == ["loss", *names, "val_loss", *["val_" + name for name in names]]
    assert all(len(values) == 3 for values in history.history.values())
    for data_x, data_labels, data_y in ((x, labels, y), (x_val, labels_val, y_val)):
        result = model.evaluate(data_x, data_y, verbose=0)
        assert isinstance(result, list) and len(result) == 5
        p = model.predict(data_x).astype(np.float64)
        want = [np.mean(-np.log(np.clip(p[np.arange(len(data_labels)), data_labels], 1e-7, 1 - 1e-7))),
                np.mean(np.abs(p - data_y)), np.mean((p - data_y) ** 2), np.mean(p.argmax(1) == data_labels),
                np.mean(_top_k(p, data_labels))]
        np.testing.assert_allclose(result, want, rtol=1e-5, atol=1e-7)
        assert 0 < want[3] < want[4] < 1  # the test data tell accuracy and top-5 apart
        result_small_batches = model.evaluate(data_x, data_y, batch_size=7, verbose=0)
        np.testing.assert_allclose(result_small_batches, result, rtol=1e-5)
    # the last epoch's validation logs are evaluate's numbers on the validation data after training
    final = model.evaluate(x_val, y_val, verbose=0)
    np.testing.assert_allclose([history.history[key][-1] for key in ["val_loss"] + ["val_" + n for n in names]],
                               final, rtol=1e-5)


def test_binary_model_reports_binary_accuracy(xb):
    gen = np.random.default_rng(2)
    x = gen.standard_normal((40, 3))
    y = (x[:, 0] + 0.5 * gen.standard_normal(40) > 0).astype(float)
    model = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy", "mae"])
    assert _functions(model.metrics) == [metrics.binary_accuracy, metrics.mean_absolute_error]
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_data=(x, y))
    assert list(history.history) == ["loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"]
    loss, accuracy, mae = model.evaluate(x, y, verbose=0)
    p = model.predict(x)[:, 0].astype(np.float64)
    assert loss == pytest.approx(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))), rel=1e-5)
    assert accuracy == pytest.approx(np.mean((p > 0.5) == y))
    assert 0 < accuracy < 1
    assert mae == pytest.approx(np.mean(np.abs(p - y)), rel=1e-5)


def test_sparse_model_reports_sparse_accuracy(xb):
    x, labels, _ = _softmax_problem(k=5)
    model = Sequential([Input((4,)), Dense(5, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["acc"])
    assert _functions(model.metrics) == [metrics.sparse_categorical_accuracy]
    history = model.fit(x, labels, epochs=1, verbose=0)
    assert "acc" in history.history and "accuracy" in history.history  # Keras 2's spelling answers too
    loss, accuracy = model.evaluate(x, labels, verbose=0)
    p = model.predict(x).astype(np.float64)
    assert loss == pytest.approx(np.mean(-np.log(p[np.arange(len(labels)), labels])), rel=1e-5)
    assert accuracy == pytest.approx(np.mean(p.argmax(1) == labels))


def test_evaluate_without_metrics_returns_the_loss(xb):
    x, labels, y = _softmax_problem()
    model = Sequential([Input((4,)), Dense(7)])
    model.compile(loss="mse")
    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, float)
    assert result == pytest.approx(np.mean((model.predict(x).astype(np.float64) - y) ** 2), rel=1e-5)


def within_half(y_true, y_pred):
    """A metric of one's own: the fraction of outputs within 0.5 of their target, per sample."""
    return (abs(y_pred - y_true.reshape(y_pred.shape)) < 0.5).astype(y_pred.dtype).mean(axis=-1)


def test_custom_metric_logs_under_its_name(xb):
    gen = np.random.default_rng(4)
    x = gen.standard_normal((30, 3))
    y = x @ gen.standard_normal((3, 2))
    model = Sequential([Input((3,)), Dense(2)])
    model.compile(loss="mse", optimizer="sgd", metrics=[within_half, "mae"])
    assert [m.name for m in model.metrics] == ["within_half", "mae"]
    history = model.fit(x, y, epochs=2, batch_size=10, verbose=0, validation_data=(x, y))
    assert list(history.history) == ["loss", "within_half", "mae", "val_loss", "val_within_half", "val_mae"]
    loss, fraction, mae = model.evaluate(x, y, verbose=0)
    p = model.predict(x).astype(np.float64)
    assert fraction == pytest.approx(np.mean(np.abs(p - y) < 0.5), rel=1e-6)
    assert 0 < fraction < 1
    assert mae == pytest.approx(np.mean(np.abs(p - y)), rel=1e-5)
    assert loss == pytest.approx(np.mean((p - y) ** 2), rel=1e-5)
    assert history.history["val_within_half"][-1] == pytest.approx(fraction, rel=1e-6)


def test_accuracy_of_a_model_built_at_fit(xb):
    gen = np.random.default_rng(5)
    x = gen.standard_normal((40, 3))
    y = (x[:, 0] > 0).astype(float)
    model = Sequential([Dense(1)])  # no input shape: built by fit
    model.compile(loss="mse", optimizer="sgd", metrics=["accuracy"])
    history = model.fit(x, y, epochs=1, batch_size=40, shuffle=False, verbose=0)
    _, accuracy = model.evaluate(x, y, verbose=0)
    p = model.predict(x)[:, 0]
    assert accuracy == pytest.approx(np.mean((p > 0.5) == y))
    assert history.history["accuracy"][0] < 1.0
