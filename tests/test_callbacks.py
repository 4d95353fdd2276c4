"""Callbacks against Keras 3's semantics: the hooks and their order, EarlyStopping, ModelCheckpoint,
LearningRateScheduler, ReduceLROnPlateau, CSVLogger, TerminateOnNaN, LambdaCallback, LazyLogs.

The monitored quantities are scripted: a callback placed before the one under test overwrites
logs["val_loss"] (or another key) at each epoch end with a predetermined sequence, so the epoch
at which Keras would stop, save or reduce is worked out by hand in each test. Callbacks run in
the order given, then History, so History records the scripted values too.
"""
from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend, training
from tinynet import callbacks as C
from tinynet.layers import Activation, Dense
from tinynet.optimizers import SGD

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
         "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end")


# ---- helpers ---------------------------------------------------------------------------------------------------
def _model(rate=0.1, seed=5, hidden=6):
    tinynet.set_seed(seed)
    model = Sequential([Dense(hidden, input_shape=(4,)), Activation("relu"), Dense(3), Activation("softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(learning_rate=rate), metrics=["accuracy"])
    return model


def _data(n=12, seed=0):
    gen = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = 2.0 * np.eye(3, 4)[labels] + gen.standard_normal((n, 4))
    return x.astype(np.float32), labels


class Script(C.Callback):
    """Overwrites logs[key] at every epoch end with the next value of a predetermined sequence."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key = list(values), key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Recorder(C.Callback):
    """Records every hook as (name,) or (name, epoch-or-batch), and copies of the logs it was given."""

    def __init__(self):
        super().__init__()
        self.events, self.logs = [], []


def _recording(name):
    def hook(self, *args):
        index = [a for a in args if isinstance(a, int)]
        self.events.append((name, *index))
        logs = args[-1] if args and not isinstance(args[-1], int) else None
        self.logs.append((name, *index, None if logs is None else dict(logs)))
    return hook


for _name in HOOKS:
    setattr(Recorder, _name, _recording(_name))


class Weights(C.Callback):
    """get_weights() at every epoch end, and the learning rate at every epoch begin and every batch."""

    def __init__(self):
        super().__init__()
        self.at_epoch_end, self.rate_at_begin, self.rate_in_batches = {}, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.rate_at_begin.append(self.model.optimizer.learning_rate)

    def on_train_batch_begin(self, batch, logs=None):
        self.rate_in_batches.append(self.model.optimizer.learning_rate)

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end[epoch] = self.model.get_weights()


def _same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def _run(values, *callbacks, key="val_loss", epochs=None, batch_size=4, **fit):
    """Fit a small model for len(values) epochs with `key` scripted to `values`; returns (history, model)."""
    model = _model()
    x, y = _data()
    history = model.fit(x, y, epochs=epochs or len(values), batch_size=batch_size, verbose=0,
                        callbacks=[Script(values, key), *callbacks], **fit)
    return history, model


# ---- hooks: which, in what order, with what logs --------------------------------------------------------------
def test_fit_calls_keras_hooks_in_keras_order(xb):
    """Keras 3's fit runs validation through evaluate with the same callbacks, so the test hooks fire inside
    every epoch, before on_epoch_end."""
    x, y = _data(8)
    rec = Recorder()
    model = _model()
    model.fit(x[:4], y[:4], batch_size=2, epochs=2, verbose=0, validation_data=(x[4:], y[4:]),
              validation_batch_size=2, callbacks=[rec])
    epoch = lambda e: [("on_epoch_begin", e),  # noqa: E731
                       ("on_train_batch_begin", 0), ("on_train_batch_end", 0),
                       ("on_train_batch_begin", 1), ("on_train_batch_end", 1),
                       ("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
                       ("on_test_batch_begin", 1), ("on_test_batch_end", 1), ("on_test_end",),
                       ("on_epoch_end", e)]
    assert rec.events == [("on_train_begin",)] + epoch(0) + epoch(1) + [("on_train_end",)]
    epoch_logs = [entry[-1] for entry in rec.logs if entry[0] == "on_epoch_end"]
    assert [list(logs) for logs in epoch_logs] == [["loss", "accuracy", "val_loss", "val_accuracy"]] * 2
    test_end = [entry[-1] for entry in rec.logs if entry[0] == "on_test_end"]
    assert [logs["loss"] for logs in test_end] == [logs["val_loss"] for logs in epoch_logs]
    train_end = [entry[-1] for entry in rec.logs if entry[0] == "on_train_end"][0]
    assert train_end == epoch_logs[-1]  # Keras passes the last epoch's logs
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 2}
    assert rec.model is model


def test_batch_logs_are_the_running_means_of_the_epoch(xb):
    x, y = _data(8)
    rec = Recorder()
    history = _model().fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[rec])
    batch_logs = [entry[-1] for entry in rec.logs if entry[0] == "on_train_batch_end"]
    assert len(batch_logs) == 2 and set(batch_logs[0]) == {"loss", "accuracy"}
    assert batch_logs[-1]["loss"] == pytest.approx(history.history["loss"][0], rel=1e-6)
    assert batch_logs[-1]["accuracy"] == pytest.approx(history.history["accuracy"][0])


def test_evaluate_fires_the_test_hooks(xb):
    x, y = _data(5)
    model, rec = _model(), Recorder()
    result = model.evaluate(x, y, batch_size=2, verbose=0, callbacks=[rec])
    assert rec.events == [("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
                          ("on_test_batch_begin", 1), ("on_test_batch_end", 1),
                          ("on_test_batch_begin", 2), ("on_test_batch_end", 2), ("on_test_end",)]
    end = rec.logs[-1][-1]
    assert list(end) == ["loss", "accuracy"] and [end["loss"], end["accuracy"]] == result
    last_batch = [entry[-1] for entry in rec.logs if entry[0] == "on_test_batch_end"][-1]
    assert last_batch["loss"] == pytest.approx(result[0], rel=1e-6)  # the running mean over all batches
    assert rec.params["steps"] == 3


def test_predict_fires_the_predict_hooks(xb):
    x, _ = _data(5)
    model, rec = _model(), Recorder()
    out = model.predict(x, batch_size=3, verbose=0, callbacks=[rec])
    assert rec.events == [("on_predict_begin",), ("on_predict_batch_begin", 0), ("on_predict_batch_end", 0),
                          ("on_predict_batch_begin", 1), ("on_predict_batch_end", 1), ("on_predict_end",)]
    outputs = [entry[-1]["outputs"] for entry in rec.logs if entry[0] == "on_predict_batch_end"]
    np.testing.assert_array_equal(np.concatenate([backend.to_numpy(o) for o in outputs]), out)


def test_callbacks_run_in_the_order_given_then_history():
    seen = []

    class Adds(C.Callback):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_epoch_end(self, epoch, logs=None):
            seen.append((self.name, sorted(logs)))
            logs[self.name] = float(epoch)

    x, y = _data()
    history = _model().fit(x, y, epochs=2, verbose=0, callbacks=[Adds("first"), Adds("second")])
    assert seen[:2] == [("first", ["accuracy", "loss"]), ("second", ["accuracy", "first", "loss"])]
    assert history.history["first"] == history.history["second"] == [0.0, 1.0]  # History came last


def test_the_progress_display_sees_the_logs_after_the_user_callbacks(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(C.ProgbarLogger, "on_epoch_end", lambda self, epoch, logs=None: seen.append(sorted(logs)))
    x, y = _data()
    _model().fit(x, y, epochs=2, verbose=2, callbacks=[C.LearningRateScheduler(lambda epoch, lr: lr)])
    capsys.readouterr()
    assert seen == [["accuracy", "learning_rate", "loss"]] * 2


def test_fit_sets_model_history():
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=2, verbose=0)
    assert model.history is history


def test_a_callback_that_is_not_a_callback_is_a_type_error_naming_it():
    class NotACallback:
        def __repr__(self):
            return "<my NotACallback>"

    x, y = _data()
    model = _model()
    for call in (lambda cbs: model.fit(x, y, verbose=0, callbacks=cbs),
                 lambda cbs: model.evaluate(x, y, verbose=0, callbacks=cbs),
                 lambda cbs: model.predict(x, verbose=0, callbacks=cbs)):
        with pytest.raises(TypeError, match="<my NotACallback>"):
            call([C.History(), NotACallback()])
    with pytest.raises(TypeError, match="list"):
        model.fit(x, y, verbose=0, callbacks=C.History())


def test_stop_training_in_a_batch_hook_stops_after_that_batch(xb):
    batches = []

    class StopAtSecondBatch(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append((len(batches), batch))
            if batch == 1:
                self.model.stop_training = True

    x, y = _data(16)
    model = _model()
    history = model.fit(x[:12], y[:12], batch_size=3, epochs=3, verbose=0, validation_data=(x[12:], y[12:]),
                        callbacks=[StopAtSecondBatch()])
    assert [batch for _, batch in batches] == [0, 1]
    assert history.epoch == [0] and len(history.history["loss"]) == 1
    assert len(history.history["val_loss"]) == 1  # the epoch still ends as usual: validated, logged
    model.fit(x, y, epochs=1, verbose=0)
    assert model.stop_training is False  # fit starts afresh


def test_stop_training_in_on_epoch_end_stops_after_that_epoch():
    def stop(epoch, logs):
        if epoch == 1:
            model.stop_training = True

    model = _model()
    x, y = _data()
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[C.LambdaCallback(on_epoch_end=stop)])
    assert history.epoch == [0, 1]


def test_verbose_0_with_callbacks_prints_nothing(capsys):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25,
              callbacks=[C.History(), Recorder(), C.EarlyStopping(patience=5), C.ReduceLROnPlateau()])
    model.evaluate(x, y, verbose=0, callbacks=[Recorder()])
    model.predict(x, verbose=0, callbacks=[Recorder()])
    assert capsys.readouterr().out == ""


# ---- LambdaCallback --------------------------------------------------------------------------------------------
def test_lambda_callback_calls_its_functions():
    calls = []
    cb = C.LambdaCallback(on_train_begin=lambda logs: calls.append("begin"),
                          on_epoch_end=lambda epoch, logs: calls.append(("epoch", epoch, round(logs["loss"], 9))),
                          on_train_batch_end=lambda batch, logs: calls.append(("batch", batch)),
                          on_train_end=lambda logs: calls.append("end"))
    x, y = _data(8)
    history = _model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[cb])
    losses = [round(v, 9) for v in history.history["loss"]]
    assert calls == ["begin", ("batch", 0), ("batch", 1), ("epoch", 0, losses[0]),
                     ("batch", 0), ("batch", 1), ("epoch", 1, losses[1]), "end"]


# ---- LazyLogs: a batch's logs cost nothing unless read --------------------------------------------------------
def test_lazy_logs_compute_once_and_only_when_read():
    calls = []

    def compute():
        calls.append(1)
        return {"loss": 0.5, "accuracy": 0.25}

    unread = C.LazyLogs(compute)
    assert calls == []
    del unread
    logs = C.LazyLogs(compute)
    assert logs["loss"] == 0.5 and dict(logs) == {"loss": 0.5, "accuracy": 0.25}
    assert len(logs) == 2 and "accuracy" in logs and logs.get("missing") is None
    assert calls == [1]


@pytest.fixture
def count_reads(monkeypatch):
    """How many times fit reads its EpochTotals from the device."""
    reads = []
    original = training.EpochTotals.read

    def read(self):
        reads.append(1)
        return original(self)

    monkeypatch.setattr(training.EpochTotals, "read", read)
    return reads


def test_a_batch_hook_that_does_not_read_its_logs_costs_no_read(count_reads):
    calls = []
    x, y = _data(12)
    _model().fit(x, y, batch_size=4, epochs=2, verbose=0,
                 callbacks=[C.LambdaCallback(on_train_batch_end=lambda batch, logs: calls.append(batch))])
    assert calls == [0, 1, 2] * 2
    assert len(count_reads) == 2  # once per epoch, at its end


def test_a_batch_hook_that_reads_its_logs_costs_one_read_per_batch(count_reads):
    def read_twice(batch, logs):
        assert math.isfinite(logs["loss"]) and logs["loss"] == logs["loss"] and "accuracy" in logs

    x, y = _data(12)
    _model().fit(x, y, batch_size=4, epochs=2, verbose=0,
                 callbacks=[C.LambdaCallback(on_train_batch_end=read_twice)])
    assert len(count_reads) == 2 + 6  # each epoch's end, and each batch once however often read


def test_batch_hooks_are_not_dispatched_when_no_callback_overrides_them(monkeypatch):
    """With verbose=0 and only epoch-level callbacks, fit does not even call the base class's empty batch
    hooks: replace them with counters and count nothing."""
    calls = []
    for hook in C.BATCH_HOOKS:
        monkeypatch.setattr(C.Callback, hook, lambda self, batch, logs=None, hook=hook: calls.append(hook))
    x, y = _data(12)
    model = _model()
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, validation_split=0.5,
              callbacks=[C.LambdaCallback(on_epoch_end=lambda epoch, logs: None), C.EarlyStopping(patience=9)])
    model.evaluate(x, y, batch_size=2, verbose=0, callbacks=[C.History()])
    model.predict(x, batch_size=2, verbose=0, callbacks=[C.History()])
    assert calls == []
    listening = C.CallbackList([C.History(), C.LambdaCallback(on_test_batch_end=lambda b, logs: None)], model, {})
    assert listening.batch_hooks == {"on_test_batch_end"}


# ---- EarlyStopping -----------------------------------------------------------------------------------------------
def _epochs_run(values, key="val_loss", **kwargs):
    history, _ = _run(values, C.EarlyStopping(monitor=key, **kwargs), key=key)
    run = len(history.history["loss"])
    assert history.epoch == list(range(run))
    assert history.history[key] == values[:run]  # History saw the scripted values
    return run


# Each expected count follows Keras 3's EarlyStopping.on_epoch_end by hand: wait += 1; an improvement
# (current < best - min_delta, or > best + min_delta in max mode) sets best and, if it also beats the
# baseline, wait = 0; otherwise training stops once wait >= patience (never at epoch 0).
@pytest.mark.parametrize("values, kwargs, expected", [
    ([1.0, 0.9, 0.95, 0.92, 0.8, 0.7], {"patience": 2}, 4),
    ([1.0, 0.9, 0.95, 0.92, 0.8, 0.7], {"patience": 0}, 3),
    ([1.0, 0.9, 0.95, 0.92, 0.8, 0.7], {"patience": 3}, 6),
    ([1.0, 0.97, 0.94, 0.91, 0.88, 0.85], {"patience": 1}, 6),
    ([1.0, 0.97, 0.94, 0.91, 0.88, 0.85], {"patience": 1, "min_delta": 0.05}, 2),
    ([1.0, 0.97, 0.94, 0.91, 0.88, 0.85], {"patience": 1, "min_delta": -0.05}, 2),  # Keras takes abs(min_delta)
    ([1.0, 0.97, 0.94, 0.91, 0.88, 0.85], {"patience": 2, "min_delta": 0.05}, 6),
    ([0.9, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71], {"patience": 2}, 6),
    ([0.9, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71], {"patience": 2, "baseline": 0.5}, 3),
    ([0.9, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71], {"patience": 2, "baseline": 0.82}, 6),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], {"patience": 0}, 2),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], {"patience": 0, "start_from_epoch": 3}, 5),
])
def test_early_stopping_stops_where_keras_does(values, kwargs, expected):
    assert _epochs_run(values, **kwargs) == expected


@pytest.mark.parametrize("mode, expected", [("auto", 4), ("max", 4), ("min", 3)])
def test_early_stopping_on_an_accuracy_maximises_it(mode, expected):
    values = [0.5, 0.6, 0.55, 0.58, 0.7, 0.8]
    assert _epochs_run(values, key="val_accuracy", patience=2, mode=mode) == expected


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    weights = Weights()
    _, model = _run([1.0, 0.5, 0.7, 0.8, 0.9, 1.0], weights, C.EarlyStopping(patience=2, restore_best_weights=True))
    assert sorted(weights.at_epoch_end) == [0, 1, 2, 3]  # stopped at epoch 3
    assert not _same_weights(weights.at_epoch_end[1], weights.at_epoch_end[3])  # it did train after epoch 1
    assert _same_weights(model.get_weights(), weights.at_epoch_end[1])


def test_early_stopping_restores_the_best_weights_even_without_stopping():
    """Keras 3 puts the best epoch's weights back at on_train_end whether or not it stopped early."""
    weights = Weights()
    _, model = _run([1.0, 0.5, 0.7], weights, C.EarlyStopping(patience=5, restore_best_weights=True))
    assert sorted(weights.at_epoch_end) == [0, 1, 2]
    assert _same_weights(model.get_weights(), weights.at_epoch_end[1])


def test_early_stopping_restores_the_best_epoch_even_if_none_beat_the_baseline():
    weights = Weights()
    _, model = _run([0.9, 0.8, 0.85, 0.86, 0.87], weights,
                    C.EarlyStopping(patience=2, baseline=0.5, restore_best_weights=True))
    assert sorted(weights.at_epoch_end) == [0, 1, 2]
    assert _same_weights(model.get_weights(), weights.at_epoch_end[1])


def test_early_stopping_without_restore_keeps_the_last_weights():
    weights = Weights()
    _, model = _run([1.0, 0.5, 0.7, 0.8, 0.9], weights, C.EarlyStopping(patience=2))
    assert sorted(weights.at_epoch_end) == [0, 1, 2, 3]
    assert _same_weights(model.get_weights(), weights.at_epoch_end[3])


def test_early_stopping_instance_can_be_reused():
    stopper = C.EarlyStopping(patience=1)
    first, _ = _run([1.0, 2.0, 3.0, 4.0], stopper)
    second, _ = _run([5.0, 4.0, 3.0, 4.0], stopper)  # a fresh best: 5.0 is not compared with the last fit's 1.0
    assert len(first.history["loss"]) == 2 and len(second.history["loss"]) == 4


def test_early_stopping_on_a_missing_monitor_warns_once_and_carries_on():
    x, y = _data()
    model = _model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=4, verbose=0, callbacks=[C.EarlyStopping(monitor="val_loss")])
    ours = [w for w in caught if issubclass(w.category, RuntimeWarning) and "val_loss" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "EarlyStopping" in str(ours[0].message)
    assert len(history.history["loss"]) == 4


def test_early_stopping_arguments_are_checked():
    with pytest.raises(ValueError, match="patience"):
        C.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="start_from_epoch"):
        C.EarlyStopping(start_from_epoch=1.5)


# ---- ModelCheckpoint -----------------------------------------------------------------------------------------
def test_model_checkpoint_formats_epoch_and_logs_into_the_file_name(tmp_path):
    pattern = str(tmp_path / "m-{epoch:02d}-{val_loss:.4f}.tinynet")
    _run([0.5, 0.25, 0.125], C.ModelCheckpoint(pattern))
    assert sorted(os.listdir(tmp_path)) == ["m-01-0.5000.tinynet", "m-02-0.2500.tinynet", "m-03-0.1250.tinynet"]


def test_model_checkpoint_save_best_only_writes_only_improvements(tmp_path):
    pattern = str(tmp_path / "m-{epoch:02d}-{val_loss:.4f}.tinynet")
    _run([1.0, 0.8, 0.9, 0.7, 0.75], C.ModelCheckpoint(pattern, save_best_only=True))
    assert sorted(os.listdir(tmp_path)) == ["m-01-1.0000.tinynet", "m-02-0.8000.tinynet", "m-04-0.7000.tinynet"]


def test_model_checkpoint_save_best_only_maximises_an_accuracy(tmp_path):
    pattern = str(tmp_path / "m-{epoch:02d}.tinynet")
    _run([0.5, 0.6, 0.55, 0.7, 0.7], C.ModelCheckpoint(pattern, monitor="val_accuracy", save_best_only=True),
         key="val_accuracy")
    assert sorted(os.listdir(tmp_path)) == ["m-01.tinynet", "m-02.tinynet", "m-04.tinynet"]


def test_model_checkpoint_initial_value_threshold(tmp_path):
    pattern = str(tmp_path / "m-{epoch:02d}.tinynet")
    _run([1.0, 0.8, 0.6, 0.7], C.ModelCheckpoint(pattern, save_best_only=True, initial_value_threshold=0.7))
    assert sorted(os.listdir(tmp_path)) == ["m-03.tinynet"]


def test_model_checkpoint_files_load_and_predict_as_the_model_did_at_that_epoch(tmp_path):
    x, y = _data()
    model_ = _model()
    predictions = {}
    record = C.LambdaCallback(
        on_epoch_end=lambda epoch, logs: predictions.update({epoch: model_.predict(x, verbose=0)}))
    model_.fit(x, y, epochs=3, batch_size=4, verbose=0,
               callbacks=[C.ModelCheckpoint(str(tmp_path / "m-{epoch}.tinynet")), record])
    assert not np.allclose(predictions[0], predictions[2])
    for epoch in range(3):
        loaded = tinynet.load_model(tmp_path / f"m-{epoch + 1}.tinynet")
        np.testing.assert_allclose(loaded.predict(x, verbose=0), predictions[epoch], rtol=1e-6, atol=1e-7)
        assert loaded.optimizer.get_config() == model_.optimizer.get_config()


def test_model_checkpoint_save_weights_only_loads_into_a_fresh_identical_model(tmp_path):
    weights = Weights()
    path = tmp_path / "w.tinynet"
    _run([1.0, 0.5, 0.7], C.ModelCheckpoint(str(path), save_weights_only=True, save_best_only=True), weights)
    fresh = _model(seed=99)
    assert not _same_weights(fresh.get_weights(), weights.at_epoch_end[1])
    fresh.load_weights(path)
    assert _same_weights(fresh.get_weights(), weights.at_epoch_end[1])  # the best epoch's, not the last
    assert tinynet.load_model(path).optimizer is None  # weights only: no compile settings, no optimizer state


def test_model_checkpoint_naming_a_key_not_in_the_logs_is_a_clear_error(tmp_path):
    x, y = _data()
    with pytest.raises(ValueError, match=r"'val_loss'.*not in the logs"):
        _model().fit(x, y, epochs=1, verbose=0,
                     callbacks=[C.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.tinynet"))])
    assert os.listdir(tmp_path) == []


def test_model_checkpoint_refuses_a_keras_file_name_before_training():
    with pytest.raises(ValueError, match=r"\.tinynet"):
        C.ModelCheckpoint("best.keras")


def test_model_checkpoint_creates_the_folder_it_saves_into(tmp_path):
    _run([1.0, 0.9], C.ModelCheckpoint(str(tmp_path / "checkpoints" / "m-{epoch:02d}.tinynet")))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["m-01.tinynet", "m-02.tinynet"]


# ---- LearningRateScheduler -------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule, expected", [
    (lambda epoch, lr: lr * 0.5, [0.05, 0.025, 0.0125]),
    (lambda epoch: 0.1 / (epoch + 1), [0.1, 0.05, 0.1 / 3]),
    (lambda epoch, lr: np.float32(0.01 * (epoch + 1)), [0.01, 0.02, 0.03]),
])
def test_learning_rate_scheduler_sets_the_rate_at_each_epoch_begin(schedule, expected):
    weights = Weights()
    history, model = _run([0.0] * 3, C.LearningRateScheduler(schedule), weights)  # starts at 0.1
    assert weights.rate_at_begin == pytest.approx(expected)
    assert weights.rate_in_batches == pytest.approx([rate for rate in expected for _ in range(3)])
    assert history.history["learning_rate"] == pytest.approx(expected)
    assert model.optimizer.learning_rate == pytest.approx(expected[-1])


def test_learning_rate_scheduler_counts_epochs_from_initial_epoch():
    weights = Weights()
    history, _ = _run([0.0] * 4, C.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1)), weights,
                      initial_epoch=2)
    assert history.epoch == [2, 3] and weights.rate_at_begin == pytest.approx([0.03, 0.04])


