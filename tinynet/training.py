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
import warnings
import weakref
from typing import Any, Callable, Iterator

import numpy as np

from tinynet import backend, distributed
from tinynet import callbacks as callbacks_module
from tinynet.callbacks import History
from tinynet.engine import fast
from tinynet.progress import Progbar

INFERENCE_BATCH = 1024  # predict/evaluate default: inference keeps no state, so big chunks are just faster


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


def train_batch(model: Any, x: Any, y: Any, sample_weight: Any, totals: EpochTotals) -> None:
    """model.train_step on the batch (x, y), counted in `totals`, its update applied only if its loss is finite."""
    loss = model.forward_loss(x, y, sample_weight=sample_weight)
    model.backward()
    loss, rows = distributed.average_gradients(model.grads, loss, x.shape[0])  # over all processes, if several
    ok = totals.add(loss, metric_sums(model, y), rows)
    if fast.step_if:  # the GPU decides `if ok` itself, so the host never waits for the loss
        fast.step_if(ok, model.optimizer, model.params, model.grads)
    elif ok:
        model.optimizer.step(model.params, model.grads)


class Batches:
    """An epoch's mini-batches of (x, y) and their sample weights, each gathered into the same buffers
    (no new arrays per batch)."""

    def __init__(self, x: Any, y: Any, weights: Any, batch_size: int, shuffle: bool) -> None:
        xp = backend.xp()
        self.arrays = [a for a in (x, y, weights) if a is not None]
        self.shuffle, self.n = shuffle, x.shape[0]
        self.size = min(batch_size, self.n)
        self.steps = math.ceil(self.n / self.size)
        self.buffers = [xp.empty((self.size,) + a.shape[1:], a.dtype) for a in self.arrays]
        self.weighted = weights is not None

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        order = backend.rng().permutation(self.n) if self.shuffle else np.arange(self.n)
        order = backend.to_device(distributed.broadcast(order))  # with several processes: rank 0's order
        for step in range(self.steps):
            rows = order[step * self.size:(step + 1) * self.size]
            batch = self.gather(rows[distributed.shard(len(rows))])  # this process's share of the batch
            yield batch[0], batch[1], batch[2] if self.weighted else None

    def gather(self, rows: Any) -> list[Any]:
        """Each array's rows, in the first len(rows) rows of its buffer."""
        views = [buffer[:len(rows)] for buffer in self.buffers]
        for array, view in zip(self.arrays, views):
            if fast.take_rows:
                fast.take_rows(array, rows, out=view)
            else:
                view[...] = array[rows]
        return views


