"""Layers with hand-written backpropagation.

Every layer has `forward(x, training)`, which remembers what the backward pass
will need, and `backward(dy)`, which takes dL/dy (the gradient of the loss with
respect to the layer's output) and returns dL/dx, filling the gradients of the
layer's own weights on the way. A weight named `W` has its gradient in `dW`.
Where a line has a faster twin in tinynet/engine, it is called in one line beside
the textbook code; TINYNET_FAST=0 runs the textbook code only.
"""
from __future__ import annotations

import itertools
import re
import weakref
from collections import defaultdict
from typing import Any, Iterator

import numpy as np

from tinynet import backend, initializers
from tinynet.engine import fast

Shape = tuple[int, ...]
_name_counters: dict[str, Iterator[int]] = defaultdict(itertools.count)


def check_shape(shape: Any, what: str) -> Shape:
    """A shape of positive integers, or a ValueError naming `what` and the shape given."""
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"{what} must be positive integers such as (784,), got {shape!r}")
    return tuple(int(d) for d in shape)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class Layer:
    """Base class: a named step of the network, with weights listed in `weight_names`.

    The gradient contract: inside a model, each weight W and its gradient dW are views
    into the model's flat parameter and gradient vectors, so `backward` must write *into*
    dW (`self.dW[...] = x.T @ dy`), never rebind it (`self.dW = x.T @ dy` would leave the
    model's gradient vector, and so the optimizer, without it). The model checks this after
    every backward pass and names the layer that broke it; gradcheck.check_layer does too.

    A layer belongs to at most one model and appears in it once (`model` says which).
    """

    weight_names: tuple[str, ...] = ()
    needs_input_grad = True  # the model turns this off where nothing below needs dL/dx (the first Dense)
    _model: weakref.ref | None = None

    def __init__(self, name: str | None = None, input_shape: Shape | None = None) -> None:
        if name is None:
            base = _snake_case(type(self).__name__)
            count = next(_name_counters[base])
            name = base if count == 0 else f"{base}_{count}"
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        self.name = name
        if input_shape is not None and not isinstance(input_shape, (tuple, list)):
            raise TypeError(f"{name}: input_shape must be a tuple such as (784,), got {input_shape!r}")
        self.input_shape = None if input_shape is None else check_shape(input_shape, f"{name}: input_shape")
        self.output_shape: Shape | None = None

    def build(self, input_shape: Shape) -> Shape:
        """Create the weights for inputs of `input_shape` (batch dimension left out); return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def weight_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each weight for inputs of `input_shape`, without creating any (none for this layer)."""
        return {}

    def get_random_state(self) -> dict[str, Any] | None:
        """The state of the layer's own random generator, if it has one (saved with the model)."""
        return None

    def set_random_state(self, state: dict[str, Any]) -> None:
        raise ValueError(f"{self.name}: this layer has no random generator of its own to restore")

    def forward(self, x: Any, training: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError

    def weights(self) -> list[Any]:
        return [getattr(self, n) for n in self.weight_names]

    def gradients(self) -> list[Any]:
        return [getattr(self, "d" + n) for n in self.weight_names]

    def count_params(self) -> int:
        return sum(int(w.size) for w in self.weights())

    @property
    def model(self) -> Any:
        """The model this layer belongs to, or None."""
        return None if self._model is None else self._model()

    def attach(self, model: Any) -> None:
        """Belong to `model`; a layer already in a model (this one or another) refuses."""
        owner = self.model
        if owner is not None:
            where = "is already in this model" if owner is model else f"already belongs to model {owner.name!r}"
            raise ValueError(f"{model.name}.add: layer {self.name!r} {where}; a layer belongs to one model and "
                             f"appears in it once, with weights of its own: make a new layer, e.g. another "
                             f"{type(self).__name__}(...)")
        self._model = weakref.ref(model)

    def detach(self) -> None:
        self._model = None

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """A new layer like the one get_config described (fresh weights, no model)."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Dense(Layer):
    """Fully connected layer.

    forward:  y = x @ W + b              x: (n, in), W: (in, out), b: (out,)
    backward: dx = dy @ W.T,  dW = x.T @ dy,  db = sum of dy over the batch
    """

    weight_names = ("W", "b")

    def __init__(self, units: int, input_shape: Shape | None = None,
                 kernel_initializer: str = "glorot_uniform", bias_initializer: str = "zeros",
                 seed: int | None = None, name: str | None = None, input_dim: int | None = None) -> None:
        super().__init__(name, (input_dim,) if input_dim is not None and input_shape is None else input_shape)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"{self.name}: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._init_W = initializers.get(kernel_initializer, self.name)
        self._init_b = initializers.get(bias_initializer, self.name)
        self.seed = seed

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"{self.name}: Dense expects flat inputs of shape (batch, features), "
                             f"got per-sample shape {input_shape}; add a Flatten layer or reshape first")
        return (self.units,)

    def weight_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (input_shape[0], self.units), "b": (self.units,)}

    def build(self, input_shape: Shape) -> Shape:
        out_shape = super().build(input_shape)
        gen = backend.make_rng(self.seed)
        dtype = backend.floatx()
        shapes = self.weight_shapes(input_shape)
        self.W = backend.to_device(self._init_W(shapes["W"], gen), dtype)
        self.b = backend.to_device(self._init_b(shapes["b"], gen), dtype)
        self.dW = backend.xp().zeros_like(self.W)
        self.db = backend.xp().zeros_like(self.b)
        return out_shape

    def forward(self, x: Any, training: bool = False) -> Any:
        if self.output_shape is None:  # used on its own: build for this input, as Keras does
            self.build(tuple(x.shape[1:]))
        if x.ndim != 2 or x.shape[1] != self.W.shape[0]:
            raise ValueError(f"{self.name}: expected input of shape (batch, {self.W.shape[0]}), got {tuple(x.shape)}")
        self.x = x
        if fast.dense_forward:
            return fast.dense_forward(x, self.W, self.b)
        return x @ self.W + self.b

    def backward(self, dy: Any) -> Any:
        if fast.dense_backward:
            return fast.dense_backward(self.x, dy, self.W, self.dW, self.db, self.needs_input_grad)
        self.dW[...] = self.x.T @ dy
        self.db[...] = dy.sum(axis=0)
        return dy @ self.W.T if self.needs_input_grad else None  # the model's first Dense skips dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer, "seed": self.seed}


class ReLU(Layer):
    """Rectified linear unit.

    forward:  y = max(x, 0)
    backward: dx = dy where x > 0, else 0
    """

    def forward(self, x: Any, training: bool = False) -> Any:
        self.y = backend.xp().maximum(x, 0)
        return self.y

    def backward(self, dy: Any) -> Any:
        if fast.relu_backward:
            return fast.relu_backward(dy, self.y)
        return dy * (self.y > 0)


class Softmax(Layer):
    """Softmax over the last axis: turns scores into probabilities.

    forward:  p = exp(x - max x) / sum(exp(x - max x))   (shifting by the max avoids overflow)
    backward: dx = p * (dy - sum(dy * p))                 (the Jacobian diag(p) - p p^T applied to dy)

    Followed by cross-entropy, the model skips this backward and uses the fused,
    stable gradient (p - y) / n instead (see losses.py).
    """

    def forward(self, x: Any, training: bool = False) -> Any:
        self.p = softmax(x)
        return self.p

    def backward(self, dy: Any) -> Any:
        p = self.p
        return p * (dy - (dy * p).sum(axis=-1, keepdims=True))


class Linear(Layer):
    """The identity: y = x, dx = dy. What Activation("linear") gives."""

    def forward(self, x: Any, training: bool = False) -> Any:
        return x

    def backward(self, dy: Any) -> Any:
        return dy


ACTIVATIONS: dict[str, type[Layer]] = {"relu": ReLU, "softmax": Softmax, "linear": Linear}


def Activation(activation: str, name: str | None = None, input_shape: Shape | None = None) -> Layer:
    """Keras's `Activation("relu" | "softmax" | "linear")`: returns the matching layer."""
    if not isinstance(activation, str):
        raise TypeError(f"Activation: expected the name of an activation such as 'relu', got {activation!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"Activation: unknown activation {activation!r}; valid names are {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[activation](name=name, input_shape=input_shape)


class Dropout(Layer):
    """Inverted dropout: while training, zero each unit with probability `rate`.

    forward (training):  y = x * mask,  mask = 0 with probability rate, else 1 / (1 - rate)
    forward (inference): y = x          (the 1/(1-rate) scaling at training keeps the mean equal)
    backward:            dx = dy * mask
    mask:                keep = (u >= rate) for u uniform in [0, 1);  mask = keep / (1 - rate)

    `seed` gives the layer its own mask sequence (without it, `tinynet.set_seed`
    decides); CPU and GPU draw different masks from the same seed.
    """

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None,
                 input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        if not isinstance(rate, (int, float, np.integer, np.floating)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"{self.name}: dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def get_random_state(self) -> dict[str, Any] | None:
        return None if self._rng is None else self._rng.bit_generator.state

    def set_random_state(self, state: dict[str, Any]) -> None:
        if self._rng is None:
            raise ValueError(f"{self.name}: a state for its random generator, but the layer has no seed of its own")
        try:
            self._rng.bit_generator.state = state
        except Exception as err:  # noqa: BLE001 - numpy raises several kinds for a malformed state
            raise ValueError(f"{self.name}: not a state of its {type(self._rng.bit_generator).__name__} "
                             f"generator ({err})") from None

    def forward(self, x: Any, training: bool = False) -> Any:
        if not training or self.rate == 0:
            self.mask = None
            return x
        self.mask = self.draw_mask(x.shape)
        return x * self.mask

    def draw_mask(self, shape: Shape) -> Any:
        """0 with probability `rate`, else 1 / (1 - rate); drawn from the layer's own generator or tinynet's."""
        gen = self._rng or backend.rng()
        if fast.dropout_mask:  # the same distribution from cheaper random bits
            return fast.dropout_mask(shape, self.rate, gen, backend.floatx())
        keep = backend.to_device(gen.random(shape) >= self.rate)
        return keep.astype(backend.floatx()) / backend.floatx().type(1 - self.rate)

    def backward(self, dy: Any) -> Any:
        return dy if self.mask is None else dy * self.mask

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class Flatten(Layer):
    """Reshape each sample to one vector: (n, 28, 28) -> (n, 784); backward reshapes back."""

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, x: Any, training: bool = False) -> Any:
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: Any) -> Any:
        return dy.reshape(self.x_shape)


def softmax(x: Any) -> Any:
    """Row-wise softmax, stable for any finite x."""
    xp = backend.xp()
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (Dense, ReLU, Softmax, Linear, Dropout, Flatten)}
