"""The Keras-style model API: building, summary, fit/evaluate/predict/train_on_batch, weights, bad input."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend
from tinynet.layers import Activation, Dense, Dropout
from tinynet.optimizers import SGD, Adam
from tinynet.utils import to_categorical


def _tutorial_model():
    model = Sequential()
    model.add(Dense(512, input_shape=(784,)))
    model.add(Activation("relu"))
    model.add(Dropout(0.2))
    model.add(Dense(512))
    model.add(Activation("relu"))
    model.add(Dropout(0.2))
    model.add(Dense(10))
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"], optimizer="adam")
    return model


def _small_model(features=4, classes=3, rate=0.2, metrics=("accuracy",), loss="categorical_crossentropy",
                 optimizer="adam"):
    model = Sequential([Dense(8, input_shape=(features,)), Activation("relu"), Dropout(rate),
                        Dense(classes), Activation("softmax")])
    model.compile(loss=loss, optimizer=optimizer, metrics=None if metrics is None else list(metrics))
    return model


def _blobs(n, features=4, classes=3, seed=0, spread=1.0):
    """Gaussian blobs around well separated centres; float32 x, integer labels."""
    gen = np.random.default_rng(seed)
    centres = 4.0 * np.eye(classes, features)
    labels = np.arange(n) % classes
    x = centres[labels] + spread * gen.standard_normal((n, features))
    return x.astype(np.float32), labels


def _one_hot(labels, classes=3):
    return np.eye(classes, dtype=np.float32)[labels]


def _independent_loss_and_accuracy(probs, labels):
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return -np.mean(np.log(p[np.arange(len(labels)), labels])), np.mean(probs.argmax(axis=1) == labels)


# ---- building -------------------------------------------------------------------------------------
def test_tutorial_model_parameter_count_and_summary():
    model = _tutorial_model()
    sizes = [(784, 512), (512, 512), (512, 10)]
    assert model.count_params() == sum(i * o + o for i, o in sizes) == 669706
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 669,706" in text and "Trainable params: 669,706" in text
    assert "Non-trainable params: 0" in text
    expected_rows = [(layer, type(layer).__name__) for layer in model.layers]
    counts = {0: "401920", 3: "262656", 6: "5130"}
    for i, (layer, kind) in enumerate(expected_rows):
        width = 10 if i >= 6 else 512
        pattern = rf"^{re.escape(layer.name)} \({kind}\)\s+\(None, {width}\)\s+{counts.get(i, '0')}$"
        assert re.search(pattern, text, re.M), f"no summary row for {layer.name}: {pattern}"


def test_summary_prints_to_stdout_by_default(capsys):
    _small_model().summary()
    assert "Total params: " + f"{4 * 8 + 8 + 8 * 3 + 3:,}" in capsys.readouterr().out


def test_list_form_equals_add_form():
    def build(list_form):
        tinynet.set_seed(3)
        parts = [Dense(6, input_shape=(5,)), Activation("relu"), Dense(2), Activation("softmax")]
        if list_form:
            return Sequential(parts)
        model = Sequential()
        for part in parts:
            model.add(part)
        return model

    a, b = build(True), build(False)
    assert a.output_shape == b.output_shape == (2,)
    assert [w.shape for w in a.get_weights()] == [(5, 6), (6,), (6, 2), (2,)]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)


def test_model_without_input_shape_builds_on_first_fit(xb):
    model = Sequential([Dense(4), Activation("relu"), Dense(3), Activation("softmax")])
    assert not model.built
    model.compile(loss="sparse_categorical_crossentropy")
    x, labels = _blobs(12, features=6)
    model.fit(x, labels, epochs=1, verbose=0)
    assert model.built and model.input_shape == (6,)
    assert [w.shape for w in model.get_weights()] == [(6, 4), (4,), (4, 3), (3,)]


# ---- fit and its output ------------------------------------------------------------------------------
def test_fit_history(xb):
    x, labels = _blobs(60)
    xv, lv = _blobs(20, seed=1)
    model = _small_model()
    history = model.fit(x, _one_hot(labels), epochs=3, batch_size=16, verbose=0,
                        validation_data=(xv, _one_hot(lv)))
    assert isinstance(history, tinynet.History)
    assert history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for values in history.history.values():
        assert len(values) == 3 and all(isinstance(v, float) and np.isfinite(v) for v in values)
    assert history.history["acc"] is history.history["accuracy"]
    assert history.history["val_acc"] is history.history["val_accuracy"]
    assert "acc" in history.history and history.history.get("val_acc") == history.history["val_accuracy"]
    # the last epoch's validation numbers are those of the final weights
    val_loss, val_acc = model.evaluate(xv, _one_hot(lv), verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == val_acc


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses(xb):
    x, labels = _blobs(50)
    y = _one_hot(labels)
    tinynet.set_seed(5)
    fitted = _small_model(rate=0.0)
    history = fitted.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    tinynet.set_seed(5)
    stepped = _small_model(rate=0.0)
    batches = [slice(s, s + 16) for s in range(0, 50, 16)]  # 16, 16, 16, 2 rows
    logs = [stepped.train_on_batch(x[b], y[b]) for b in batches]
    rows = np.array([16, 16, 16, 2])
    assert history.history["loss"][0] == pytest.approx(sum(r * l for r, (l, _) in zip(rows, logs)) / 50, rel=1e-6)
    assert history.history["accuracy"][0] == pytest.approx(sum(r * a for r, (_, a) in zip(rows, logs)) / 50)
    for a, b in zip(fitted.get_weights(), stepped.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_verbose_2_prints_one_line_per_epoch(xb, capsys):
    x, labels = _blobs(30)
    _small_model().fit(x, _one_hot(labels), epochs=2, verbose=2, validation_data=(x[:9], _one_hot(labels[:9])))
    out = capsys.readouterr().out
    assert "Train on 30 samples, validate on 9 samples" in out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith(" - ")]
    assert len(epoch_lines) == 2
    for line in epoch_lines:
        assert re.fullmatch(r" - \d+m?s - loss: \d+\.\d{4} - accuracy: \d\.\d{4} - val_loss: \d+\.\d{4} "
                            r"- val_accuracy: \d\.\d{4}", line), line


def test_fit_verbose_0_prints_nothing(xb, capsys):
    x, labels = _blobs(30)
    model = _small_model()
    model.fit(x, _one_hot(labels), epochs=2, verbose=0, validation_data=(x, _one_hot(labels)))
    model.evaluate(x, _one_hot(labels), verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_fit_verbose_1_ends_with_the_final_progress_line(xb, capsys):
    x, labels = _blobs(40)
    history = _small_model().fit(x, _one_hot(labels), epochs=1, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert out.endswith("\n")
    last = out.splitlines()[-1]
    match = re.fullmatch(r"3/3 \[={30}\] \d+s \d+(?:s|ms|us)/step - loss: (\d+\.\d{4}) - accuracy: (\d\.\d{4})", last)
    assert match, last
    assert float(match[1]) == pytest.approx(history.history["loss"][0], abs=1e-4)
    assert float(match[2]) == pytest.approx(history.history["accuracy"][0], abs=1e-4)


# ---- evaluate, predict, train_on_batch -----------------------------------------------------------------
def test_evaluate_matches_an_independent_computation(xb):
    x, labels = _blobs(70)
    model = _small_model()
    model.fit(x, _one_hot(labels), epochs=2, verbose=0)
    probs = model.predict(x)
    want_loss, want_acc = _independent_loss_and_accuracy(probs, labels)
    loss, acc = model.evaluate(x, _one_hot(labels), verbose=0)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert acc == pytest.approx(want_acc)
    loss_small_batches, _ = model.evaluate(x, _one_hot(labels), batch_size=8, verbose=0)
    assert loss_small_batches == pytest.approx(want_loss, rel=1e-5)


def test_evaluate_without_metrics_returns_a_float(xb):
    x, labels = _blobs(20)
    model = _small_model(metrics=None)
    result = model.evaluate(x, _one_hot(labels), verbose=0)
    assert isinstance(result, float)
    assert result == pytest.approx(_independent_loss_and_accuracy(model.predict(x), labels)[0], rel=1e-5)
    assert isinstance(model.train_on_batch(x, _one_hot(labels)), float)


def test_predict_returns_probabilities_on_the_host(xb):
    x, _ = _blobs(25)
    model = _small_model()
    probs = model.predict(x)
    assert type(probs) is np.ndarray and probs.dtype == np.float32 and probs.shape == (25, 3)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(model.predict(x, batch_size=4), probs, rtol=1e-6)  # batching changes nothing
    np.testing.assert_array_equal(model.predict(x), probs)  # dropout is off at inference
    # the same numbers as the forward pass written out in NumPy
    W1, b1, W2, b2 = (w.astype(np.float64) for w in model.get_weights())
    z = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    want = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, want / want.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_train_on_batch_reports_the_loss_before_its_step(xb):
    x, labels = _blobs(16)
    model = _small_model(rate=0.0)
    before = model.get_weights()
    want_loss, want_acc = _independent_loss_and_accuracy(model.predict(x), labels)
    loss, acc = model.train_on_batch(x, _one_hot(labels))
    assert loss == pytest.approx(want_loss, rel=1e-5) and acc == pytest.approx(want_acc)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    loss_after, _ = model.evaluate(x, _one_hot(labels), verbose=0)
    assert loss_after < loss


def test_get_and_set_weights(xb):
    model = _small_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 8), (8,), (8, 3), (3,)]
    assert all(type(w) is np.ndarray for w in weights)
    new = [np.random.default_rng(i).standard_normal(w.shape).astype(np.float32) for i, w in enumerate(weights)]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    new[0][...] = 0  # get/set copy: changing our arrays afterwards does not reach the model
    assert np.any(model.get_weights()[0] != 0)
    np.testing.assert_array_equal(backend.to_numpy(model.layers[0].W), model.get_weights()[0])


def test_uint8_input_equals_float_input(xb):
    x = np.random.default_rng(0).integers(0, 256, (12, 4)).astype(np.uint8)
    labels = np.arange(12) % 3
    model = _small_model()
    np.testing.assert_array_equal(model.predict(x), model.predict(x.astype(np.float32)))
    assert model.evaluate(x, _one_hot(labels), verbose=0) == model.evaluate(x.astype(np.float32), _one_hot(labels), verbose=0)


# ---- learning ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("features", [2, 20])
def test_learns_separable_blobs(xb, features):
    x, labels = _blobs(300, features=features, seed=0)
    x_test, labels_test = _blobs(150, features=features, seed=1)
    model = Sequential([Dense(16, input_shape=(features,)), Activation("relu"), Dropout(0.1),
                        Dense(3), Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=Adam(0.01), metrics=["accuracy"])
    history = model.fit(x, _one_hot(labels), epochs=10, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    _, accuracy = model.evaluate(x_test, _one_hot(labels_test), verbose=0)
    assert accuracy >= 0.95
    assert np.mean(model.predict(x_test).argmax(axis=1) == labels_test) == accuracy


def test_set_seed_makes_training_bit_for_bit_reproducible(xb):
    x, labels = _blobs(64)

    def run(seed):
        tinynet.set_seed(seed)
        model = _small_model(rate=0.3)
        history = model.fit(x, _one_hot(labels), epochs=2, batch_size=8, verbose=0)
        return model.get_weights(), history.history["loss"]

    (w1, loss1), (w2, loss2), (w3, _) = run(11), run(11), run(12)
    assert loss1 == loss2
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w3))


def test_sparse_labels_train_like_one_hot(xb):
    x, labels = _blobs(48)
    results = {}
    for loss, y in [("categorical_crossentropy", _one_hot(labels)), ("sparse_categorical_crossentropy", labels)]:
        tinynet.set_seed(2)
        model = _small_model(loss=loss)
        history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_data=(x[:12], y[:12]))
        results[loss] = history.history, model.get_weights()
    (h1, w1), (h2, w2) = results.values()
    assert set(h1) == set(h2)
    for key in h1:
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-6)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert model.evaluate(x, labels[:, None], verbose=0) == model.evaluate(x, labels, verbose=0)


# ---- a loss that stops being finite -------------------------------------------------------------------------
def test_fit_stops_when_the_loss_is_not_finite(xb):
    """A learning rate of 1e30 blows the weights up after one step; the second batch's loss is NaN/inf."""
    x, labels = _blobs(40)
    y = _one_hot(labels)

    def model():
        tinynet.set_seed(9)
        m = Sequential([Dense(8, input_shape=(4,)), Dense(3), Activation("softmax")])
        m.compile(loss="categorical_crossentropy", optimizer=SGD(learning_rate=1e30), metrics=["accuracy"])
        return m

    # step by step with train_on_batch: find the failing batch and the weights just before it
    stepped = model()
    failing = None
    for step in range(4):
        before = stepped.get_weights()
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # NumPy's own overflow warnings
                stepped.train_on_batch(x[step * 10:(step + 1) * 10], y[step * 10:(step + 1) * 10])
        except FloatingPointError as err:
            assert "train_on_batch: the loss became" in str(err) and "not applied" in str(err)
            failing = step
            break
    assert failing is not None and failing >= 1, "the huge learning rate did not make the loss overflow"
    for a, b in zip(before, stepped.get_weights()):
        np.testing.assert_array_equal(a, b)  # the failed step changed nothing
    assert all(np.all(np.isfinite(w)) for w in before)

    fitted = model()
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.warns(RuntimeWarning, match=rf"epoch 1/3, batch {failing + 1}/4; training stopped"):
        history = fitted.fit(x, y, epochs=3, batch_size=10, shuffle=False, verbose=0)
    assert history.epoch == [] and "loss" not in history.history  # not even epoch 1 completed
    for a, b in zip(fitted.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# ---- bad input --------------------------------------------------------------------------------------------------
def test_input_width_must_match_the_first_layer(xb):
    model = _small_model()
    name = re.escape(model.layers[0].name)
    y = _one_hot(np.zeros(10, int))
    for call in (lambda x: model.fit(x, y, verbose=0), lambda x: model.evaluate(x, y, verbose=0),
                 lambda x: model.predict(x), lambda x: model.train_on_batch(x, y)):
        with pytest.raises(ValueError, match=rf"layer {name} expects input of shape \(batch, 4\), got \(10, 5\)"):
            call(np.zeros((10, 5), np.float32))
    with pytest.raises(ValueError, match=r"predict: x must have a batch dimension, got shape \(4,\)"):
        model.predict(np.zeros(4))


def test_one_hot_and_integer_labels_are_not_mixed_up(xb):
    x, labels = _blobs(10)
    with pytest.raises(ValueError, match=r"fit: categorical_crossentropy: expected one-hot targets of shape \(10, 3\), "
                                         r"got \(10,\) \(integer labels\? use loss='sparse_categorical_crossentropy'"):
        _small_model().fit(x, labels, verbose=0)
    with pytest.raises(ValueError, match=r"fit: sparse_categorical_crossentropy: expected integer labels of shape "
                                         r"\(10,\), got \(10, 3\) \(one-hot targets\? use loss='categorical_crossentropy'"):
        _small_model(loss="sparse_categorical_crossentropy").fit(x, _one_hot(labels), verbose=0)


def test_wrong_number_of_classes(xb):
    x, labels = _blobs(10)
    with pytest.raises(ValueError, match=r"evaluate: categorical_crossentropy: expected one-hot targets of shape "
                                         r"\(10, 3\), got \(10, 4\)"):
        _small_model().evaluate(x, _one_hot(labels, classes=4), verbose=0)


def test_y_length_must_match_x(xb):
    x, labels = _blobs(10)
    with pytest.raises(ValueError, match=r"fit: categorical_crossentropy: x has 10 samples but y has 9"):
        _small_model().fit(x, _one_hot(labels[:9]), verbose=0)
    with pytest.raises(ValueError, match=r"train_on_batch: sparse_categorical_crossentropy: x has 10 samples but y has 11"):
        _small_model(loss="sparse_categorical_crossentropy").train_on_batch(x, np.zeros(11, int))


@pytest.mark.parametrize("bad, shown", [(-1, "from -1 to 2"), (3, "from 0 to 3")])
def test_labels_out_of_range(xb, bad, shown):
    x, labels = _blobs(10)
    labels = labels.copy()
    labels[4] = bad
    with pytest.raises(ValueError, match=rf"fit: sparse_categorical_crossentropy: labels must lie in 0\.\.2 for 3 "
                                         rf"classes, got values {shown}"):
        _small_model(loss="sparse_categorical_crossentropy").fit(x, labels, verbose=0)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_x_is_rejected(xb, value):
    x, labels = _blobs(10)
    x[3, 2] = value
    model = _small_model()
    with pytest.raises(ValueError, match=r"fit: x contains NaN or inf"):
        model.fit(x, _one_hot(labels), verbose=0)
    with pytest.raises(ValueError, match=r"predict: x contains NaN or inf"):
        model.predict(x)
    with pytest.raises(ValueError, match=r"fit \(validation_data\): x contains NaN or inf"):
        model.fit(x[4:], _one_hot(labels[4:]), verbose=0, validation_data=(x, _one_hot(labels)))


def test_non_numeric_data_is_a_type_error():
    model = _small_model()
    with pytest.raises(TypeError, match=r"fit: x must be numeric, got dtype <U1"):
        model.fit(np.full((2, 4), "a"), np.zeros((2, 3)), verbose=0)
    with pytest.raises(TypeError, match=r"fit: y must be numeric, got dtype object"):
        model.fit(np.zeros((2, 4)), np.array([None, None]), verbose=0)


def test_empty_data_is_rejected():
    model = _small_model()
    with pytest.raises(ValueError, match=r"fit: expected at least one sample"):
        model.fit(np.zeros((0, 4)), np.zeros((0, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: expected at least one sample"):
        model.evaluate(np.zeros((0, 4)), np.zeros((0, 3)), verbose=0)
    assert model.predict(np.zeros((0, 4))).shape == (0, 3)  # predicting nothing is fine


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_calls_before_compile(method):
    model = Sequential([Dense(3, input_shape=(4,)), Activation("softmax")])
    with pytest.raises(ValueError, match=rf"{method}: compile the model first, e.g. model.compile\(loss="):
        getattr(model, method)(np.zeros((2, 4)), np.zeros((2, 3)))


def test_unknown_names_list_the_valid_ones():
    model = Sequential([Dense(3, input_shape=(4,)), Activation("softmax")])
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; valid losses are mean_squared_error, .*"
                                         r"sparse_categorical_crossentropy"):
        model.compile(loss="hinge")
    with pytest.raises(ValueError, match=r"unknown optimizer 'adadelta'; valid optimizers are sgd, adam"):
        model.compile(loss="categorical_crossentropy", optimizer="adadelta")
    with pytest.raises(ValueError, match=r"unknown metric 'f1'; valid metrics are accuracy, acc, categorical_accuracy"):
        model.compile(loss="categorical_crossentropy", metrics=["f1"])
    with pytest.raises(TypeError, match=r"metrics must be a list of names such as \['accuracy'\] \(or functions\), got 'accuracy'"):
        model.compile(loss="categorical_crossentropy", metrics="accuracy")
    with pytest.raises(ValueError, match=r"compile: a loss is required, one of mean_squared_error, .*categorical_crossentropy"):
        model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"unknown activation 'sigmoidal'; valid names are linear, relu, sigmoid"):
        Activation("sigmoidal")
    with pytest.raises(ValueError, match=r"out: unknown initializer 'glorot'; valid names are glorot_uniform"):
        Dense(3, kernel_initializer="glorot", name="out")
    with pytest.raises(TypeError, match=r"sequential.add: expected a tinynet Layer, got str"):
        model.add("relu")


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": -3}, "batch_size must be a positive integer, got -3"),
    ({"batch_size": 2.0}, "batch_size must be a positive integer, got 2.0"),
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"epochs": "3"}, "epochs must be a positive integer, got '3'"),
    ({"epochs": True}, "epochs must be a positive integer, got True"),
])
def test_batch_size_and_epochs_must_be_positive_ints(kwargs, message):
    x, labels = _blobs(6)
    with pytest.raises(ValueError, match="fit: " + re.escape(message)):
        _small_model().fit(x, _one_hot(labels), verbose=0, **kwargs)


