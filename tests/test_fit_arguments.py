"""fit's Keras 3 arguments (validation_split, validation_data, validation_freq, validation_batch_size,
initial_epoch, batch_size=None, verbose, class_weight, sample_weight), weighted evaluate, the one-batch
calls, get_layer, pop, and the weights files.

Sample weights follow Keras 3's "sum_over_batch_size" reduction: a batch's loss is sum(w_i * l_i) / n,
so with weights 0 and 1 on n samples, m of them kept, the loss is (m / n) times the mean over the
kept ones, and so is its gradient. Metrics given to compile(metrics=...) are not weighted.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend
from tinynet import callbacks as C
from tinynet.layers import Activation, Dense
from tinynet.optimizers import SGD


# ---- helpers ---------------------------------------------------------------------------------------------------
def _model(rate=0.1, seed=5, loss="sparse_categorical_crossentropy", hidden=6, metrics=("accuracy",)):
    tinynet.set_seed(seed)
    model = Sequential([Dense(hidden, input_shape=(4,), name="hidden"), Activation("relu", name="relu"),
                        Dense(3, name="scores"), Activation("softmax", name="probabilities")])
    model.compile(loss=loss, optimizer=SGD(learning_rate=rate), metrics=None if metrics is None else list(metrics))
    return model


def _data(n=12, seed=0):
    gen = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = 1.5 * np.eye(3, 4)[labels] + gen.standard_normal((n, 4))
    return x.astype(np.float32), labels


def _assert_same_weights(a, b, rtol=1e-6, atol=1e-7):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


class Batches(C.Callback):
    """The batch numbers of every epoch, and how many test batches each validation ran."""

    def __init__(self):
        super().__init__()
        self.train, self.test, self.epoch_logs = [], [], {}

    def on_epoch_begin(self, epoch, logs=None):
        self.train.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.train[-1] += 1

    def on_test_begin(self, logs=None):
        self.test.append(0)

    def on_test_batch_end(self, batch, logs=None):
        self.test[-1] += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs[epoch] = sorted(logs)


def _independent_losses(probs, labels):
    p = np.clip(probs.astype(np.float64)[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    return -np.log(p)


# ---- validation_split ------------------------------------------------------------------------------------------
def test_validation_split_takes_the_last_fraction_before_shuffling(xb):
    x, y = _data(16)
    split = 12  # 16 * (1 - 0.25)
    a, b = _model(), _model()
    tinynet.set_seed(7)
    counted = Batches()
    history = a.fit(x, y, validation_split=0.25, batch_size=4, epochs=2, shuffle=True, verbose=0,
                    callbacks=[counted])
    tinynet.set_seed(7)  # the same shuffles, over the first 12 samples alone
    b.fit(x[:split], y[:split], batch_size=4, epochs=2, shuffle=True, verbose=0)
    _assert_same_weights(a.get_weights(), b.get_weights())
    assert counted.train == [3, 3]
    val_loss, val_accuracy = a.evaluate(x[split:], y[split:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_accuracy)


def test_validation_split_splits_the_sample_weights_too():
    x, y = _data(16)
    w = np.linspace(0.5, 2.0, 16)
    model = _model()
    history = model.fit(x, y, sample_weight=w, validation_split=0.25, epochs=1, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[12:], y[12:], sample_weight=w[12:], verbose=0)[0], rel=1e-6)


def test_class_weight_does_not_weigh_the_validation_split():
    x, y = _data(16)
    model = _model()
    history = model.fit(x, y, class_weight={0: 5.0, 1: 0.1, 2: 1.0}, validation_split=0.25, epochs=1, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[12:], y[12:], verbose=0)[0], rel=1e-6)


@pytest.mark.parametrize("split", [-0.1, 1.0, 1.5, True, "0.2", None])
def test_validation_split_outside_0_1_is_a_value_error(split):
    x, y = _data()
    with pytest.raises(ValueError, match="validation_split"):
        _model().fit(x, y, validation_split=split, verbose=0)


@pytest.mark.parametrize("n, split", [(2, 0.6), (1, 0.5), (2, 1e-17)])
def test_validation_split_leaving_no_samples_on_one_side_is_a_value_error(n, split):
    x, y = _data(n)
    with pytest.raises(ValueError, match="validation_split.*at least one"):
        _model().fit(x, y, validation_split=split, verbose=0)


def test_validation_data_overrides_validation_split():
    x, y = _data(16)
    xv, yv = _data(6, seed=3)
    counted = Batches()
    model = _model()
    history = model.fit(x, y, validation_split=0.5, validation_data=(xv, yv), batch_size=4, epochs=1, verbose=0,
                        callbacks=[counted])
    assert counted.train == [4]  # all 16 samples trained on
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(xv, yv, verbose=0)[0], rel=1e-6)


def test_validation_data_with_sample_weights():
    x, y = _data(12)
    xv, yv = _data(6, seed=3)
    wv = np.array([0.0, 1.0, 2.0, 0.5, 0.0, 3.0])
    model = _model()
    history = model.fit(x, y, validation_data=(xv, yv, wv), epochs=1, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(xv, yv, sample_weight=wv, verbose=0)[0], rel=1e-6)


# ---- validation_freq and validation_batch_size -------------------------------------------------------------------
def test_validation_freq_validates_every_nth_epoch():
    x, y = _data(16)
    counted = Batches()
    history = _model().fit(x[:12], y[:12], validation_data=(x[12:], y[12:]), validation_freq=2, epochs=5,
                           verbose=0, callbacks=[counted])
    assert counted.epoch_logs == {0: ["accuracy", "loss"], 1: ["accuracy", "loss", "val_accuracy", "val_loss"],
                                  2: ["accuracy", "loss"], 3: ["accuracy", "loss", "val_accuracy", "val_loss"],
                                  4: ["accuracy", "loss"]}
    assert len(history.history["loss"]) == 5
    assert len(history.history["val_loss"]) == len(history.history["val_accuracy"]) == 2
    assert len(counted.test) == 2


@pytest.mark.parametrize("freq", [0, -1, 1.5, "2"])
def test_validation_freq_must_be_a_positive_integer(freq):
    x, y = _data()
    with pytest.raises(ValueError, match="validation_freq"):
        _model().fit(x, y, validation_split=0.25, validation_freq=freq, verbose=0)


def test_validation_batch_size_sets_the_validation_batches():
    x, y = _data(16)
    counted = Batches()
    _model().fit(x[:10], y[:10], validation_data=(x[10:], y[10:]), batch_size=5, validation_batch_size=4,
                 epochs=1, verbose=0, callbacks=[counted])
    assert counted.train == [2] and counted.test == [2]  # 6 validation samples in batches of 4


def test_validation_batch_size_defaults_to_batch_size():
    x, y = _data(16)
    counted = Batches()
    _model().fit(x[:10], y[:10], validation_data=(x[10:], y[10:]), batch_size=2, epochs=1, verbose=0,
                 callbacks=[counted])
    assert counted.test == [3]  # 6 validation samples in batches of 2


# ---- initial_epoch, batch_size, verbose -------------------------------------------------------------------------
def test_initial_epoch_numbers_the_epochs_from_there():
    x, y = _data()
    begun = []
    history = _model().fit(x, y, epochs=5, initial_epoch=2, verbose=0,
                           callbacks=[C.LambdaCallback(on_epoch_begin=lambda epoch, logs: begun.append(epoch))])
    assert history.epoch == [2, 3, 4] and begun == [2, 3, 4]
    assert len(history.history["loss"]) == 3


@pytest.mark.parametrize("initial_epoch", [5, 6, -1, 1.0, True])
def test_initial_epoch_must_be_below_epochs(initial_epoch):
    x, y = _data()
    with pytest.raises(ValueError, match="initial_epoch"):
        _model().fit(x, y, epochs=5, initial_epoch=initial_epoch, verbose=0)


def test_batch_size_none_means_32():
    x, y = _data(70)
    counted = Batches()
    sizes = []
    history = _model().fit(x, y, batch_size=None, epochs=1, verbose=0, shuffle=False,
                           callbacks=[counted, C.LambdaCallback(on_train_begin=lambda logs: sizes.append(1))])
    assert counted.train == [3]  # 32 + 32 + 6
    assert counted.params["steps"] == 3 and sizes == [1] and len(history.epoch) == 1


def test_verbose_auto_is_accepted(capsys):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose="auto")
    model.evaluate(x, y, verbose="auto")
    model.predict(x, verbose="auto")
    capsys.readouterr()  # the bar's format is not tested here


def test_verbose_0_prints_nothing(capsys):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, class_weight={0: 2.0})
    model.evaluate(x, y, verbose=0, sample_weight=np.ones(12))
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [3, -1, "loud"])
def test_verbose_out_of_range_is_a_value_error(verbose):
    x, y = _data()
    model = _model()
    for call in (lambda: model.fit(x, y, verbose=verbose), lambda: model.evaluate(x, y, verbose=verbose),
                 lambda: model.predict(x, verbose=verbose)):
        with pytest.raises(ValueError, match="verbose"):
            call()


# ---- class_weight ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("one_hot", [False, True])
def test_class_weight_equals_the_sample_weights_it_stands_for(xb, one_hot):
    x, labels = _data(12)
    loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
    y = np.eye(3, dtype=np.float32)[labels] if one_hot else labels
    class_weight = {0: 3.0, 2: 0.25}  # class 1 is missing: weight 1, as in Keras
    by_class, by_sample = _model(loss=loss), _model(loss=loss)
    h1 = by_class.fit(x, y, class_weight=class_weight, batch_size=4, epochs=2, shuffle=False, verbose=0)
    h2 = by_sample.fit(x, y, sample_weight=np.array([3.0, 1.0, 0.25])[labels], batch_size=4, epochs=2,
                       shuffle=False, verbose=0)
    _assert_same_weights(by_class.get_weights(), by_sample.get_weights())
    assert h1.history["loss"] == pytest.approx(h2.history["loss"], rel=1e-6)
    unweighted = _model(loss=loss)
    unweighted.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(unweighted.get_weights()[0], by_class.get_weights()[0])


def test_class_weight_in_train_on_batch_equals_sample_weight():
    x, y = _data(6)
    a, b = _model(), _model()
    loss_a = a.train_on_batch(x, y, class_weight={1: 4.0})
    loss_b = b.train_on_batch(x, y, sample_weight=np.array([1.0, 4.0, 1.0])[y])
    assert loss_a == pytest.approx(loss_b)
    _assert_same_weights(a.get_weights(), b.get_weights())


@pytest.mark.parametrize("class_weight, error, message", [
    ({3: 1.0}, ValueError, "class_weight names class 3"),
    ({-1: 1.0}, ValueError, "class_weight names class -1"),
    ({"0": 1.0}, ValueError, "class_weight names class '0'"),
    ({0: -0.5}, ValueError, r"class_weight\[0\] must be a finite number >= 0"),
    ({0: float("nan")}, ValueError, r"class_weight\[0\]"),
    ([1.0, 2.0, 3.0], TypeError, "class_weight must be a dict"),
])
def test_bad_class_weight(class_weight, error, message):
    x, y = _data()
    model = _model()
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.fit(x, y, class_weight=class_weight, verbose=0)
    _assert_same_weights(model.get_weights(), before, rtol=0, atol=0)


def test_class_weight_and_sample_weight_together_is_a_value_error():
    x, y = _data()
    with pytest.raises(ValueError, match="class_weight"):
        _model().fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(12), verbose=0)


# ---- sample_weight -----------------------------------------------------------------------------------------------
def test_zero_weights_train_like_the_kept_samples_alone_at_a_scaled_rate(xb):
    """Weights 0/1 over n = 8 samples, m = 4 kept, one batch of all 8: the weighted loss is (m/n) times the mean
    loss of the kept samples, its gradient too, so SGD at rate r steps as SGD at r * m / n on the kept ones."""
    x, y = _data(8)
    w = np.array([1, 0, 0, 1, 1, 0, 1, 0], dtype=np.float64)
    kept = w == 1
    weighted, alone = _model(rate=0.2), _model(rate=0.2 * 4 / 8)
    h1 = weighted.fit(x, y, sample_weight=w, batch_size=8, epochs=3, shuffle=False, verbose=0)
    h2 = alone.fit(x[kept], y[kept], batch_size=8, epochs=3, shuffle=False, verbose=0)
    _assert_same_weights(weighted.get_weights(), alone.get_weights(), rtol=1e-5, atol=1e-6)
    assert h1.history["loss"] == pytest.approx([0.5 * loss for loss in h2.history["loss"]], rel=1e-5)


def test_fit_reports_the_weighted_loss_numpy_computes():
    """One full batch with SGD at a tiny rate: the epoch's loss is the weighted loss before the step."""
    x, y = _data(9)
    w = np.linspace(0.0, 2.0, 9)
    model = _model(rate=1e-12)
    probs = model.predict(x, verbose=0)
    history = model.fit(x, y, sample_weight=w, batch_size=9, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(np.sum(w * _independent_losses(probs, y)) / 9, rel=1e-5)
    assert history.history["accuracy"][0] == pytest.approx(np.mean(probs.argmax(axis=1) == y))


@pytest.mark.parametrize("sample_weight, message", [
    (np.ones(11), r"one number per sample, shape \(12,\)"),
    (np.ones(13), r"one number per sample"),
    (np.ones((12, 2)), r"one number per sample"),
    (np.r_[np.ones(11), -1.0], ">= 0"),
    (np.r_[np.ones(11), np.nan], "finite"),
])
def test_bad_sample_weight_is_a_value_error(sample_weight, message):
    x, y = _data()
    model = _model()
    for call in (lambda: model.fit(x, y, sample_weight=sample_weight, verbose=0),
                 lambda: model.evaluate(x, y, sample_weight=sample_weight, verbose=0),
                 lambda: model.train_on_batch(x, y, sample_weight=sample_weight),
                 lambda: model.test_on_batch(x, y, sample_weight=sample_weight)):
        with pytest.raises(ValueError, match=message):
            call()


def test_sample_weight_as_a_column_equals_a_vector():
    x, y = _data()
    w = np.linspace(0.1, 1.0, 12)
    model = _model()
    assert model.evaluate(x, y, sample_weight=w[:, None], verbose=0) == model.evaluate(x, y, sample_weight=w,
                                                                                         verbose=0)


@pytest.mark.parametrize("batch_size", [None, 5, 1])
def test_weighted_evaluate_matches_numpy_and_leaves_metrics_unweighted(xb, batch_size):
    x, y = _data(12, seed=4)
    model = _model()
    probs = model.predict(x, verbose=0)
    correct = probs.argmax(axis=1) == y
    assert 0 < correct.sum() < len(y), "need right and wrong predictions to tell weighted from unweighted accuracy"
    w = np.where(correct, 1.0, 4.0) * np.linspace(0.5, 1.5, 12)
    loss, accuracy = model.evaluate(x, y, sample_weight=w, batch_size=batch_size, verbose=0)
    assert loss == pytest.approx(np.sum(w * _independent_losses(probs, y)) / len(y), rel=1e-5)  # Keras: / n
    assert accuracy == pytest.approx(correct.mean())  # compile(metrics=...) are unweighted in Keras 3
    assert accuracy != pytest.approx(np.sum(w * correct) / np.sum(w))
    unweighted = model.evaluate(x, y, batch_size=batch_size, verbose=0)
    assert unweighted[0] == pytest.approx(_independent_losses(probs, y).mean(), rel=1e-5)
    assert model.evaluate(x, y, sample_weight=np.ones(12), batch_size=batch_size, verbose=0) == \
        pytest.approx(unweighted, rel=1e-6)


def test_train_on_batch_reports_the_weighted_loss_before_its_step():
    x, y = _data(6)
    w = np.array([2.0, 0.0, 1.0, 0.5, 0.0, 3.0])
    model = _model()
    probs = model.predict(x, verbose=0)
    loss, accuracy = model.train_on_batch(x, y, sample_weight=w)
    assert loss == pytest.approx(np.sum(w * _independent_losses(probs, y)) / 6, rel=1e-5)
    assert accuracy == pytest.approx(np.mean(probs.argmax(axis=1) == y))


# ---- evaluate(return_dict), the one-batch calls, model(x) -------------------------------------------------------
def test_evaluate_return_dict_matches_the_list(xb):
    x, y = _data()
    model = _model()
    as_list = model.evaluate(x, y, verbose=0)
    as_dict = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(as_dict) == ["loss", "accuracy"] and list(as_dict.values()) == as_list
    assert all(isinstance(v, float) for v in as_dict.values())
    bare = _model(metrics=None)
    assert bare.evaluate(x, y, verbose=0, return_dict=True) == {"loss": bare.evaluate(x, y, verbose=0)}
    assert isinstance(bare.evaluate(x, y, verbose=0), float)


def test_one_batch_calls_agree_with_evaluate_and_predict(xb):
    x, y = _data(7)
    w = np.linspace(0.2, 2.0, 7)
    model = _model()
    assert model.test_on_batch(x, y) == model.evaluate(x, y, batch_size=7, verbose=0)
    assert model.test_on_batch(x, y, sample_weight=w) == model.evaluate(x, y, sample_weight=w, batch_size=7,
                                                                        verbose=0)
    assert model.test_on_batch(x, y, return_dict=True) == model.evaluate(x, y, return_dict=True, verbose=0)
    predicted = model.predict(x, verbose=0)
    assert isinstance(model.predict_on_batch(x), np.ndarray)
    np.testing.assert_allclose(model.predict_on_batch(x), predicted, rtol=1e-6, atol=1e-7)
    called = model(x)
    np.testing.assert_allclose(backend.to_numpy(called), predicted, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(backend.to_numpy(model(x[:1])), predicted[:1], rtol=1e-5, atol=1e-6)


def test_train_on_batch_return_dict():
    x, y = _data(6)
    a, b = _model(), _model()
    as_dict = a.train_on_batch(x, y, return_dict=True)
    assert list(as_dict) == ["loss", "accuracy"] and list(as_dict.values()) == b.train_on_batch(x, y)


# ---- get_layer and pop -------------------------------------------------------------------------------------------
def test_get_layer_by_name_and_by_index():
    model = _model()
    assert model.get_layer("scores") is model.layers[2]
    assert model.get_layer(name="hidden") is model.layers[0]
    assert model.get_layer(index=1) is model.layers[1] and model.get_layer(index=-1) is model.layers[-1]
    with pytest.raises(ValueError, match="no layer named 'nope'; the layers are hidden, relu, scores, probabilities"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="index"):
        model.get_layer(index=4)
    with pytest.raises(ValueError):
        model.get_layer("hidden", index=0)
    with pytest.raises(ValueError):
        model.get_layer()


def test_pop_removes_the_last_layer_and_the_model_still_predicts(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0)
    probs, kept = model.predict(x, verbose=0), model.get_weights()
    softmax = model.pop()
    assert softmax.name == "probabilities" and [layer.name for layer in model.layers] == ["hidden", "relu", "scores"]
    scores = model.predict(x, verbose=0)
    assert scores.shape == (12, 3)
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(exp / exp.sum(axis=1, keepdims=True), probs, rtol=1e-5, atol=1e-6)
    _assert_same_weights(model.get_weights(), kept, rtol=0, atol=0)
    assert model.count_params() == model.params.size == 4 * 6 + 6 + 6 * 3 + 3
    model.save(tmp_path / "popped.tinynet")
    np.testing.assert_array_equal(tinynet.load_model(tmp_path / "popped.tinynet").predict(x, verbose=0), scores)

    model.pop()
    assert model.output_shape == (6,) and model.predict(x, verbose=0).shape == (12, 6)
    assert model.count_params() == model.params.size == 4 * 6 + 6  # the popped layer's weights are gone
    model.save(tmp_path / "headless.tinynet")
    np.testing.assert_array_equal(tinynet.load_model(tmp_path / "headless.tinynet").predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    model.add(Dense(2, name="new_scores"))
    model.add(Activation("softmax", name="new_probabilities"))
    assert model.predict(x, verbose=0).shape == (12, 2)
    _assert_same_weights(model.get_weights()[:2], kept[:2], rtol=0, atol=0)


def test_pop_on_an_empty_model_is_a_value_error():
    model = Sequential([Dense(2, input_shape=(3,))])
    model.pop()
    assert model.layers == []
    with pytest.raises(ValueError, match="no layers"):
        model.pop()


# ---- save / save_weights / load_weights -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.hdf5", "M.KERAS"])
def test_keras_file_names_are_refused_and_nothing_is_written(tmp_path, name):
    model = _model()
    for save in (model.save, model.save_weights):
        stem = str(tmp_path / os.path.splitext(name)[0])
        with pytest.raises(ValueError, match=rf"Keras file name.*name the file {re.escape(stem)}\.tinynet$"):
            save(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_save_weights_and_load_weights_round_trip(tmp_path):
    x, y = _data()
    trained = _model()
    trained.fit(x, y, epochs=2, verbose=0)
    trained.save_weights(tmp_path / "w.tinynet")
    fresh = _model(seed=42)
    assert not np.allclose(fresh.get_weights()[0], trained.get_weights()[0])
    fresh.load_weights(tmp_path / "w.tinynet")
    _assert_same_weights(fresh.get_weights(), trained.get_weights(), rtol=0, atol=0)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), trained.predict(x, verbose=0))
    trained.save(tmp_path / "whole.tinynet")  # a whole model's file serves load_weights too
    other = _model(seed=43)
    other.load_weights(tmp_path / "whole.tinynet")
    _assert_same_weights(other.get_weights(), trained.get_weights(), rtol=0, atol=0)


@pytest.mark.parametrize("other", [
    lambda: Sequential([Dense(5, input_shape=(4,)), Activation("relu"), Dense(3), Activation("softmax")]),
    lambda: Sequential([Dense(6, input_shape=(4,)), Activation("relu"), Dense(3)]),
    lambda: Sequential([Dense(6, input_shape=(5,)), Activation("relu"), Dense(3), Activation("softmax")]),
])
def test_load_weights_into_a_different_architecture_is_a_clear_error(tmp_path, other):
    _model().save_weights(tmp_path / "w.tinynet")
    target = other()
    before = target.get_weights()
    with pytest.raises(ValueError, match=r"load_weights: .*w\.tinynet holds weights for layers"):
        target.load_weights(tmp_path / "w.tinynet")
    _assert_same_weights(target.get_weights(), before, rtol=0, atol=0)
