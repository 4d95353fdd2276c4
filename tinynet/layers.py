"""Layers with hand-written backpropagation.

Every layer has `forward(x, training)`, which remembers what the backward pass
will need, and `backward(dy)`, which takes dL/dy (the gradient of the loss with
respect to the layer's output) and returns dL/dx, filling the gradients of the
layer's own weights on the way. A weight named `W` has its gradient in `dW`.
Where a line has a faster twin in tinynet/engine, it is called in one line beside
the textbook code; TINYNET_FAST=0 runs the textbook code only.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import activations, backend
from tinynet.engine import fast
from tinynet.convolution import Conv2D
from tinynet.layer import Layer, Shape, WithActivation
from tinynet.normalization import BatchNormalization
from tinynet.pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D


class InputLayer(Layer):
    """The model's first entry, stating the shape of one sample: `Input(shape=(784,))` (Keras 3's spelling).

    It does nothing to the data (y = x, dx = dy) and is not listed among the model's layers:
    the model takes its shape as its input shape.
    """

    def __init__(self, shape: Shape | None = None, name: str | None = None, batch_size: int | None = None,
                 input_shape: Shape | None = None) -> None:
        super().__init__(name, shape if shape is not None else input_shape)
        if self.input_shape is None:
            raise ValueError(f"{self.name}: Input needs the shape of one sample, e.g. Input(shape=(784,))")

    def forward(self, x: Any, training: bool = False) -> Any:
        return x

    def backward(self, dy: Any) -> Any:
        return dy

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.input_shape)}


def Input(shape: Shape, name: str | None = None, batch_size: int | None = None) -> InputLayer:
    """Keras's `Input(shape=...)`, as the first entry of a Sequential model."""
    return InputLayer(shape=shape, name=name, batch_size=batch_size)


