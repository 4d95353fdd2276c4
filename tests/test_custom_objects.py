"""Your own activations, losses and metrics survive save and load_model(custom_objects=...), as in Keras;
and a few behaviours a Keras user relies on: "acc" logs as "acc", on_batch_end is called, clear errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, activations, callbacks, losses
from tinynet.layers import BatchNormalization, Conv2D, Dense, Input


def cube(x):
    return x ** 3


@activations.backward_of(cube)
def cube_backward(dy, x, y):
    return dy * 3 * x ** 2


class HalfSquaredError(losses.Loss):
    """L = mean of (p - y)^2 / 2;  dL/dp = (p - y) / (n k)"""

    def forward(self, y_pred, y_true, from_logits=None, sample_weight=None):
        error = y_pred - self.targets(y_true, y_pred)
        self.grad = error / error.size
        return self.reduce((0.5 * error * error).mean(axis=-1), sample_weight)


def largest_error(y_true, y_pred):
    return abs(y_pred - y_true).max(axis=-1)


def _data(n=32):
    gen = np.random.default_rng(0)
    x = gen.standard_normal((n, 3)).astype("float32")
    return x, (x[:, :1] - x[:, 1:2]).astype("float32")


def test_custom_activation_loss_and_metric_save_and_load(tmp_path):
    x, y = _data()
    model = Sequential([Dense(4, activation=cube, input_shape=(3,)), Dense(1)])
    model.compile(optimizer="sgd", loss=HalfSquaredError(), metrics=[largest_error])
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "custom.tinynet")
    with pytest.raises(ValueError, match="unknown activation 'cube'"):
        tinynet.load_model(tmp_path / "custom.tinynet")
    loaded = tinynet.load_model(tmp_path / "custom.tinynet", custom_objects={
        "cube": cube, "HalfSquaredError": HalfSquaredError, "largest_error": largest_error})
    assert loaded.layers[0].activation is cube and type(loaded.loss) is HalfSquaredError
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    with pytest.raises(ValueError, match="unknown activation 'cube'"):  # the scope ended with load_model
        Dense(2, activation="cube")


def test_acc_is_logged_as_acc_and_history_answers_both_names():
    x, y = _data()
    model = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(x, (y[:, 0] > 0).astype(int), epochs=3, verbose=0, validation_split=0.25,
                        callbacks=[callbacks.EarlyStopping(monitor="val_acc", patience=0, mode="max")])
    assert "val_acc" in history.history.keys() and history.history["val_accuracy"] is history.history["val_acc"]


def test_keras_on_batch_end_is_called():
    seen = []

    class Old(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, round(logs["loss"], 6)))

    x, y = _data(40)
    model = Sequential([Dense(1, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[Old()])
    assert [batch for batch, _ in seen] == [0, 1, 2] and all(np.isfinite(loss) for _, loss in seen)


def test_a_bad_batch_leaves_batch_normalization_statistics_as_they_were():
    x, y = _data()
    model = Sequential([Dense(3, input_shape=(3,)), BatchNormalization(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    weights = model.get_weights()
    weights[0][...] = 3e38  # the next forward overflows: a NaN loss, and NaN batch statistics
    model.set_weights(weights)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(x, y, epochs=1, verbose=0)
    bn = model.layers[1]
    assert np.all(np.isfinite(bn.moving_mean)) and np.all(np.isfinite(bn.moving_variance))
    np.testing.assert_array_equal(bn.moving_mean, before[4])


def test_clear_errors_for_targets_that_do_not_fit():
    x, y = _data()
    regression = Sequential([Dense(1, input_shape=(3,))])
    regression.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="class_weight needs class labels from 0 to 1"):
        regression.fit(x, 10 * y, class_weight={0: 1.0}, verbose=0)
    images = Sequential([Input(shape=(6, 6, 1)), Conv2D(2, 3)])
    images.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"the model's output is \(batch, 4, 4, 2\); add Flatten"):
        images.fit(np.zeros((2, 6, 6, 1)), np.zeros((2, 4, 4, 2)), verbose=0)
    sparse = Sequential([Dense(3, input_shape=(3,))])
    with pytest.raises(ValueError, match="use 'sparse_categorical_accuracy'"):
        sparse.compile(loss="sparse_categorical_crossentropy", metrics=["categorical_accuracy"])
    with pytest.raises(TypeError, match="EarlyStopping: monitor must be the name"):
        callbacks.EarlyStopping(monitor=None)
    assert callbacks.ReduceLROnPlateau(factor=np.float32(0.5)).factor == 0.5
