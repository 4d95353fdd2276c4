"""Callbacks: code of yours that fit, evaluate and predict call at fixed moments, with Keras's hooks and logs.

    fit:       on_train_begin
               for each epoch:  on_epoch_begin(epoch)
                                for each batch:  on_train_batch_begin(batch), the step, on_train_batch_end(batch, logs)
                                validation:      on_test_begin, on_test_batch_begin/end(batch, logs), on_test_end(logs)
                                on_epoch_end(epoch, logs)        logs: loss, metrics, val_loss, val_metrics
               on_train_end(logs)
    evaluate:  on_test_begin, on_test_batch_begin/end, on_test_end
    predict:   on_predict_begin, on_predict_batch_begin/end, on_predict_end

A callback sets `self.model.stop_training = True` to end fit after the current batch.

What a batch hook costs: a batch's logs are the running means of the epoch so far, and
reading them makes the host wait for the device (on a GPU). So they are computed only when a
callback reads them (`logs["loss"]`): a batch hook that never looks at its logs costs a Python
call per batch and nothing else, and the progress bar looks at most 20 times a second. With no
callback that overrides a batch hook, fit does not call them at all.
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Callable

import numpy as np

from tinynet import distributed, saving
from tinynet.schedules import check_number
from tinynet.progress import Progbar

BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end",
               "on_predict_batch_begin", "on_predict_batch_end")


class Callback:
    """Base class: override the hooks you need; `self.model` is the model being trained, `self.params`
    fit's settings (epochs, steps, verbose)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None: ...
    def on_train_end(self, logs: Mapping[str, float] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Mapping[str, float] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: Mapping[str, float] | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        self.on_batch_begin(batch, logs)  # Keras's older name for the same hook

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: Mapping[str, float] | None = None) -> None: ...
    def on_test_end(self, logs: Mapping[str, float] | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Mapping[str, float] | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None: ...
    def on_predict_begin(self, logs: Mapping[str, float] | None = None) -> None: ...
    def on_predict_end(self, logs: Mapping[str, float] | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Mapping[str, float] | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None: ...


class LazyLogs(MutableMapping):
    """A batch's logs, computed by `compute()` the first time anything reads them (see the module docstring).
    A callback may add to them, as to Keras's dict."""

    def __init__(self, compute: Callable[[], dict[str, float]]) -> None:
        self._compute, self._values = compute, None

    def _logs(self) -> dict[str, float]:
        if self._values is None:
            self._values = self._compute()
        return self._values

    def __getitem__(self, key: str) -> float:
        return self._logs()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._logs())

    def __len__(self) -> int:
        return len(self._logs())

    def __setitem__(self, key: str, value: float) -> None:
        self._logs()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._logs()[key]


class CallbackList:
    """The callbacks of one fit, evaluate or predict call, each hook passed on to every one of them in order."""

    def __init__(self, callbacks: Any, model: Any, params: dict[str, Any]) -> None:
        if callbacks is None:
            callbacks = []
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of tinynet.callbacks.Callback, got {type(callbacks).__name__}")
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks: {callback!r} is not a tinynet.callbacks.Callback; subclass Callback "
                                f"(or use LambdaCallback) and override the hooks you need")
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)
        self.batch_hooks = {hook for hook in BATCH_HOOKS
                            if any(_overrides(callback, hook) for callback in self.callbacks)}

    def call(self, hook: str, *args: Any) -> None:
        if hook in BATCH_HOOKS and hook not in self.batch_hooks:
            return  # nobody listens: not even a Python call per batch
        for callback in self.callbacks:
            getattr(callback, hook)(*args)


def _overrides(callback: Callback, hook: str) -> bool:
    """Whether `callback` does something at `hook` (on_train_batch_* also through Keras's on_batch_* names)."""
    older = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}.get(hook)
    if older and _overrides(callback, older):
        return True
    method = getattr(callback, hook)  # a bound method, or LambdaCallback's plain function
    return getattr(method, "__func__", method) is not getattr(Callback, hook)


