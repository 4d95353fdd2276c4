"""The training loops of fit, evaluate, predict and train_on_batch, on top of the model's one-batch API.

    fit:       for each epoch, for each shuffled mini-batch (x, y):
                   loss = model.forward_loss(x, y); model.backward(); model.optimizer.step(...)
    evaluate:  model.forward_loss(x, y, training=False) over the data in batches, averaged
    predict:   model.forward(x) over the data in batches

`Sequential.fit` and the others call the functions here. The data are checked once
per call, never per batch. An epoch adds up its loss and accuracy where the arrays
live (EpochTotals) and reads them once at its end, and a batch whose loss is not finite
changes no weight: on a GPU the host then never waits for the device inside an epoch,
and the engine can record the step as a CUDA graph (see tinynet/engine).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
import weakref
from typing import Any, Callable, Iterator

import numpy as np

from tinynet import backend
from tinynet.engine import fast
from tinynet.progress import Progbar

INFERENCE_BATCH = 1024  # predict/evaluate default: inference keeps no state, so big chunks are just faster


class HistoryDict(dict):
    """Per-epoch logs; also answers Keras 2.2's old names `acc` and `val_acc`."""

    _aliases = {"acc": "accuracy", "val_acc": "val_accuracy"}

    def __getitem__(self, key: str) -> list[float]:
        return super().__getitem__(self._aliases.get(key, key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._aliases.get(key, key))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


class History:
    """What `fit` returns: `history.history["loss"]` etc., one value per epoch."""

    def __init__(self) -> None:
        self.history = HistoryDict()
        self.epoch: list[int] = []

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


class EpochTotals:
    """An epoch's running sums, kept where the arrays live: on a GPU, read once per epoch, not per batch.

    loss_sum      sum of each good batch's mean loss times its size
    metric_sums   each metric's per-sample values added up over the good batches (one entry per metric)
    good_batches  batches whose loss was finite (and came before any that was not)
    failed        1 once a batch's loss was not finite: that batch and every later one change nothing
    """

    def __init__(self, metrics: int = 0) -> None:
        xp = backend.xp()
        self.loss_sum, self.good_batches, self.failed = (xp.zeros(()) for _ in range(3))
        self.metric_sums = xp.zeros(metrics)

    def reset(self) -> None:
        for total in (self.loss_sum, self.metric_sums, self.good_batches, self.failed):
            total[...] = 0

    def add(self, loss: Any, metric_sums: Any, batch_size: int) -> Any:
        """Count one batch; whether its update may be applied (its loss is finite, no batch before failed)."""
        if fast.record_batch:  # the same on the device, without reading the loss on the host
            return fast.record_batch(self, loss, metric_sums, batch_size)
        ok = bool(backend.xp().isfinite(loss)) and not self.failed
        if ok:
            self.loss_sum += batch_size * float(loss)
            self.metric_sums += metric_sums
            self.good_batches += 1
        else:
            self.failed[...] = 1
        return ok

    def read(self) -> dict[str, Any]:
        """The totals on the host (on a GPU: one wait for the device); metric_sums as a NumPy vector."""
        sums: dict[str, Any] = {name: float(backend.to_numpy(getattr(self, name)))
                                for name in ("loss_sum", "good_batches", "failed")}
        sums["metric_sums"] = backend.to_numpy(self.metric_sums).astype(np.float64)
        return sums


def train_batch(model: Any, x: Any, y: Any, totals: EpochTotals) -> None:
    """model.train_step on the batch (x, y), counted in `totals`, its update applied only if its loss is finite."""
    loss = model.forward_loss(x, y)
    ok = totals.add(loss, metric_sums(model, y), x.shape[0])
    model.backward()
    if fast.step_if:  # the GPU decides `if ok` itself, so the host never waits for the loss
        fast.step_if(ok, model.optimizer, model.params, model.grads)
    elif ok:
        model.optimizer.step(model.params, model.grads)


class Batches:
    """An epoch's mini-batches of (x, y), each gathered into the same two buffers (no new arrays per batch)."""

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool) -> None:
        xp = backend.xp()
        self.x, self.y, self.shuffle = x, y, shuffle
        self.size = min(batch_size, x.shape[0])
        self.steps = math.ceil(x.shape[0] / self.size)
        self.x_buffer = xp.empty((self.size,) + x.shape[1:], x.dtype)
        self.y_buffer = xp.empty((self.size,) + y.shape[1:], y.dtype)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        n = self.x.shape[0]
        order = backend.to_device(backend.rng().permutation(n)) if self.shuffle else backend.xp().arange(n)
        for step in range(self.steps):
            yield self.gather(order[step * self.size:(step + 1) * self.size])

    def gather(self, rows: Any) -> tuple[Any, Any]:
        """x[rows] and y[rows], in the first len(rows) rows of the buffers."""
        xb, yb = self.x_buffer[:len(rows)], self.y_buffer[:len(rows)]
        if fast.take_rows:
            fast.take_rows(self.x, rows, out=xb)
            fast.take_rows(self.y, rows, out=yb)
        else:
            xb[...] = self.x[rows]
            yb[...] = self.y[rows]
        return xb, yb