def test_learning_rate_scheduler_changes_the_step_sgd_takes():
    """A schedule that halves the rate gives the same weights as training at the halved rate."""
    x, y = _data()
    scheduled, fixed = _model(rate=0.2), _model(rate=0.1)
    scheduled.fit(x, y, epochs=1, batch_size=12, shuffle=False, verbose=0,
                  callbacks=[C.LearningRateScheduler(lambda epoch, lr: lr / 2)])
    fixed.fit(x, y, epochs=1, batch_size=12, shuffle=False, verbose=0)
    for a, b in zip(scheduled.get_weights(), fixed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad", ["0.1", None, [0.1]])
def test_learning_rate_scheduler_returning_a_non_number_is_a_value_error(bad):
    x, y = _data()
    with pytest.raises(ValueError, match="number"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(lambda epoch, lr: bad)])


# ---- ReduceLROnPlateau -----------------------------------------------------------------------------------------
def _rates(values, key="val_loss", **kwargs):
    """The learning rate in force during each epoch (from 0.1), and the one left at the end."""
    weights = Weights()
    _, model = _run(values, C.ReduceLROnPlateau(monitor=key, **kwargs), weights, key=key)
    return weights.rate_at_begin, model.optimizer.learning_rate


def test_reduce_lr_on_plateau_waits_patience_then_cools_down_and_stops_at_min_lr():
    """By hand, after Keras 3: e0 sets best; e1 wait 1; e2 wait 2 -> 0.05, cooldown 2; e3 in cooldown;
    e4 counts again (wait 1); e5 -> 0.025; e8 -> max(0.0125, 0.02) = 0.02; e11: 0.02 is not above min_lr."""
    during, last = _rates([1.0] * 12, factor=0.5, patience=2, cooldown=2, min_lr=0.02, min_delta=0)
    assert during == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3 + [0.02] * 3)
    assert last == pytest.approx(0.02)