def fit(model: Any, x: Any, y: Any, batch_size: int | None = None, epochs: int = 1, verbose: int | str = "auto",
        callbacks: list[Any] | None = None, validation_split: float = 0.0,
        validation_data: tuple[Any, ...] | None = None, shuffle: bool = True,
        class_weight: dict[int, float] | None = None, sample_weight: Any = None, initial_epoch: int = 0,
        validation_batch_size: int | None = None, validation_freq: int = 1) -> History:
    """Train `model` for `epochs` passes over (x, y) in shuffled mini-batches; returns the History.

    As Keras 3's fit: validation_split takes the last fraction of (x, y), before shuffling, for
    validation; class_weight and sample_weight weigh each sample's loss; epochs run from
    initial_epoch to epochs - 1; callbacks get the hooks listed in tinynet/callbacks.py.
    """
    model.require_compiled("fit")
    batch_size = 32 if batch_size is None else batch_size
    verbose = _verbosity(verbose, "fit")
    _check_positive_int("fit", batch_size=batch_size, epochs=epochs, validation_freq=validation_freq)
    if not isinstance(initial_epoch, (int, np.integer)) or isinstance(initial_epoch, bool) \
            or not 0 <= initial_epoch < epochs:
        raise ValueError(f"fit: initial_epoch must be a whole number from 0 to epochs - 1 = {epochs - 1}, "
                         f"got {initial_epoch!r}")
    (x, y, weights), val = _fit_data(model, x, y, sample_weight, class_weight, validation_split, validation_data)
    if distributed.active():
        distributed.prepare_fit(model, x.shape[0], batch_size)
    model.history = history = callbacks_module.History()
    steps = math.ceil(x.shape[0] / min(batch_size, x.shape[0]))
    cbs = callbacks_module.CallbackList(  # Keras's order: yours, the History, the progress display
        _callbacks(callbacks) + [history] + ([callbacks_module.ProgbarLogger(verbose)] if verbose else []),
        model, {"verbose": verbose, "epochs": epochs, "steps": steps})
    if verbose:
        print(f"Train on {x.shape[0]} samples" + (f", validate on {val[0].shape[0]} samples" if val else ""))
    batches, totals = Batches(x, y, weights, batch_size, shuffle), EpochTotals(len(model.metrics))
    step = functools.partial(train_batch, model)
    if fast.replayable and not distributed.active():  # on the GPU: recorded as CUDA graphs, replayed after
        step = fast.replayable(step, model.optimizer)
    model.stop_training, logs = False, {}
    cbs.call("on_train_begin", {})
    for epoch in range(initial_epoch, epochs):
        cbs.call("on_epoch_begin", epoch, {})
        snapshot = _snapshot(model)
        sums, seen = _run_epoch(model, batches, step, totals, cbs)
        if sums["failed"] or not snapshot.finite():
            _stop(model, snapshot, sums, f"epoch {epoch + 1}/{epochs}", batches.steps)
            break
        logs = _logs(model, sums["loss_sum"] / seen, sums["metric_sums"] / seen)
        if val and (epoch + 1) % validation_freq == 0:
            val_logs = _evaluate(model, *val, validation_batch_size or batch_size, cbs)
            logs.update({"val_" + k: v for k, v in val_logs.items()})
        cbs.call("on_epoch_end", epoch, logs)
        if model.stop_training:
            break
    cbs.call("on_train_end", logs)
    return history


def _fit_data(model: Any, x: Any, y: Any, sample_weight: Any, class_weight: Any, validation_split: Any,
              validation_data: Any) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any] | None]:
    """fit's (x, y, weights) to train on and to validate on, checked once and on the backend."""
    _one_weighting(sample_weight, class_weight, "fit")
    x = prepare_x(model, x, "fit")
    y = prepare_y(model, y, x.shape[0], "fit")
    weights = prepare_weights(model, y, x.shape[0], sample_weight, None, "fit")
    (x, y, weights), val = _split_validation(model, (x, y, weights), validation_split, validation_data)
    if class_weight is not None:  # the training part's only: validation is not class-weighted, as in Keras
        weights = prepare_weights(model, y, x.shape[0], None, class_weight, "fit")
    return (x, y, weights), val


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
        self.non_trainable: Any = None  # BatchNormalization's moving statistics: a bad batch's forward moves them
        self.slots: dict[str, Any] = {}
        self.iterations = 0

    @property
    def model(self) -> Any:
        return self._model()

    def take(self) -> Snapshot:
        model = self.model
        self.params = _copy_into(self.params, model.params)
        self.non_trainable = _copy_into(self.non_trainable, model.non_trainable)
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
        vectors = [self.model.params, self.model.non_trainable] + ([] if optimizer is None else
                                                                   list(optimizer.slots.values()))
        return all(_all_finite(v) for v in vectors)

    def restore(self) -> None:
        """Put back the weights and the optimizer's state as they were at take()."""
        optimizer = self.model.optimizer
        self.model.params[...] = self.params
        self.model.non_trainable[...] = self.non_trainable
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
               cbs: callbacks_module.CallbackList) -> tuple[dict[str, Any], int]:
    """One pass over the batches (cut short if a callback sets model.stop_training): the epoch's totals, read
    once at its end (and when a callback reads a batch's logs), and how many samples it saw."""
    totals.reset()
    seen = mine = 0  # samples of the batches so far: in all, and this process's share (the same in one process)
    for number, (xb, yb, wb) in enumerate(batches):
        cbs.call("on_train_batch_begin", number, {})
        step(xb, yb, wb, totals)
        seen, mine = min(batches.n, (number + 1) * batches.size), mine + xb.shape[0]
        cbs.call("on_train_batch_end", number, callbacks_module.LazyLogs(
            functools.partial(_running_logs, model, totals, seen, mine)))
        if model.stop_training:
            break
    sums = totals.read()
    sums["metric_sums"] = distributed.sum_over_processes(sums["metric_sums"])  # each process counted its share
    distributed.average(model.non_trainable)  # moving statistics: each process's saw its own shards
    return sums, seen


