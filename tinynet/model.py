"""The Keras-style model: `Sequential`, `compile`, `fit`, `evaluate`, `predict`, `save`.

Training one batch is: forward through the layers, the loss, backward through
the layers in reverse, one optimizer step. All weights live in one flat vector
(each layer's W and b are views into it) and all gradients in another, so the
optimizer updates the whole network at once and saving is one array.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable

import numpy as np

from tinynet import backend, losses, optimizers
from tinynet import metrics as metric_fns
from tinynet.layers import Layer, Shape, Softmax
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


class Sequential:
    """A stack of layers, each feeding the next."""

    def __init__(self, layers: list[Layer] | None = None, name: str = "sequential") -> None:
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential: expected a list of layers, got {type(layers).__name__}")
        self.name = name
        self.layers: list[Layer] = []
        self.input_shape: Shape | None = None
        self.loss: losses.CategoricalCrossentropy | None = None
        self.optimizer: optimizers.Optimizer | None = None
        self.metrics: list[str] = []
        for layer in layers or []:
            self.add(layer)

    # ---- building -------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer; it is built at once when the input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}.add: expected a tinynet Layer, got {type(layer).__name__}")
        self.layers.append(layer)
        try:
            if self.input_shape is not None:
                self._build_from(len(self.layers) - 1)
            elif len(self.layers) == 1 and layer.input_shape is not None:
                self.build(layer.input_shape)
        except Exception:
            self.layers.pop()  # a layer that cannot be built must not stay half in the model
            raise

    def build(self, input_shape: Shape) -> None:
        """Create every layer's weights for samples of `input_shape` (batch dimension left out)."""
        old, self.input_shape = self.input_shape, tuple(int(d) for d in input_shape)
        try:
            self._build_from(0)
        except Exception:
            self.input_shape = old
            raise

    def _build_from(self, first: int) -> None:
        shape = self.input_shape if first == 0 else self.layers[first - 1].output_shape
        for layer in self.layers[first:]:
            shape = layer.build(shape)
        self._pack_weights()
        # dL/dx of the network's input is never used: skip it up to and including the first layer with weights
        has_weights_below = False
        for layer in self.layers:
            layer.needs_input_grad = has_weights_below
            has_weights_below = has_weights_below or bool(layer.weight_names)

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape

    def _pack_weights(self, dtype: Any = None) -> None:
        """Copy all weights into one flat vector and make each layer's weights views of it (gradients too)."""
        slots = [(layer, name) for layer in self.layers for name in layer.weight_names]
        values = [backend.to_device(getattr(layer, name)) for layer, name in slots]
        dtype = dtype or (values[0].dtype if values else backend.floatx())
        xp = backend.xp()
        self.params = xp.empty(sum(int(v.size) for v in values), dtype=dtype)
        self.grads = xp.zeros_like(self.params)
        offset = 0
        for (layer, name), value in zip(slots, values):
            end = offset + int(value.size)
            setattr(layer, name, self.params[offset:end].reshape(value.shape))
            setattr(layer, "d" + name, self.grads[offset:end].reshape(value.shape))
            getattr(layer, name)[...] = value
            offset = end
        self._backend = backend.get_backend()

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(f"{what}: the model is not built yet; give the first layer an input_shape, "
                             f"call build(input_shape), or fit it on data first")
        if self._backend != backend.get_backend():  # the user switched backends: move the weights along
            self._pack_weights()
            if self.optimizer is not None:
                self.optimizer.set_state(self.optimizer.get_state())

    # ---- compiling --------------------------------------------------------
    def compile(self, optimizer: str | optimizers.Optimizer = "adam", loss: str | losses.CategoricalCrossentropy | None = None,
                metrics: list[str] | None = None) -> None:
        """Choose the loss, the optimizer (name or instance) and the metrics to report."""
        if loss is None:
            raise ValueError(f"{self.name}.compile: a loss is required, one of {', '.join(losses.LOSSES)}")
        self.loss = losses.get(loss)
        self.optimizer = optimizers.get(optimizer)
        self.metrics = metric_fns.get(metrics)

    def _require_compiled(self, what: str) -> None:
        if self.loss is None:
            raise ValueError(f"{what}: compile the model first, e.g. model.compile(loss='categorical_crossentropy', "
                             f"optimizer='adam', metrics=['accuracy'])")

    # ---- data checks (once per call, never per batch) ---------------------------
    def _prepare_x(self, x: Any, what: str) -> Any:
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{what}: x must be numeric, got dtype {x.dtype}")
        if x.ndim < 2:
            raise ValueError(f"{what}: x must have a batch dimension, got shape {tuple(x.shape)}")
        if not self.built:
            self.build(x.shape[1:])
        self._require_built(what)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{what}: layer {self.layers[0].name} expects input of shape "
                             f"(batch, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        x = backend.to_device(x, self.params.dtype)
        if not bool(backend.xp().isfinite(x).all()):
            raise ValueError(f"{what}: x contains NaN or inf")
        return x

    def _prepare_y(self, y: Any, n: int, what: str) -> Any:
        if not hasattr(y, "shape") or not hasattr(y, "dtype"):
            y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{what}: y must be numeric, got dtype {y.dtype}")
        if n == 0:  # the mean loss over no samples is 0/0
            raise ValueError(f"{what}: expected at least one sample, got 0")
        try:
            self.loss.check_targets(y, n, self.output_shape[-1])
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        if isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            return backend.to_device(y)
        return backend.to_device(y, self.params.dtype)

    # ---- one batch ------------------------------------------------------------
    def _fused_softmax(self) -> bool:
        """Softmax then cross-entropy: train on the scores and use the stable gradient (p - y) / n."""
        return isinstance(self.layers[-1], Softmax) and not self.loss.from_logits

    def _forward_loss(self, x: Any, y: Any, training: bool) -> tuple[Any, Any]:
        """Loss and number of correct predictions of one batch, both left on the device."""
        fused = self._fused_softmax()
        out = x
        for layer in self.layers[:-1] if fused else self.layers:
            out = layer.forward(out, training)
        loss = self.loss.forward(out, y, from_logits=True if fused else None)
        correct = metric_fns.count_correct(out, self.loss.target) if self.metrics else 0
        return loss, correct

    def _backward(self) -> None:
        """Fill self.grads (every layer's dW, db, ...) for the batch last seen by _forward_loss."""
        dy = self.loss.backward()
        layers = self.layers[:-1] if self._fused_softmax() else self.layers
        for layer in reversed(layers):
            dy = layer.backward(dy)
            if not layer.needs_input_grad:
                break  # the first layer with weights: nothing below it needs a gradient

    def _train_step(self, x: Any, y: Any, totals: Any) -> None:
        """One optimizer step on the batch (x, y) that never waits for the device.

        Its loss and number of correct predictions are added to `totals` on the device
        (see backend.record_batch), and a batch whose loss is not finite changes no
        weight. With nothing read back, the GPU can record the step as a CUDA graph.
        """
        loss, correct = self._forward_loss(x, y, training=True)
        ok = backend.record_batch(totals, loss, correct, x.shape[0])
        self._backward()
        self.optimizer.step(self.params, self.grads, apply=ok)

    # ---- the Keras API ------------------------------------------------------
    def fit(self, x: Any, y: Any, batch_size: int = 32, epochs: int = 1, verbose: int = 1,
            validation_data: tuple[Any, Any] | None = None, shuffle: bool = True) -> History:
        """Train for `epochs` passes over (x, y) in shuffled mini-batches; returns the History."""
        self._require_compiled("fit")
        _check_positive_int("fit", batch_size=batch_size, epochs=epochs)
        x = self._prepare_x(x, "fit")
        y = self._prepare_y(y, x.shape[0], "fit")
        val = self._prepare_validation(validation_data)
        history = History()
        if verbose:
            print(f"Train on {x.shape[0]} samples" + (f", validate on {val[0].shape[0]} samples" if val else ""))
        epoch_runner = _EpochRunner(self, x, y, batch_size, shuffle)
        for epoch in range(epochs):
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            start = time.perf_counter()
            sums, good_batches, failed = epoch_runner.run(Progbar(epoch_runner.steps) if verbose == 1 else None)
            if failed:
                warnings.warn(f"fit: the loss stopped being finite at epoch {epoch + 1}/{epochs}, batch "
                              f"{good_batches + 1}/{epoch_runner.steps}; training stopped, keeping the weights from "
                              f"before that batch", RuntimeWarning, stacklevel=2)
                return history
            logs = self._logs(*(s / x.shape[0] for s in sums))
            if val:
                logs.update({"val_" + k: v for k, v in self._logs(*self._evaluate(*val, INFERENCE_BATCH)).items()})
            history.record(epoch, logs)
            if verbose == 2:
                print(f" - {_format_seconds(time.perf_counter() - start)} - "
                      + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        return history

    def _prepare_validation(self, validation_data: Any) -> tuple[Any, Any] | None:
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
        x_val = self._prepare_x(validation_data[0], "fit (validation_data)")
        return x_val, self._prepare_y(validation_data[1], x_val.shape[0], "fit (validation_data)")

    def _logs(self, loss: Any, accuracy: Any) -> dict[str, float]:
        logs = {"loss": float(loss)}
        if self.metrics:
            logs["accuracy"] = float(accuracy)
        return logs

    def _evaluate(self, x: Any, y: Any, batch_size: int, bar: Progbar | None = None) -> tuple[float, float]:
        n = x.shape[0]
        loss_sum, correct_sum = 0.0, 0
        for start in range(0, n, batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            loss, correct = self._forward_loss(xb, yb, training=False)
            loss_sum, correct_sum = loss_sum + loss * xb.shape[0], correct_sum + correct
            if bar is not None:
                bar.update(min(n, start + batch_size))
        return float(loss_sum) / n, float(correct_sum) / n

    def evaluate(self, x: Any, y: Any, batch_size: int | None = None, verbose: int = 1) -> float | list[float]:
        """Mean loss (and accuracy) over (x, y): `[loss, accuracy]`, or the bare loss without metrics."""
        self._require_compiled("evaluate")
        batch_size = INFERENCE_BATCH if batch_size is None else batch_size
        _check_positive_int("evaluate", batch_size=batch_size)
        x = self._prepare_x(x, "evaluate")
        y = self._prepare_y(y, x.shape[0], "evaluate")
        bar = Progbar(x.shape[0], unit="sample") if verbose == 1 else None
        loss, accuracy = self._evaluate(x, y, batch_size, bar)
        return [loss, accuracy] if self.metrics else loss

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """The network's outputs (class probabilities after softmax) as a NumPy array."""
        batch_size = INFERENCE_BATCH if batch_size is None else batch_size
        _check_positive_int("predict", batch_size=batch_size)
        x = self._prepare_x(x, "predict")
        outputs = []
        for start in range(0, x.shape[0], batch_size):
            out = x[start:start + batch_size]
            for layer in self.layers:
                out = layer.forward(out, training=False)
            outputs.append(backend.to_numpy(out).copy())
        return np.concatenate(outputs) if outputs else np.empty((0,) + self.output_shape, self.params.dtype)

    def train_on_batch(self, x: Any, y: Any) -> float | list[float]:
        """One optimizer step on exactly this batch; returns its loss (and accuracy) before the step."""
        self._require_compiled("train_on_batch")
        x = self._prepare_x(x, "train_on_batch")
        y = self._prepare_y(y, x.shape[0], "train_on_batch")
        totals = backend.xp().zeros(4)
        self._train_step(x, y, totals)
        loss_sum, correct_sum, _, failed = backend.to_numpy(totals)
        if failed:
            raise FloatingPointError("train_on_batch: the loss became NaN or infinite; the step was not applied")
        logs = self._logs(loss_sum / x.shape[0], correct_sum / x.shape[0])
        return list(logs.values()) if self.metrics else logs["loss"]

    # ---- weights, summary, saving -------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of all weights in layer order (Dense: kernel (in, out), then bias (out,))."""
        self._require_built("get_weights")
        return [backend.to_numpy(w).copy() for layer in self.layers for w in layer.weights()]

    def set_weights(self, weights: list[Any]) -> None:
        """Overwrite all weights, in the order get_weights gives them."""
        self._require_built("set_weights")
        slots = [(layer, name) for layer in self.layers for name in layer.weight_names]
        if len(weights) != len(slots):
            raise ValueError(f"set_weights: the model has {len(slots)} weight arrays, got {len(weights)}")
        for (layer, name), value in zip(slots, weights):
            target = getattr(layer, name)
            if tuple(np.shape(value)) != tuple(target.shape):
                raise ValueError(f"set_weights: layer {layer.name} weight {name} has shape {tuple(target.shape)}, "
                                 f"got {tuple(np.shape(value))}")
        for (layer, name), value in zip(slots, weights):
            getattr(layer, name)[...] = backend.to_device(value, self.params.dtype)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn: Callable[[str], None] = print) -> None:
        """Print a table of layers, output shapes and parameter counts, as Keras does."""
        self._require_built("summary")
        rule, widths = "_" * 65, (29, 26, 10)
        row = lambda *cells: "".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        lines = [f'Model: "{self.name}"', rule, row("Layer (type)", "Output Shape", "Param #"), "=" * 65]
        for i, layer in enumerate(self.layers):
            shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")"
            lines.append(row(f"{layer.name} ({type(layer).__name__})", shape, layer.count_params()))
            lines.append("=" * 65 if i == len(self.layers) - 1 else rule)
        total = self.count_params()
        lines += [f"Total params: {total:,}", f"Trainable params: {total:,}", "Non-trainable params: 0", rule]
        print_fn("\n".join(lines))

    def save(self, path: str) -> None:
        """Write architecture, weights and optimizer state to one file (see tinynet.saving)."""
        from tinynet import saving
        saving.save_model(self, path)


class _EpochRunner:
    """fit()'s passes over (x, y) in mini-batches, with what they reuse from one epoch to the next.

    Every full batch is gathered into the same two buffers and trained by one
    `replayable` step (a CUDA graph on the GPU); a smaller last batch runs as it is.
    The running totals stay on the device and are read once per epoch (and when
    the progress bar redraws), so the GPU never idles waiting for the host.
    """

    def __init__(self, model: Sequential, x: Any, y: Any, batch_size: int, shuffle: bool) -> None:
        xp = backend.xp()
        self.model, self.x, self.y, self.shuffle = model, x, y, shuffle
        self.batch_size = min(batch_size, x.shape[0])
        self.steps = math.ceil(x.shape[0] / self.batch_size)
        self.x_batch = xp.empty((self.batch_size,) + x.shape[1:], x.dtype)
        self.y_batch = xp.empty((self.batch_size,) + y.shape[1:], y.dtype)
        self.totals = xp.zeros(4)  # loss_sum, correct_sum, good_batches, failed: see backend.record_batch
        self.full_step = backend.replayable(model._train_step)

    def run(self, bar: Progbar | None) -> tuple[tuple[float, float], int, bool]:
        """One epoch: (loss_sum, correct_sum), how many batches were good, and whether one failed."""
        n, size = self.x.shape[0], self.batch_size
        order = backend.to_device(backend.rng().permutation(n)) if self.shuffle else backend.xp().arange(n)
        self.totals[...] = 0
        for step in range(self.steps):
            rows = order[step * size:(step + 1) * size]
            if rows.shape[0] == size:
                backend.take_rows(self.x, rows, out=self.x_batch)
                backend.take_rows(self.y, rows, out=self.y_batch)
                self.full_step(self.x_batch, self.y_batch, self.totals)
            else:
                self.model._train_step(self.x[rows], self.y[rows], self.totals)
            if bar is not None:
                seen = min(n, (step + 1) * size)
                bar.update(step + 1, lambda: list(self._logs(seen).items()))
        loss_sum, correct_sum, good, failed = backend.to_numpy(self.totals)
        return (loss_sum, correct_sum), int(good), bool(failed)

    def _logs(self, seen: int) -> dict[str, float]:
        loss_sum, correct_sum = backend.to_numpy(self.totals[:2])
        return self.model._logs(loss_sum / seen, correct_sum / seen)


def _check_positive_int(what: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