def test_evaluate_and_predict_batch_size_checked():
    x, labels = _blobs(6)
    model = _small_model()
    with pytest.raises(ValueError, match=r"evaluate: batch_size must be a positive integer, got 0"):
        model.evaluate(x, _one_hot(labels), batch_size=0)
    with pytest.raises(ValueError, match=r"predict: batch_size must be a positive integer, got 1.5"):
        model.predict(x, batch_size=1.5)


def test_set_weights_with_wrong_count_or_shape():
    model = _small_model()
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"set_weights: the model has 4 weight arrays, got 3"):
        model.set_weights(weights[:3])
    bad = [weights[0], weights[1], weights[2].T, weights[3]]
    name = re.escape(model.layers[3].name)
    with pytest.raises(ValueError, match=rf"set_weights: layer {name} weight W has shape \(8, 3\), got \(3, 8\)"):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.get_weights()[0], weights[0])  # nothing was half-written


@pytest.mark.parametrize("validation_data, message", [
    ("x", r"fit: validation_data must be a tuple \(x_val, y_val\)"),
    ((np.zeros((3, 4)),), r"fit: validation_data must be a tuple \(x_val, y_val\)"),
    ((np.zeros((3, 4)), np.zeros((3, 3)), None, None), r"fit: validation_data must be a tuple \(x_val, y_val\)"),
    ((np.zeros((3, 5)), np.zeros((3, 3))), r"fit \(validation_data\): layer .* expects input of shape \(batch, 4\), got \(3, 5\)"),
    ((np.zeros((3, 4)), np.zeros(3)), r"fit \(validation_data\): categorical_crossentropy: expected one-hot targets"),
    ((np.zeros((3, 4)), np.zeros((2, 3))), r"fit \(validation_data\): categorical_crossentropy: x has 3 samples but y has 2"),
])
def test_malformed_validation_data(validation_data, message):
    x, labels = _blobs(6)
    model = _small_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.fit(x, _one_hot(labels), verbose=0, validation_data=validation_data)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # rejected before any training