def _running_logs(model: Any, totals: EpochTotals, seen: int, mine: int) -> dict[str, float]:
    """The epoch's logs so far; the loss is NaN once a batch's loss was (its update was not applied).
    With several processes the metrics are this process's share (the epoch's final logs are everyone's)."""
    sums = totals.read()
    return _logs(model, math.nan if sums["failed"] else sums["loss_sum"] / seen, sums["metric_sums"] / mine)


def evaluate(model: Any, x: Any, y: Any, batch_size: int | None = None, verbose: int | str = "auto",
             sample_weight: Any = None, callbacks: list[Any] | None = None,
             return_dict: bool = False) -> float | list[float] | dict[str, float]:
    """Mean loss and metrics over (x, y): `[loss, *metrics]`, the bare loss without metrics, or a dict."""
    model.require_compiled("evaluate")
    batch_size = INFERENCE_BATCH if batch_size is None else batch_size
    verbose = _verbosity(verbose, "evaluate")
    _check_positive_int("evaluate", batch_size=batch_size)
    x = prepare_x(model, x, "evaluate")
    y = prepare_y(model, y, x.shape[0], "evaluate")
    weights = prepare_weights(model, y, x.shape[0], sample_weight, None, "evaluate")
    steps = math.ceil(x.shape[0] / batch_size)
    cbs = callbacks_module.CallbackList(_callbacks(callbacks), model, {"verbose": verbose, "steps": steps})
    logs = _evaluate(model, x, y, weights, batch_size, cbs, Progbar(steps) if verbose == 1 else None)
    return _as_returned(model, logs, return_dict)


def _evaluate(model: Any, x: Any, y: Any, weights: Any, batch_size: int, cbs: callbacks_module.CallbackList,
              bar: Progbar | None = None) -> dict[str, float]:
    """The mean loss and the metrics' means over (x, y), in inference mode, with the test hooks.
    With several processes each takes its share of the data and the sums are added up over them."""
    part = distributed.shard(x.shape[0])
    x, y, weights = x[part], y[part], None if weights is None else weights[part]
    n = x.shape[0]
    loss_sum, sums = 0.0, backend.xp().zeros(len(model.metrics))
    cbs.call("on_test_begin", {})
    for number, start in enumerate(range(0, n, batch_size)):
        cbs.call("on_test_batch_begin", number, {})
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        wb = None if weights is None else weights[start:start + batch_size]
        loss = model.forward_loss(xb, yb, training=False, sample_weight=wb)
        loss_sum, sums, seen = loss_sum + loss * xb.shape[0], sums + metric_sums(model, yb), start + xb.shape[0]
        logs = callbacks_module.LazyLogs(functools.partial(_logs, model, loss_sum / seen, sums / seen))
        cbs.call("on_test_batch_end", number, logs)
        if bar is not None:
            bar.update(number + 1, lambda: list(logs.items()))
    totals = distributed.sum_over_processes(np.concatenate([[float(loss_sum), n], backend.to_numpy(sums)]))
    logs = _logs(model, totals[0] / totals[1], totals[2:] / totals[1])
    if bar is not None:
        bar.update(number + 1, list(logs.items()), finalize=True)
    cbs.call("on_test_end", logs)
    return logs