def fit(model: Any, x: Any, y: Any, batch_size: int = 32, epochs: int = 1, verbose: int = 1,
        validation_data: tuple[Any, Any] | None = None, shuffle: bool = True) -> History:
    """Train `model` for `epochs` passes over (x, y) in shuffled mini-batches; returns the History."""
    model.require_compiled("fit")
    _check_positive_int("fit", batch_size=batch_size, epochs=epochs)
    x = prepare_x(model, x, "fit")
    y = prepare_y(model, y, x.shape[0], "fit")
    val = _prepare_validation(model, validation_data)
    history = History()
    if verbose:
        print(f"Train on {x.shape[0]} samples" + (f", validate on {val[0].shape[0]} samples" if val else ""))
    batches, totals = Batches(x, y, batch_size, shuffle), EpochTotals(len(model.metrics))
    step = functools.partial(train_batch, model)
    if fast.replayable:  # on the GPU: recorded as CUDA graphs at its second call, replayed after
        step = fast.replayable(step, model.optimizer)
    for epoch in range(epochs):
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        start, snapshot = time.perf_counter(), _snapshot(model)
        sums = _run_epoch(model, batches, step, totals, Progbar(batches.steps) if verbose == 1 else None)
        if sums["failed"] or not snapshot.finite():
            _stop(model, snapshot, sums, f"epoch {epoch + 1}/{epochs}", batches.steps)
            return history
        logs = _logs(model, sums["loss_sum"] / x.shape[0], sums["metric_sums"] / x.shape[0])
        if val:
            logs.update({"val_" + k: v for k, v in _logs(model, *_evaluate(model, *val, INFERENCE_BATCH)).items()})
        history.record(epoch, logs)
        if verbose == 2:
            print(f" - {_format_seconds(time.perf_counter() - start)} - "
                  + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
    return history


class Snapshot:
    """The weights and the optimizer's state at one moment, to go back to if they turn NaN or infinite.

    A non-finite loss stops fit before the batch's update; but an update can also overflow the
    weights, or Adam's moments, while the loss is still finite. fit takes a snapshot at the start
    of every epoch and checks once at its end; the copies go into buffers made once, so this costs
    a few passes over the weights an epoch, not allocations, and nothing a step.
    """

    def __init__(self, model: Any) -> None:
        self._model = weakref.ref(model)  # the snapshot must not keep its model alive (they are cached per model)
        self.params: Any = None
        self.slots: dict[str, Any] = {}
        self.iterations = 0

    @property
    def model(self) -> Any:
        return self._model()

    def take(self) -> Snapshot:
        model = self.model
        self.params = _copy_into(self.params, model.params)
        optimizer = model.optimizer
        built = optimizer is not None and optimizer.is_built_for(model.params)
        slots = optimizer.slots if built else {}
        for name, value in slots.items():
            self.slots[name] = _copy_into(self.slots.get(name), value)
        self.slots = {name: self.slots[name] for name in slots}
        self.iterations = 0 if optimizer is None else optimizer.iterations
        return self

    def finite(self) -> bool:
        """Whether the model's weights and its optimizer's state are all finite now."""
        optimizer = self.model.optimizer
        vectors = [self.model.params] + ([] if optimizer is None else list(optimizer.slots.values()))
        return all(_all_finite(v) for v in vectors)

    def restore(self) -> None:
        """Put back the weights and the optimizer's state as they were at take()."""
        optimizer = self.model.optimizer
        self.model.params[...] = self.params
        if optimizer is None:
            return
        if self.slots and set(self.slots) == set(optimizer.slots) and optimizer.is_built_for(self.params):
            for name, value in self.slots.items():
                optimizer.slots[name][...] = value  # in place: a fast twin's views of them stay right
            optimizer.iterations = self.iterations
        else:  # the optimizer had not taken a step yet: it starts afresh
            optimizer.set_state({"iterations": np.array(self.iterations)})


def _copy_into(buffer: Any, value: Any) -> Any:
    """`value` copied into `buffer`, or into a new buffer when that one does not fit (shape, dtype, device)."""
    if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype or type(buffer) is not type(value):
        buffer = backend.xp().empty_like(value)
    buffer[...] = value
    return buffer


def _all_finite(vector: Any) -> bool:
    """Whether every number in `vector` is finite: a sum is finite only if they all are (NaN and inf carry
    through it), and one reduction is cheaper than isfinite's array of flags; only a sum that overflows
    with every number finite needs the element-wise look."""
    return math.isfinite(float(vector.sum())) or bool(backend.xp().isfinite(vector).all())


_snapshots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # one per model, its buffers reused


def _snapshot(model: Any) -> Snapshot:
    if model not in _snapshots:
        _snapshots[model] = Snapshot(model)
    return _snapshots[model].take()


def _stop(model: Any, snapshot: Snapshot, sums: dict[str, float], where: str, steps: int) -> None:
    """Warn that training stopped, and why; go back to the snapshot if the weights are no longer finite."""
    if snapshot.finite():
        what = (f"the loss stopped being finite at {where}, batch {int(sums['good_batches']) + 1}/{steps}; "
                f"training stopped, keeping the weights from before that batch")
    else:
        snapshot.restore()
        what = (f"the weights or the optimizer's state became NaN or infinite during {where} (an update overflowed "
                f"them); training stopped, keeping the weights and optimizer state from the start of that epoch")
    warnings.warn(f"fit: {what}", RuntimeWarning, stacklevel=4)


def _run_epoch(model: Any, batches: Batches, step: Callable[..., None], totals: EpochTotals,
               bar: Progbar | None) -> dict[str, float]:
    """One pass over the batches; the epoch's totals, read once at its end (and when the bar redraws)."""
    totals.reset()
    seen = 0
    for number, (xb, yb) in enumerate(batches, start=1):
        step(xb, yb, totals)
        seen += xb.shape[0]
        if bar is not None:
            bar.update(number, lambda: list(_running_logs(model, totals, seen).items()))
    return totals.read()


def _running_logs(model: Any, totals: EpochTotals, seen: int) -> dict[str, float]:
    sums = totals.read()
    return _logs(model, sums["loss_sum"] / seen, sums["metric_sums"] / seen)


def evaluate(model: Any, x: Any, y: Any, batch_size: int | None = None, verbose: int = 1) -> float | list[float]:
    """Mean loss (and accuracy) over (x, y): `[loss, accuracy]`, or the bare loss without metrics."""
    model.require_compiled("evaluate")
    batch_size = INFERENCE_BATCH if batch_size is None else batch_size
    _check_positive_int("evaluate", batch_size=batch_size)
    x = prepare_x(model, x, "evaluate")
    y = prepare_y(model, y, x.shape[0], "evaluate")
    bar = Progbar(x.shape[0], unit="sample") if verbose == 1 else None
    logs = _logs(model, *_evaluate(model, x, y, batch_size, bar))
    return list(logs.values()) if model.metrics else logs["loss"]


def _evaluate(model: Any, x: Any, y: Any, batch_size: int, bar: Progbar | None = None) -> tuple[float, np.ndarray]:
    """The mean loss and the metrics' means over (x, y), in inference mode."""
    n = x.shape[0]
    loss_sum, sums = 0.0, backend.xp().zeros(len(model.metrics))
    for start in range(0, n, batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        loss = model.forward_loss(xb, yb, training=False)
        loss_sum, sums = loss_sum + loss * xb.shape[0], sums + metric_sums(model, yb)
        if bar is not None:
            bar.update(min(n, start + batch_size))
    return float(loss_sum) / n, backend.to_numpy(sums).astype(np.float64) / n


def predict(model: Any, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
    """The network's outputs (class probabilities after softmax) as a NumPy array."""
    batch_size = INFERENCE_BATCH if batch_size is None else batch_size
    _check_positive_int("predict", batch_size=batch_size)
    x = prepare_x(model, x, "predict")
    outputs = [backend.to_numpy(model.forward(x[start:start + batch_size])).copy()
               for start in range(0, x.shape[0], batch_size)]
    return np.concatenate(outputs) if outputs else np.empty((0,) + model.output_shape, model.params.dtype)


def train_on_batch(model: Any, x: Any, y: Any) -> float | list[float]:
    """One optimizer step on exactly this batch; returns its loss (and accuracy) before the step."""
    model.require_compiled("train_on_batch")
    x = prepare_x(model, x, "train_on_batch")
    y = prepare_y(model, y, x.shape[0], "train_on_batch")
    totals, snapshot = EpochTotals(len(model.metrics)), _snapshot(model)
    train_batch(model, x, y, totals)
    sums = totals.read()
    if sums["failed"]:
        raise FloatingPointError("train_on_batch: the loss became NaN or infinite; the step was not applied")
    if not snapshot.finite():
        snapshot.restore()
        raise FloatingPointError("train_on_batch: the update made the weights or the optimizer's state NaN or "
                                 "infinite; the step was undone")
    logs = _logs(model, sums["loss_sum"] / x.shape[0], sums["metric_sums"] / x.shape[0])
    return list(logs.values()) if model.metrics else logs["loss"]


# ---- data checks (once per call, never per batch) ---------------------------------------------
def prepare_x(model: Any, x: Any, what: str) -> Any:
    """x checked against the model (built for it if need be) and moved to the backend in the model's dtype."""
    x = _as_array(x, "x", what)
    if backend.get_backend() == "numpy":
        x = backend.to_numpy(x)  # a GPU array given to the NumPy backend comes home first
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{what}: x must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{what}: x must have a batch dimension, got shape {tuple(x.shape)}")
    if not model.built:
        model.build(x.shape[1:])
    model.require_built(what)
    if tuple(x.shape[1:]) != model.input_shape:
        raise ValueError(f"{what}: layer {model.layers[0].name} expects input of shape "
                         f"(batch, {', '.join(map(str, model.input_shape))}), got {tuple(x.shape)}")
    xp = np if isinstance(x, np.ndarray) else backend.xp()
    if x.dtype.kind == "f" and not bool(xp.isfinite(x).all()):  # checked as given: 1e300 is finite in float64
        raise ValueError(f"{what}: x contains NaN or inf")
    if x.dtype.kind == "f" and x.dtype.itemsize > model.params.dtype.itemsize and x.size:  # float64 into float32
        largest = max(abs(float(x.min())), abs(float(x.max())))
        if largest > float(np.finfo(model.params.dtype).max):
            raise ValueError(f"{what}: x holds values up to {largest:g}, beyond the range of the model's "
                             f"{model.params.dtype} ({np.finfo(model.params.dtype).max:g}); scale the inputs first")
    return backend.to_device(x, model.params.dtype)


def prepare_y(model: Any, y: Any, n: int, what: str) -> Any:
    """Targets y checked against the model's loss and output, moved to the backend."""
    y = _as_array(y, "y", what)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{what}: y must be numeric, got dtype {y.dtype}")
    if n == 0:  # the mean loss over no samples is 0/0
        raise ValueError(f"{what}: expected at least one sample, got 0")
    try:
        model.loss.check_targets(y, n, model.output_shape[-1])
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if model.loss.integer_targets:
        return backend.to_device(y)
    return backend.to_device(y, model.params.dtype)


def _as_array(data: Any, name: str, what: str) -> Any:
    """An array as given (NumPy or CuPy), or a nested list made into one; a ragged list is a clear error."""
    if hasattr(data, "shape") and hasattr(data, "dtype"):
        return data
    try:
        return np.asarray(data)
    except ValueError as err:  # numpy: "setting an array element with a sequence ... inhomogeneous shape"
        raise ValueError(f"{what}: {name} must be a rectangular array of numbers (every row the same length), "
                         f"got a {type(data).__name__} that is not ({err})") from None


def _prepare_validation(model: Any, validation_data: Any) -> tuple[Any, Any] | None:
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
    x_val = prepare_x(model, validation_data[0], "fit (validation_data)")
    return x_val, prepare_y(model, validation_data[1], x_val.shape[0], "fit (validation_data)")


def metric_sums(model: Any, y: Any) -> Any:
    """Each metric's values over the last forward_loss's batch, added up (a vector on the backend, one per metric).

    A metric that reads only the order of the outputs gets the scores the loss took; any other
    gets the outputs themselves, computed once (model.predictions).
    """
    xp = backend.xp()
    if not model.metrics:
        return xp.zeros(0)
    outputs = None
    sums = []
    for metric in model.metrics:
        if metric.on_scores:
            y_pred = model.loss_input
        else:
            y_pred = outputs = model.predictions() if outputs is None else outputs
        sums.append(metric(y, y_pred).sum())
    return xp.stack(sums).astype(xp.float64)


def _logs(model: Any, loss: Any, metric_means: Any) -> dict[str, float]:
    """{"loss": ..., then each metric under its name}, as Keras logs them."""
    return {"loss": float(loss), **{m.name: float(v) for m, v in zip(model.metrics, metric_means)}}


def _check_positive_int(what: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
