"""The model: `Sequential`, a stack of layers, and the one-batch API a learner can drive by hand.

Training on one batch is three calls:

    loss = model.forward_loss(x, y)                    # forward through every layer and the loss
    model.backward()                                   # back through the loss and every layer: fills model.grads
    model.optimizer.step(model.params, model.grads)    # the optimizer's rule on the flat vectors

and `model.train_step(x, y)` does the three. All weights live in one flat vector `params`
(each layer's W and b are views into it) and all gradients in another, `grads`, so the
optimizer updates the whole network at once and saving is one array. The loops that repeat
this over data (fit, evaluate, predict) are in training.py; the file format is in saving.py.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable

import numpy as np

from tinynet import activations, backend, distributed, layers, losses, optimizers, saving, training
from tinynet import metrics as metric_fns
from tinynet.engine import fast
from tinynet.layer import Layer, Shape, check_shape
from tinynet.layers import InputLayer


class Sequential:
    """A stack of layers, each feeding the next."""

    def __init__(self, layers: list[Layer] | None = None, name: str = "sequential") -> None:
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential: expected a list of layers, got {type(layers).__name__}")
        self.name = name
        self.layers: list[Layer] = []
        self.input_shape: Shape | None = None
        self.loss: losses.Loss | None = None
        self.optimizer: optimizers.Optimizer | None = None
        self.metrics: list[metric_fns.Metric] = []
        self._declared_input: Shape | None = None  # from an Input(shape=...) entry
        self._metric_identifiers: list[Any] | None = None  # as compile was given them
        self.loss_input: Any = None  # what the last forward_loss gave the loss: probabilities, or scores
        self.stop_training = False  # a callback sets it to end fit
        try:
            for layer in layers or []:
                self.add(layer)
        except Exception:
            for layer in self.layers:  # this model will never exist: its layers are free again
                layer.detach()
            raise

    # ---- structure -----------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer; it is built at once when the input shape is known. An Input(shape) only states that shape."""
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}.add: expected a tinynet Layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self.layers or self._declared_input is not None:
                raise ValueError(f"{self.name}.add: Input(shape=...) must be the model's first entry, and only one")
            self._declared_input = layer.input_shape
            return
        if any(other.name == layer.name and other is not layer for other in self.layers):
            raise ValueError(f"{self.name}.add: a layer named {layer.name!r} is already in this model; the layers of "
                             f"a model need distinct names (they key its saved state)")
        layer.attach(self)
        self.layers.append(layer)
        try:
            if self.input_shape is not None:
                self._build_from(len(self.layers) - 1)
            elif len(self.layers) == 1 and (layer.input_shape or self._declared_input) is not None:
                self.build(layer.input_shape or self._declared_input)
        except Exception:
            self.layers.pop()  # a layer that cannot be built must not stay half in the model
            layer.detach()
            raise

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called `name`, or the one at `index`."""
        if (name is None) == (index is None):
            raise ValueError(f"{self.name}.get_layer: give a name or an index, not {'both' if name else 'neither'}")
        if index is not None:
            if not isinstance(index, (int, np.integer)) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"{self.name}.get_layer: index {index!r} is out of range for "
                                 f"{len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}.get_layer: no layer named {name!r}; the layers are "
                         f"{', '.join(layer.name for layer in self.layers)}")

    def pop(self) -> Layer:
        """Remove the last layer and return it (free to join another model); the rest keep their weights."""
        if not self.layers:
            raise ValueError(f"{self.name}.pop: the model has no layers")
        layer = self.layers.pop()
        layer.detach()
        if self.built and self.layers:
            self._build_from(len(self.layers))  # packs the remaining weights into new vectors
        elif not self.layers:
            self.input_shape = None
        return layer

    def build(self, input_shape: Shape) -> None:
        """Create every layer's weights for samples of `input_shape` (batch dimension left out)."""
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers yet; add them first, e.g. model.add(Dense(10))")
        old, self.input_shape = self.input_shape, check_shape(input_shape, f"{self.name}.build: input_shape")
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
        if self.loss is not None:  # compiled before the outputs were known: which accuracy "accuracy" means may change
            self.metrics = metric_fns.get(self._metric_identifiers, self.loss, self.output_shape[-1])

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape

    def _pack_weights(self) -> None:
        """Copy all weights into one flat vector and make each layer's weights views of it (gradients too)."""
        slots = [(layer, name) for layer in self.layers for name in layer.weight_names]
        values = [backend.to_device(getattr(layer, name)) for layer, name in slots]
        dtype = values[0].dtype if values else backend.floatx()
        zeros = fast.zeros or backend.xp().zeros  # the engine's zeros may sit in huge pages
        size = sum(int(v.size) for v in values)
        self.params, self.grads = zeros((size,), dtype), zeros((size,), dtype)
        self._gradient_views = []
        offset = 0
        for (layer, name), value in zip(slots, values):
            end = offset + int(value.size)
            setattr(layer, name, self.params[offset:end].reshape(value.shape))
            setattr(layer, "d" + name, self.grads[offset:end].reshape(value.shape))
            getattr(layer, name)[...] = value
            self._gradient_views.append((layer, "d" + name, getattr(layer, "d" + name)))
            offset = end
        self._pack_non_trainable(dtype)
        self._backend = backend.get_backend()
        if self.optimizer is not None and not self.optimizer.is_built_for(self.params):
            self.optimizer.set_state({"iterations": np.array(0)})  # a state for other weights: start afresh

    def _pack_non_trainable(self, dtype: Any) -> None:
        """The layers' non-trainable arrays (moving statistics) as views into one more flat vector, `non_trainable`."""
        slots = [(layer, name) for layer in self.layers for name in layer.state_names]
        values = [backend.to_device(getattr(layer, name)) for layer, name in slots]
        self.non_trainable = backend.xp().zeros(sum(int(v.size) for v in values), dtype)
        offset = 0
        for (layer, name), value in zip(slots, values):
            setattr(layer, name, self.non_trainable[offset:offset + value.size].reshape(value.shape))
            getattr(layer, name)[...] = value
            offset += int(value.size)

    def weight_slices(self) -> list[slice]:
        """Where each weight array sits in the flat vectors `params` and `grads`, in layer order."""
        sizes = [int(w.size) for layer in self.layers for w in layer.weights()]
        ends = np.cumsum([0] + sizes)
        return [slice(int(start), int(end)) for start, end in zip(ends[:-1], ends[1:])]

    def require_built(self, what: str) -> None:
        """A clear error unless the model is built; weights follow the user to a newly chosen backend."""
        if not self.built:
            raise ValueError(f"{what}: the model is not built yet; give the first layer an input_shape, "
                             f"call build(input_shape), or fit it on data first")
        if self._backend != backend.get_backend():
            self._pack_weights()
            if self.optimizer is not None:
                self.optimizer.set_state(self.optimizer.get_state())

    # ---- compiling ----------------------------------------------------------------------------
    def compile(self, optimizer: str | optimizers.Optimizer = "adam", loss: str | losses.Loss | None = None,
                metrics: list[Any] | None = None) -> None:
        """Choose the loss, the optimizer (name or instance) and the metrics to report."""
        if loss is None:
            raise ValueError(f"{self.name}.compile: a loss is required, one of {', '.join(losses.LOSSES)}")
        loss, optimizer = losses.get(loss), optimizers.get(optimizer)
        resolved = metric_fns.get(metrics, loss, self.output_shape[-1] if self.built else None)
        final = getattr(self.layers[-1], "activation", None) if self.layers else None
        if final in (activations.softmax, activations.sigmoid) and getattr(loss, "from_logits", False):
            warnings.warn(f"{self.name}.compile: the model ends in a {final.__name__}, but the loss {loss.name} has "
                          f"from_logits=True and applies one of its own: the network's probabilities would be "
                          f"treated as scores. Drop the final {final.__name__}, or use from_logits=False",
                          UserWarning, stacklevel=2)
        optimizer.attach(self)
        if self.optimizer is not None and self.optimizer is not optimizer:
            self.optimizer.detach()  # the one it replaces may serve another model now
        self.loss, self.optimizer, self.metrics, self._metric_identifiers = loss, optimizer, resolved, metrics

    def require_compiled(self, what: str) -> None:
        if self.loss is None:
            raise ValueError(f"{what}: compile the model first, e.g. model.compile(loss='categorical_crossentropy', "
                             f"optimizer='adam', metrics=['accuracy'])")

    def get_compile_config(self) -> dict[str, Any] | None:
        if self.loss is None:
            return None
        return {"loss": self.loss.get_config(), "optimizer": self.optimizer.get_config(),
                "metrics": [metric.name for metric in self.metrics]}

    def compile_from_config(self, config: dict[str, Any]) -> None:
        self.compile(optimizer=optimizers.from_config(config["optimizer"]), loss=losses.from_config(config["loss"]),
                     metrics=config["metrics"])

    # ---- one batch, by hand -----------------------------------------------------------------------
    def fused_activation(self) -> bool:
        """Whether the last layer's activation is left to the loss: softmax then categorical cross-entropy, or
        sigmoid then binary cross-entropy. The loss takes the scores z and gives the stable gradient (p - y) / n."""
        return self.loss.fuses(getattr(self.layers[-1], "activation", None))

    def forward(self, x: Any, training: bool = False) -> Any:
        """The network's output for the batch x (probabilities after a softmax), on the backend."""
        x = self._batch(x, "forward")
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def forward_loss(self, x: Any, y: Any, training: bool = True, sample_weight: Any = None) -> Any:
        """Forward the batch x through every layer and the loss against targets y: the mean loss (a 0-d array).

        Remembers what backward() needs. A final softmax or sigmoid is left to the loss (see
        fused_activation). Layers' weight penalties (regularizers) are added to the loss. With
        sample_weight (one number per sample, on the backend), sample i's loss counts w_i times.
        """
        self.require_compiled("forward_loss")
        out = self._batch(x, "forward_loss")
        *body, last = self.layers
        for layer in body:
            out = layer.forward(out, training)
        fused = self.fused_activation()
        out = last.forward_logits(out, training) if fused else last.forward(out, training)
        self.loss_input = out
        weighted = {} if sample_weight is None else {"sample_weight": sample_weight}  # a Loss of yours may not take it
        loss = self.loss.forward(out, y, from_logits=True if fused else None, **weighted)
        penalties = [layer.penalty() for layer in self.layers if layer.regularizers]
        return loss + sum(penalties) if penalties else loss

    def predictions(self) -> Any:
        """The network's outputs for the last forward_loss's batch (applying the activation the loss took over)."""
        return self.layers[-1].activation(self.loss_input) if self.fused_activation() else self.loss_input

    def _batch(self, x: Any, what: str) -> Any:
        """x on the backend in the model's float dtype (no copy when it already is), the model built for it."""
        if not self.built:
            self.build(np.shape(x)[1:])
        self.require_built(what)
        return backend.to_device(x, self.params.dtype)

    def backward(self) -> None:
        """Back through the loss and the layers in reverse, for the batch of the last forward_loss: fills self.grads."""
        dy = self.loss.backward()
        fused = self.fused_activation()
        for i, layer in enumerate(reversed(self.layers)):
            dy = layer.backward_logits(dy) if fused and i == 0 else layer.backward(dy)
            if not layer.needs_input_grad:
                break  # the first layer with weights: nothing below it needs a gradient
        for layer, name, view in self._gradient_views:
            if getattr(layer, name) is not view:
                raise ValueError(f"{layer.name}: backward replaced {name} with a new array instead of writing into "
                                 f"it, so the optimizer would never see that gradient; write self.{name}[...] = ... "
                                 f"(the model made {name} a view into its gradient vector)")

    def train_step(self, x: Any, y: Any) -> Any:
        """One training step on the batch (x, y): forward_loss, backward, optimizer.step. Returns the loss before the step."""
        loss = self.forward_loss(x, y)
        self.backward()
        self.optimizer.step(self.params, self.grads)
        return loss

    def __call__(self, x: Any, training: bool = False) -> Any:
        """model(x): the network's outputs for the batch x, on the backend (inference unless training=True)."""
        return self.forward(x, training)

    # ---- the Keras loops (training.py) -------------------------------------------------------------
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto", callbacks: list[Any] | None = None, validation_split: float = 0.0,
            validation_data: tuple[Any, ...] | None = None, shuffle: bool = True,
            class_weight: dict[int, float] | None = None, sample_weight: Any = None, initial_epoch: int = 0,
            validation_batch_size: int | None = None, validation_freq: int = 1) -> training.History:
        """Train for `epochs` passes over (x, y) in shuffled mini-batches; returns the History (see training.fit)."""
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                            shuffle, class_weight, sample_weight, initial_epoch, validation_batch_size,
                            validation_freq)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int | str = "auto",
                 sample_weight: Any = None, callbacks: list[Any] | None = None,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Mean loss and metrics over (x, y): `[loss, *metrics]`, the bare loss without metrics, or a dict."""
        return training.evaluate(self, x, y, batch_size, verbose, sample_weight, callbacks, return_dict)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = "auto",
                callbacks: list[Any] | None = None) -> np.ndarray:
        """The network's outputs (class probabilities after softmax) as a NumPy array."""
        return training.predict(self, x, batch_size, verbose, callbacks)

    def train_on_batch(self, x: Any, y: Any, sample_weight: Any = None, class_weight: dict[int, float] | None = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One optimizer step on exactly this batch; returns its loss (and metrics) before the step."""
        return training.train_on_batch(self, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x: Any, y: Any, sample_weight: Any = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Loss (and metrics) on exactly this batch, in inference mode."""
        return training.test_on_batch(self, x, y, sample_weight, return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """The network's outputs for exactly this batch, as a NumPy array."""
        return backend.to_numpy(self.forward(training.prepare_x(self, x, "predict_on_batch"))).copy()

    # ---- weights, summary, configuration, saving -------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of all weights in layer order, each layer's trainable then non-trainable ones, as Keras
        (Dense: kernel (in, out), bias (out,); BatchNormalization: gamma, beta, moving_mean, moving_variance)."""
        self.require_built("get_weights")
        return [backend.to_numpy(w).copy() for layer in self.layers for w in layer.weights() + layer.states()]

    def set_weights(self, weights: list[Any]) -> None:
        """Overwrite all weights, in the order get_weights gives them; every array is checked before any is written."""
        self.require_built("set_weights")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: expected a list of arrays, as get_weights gives, got {type(weights).__name__}")
        slots = [(layer, name) for layer in self.layers for name in layer.weight_names + layer.state_names]
        if len(weights) != len(slots):
            raise ValueError(f"set_weights: the model has {len(slots)} weight arrays, got {len(weights)}")
        checked, largest = [], float(np.finfo(self.params.dtype).max)
        for (layer, name), value in zip(slots, weights):
            target = getattr(layer, name)
            try:
                value = backend.to_numpy(value)
            except ValueError as err:  # a ragged list
                raise ValueError(f"set_weights: layer {layer.name} weight {name} is not a rectangular array ({err})") \
                    from None
            if value.dtype.kind not in "iuf":
                raise TypeError(f"set_weights: layer {layer.name} weight {name} must be real numbers, got dtype "
                                f"{value.dtype}")
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"set_weights: layer {layer.name} weight {name} has shape {tuple(target.shape)}, "
                                 f"got {tuple(value.shape)}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"set_weights: layer {layer.name} weight {name} contains NaN or inf")
            if value.size and float(np.abs(value).max()) > largest:
                raise ValueError(f"set_weights: layer {layer.name} weight {name} holds values up to "
                                 f"{float(np.abs(value).max()):g}, beyond the model's {self.params.dtype}")
            checked.append(value)
        for (layer, name), value in zip(slots, checked):
            getattr(layer, name)[...] = backend.to_device(value, self.params.dtype)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn: Callable[[str], None] = print) -> None:
        """Print a table of layers, output shapes and parameter counts, as Keras does."""
        self.require_built("summary")
        names = [f"{layer.name} ({type(layer).__name__})" for layer in self.layers]
        widths = (max([29] + [len(name) + 2 for name in names]), 26, 10)
        rule = "_" * sum(widths)
        row = lambda *cells: "".join((str(c) + " ").ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        lines = [f'Model: "{self.name}"', rule, row("Layer (type)", "Output Shape", "Param #"), "=" * len(rule)]
        for i, (layer, name) in enumerate(zip(self.layers, names)):
            shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")"
            lines.append(row(name, shape, layer.count_params()))
            lines.append("=" * len(rule) if i == len(self.layers) - 1 else rule)
        total, frozen = self.count_params(), int(self.non_trainable.size)
        lines += [f"Total params: {total:,}", f"Trainable params: {total - frozen:,}",
                  f"Non-trainable params: {frozen:,}", rule]
        print_fn("\n".join(lines))

    def get_config(self) -> dict[str, Any]:
        """The architecture: name, input shape and each layer's class and config (no weights)."""
        return {"name": self.name, "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type[Layer]] | None = None) -> Sequential:
        """A new model with the architecture get_config described (fresh weights; your own layer classes in custom_objects)."""
        model = cls(layers=_layers_from_config(config, custom_objects), name=config["name"])
        if config["input_shape"] is not None and not model.built:
            model.build(config["input_shape"])
        return model

    @staticmethod
    def count_params_in_config(config: dict[str, Any], custom_objects: dict[str, type[Layer]] | None = None,
                               ) -> tuple[int, int]:
        """How many weights, and how many non-trainable numbers, the architecture in `config` holds, counted
        without creating any.

        load_model checks a file's arrays against this before reading them, so a small file
        claiming a huge layer is refused rather than allocated.
        """
        shape = check_shape(config["input_shape"], "input_shape") if config["input_shape"] is not None else None
        weights = non_trainable = 0
        for layer in _layers_from_config(config, custom_objects):
            shape = shape or layer.input_shape
            if shape is None:
                raise ValueError("the architecture has no input shape")
            weights += sum(math.prod(s) for s in layer.weight_shapes(shape).values())
            non_trainable += sum(math.prod(s) for s in layer.state_shapes(shape).values())
            shape = layer.compute_output_shape(shape)
        return weights, non_trainable

    def save(self, path: str | os.PathLike) -> None:
        """Write architecture, weights, optimizer state and layers' own random generators to one file (tinynet.saving).

        Written atomically; a path that is a symbolic link has its target replaced. Name it NAME.tinynet:
        tinynet's format is its own, and Keras's .keras and .h5 names are refused.
        """
        saving.check_extension(path, "save")
        self.require_built("save")
        if not distributed.is_root():
            return  # with several processes, rank 0 writes the file: they all hold the same model
        state = None if self.optimizer is None else self.optimizer.get_state()
        if not bool(backend.xp().isfinite(self.params).all()) or not bool(backend.xp().isfinite(self.non_trainable).all()) or \
                not all(np.all(np.isfinite(value)) for value in (state or {}).values()):
            raise ValueError(f"save: the weights of {self.name} or its optimizer's state contain NaN or inf; "
                             f"not saved (load_model would refuse the file)")
        random_states = {layer.name: layer.get_random_state() for layer in self.layers}
        random_states = {name: generator for name, generator in random_states.items() if generator is not None}
        saving.write_model(path, {"model": self.get_config(), "compile": self.get_compile_config(),
                                  "random_states": random_states},
                           self.params, state, self.non_trainable)


    def save_weights(self, path: str | os.PathLike) -> None:
        """Write the weights (and non-trainable arrays) alone, with the architecture to check them against."""
        saving.check_extension(path, "save_weights")
        self.require_built("save_weights")
        if not distributed.is_root():
            return  # rank 0 writes it
        if not bool(backend.xp().isfinite(self.params).all()):
            raise ValueError(f"save_weights: the weights of {self.name} contain NaN or inf; not saved")
        saving.write_model(path, {"model": self.get_config(), "compile": None, "random_states": {}},
                           self.params, None, self.non_trainable)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Read weights written by save_weights (or save) into this model, whose architecture must match."""
        self.require_built("load_weights")
        other = load_model(path)
        if [type(layer) for layer in other.layers] != [type(layer) for layer in self.layers] or \
                [w.shape for w in other.get_weights()] != [w.shape for w in self.get_weights()]:
            raise ValueError(f"load_weights: {os.fspath(path)} holds weights for layers "
                             f"{[type(layer).__name__ for layer in other.layers]} of shapes "
                             f"{[w.shape for w in other.get_weights()]}; this model's differ")
        self.set_weights(other.get_weights())


def load_model(path: str | os.PathLike, custom_objects: dict[str, Any] | None = None) -> Sequential:
    """Rebuild a model saved with `model.save(path)`: same layers, weights, and optimizer state.

    `custom_objects` names what the file's configuration refers to that tinynet does not have: your own
    layer classes, activation functions, Loss classes and metric functions, e.g. {"cube": cube}.
    """
    with saving.custom_object_scope(custom_objects):
        return _load_model(path, custom_objects)


def _load_model(path: str | os.PathLike, custom_objects: dict[str, Any] | None) -> Sequential:
    config, params, non_trainable, optimizer_state = saving.read_model(
        path, lambda found: _arrays_in_file(found, custom_objects))
    try:
        if not np.all(np.isfinite(params)) or (non_trainable is not None and not np.all(np.isfinite(non_trainable))):
            raise ValueError("the stored weights contain NaN or inf")
        with backend.using(dtype=params.dtype):  # a float64 model comes back in float64
            model = Sequential.from_config(config["model"], custom_objects)
        model.params[...] = backend.to_device(params, model.params.dtype)
        if non_trainable is not None:
            model.non_trainable[...] = backend.to_device(non_trainable, model.params.dtype)
        for layer in model.layers:
            if layer.name in config["random_states"]:
                layer.set_random_state(config["random_states"][layer.name])
        if config["compile"]:
            model.compile_from_config(config["compile"])
            for name, value in optimizer_state.items():
                if name != "iterations" and value.dtype != params.dtype:
                    raise ValueError(f"optimizer state {name} is {value.dtype}, the weights {params.dtype}")
            model.optimizer.set_state(optimizer_state)
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{os.fspath(path)}: not a valid tinynet model file ({type(err).__name__}: {err})") from None
    return model


def _arrays_in_file(config: dict[str, Any], custom_objects: dict[str, type[Layer]] | None) -> dict[str, tuple]:
    """The arrays a model file with this configuration holds, and their shapes, worked out without creating them."""
    n, frozen = Sequential.count_params_in_config(config["model"], custom_objects)
    arrays: dict[str, tuple] = {"params": (n,)}
    if frozen:
        arrays["non_trainable"] = (frozen,)
    if config["compile"]:
        optimizer = optimizers.from_config(config["compile"]["optimizer"])  # small: its slots are made at a step
        arrays[saving.OPTIMIZER + "iterations"] = ()
        arrays.update({saving.OPTIMIZER + name: (n,) for name in optimizer.slot_names})
    return arrays


def _layers_from_config(config: dict[str, Any], custom_objects: dict[str, type[Layer]] | None) -> list[Layer]:
    """New layers of the classes and configs listed (not built: no weights yet)."""
    known = {**layers.LAYERS, **{name: obj for name, obj in (custom_objects or {}).items()
                                 if isinstance(obj, type) and issubclass(obj, Layer)}}
    if not isinstance(config.get("layers"), list):
        raise ValueError(f"the architecture's layers must be a list, got {type(config.get('layers')).__name__}")
    made = []
    for entry in config["layers"]:
        if entry["class_name"] not in known:
            raise ValueError(f"unknown layer class {entry['class_name']!r}; known are {', '.join(known)} "
                             f"(pass your own classes as custom_objects={{'Name': Class}})")
        made.append(known[entry["class_name"]].from_config(entry["config"]))
    return made