def predict(model: Any, x: Any, batch_size: int | None = None, verbose: int | str = "auto",
            callbacks: list[Any] | None = None) -> np.ndarray:
    """The network's outputs (class probabilities after softmax) as a NumPy array."""
    batch_size = INFERENCE_BATCH if batch_size is None else batch_size
    verbose = _verbosity(verbose, "predict")
    _check_positive_int("predict", batch_size=batch_size)
    x = prepare_x(model, x, "predict")
    steps = math.ceil(x.shape[0] / batch_size)
    cbs = callbacks_module.CallbackList(_callbacks(callbacks), model, {"verbose": verbose, "steps": steps})
    bar = Progbar(steps) if verbose == 1 else None
    cbs.call("on_predict_begin", {})
    outputs = []
    for number, start in enumerate(range(0, x.shape[0], batch_size)):
        cbs.call("on_predict_batch_begin", number, {})
        outputs.append(backend.to_numpy(model.forward(x[start:start + batch_size])).copy())
        cbs.call("on_predict_batch_end", number, {"outputs": outputs[-1]})
        if bar is not None:
            bar.update(number + 1, finalize=number + 1 == steps)
    cbs.call("on_predict_end", {})
    return np.concatenate(outputs) if outputs else np.empty((0,) + model.output_shape, model.params.dtype)


def train_on_batch(model: Any, x: Any, y: Any, sample_weight: Any = None, class_weight: dict[int, float] | None = None,
                   return_dict: bool = False) -> float | list[float] | dict[str, float]:
    """One optimizer step on exactly this batch; returns its loss (and metrics) before the step."""
    model.require_compiled("train_on_batch")
    x = prepare_x(model, x, "train_on_batch")
    y = prepare_y(model, y, x.shape[0], "train_on_batch")
    weights = prepare_weights(model, y, x.shape[0], sample_weight, class_weight, "train_on_batch")
    totals, snapshot = EpochTotals(len(model.metrics)), _snapshot(model)
    train_batch(model, x, y, weights, totals)
    sums = totals.read()
    if sums["failed"]:
        raise FloatingPointError("train_on_batch: the loss became NaN or infinite; the step was not applied")
    if not snapshot.finite():
        snapshot.restore()
        raise FloatingPointError("train_on_batch: the update made the weights or the optimizer's state NaN or "
                                 "infinite; the step was undone")
    logs = _logs(model, sums["loss_sum"] / x.shape[0], sums["metric_sums"] / x.shape[0])
    return _as_returned(model, logs, return_dict)


def test_on_batch(model: Any, x: Any, y: Any, sample_weight: Any = None,
                  return_dict: bool = False) -> float | list[float] | dict[str, float]:
    """Loss (and metrics) on exactly this batch, in inference mode."""
    return evaluate(model, x, y, batch_size=max(1, len(x)), verbose=0, sample_weight=sample_weight,
                    return_dict=return_dict)


def _as_returned(model: Any, logs: dict[str, float], return_dict: bool) -> float | list[float] | dict[str, float]:
    """As Keras returns them: the logs as a dict, or [loss, *metrics], or the bare loss without metrics."""
    if return_dict:
        return logs
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
    if len(model.output_shape) != 1:
        raise ValueError(f"{what}: the losses take one row of outputs per sample, shape (batch, k), but the model's "
                         f"output is (batch, {', '.join(map(str, model.output_shape))}); add Flatten (or "
                         f"GlobalAveragePooling2D) and a Dense layer at the end")
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


def prepare_weights(model: Any, y: Any, n: int, sample_weight: Any, class_weight: Any, what: str) -> Any:
    """The weight of each sample's loss, from sample_weight (one number per sample) or class_weight ({class:
    weight}, applied by each sample's class); None when neither is given."""
    _one_weighting(sample_weight, class_weight, what)
    weights = None
    if sample_weight is not None:
        weights = np.asarray(backend.to_numpy(_as_array(sample_weight, "sample_weight", what)), np.float64)
        if weights.shape not in ((n,), (n, 1)):
            raise ValueError(f"{what}: sample_weight must hold one number per sample, shape ({n},), "
                             f"got {weights.shape}")
        if not np.all(np.isfinite(weights)) or weights.min(initial=0) < 0:
            raise ValueError(f"{what}: sample_weight must be finite numbers >= 0")
        weights = weights.reshape(n)
    if class_weight is not None:
        weights = _class_weights(model, y, class_weight, what)
    return None if weights is None else backend.to_device(weights, model.params.dtype)