def test_reduce_lr_on_plateau_without_cooldown():
    during, last = _rates([1.0] * 6, factor=0.5, patience=2, min_delta=0)
    assert during == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])
    assert last == pytest.approx(0.025)


def test_reduce_lr_on_plateau_improvements_reset_the_wait():
    """Epochs 1, 3 and 5 do not improve, but each follows an improvement: only epochs 5 and 6 make two in a row."""
    during, last = _rates([1.0, 1.0, 0.5, 0.5, 0.4, 0.4, 0.4], factor=0.5, patience=2, min_delta=0)
    assert during == pytest.approx([0.1] * 7) and last == pytest.approx(0.05)


@pytest.mark.parametrize("min_delta, expected_last", [(1e-4, 0.025), (0.0, 0.1)])
def test_reduce_lr_on_plateau_min_delta(min_delta, expected_last):
    _, last = _rates([1.0, 0.99995, 0.5, 0.49995], factor=0.5, patience=1, min_delta=min_delta)
    assert last == pytest.approx(expected_last)


def test_reduce_lr_on_plateau_maximises_an_accuracy():
    _, last = _rates([0.5, 0.6, 0.7, 0.8], key="val_accuracy", factor=0.5, patience=1, min_delta=0)
    assert last == pytest.approx(0.1)
    _, last = _rates([0.5, 0.6, 0.7, 0.8], key="val_accuracy", factor=0.5, patience=1, min_delta=0, mode="min")
    assert last == pytest.approx(0.1 * 0.5 ** 3)