class Dense(WithActivation):
    """Fully connected layer, with an optional activation and weight penalties.

    forward:  z = x @ W + b,  y = activation(z)      x: (n, in), W: (in, out), b: (out,)
    backward: dz = activation.backward(dy, z, y)
              dW = x.T @ dz + d penalty(W)/dW,  db = sum of dz over the batch,  dx = dz @ W.T
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, input_shape: Shape | None = None,
                 seed: int | None = None, name: str | None = None, input_dim: int | None = None) -> None:
        super().__init__(name, (input_dim,) if input_dim is not None and input_shape is None else input_shape)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"{self.name}: units must be a positive integer, got {units!r}")
        self.units, self.seed = int(units), seed
        self.set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                                bias_regularizer)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"{self.name}: Dense expects flat inputs of shape (batch, features), "
                             f"got per-sample shape {input_shape}; add a Flatten layer or reshape first")
        return (self.units,)

    def weight_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (input_shape[0], self.units), "b": (self.units,)} if self.use_bias else \
            {"W": (input_shape[0], self.units)}

    def build(self, input_shape: Shape) -> Shape:
        out_shape = super().build(input_shape)
        self.draw_weights(input_shape, self.seed)
        return out_shape

    def forward_logits(self, x: Any, training: bool = False) -> Any:
        if self.output_shape is None:  # used on its own: build for this input, as Keras does
            self.build(tuple(x.shape[1:]))
        if x.ndim != 2 or x.shape[1] != self.W.shape[0]:
            raise ValueError(f"{self.name}: expected input of shape (batch, {self.W.shape[0]}), got {tuple(x.shape)}")
        self.x = x
        if not self.use_bias:
            return x @ self.W
        if fast.dense_forward:
            return fast.dense_forward(x, self.W, self.b)
        return x @ self.W + self.b

    def backward_logits(self, dz: Any) -> Any:
        if fast.dense_backward and self.use_bias:
            dx = fast.dense_backward(self.x, dz, self.W, self.dW, self.db, self.needs_input_grad)
        else:
            self.dW[...] = self.x.T @ dz
            if self.use_bias:
                self.db[...] = dz.sum(axis=0)
            dx = dz @ self.W.T if self.needs_input_grad else None  # the model's first Dense skips dx
        self.add_penalty_gradients()  # dW += d penalty(W) / dW, where a regularizer is set
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, **self.kernel_options_config(), "seed": self.seed}


class Activation(WithActivation):
    """An activation function as a layer of its own: `Activation("relu")`, `Activation("softmax")`, ...

    forward:  y = activation(x)
    backward: dx = activation.backward(dy, x, y)       (each function's math is in activations.py)
    """

    def __init__(self, activation: Any, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        self.activation = activations.get(activation, self.name)

    def forward_logits(self, x: Any, training: bool = False) -> Any:
        return x

    def backward_logits(self, dz: Any) -> Any:
        return dz

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class ReLU(Activation):
    """Keras's ReLU layer: Activation("relu") under its own class name."""

    def __init__(self, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__("relu", name, input_shape)

    def get_config(self) -> dict[str, Any]:
        return Layer.get_config(self)


class Softmax(Activation):
    """Keras's Softmax layer (over the last axis): Activation("softmax") under its own class name."""

    def __init__(self, axis: int = -1, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__("softmax", name, input_shape)
        if axis != -1:
            raise ValueError(f"{self.name}: softmax over the last axis only (axis=-1), got axis={axis!r}")

    def get_config(self) -> dict[str, Any]:
        return Layer.get_config(self)


class Linear(Activation):
    """The identity: y = x, dx = dy, as a layer (what tinynet 0.1 saved for Activation("linear"))."""

    def __init__(self, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__("linear", name, input_shape)

    def get_config(self) -> dict[str, Any]:
        return Layer.get_config(self)


class LeakyReLU(Layer):
    """Leaky ReLU: a small slope instead of zero for negative inputs (Keras's default slope 0.3).

    forward:  y = x where x > 0, else negative_slope * x
    backward: dx = dy where x > 0, else negative_slope * dy
    """

    def __init__(self, negative_slope: float = 0.3, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        self.negative_slope = check_number(self.name, "negative_slope", negative_slope)

    def forward(self, x: Any, training: bool = False) -> Any:
        self.x = x
        return activations.leaky_relu(x, self.negative_slope)

    def backward(self, dy: Any) -> Any:
        return activations.leaky_relu_backward(dy, self.x, None, self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    """Exponential linear unit.

    forward:  y = x where x > 0, else alpha * (exp(x) - 1)
    backward: dx = dy where x > 0, else dy * (y + alpha)
    """

    def __init__(self, alpha: float = 1.0, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        self.alpha = check_number(self.name, "alpha", alpha)

    def forward(self, x: Any, training: bool = False) -> Any:
        self.x = x
        self.y = activations.elu(x, self.alpha)
        return self.y

    def backward(self, dy: Any) -> Any:
        return activations.elu_backward(dy, self.x, self.y, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha}


def check_number(layer: str, name: str, value: Any) -> float:
    """`value` as a float if it is a finite number >= 0, else a ValueError naming the layer and argument."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{layer}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


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


class Reshape(Layer):
    """Give each sample a new shape with the same number of values: Reshape((28, 28, 1)) turns (n, 784) into
    (n, 28, 28, 1). One dimension may be -1, meaning "whatever is left". backward reshapes dy back."""

    def __init__(self, target_shape: Shape, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        if not isinstance(target_shape, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and (d >= 1 or d == -1)
                for d in target_shape) or list(target_shape).count(-1) > 1:
            raise ValueError(f"{self.name}: target_shape must be positive integers, at most one of them -1, "
                             f"such as (28, 28, 1), got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in target_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        size, known = int(np.prod(input_shape)), int(np.prod([d for d in self.target_shape if d != -1]))
        if (-1 in self.target_shape and size % known) or (-1 not in self.target_shape and size != known):
            raise ValueError(f"{self.name}: cannot reshape samples of shape {tuple(input_shape)} ({size} values) "
                             f"into {self.target_shape}")
        return tuple(size // known if d == -1 else d for d in self.target_shape)

    def forward(self, x: Any, training: bool = False) -> Any:
        self.x_shape = x.shape
        return x.reshape((x.shape[0],) + self.compute_output_shape(tuple(x.shape[1:])))

    def backward(self, dy: Any) -> Any:
        return dy.reshape(self.x_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


softmax = activations.softmax  # where tinynet 0.1 had it

LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    InputLayer, Dense, Activation, ReLU, Softmax, Linear, LeakyReLU, ELU, Dropout, Flatten, Reshape,
    Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, BatchNormalization)}
__all__ = list(LAYERS) + ["Layer", "Input", "softmax"]