def test_no_warnings_on_a_normal_run(xb):
    x, labels = _blobs(30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _small_model().fit(x, to_categorical(labels, 3), epochs=2, verbose=0)


def test_memory_does_not_grow_from_epoch_to_epoch():
    import tracemalloc

    model = Sequential([Dense(64, input_shape=(20,)), Activation("relu"), Dropout(0.2), Dense(3), Activation("softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], optimizer="adam")
    gen = np.random.default_rng(0)
    x, y = gen.random((2000, 20), dtype=np.float32), gen.integers(0, 3, 2000)
    tracemalloc.start()
    try:
        held = []
        for _ in range(5):
            model.fit(x, y, batch_size=128, epochs=1, verbose=0)
            held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert held[-1] - held[1] < 4096, f"memory held after each epoch grew: {held}"


def test_a_failed_build_leaves_the_model_usable():
    gen = np.random.default_rng(0)
    model = Sequential([Dense(3), Activation("softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    with pytest.raises(ValueError, match="dense"):
        model.fit(gen.standard_normal((6, 2, 2)), np.arange(6) % 3, verbose=0)
    model.fit(gen.standard_normal((6, 4)), np.arange(6) % 3, verbose=0)
    assert model.input_shape == (4,)

    empty = Sequential()
    with pytest.raises(ValueError, match="Flatten"):
        empty.add(Dense(10, input_shape=(28, 28)))
    assert empty.layers == [] and not empty.built
    empty.add(Dense(10, input_shape=(784,)))
    assert empty.count_params() == 7850


def test_sequential_wants_a_list_of_layers():
    with pytest.raises(TypeError, match="expected a list of layers, got Dense"):
        Sequential(Dense(3))