@pytest.mark.parametrize("factor", [1.0, 1.5])
def test_reduce_lr_on_plateau_factor_of_one_or_more_is_a_value_error(factor):
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=factor)


def test_reduce_lr_on_plateau_logs_the_rate_the_epoch_trained_with():
    weights = Weights()
    history, _ = _run([1.0] * 4, C.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0), weights)
    assert history.history["learning_rate"] == pytest.approx(weights.rate_at_begin)  # [0.1, 0.1, 0.05, 0.025]


# ---- CSVLogger -----------------------------------------------------------------------------------------------------
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_writes_a_header_and_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    x, y = _data(16)
    model = _model()
    history = model.fit(x[:12], y[:12], epochs=3, verbose=0, validation_data=(x[12:], y[12:]),
                        callbacks=[C.CSVLogger(path)])
    rows = _read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(rows) == 4
    for epoch, row in enumerate(rows[1:]):
        assert int(row[0]) == epoch
        for key, cell in zip(rows[0][1:], row[1:]):
            assert float(cell) == history.history[key][epoch]

    # append=True continues the same file without a second header
    more = model.fit(x[:12], y[:12], epochs=5, initial_epoch=3, verbose=0, validation_data=(x[12:], y[12:]),
                     callbacks=[C.CSVLogger(path, append=True)])
    rows = _read_csv(path)
    assert [row[0] for row in rows] == ["epoch", "0", "1", "2", "3", "4"]
    assert float(rows[-1][2]) == more.history["loss"][-1]

    # append=False starts over
    model.fit(x[:12], y[:12], epochs=1, verbose=0, callbacks=[C.CSVLogger(path)])
    assert _read_csv(path)[0] == ["epoch", "accuracy", "loss"] and len(_read_csv(path)) == 2


