"""Batch normalization (Ioffe and Szegedy, 2015): keep each feature of a layer's input near mean 0, variance 1.

Each feature (the last axis: a Dense unit, a Conv2D channel) is normalized over all the other axes,
that is over the m values it takes in the batch (m = batch, or batch * height * width for images):

    training:   mean = (1/m) sum x                          var = (1/m) sum (x - mean)^2   (biased, as Keras)
                x_hat = (x - mean) / sqrt(var + epsilon)
                y = gamma * x_hat + beta                     gamma, beta: learned, one per feature
                moving_mean     = momentum * moving_mean     + (1 - momentum) * mean
                moving_variance = momentum * moving_variance + (1 - momentum) * var
    inference:  y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta

Backward in training mode, with the sums and means over the same m values: the batch's mean and
variance depend on every x, so each x's gradient has two extra terms beside the direct one:

    dbeta  = sum dy
    dgamma = sum dy * x_hat
    dx     = gamma / sqrt(var + epsilon) * (dy - mean(dy) - x_hat * mean(dy * x_hat))

In inference mode the moving statistics are constants: dx = gamma / sqrt(moving_variance + epsilon) * dy.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import backend
from tinynet.layer import Layer, Shape


class BatchNormalization(Layer):
    """Normalize each feature (last axis) over the batch, then scale by gamma and shift by beta.

    training:  y = gamma * (x - mean) / sqrt(var + epsilon) + beta     (mean, var of this batch)
    inference: y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta
    backward:  dx = gamma / sqrt(var + epsilon) * (dy - mean(dy) - x_hat * mean(dy * x_hat))

    Weights gamma (scale=True) and beta (center=True) are trained; moving_mean and
    moving_variance are state, updated by every forward pass in training mode and written
    in place only (a model keeps them as views of one saved vector, as it keeps weights).
    """

    state_names: tuple[str, ...] = ("moving_mean", "moving_variance")

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"{self.name}: axis must be an integer, got {axis!r}")
        if not _is_number(momentum) or not 0 <= momentum < 1:
            raise ValueError(f"{self.name}: momentum must be a number in [0, 1), got {momentum!r}")
        if not _is_number(epsilon) or not epsilon > 0 or not np.isfinite(epsilon):
            raise ValueError(f"{self.name}: epsilon must be a finite number > 0, got {epsilon!r}")
        for arg, value in (("center", center), ("scale", scale)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{self.name}: {arg} must be True or False, got {value!r}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.weight_names = tuple(name for name, on in (("gamma", self.scale), ("beta", self.center)) if on)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) == 0:
            raise ValueError(f"{self.name}: expected inputs of shape (batch, features) or (batch, height, width, "
                             f"channels), got one number per sample")
        if self.axis not in (-1, len(input_shape)):  # len(input_shape): the last axis, counting the batch axis
            raise ValueError(f"{self.name}: only the last axis (axis=-1, the features or channels) can be "
                             f"normalized, got axis={self.axis} for inputs of shape (batch, "
                             f"{', '.join(map(str, input_shape))})")
        return tuple(input_shape)

    def weight_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {name: (input_shape[-1],) for name in self.weight_names}

    def state_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each state array (moving_mean, moving_variance) for inputs of `input_shape`."""
        return {name: (input_shape[-1],) for name in self.state_names}

    def build(self, input_shape: Shape) -> Shape:
        out_shape = super().build(input_shape)
        xp, dtype = backend.xp(), backend.floatx()
        starts = {"gamma": xp.ones, "beta": xp.zeros, "moving_mean": xp.zeros, "moving_variance": xp.ones}
        for name, shape in self.weight_shapes(self.input_shape).items():
            setattr(self, name, starts[name](shape, dtype))
            setattr(self, "d" + name, xp.zeros(shape, dtype))
        for name, shape in self.state_shapes(self.input_shape).items():
            setattr(self, name, starts[name](shape, dtype))
        return out_shape

    def forward(self, x: Any, training: bool = False) -> Any:
        if self.output_shape is None:  # used on its own: build for this input, as Keras does
            self.build(tuple(x.shape[1:]))
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.name}: expected input of shape (batch, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        xp = backend.xp()
        self.axes = tuple(range(x.ndim - 1))  # every axis but the features
        self.training = training
        if training:
            mean, var = x.mean(axis=self.axes), x.var(axis=self.axes)
            self.moving_mean[...] = self.momentum * self.moving_mean + (1 - self.momentum) * mean
            self.moving_variance[...] = self.momentum * self.moving_variance + (1 - self.momentum) * var
        else:
            mean, var = self.moving_mean, self.moving_variance
        self.inv_std = 1 / xp.sqrt(var + self.epsilon)
        self.x_hat = (x - mean) * self.inv_std
        y = self.x_hat * self.gamma if self.scale else self.x_hat
        return y + self.beta if self.center else y

    def backward(self, dy: Any) -> Any:
        if self.center:
            self.dbeta[...] = dy.sum(axis=self.axes)
        if self.scale:
            self.dgamma[...] = (dy * self.x_hat).sum(axis=self.axes)
        gamma_inv_std = self.gamma * self.inv_std if self.scale else self.inv_std
        if not self.training:  # the moving statistics do not depend on x
            return gamma_inv_std * dy
        mean_dy, mean_dy_x_hat = dy.mean(axis=self.axes), (dy * self.x_hat).mean(axis=self.axes)
        return gamma_inv_std * (dy - mean_dy - self.x_hat * mean_dy_x_hat)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