# ---- the callbacks Keras users reach for ------------------------------------------------------------------
class History(Callback):
    """What `fit` returns: `history.history["loss"]` etc., one value per epoch; `epoch`, `params`, `model`."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = HistoryDict()
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class HistoryDict(dict):
    """Per-epoch logs; "acc" also answers for "accuracy" and the other way round (Keras 2.2's old names)."""

    _aliases = {"acc": "accuracy", "val_acc": "val_accuracy", "accuracy": "acc", "val_accuracy": "val_acc"}

    def _key(self, key: object) -> object:
        return key if super().__contains__(key) else self._aliases.get(key, key)

    def __getitem__(self, key: str) -> list[float]:
        return super().__getitem__(self._key(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._key(key))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


class Monitor:
    """Which way a logged quantity improves: mode "min", "max", or "auto" (max for accuracies, else min).

    improved(current, best) is current < best - min_delta (min) or current > best + min_delta (max).
    """

    def __init__(self, callback: Callback, monitor: str, mode: str, min_delta: float) -> None:
        owner = type(callback).__name__
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"{owner}: monitor must be the name of a logged value such as 'val_loss', got {monitor!r}")
        min_delta = check_number(callback, "min_delta", abs(min_delta) if isinstance(min_delta, (int, float)) else
                                 min_delta, low=0)
        self.owner, self.monitor, self.min_delta = owner, monitor, abs(min_delta)
        self.sign = -1 if mode == "max" or (mode == "auto" and "acc" in monitor) else 1
        self.warned = False

    def worst(self) -> float:
        return math.inf * self.sign

    def improved(self, current: float, best: float) -> bool:
        return current < best - self.min_delta if self.sign == 1 else current > best + self.min_delta

    def value(self, logs: Mapping[str, float] | None) -> float | None:
        """The monitored value, or None (and one warning, as Keras warns) when the logs do not have it."""
        logs = logs or {}
        if self.monitor in logs:
            return float(logs[self.monitor])
        if not self.warned:
            warnings.warn(f"{self.owner}: monitor={self.monitor!r} is not in the logs; they have "
                          f"{', '.join(logs) or 'nothing'}. Carrying on without it", RuntimeWarning, stacklevel=4)
            self.warned = True
        return None


class EarlyStopping(Callback):
    """Stop fit when `monitor` has not improved for `patience` epochs (by more than min_delta), as Keras 3 does.

    With restore_best_weights, the weights of the best epoch are put back when training ends.
    `baseline`: improvements that do not beat it do not reset the patience. Nothing is checked
    before epoch `start_from_epoch`.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        self.judge = Monitor(self, monitor, mode, min_delta)
        self.monitor, self.patience, self.verbose, self.baseline = monitor, _count("patience", patience), verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, _count("start_from_epoch",
                                                                                          start_from_epoch)

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
        self.judge.warned = False
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = self.judge.worst(), None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        current = self.judge.value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self.judge.improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.judge.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) at the end of every epoch, or only when `monitor` improved.

    `filepath` may name the epoch and the logs: "model-{epoch:02d}-{val_loss:.4f}.tinynet"
    (epoch counted from 1, as Keras prints it).
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str = "epoch", initial_value_threshold: float | None = None) -> None:
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: save_freq='epoch' is the one supported, got {save_freq!r}")
        self.filepath = os.fspath(filepath)
        saving.check_extension(self.filepath, "ModelCheckpoint")  # now, not after an epoch of training
        self.judge = Monitor(self, monitor, mode, 0)
        self.monitor, self.verbose, self.save_best_only = monitor, verbose, save_best_only
        self.save_weights_only = save_weights_only
        self.best = self.judge.worst() if initial_value_threshold is None else float(initial_value_threshold)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        logs = dict(logs or {})
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names {err}, which is not in the logs "
                             f"({', '.join(['epoch'] + list(logs))})") from None
        if self.save_best_only:
            current = self.judge.value(logs)
            if current is None or not self.judge.improved(current, self.best):
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)


class LearningRateScheduler(Callback):
    """At the start of every epoch set the learning rate to schedule(epoch, learning_rate) (or schedule(epoch))."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function of the epoch, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        try:
            rate = self.schedule(epoch, self.model.optimizer.learning_rate)
        except TypeError:  # a schedule of the epoch alone, as Keras also accepts
            rate = self.schedule(epoch)
        if not isinstance(rate, (int, float, np.integer, np.floating)) or isinstance(rate, bool):
            raise ValueError(f"LearningRateScheduler: the schedule must return a number, got {rate!r} at epoch {epoch}")
        self.model.optimizer.learning_rate = float(rate)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(rate)}.")

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        if isinstance(logs, MutableMapping):
            logs["learning_rate"] = self.model.optimizer.learning_rate


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience` epochs
    (by more than min_delta), never below min_lr; then wait `cooldown` epochs before counting again."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__()
        factor = check_number(self, "factor", factor, low=0, high=1, high_open=True)
        min_lr = check_number(self, "min_lr", min_lr, low=0)
        self.judge = Monitor(self, monitor, mode, min_delta)
        self.monitor, self.factor, self.verbose, self.min_lr = monitor, float(factor), verbose, float(min_lr)
        self.patience, self.cooldown = _count("patience", patience), _count("cooldown", cooldown)

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
        self.judge.warned = False
        self.best, self.wait, self.cooldown_counter = self.judge.worst(), 0, 0

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        if isinstance(logs, MutableMapping):
            logs["learning_rate"] = self.model.optimizer.learning_rate  # the rate this epoch trained with
        current = self.judge.value(logs)
        if current is not None:
            if self.cooldown_counter > 0:
                self.cooldown_counter -= 1
                self.wait = 0
            if self.judge.improved(current, self.best):
                self.best, self.wait = current, 0
            elif self.cooldown_counter == 0:
                self.wait += 1
                if self.wait >= self.patience:
                    self.reduce(epoch)

    def reduce(self, epoch: int) -> None:
        old = self.model.optimizer.learning_rate
        if old > self.min_lr:
            new = max(old * self.factor, self.min_lr)
            self.model.optimizer.learning_rate = new
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file: a header "epoch,<the logs' keys, sorted>", then one row each."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self.keys: list[str] | None = None
        self.file: Any = None

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
        if not distributed.is_root():
            return  # with several processes, rank 0 writes the log
        has_rows = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = None
        self.header_written = has_rows

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        if self.file is None:
            return
        logs = dict(logs or {})
        if self.keys is None:
            self.keys = sorted(logs)  # as Keras 3: with validation_freq > 1 the first epoch has no val_ columns
        writer = csv.writer(self.file, delimiter=self.separator)
        if not self.header_written:
            writer.writerow(["epoch"] + self.keys)
            self.header_written = True
        writer.writerow([epoch] + [logs.get(key, "NA") for key in self.keys])
        self.file.flush()

    def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class TerminateOnNaN(Callback):
    """Stop fit at the first batch whose running loss is NaN or infinite (this reads every batch's loss)."""

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback made of functions: LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs))."""

    def __init__(self, **hooks: Callable[..., None]) -> None:
        super().__init__()
        known = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin",
                 "on_test_end", "on_predict_begin", "on_predict_end", "on_batch_begin", "on_batch_end") + BATCH_HOOKS
        for name, function in hooks.items():
            if name not in known:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; the hooks are {', '.join(known)}")
            if not callable(function):
                raise TypeError(f"LambdaCallback: {name} must be a function, got {function!r}")
            setattr(self, name, function)  # an instance attribute, which CallbackList sees as an override


class ProgbarLogger(Callback):
    """The progress display of fit(verbose=1 or 2) and evaluate(verbose=1), as a callback (added by fit itself).

    verbose=1: a bar per epoch (tinynet.progress.Progbar), its final line with the validation metrics;
    verbose=2: one line per epoch, " - 2s - loss: ... - val_accuracy: ...".
    """

    def __init__(self, verbose: int = 1, stream: Any = None) -> None:
        super().__init__()
        self.verbose, self.stream = verbose, stream
        self.bar: Progbar | None = None

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        print(f"Epoch {epoch + 1}/{self.params.get('epochs')}", file=self.stream or sys.stdout)
        self.start = time.perf_counter()
        self.bar = Progbar(self.params.get("steps"), stream=self.stream) if self.verbose == 1 else None

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        if self.bar is not None:
            self.bar.update(batch + 1, lambda: list((logs or {}).items()))

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        values = list((logs or {}).items())
        if self.bar is not None:
            self.bar.update(self.params.get("steps"), values, finalize=True)
        elif self.verbose == 2:
            print(f" - {_format_seconds(time.perf_counter() - self.start)} - "
                  + " - ".join(f"{k}: {v:.4f}" for k, v in values), file=self.stream or sys.stdout)


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"


def _count(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)