def _one_weighting(sample_weight: Any, class_weight: Any, what: str) -> None:
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{what}: give sample_weight or class_weight, not both (as Keras); to weigh classes as "
                         f"well, fold the class weights into sample_weight")


def _class_weights(model: Any, y: Any, class_weight: Any, what: str) -> np.ndarray:
    """class_weight[class of each sample]; the class is the label, the one-hot's argmax, or a binary target."""
    classes = model.output_shape[-1]
    if not isinstance(class_weight, dict):
        raise TypeError(f"{what}: class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
    y = backend.to_numpy(y)
    labels = y.reshape(-1) if model.loss.integer_targets or classes == 1 else y.argmax(axis=-1)
    known = range(max(classes, 2))
    for key, value in class_weight.items():
        if not isinstance(key, (int, np.integer)) or key not in known:
            raise ValueError(f"{what}: class_weight names class {key!r}, but the classes are 0 to {known[-1]}")
        if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{what}: class_weight[{key}] must be a finite number >= 0, got {value!r}")
    table = np.array([float(class_weight.get(c, 1.0)) for c in known])
    labels = np.rint(labels).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(table)):
        raise ValueError(f"{what}: class_weight needs class labels from 0 to {len(table) - 1} as targets, but the "
                         f"targets hold values up to {labels.max()} (class_weight is for classifiers)")
    return table[labels]


def _split_validation(model: Any, train: tuple[Any, Any, Any], validation_split: Any,
                      validation_data: Any) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any] | None]:
    """(x, y, weights) to train on, and (x_val, y_val, weights_val) or None: validation_data if given, else
    the last validation_split of the data, taken before any shuffling, as Keras does."""
    if not isinstance(validation_split, (int, float, np.integer, np.floating)) or isinstance(validation_split, bool) \
            or not 0 <= validation_split < 1:
        raise ValueError(f"fit: validation_split must be a number in [0, 1), got {validation_split!r}")
    if validation_data is not None:
        return train, _prepare_validation(model, validation_data)
    if not validation_split:
        return train, None
    n = train[0].shape[0]
    split_at = int(math.floor(n * (1 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"fit: validation_split={validation_split} of {n} samples leaves "
                         f"{split_at} to train on and {n - split_at} to validate on; both need at least one")
    return (tuple(None if a is None else a[:split_at] for a in train),
            tuple(None if a is None else a[split_at:] for a in train))


def _prepare_validation(model: Any, validation_data: Any) -> tuple[Any, Any, Any]:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)")
    x_val = prepare_x(model, validation_data[0], "fit (validation_data)")
    y_val = prepare_y(model, validation_data[1], x_val.shape[0], "fit (validation_data)")
    weights = None if len(validation_data) == 2 else prepare_weights(model, y_val, x_val.shape[0],
                                                                     validation_data[2], None, "fit (validation_data)")
    return x_val, y_val, weights


def _callbacks(callbacks: Any) -> list[Any]:
    """The user's callbacks as a list (CallbackList checks each is a Callback)."""
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of tinynet.callbacks.Callback, got {type(callbacks).__name__}")
    return list(callbacks or [])


def _verbosity(verbose: Any, what: str) -> int:
    """Keras's verbose: "auto" (1), 0 silent, 1 a progress bar, 2 one line per epoch."""
    if verbose == "auto":
        verbose = 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"{what}: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose) if distributed.is_root() else 0  # with several processes, rank 0 prints


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
        y_true = y.reshape(y_pred.shape) if y.size == y_pred.size else y  # (n,) targets for (n, 1) outputs
        sums.append(metric(y_true, y_pred).sum())
    return xp.stack(sums).astype(xp.float64)


def _logs(model: Any, loss: Any, metric_means: Any) -> dict[str, float]:
    """{"loss": ..., then each metric under its name}, as Keras logs them."""
    return {"loss": float(loss), **{m.name: float(v) for m, v in zip(model.metrics, metric_means)}}


def _check_positive_int(what: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")