def test_csv_logger_append_to_a_missing_file_writes_the_header(tmp_path):
    path = tmp_path / "new.csv"
    x, y = _data()
    _model().fit(x, y, epochs=2, verbose=0, callbacks=[C.CSVLogger(path, separator=";", append=True)])
    assert [line.split(";")[0] for line in path.read_text().splitlines()] == ["epoch", "0", "1"]


# ---- TerminateOnNaN ----------------------------------------------------------------------------------------------
def _blow_up_in_epoch_1(*callbacks):
    """Epoch 0 trains normally; at epoch 1 the learning rate becomes 1e30: batch 0's loss is still finite, its
    update sends the weights to ~1e30 or beyond, and batch 1's loss is not finite."""
    class Boom(C.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.optimizer.learning_rate = 1e30

    batches = []
    seen = C.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    x, y = _data(16)
    model = _model(rate=0.01)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="epoch 2/3"):
        history = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
                            callbacks=[Boom(), seen, *callbacks])
    return history, batches


def test_terminate_on_nan_stops_after_the_first_batch_whose_loss_is_not_finite(capsys):
    history, batches = _blow_up_in_epoch_1(C.TerminateOnNaN())
    assert batches == [0, 1, 2, 3, 0, 1]  # epoch 1 ends at its first bad batch
    assert "Invalid loss" in capsys.readouterr().out
    # fit's own guard: an epoch that met a non-finite loss is not logged; History has epoch 0 only
    assert history.epoch == [0] and len(history.history["loss"]) == 1
    assert math.isfinite(history.history["loss"][0])


def test_without_terminate_on_nan_the_epoch_runs_to_its_end():
    history, batches = _blow_up_in_epoch_1()
    assert batches == [0, 1, 2, 3, 0, 1, 2, 3]
    assert history.epoch == [0]


def test_terminate_on_nan_watches_the_running_loss(capsys):
    """Unit-level: the callback stops on NaN and on inf in the batch logs, and ignores finite losses."""
    for loss, stops in ((1.0, False), (math.nan, True), (math.inf, True), (-math.inf, True)):
        model = _model()
        cb = C.TerminateOnNaN()
        cb.set_model(model)
        model.stop_training = False
        cb.on_train_batch_end(3, C.LazyLogs(lambda: {"loss": loss}))
        assert model.stop_training is stops
    assert capsys.readouterr().out.count("Batch 3: Invalid loss") == 3
