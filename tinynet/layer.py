"""The base class every layer derives from: its name, its shapes, its weights, which model owns it.

A layer's own math lives in the module that names it (layers.py, convolution.py, pooling.py,
normalization.py); this file is the bookkeeping they share, written once.
"""
from __future__ import annotations

import itertools
import re
import weakref
from collections import defaultdict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Iterator

import numpy as np

from tinynet import activations, backend, initializers, regularizers

Shape = tuple[int, ...]
_name_counters: dict[str, Iterator[int]] = defaultdict(itertools.count)


def check_shape(shape: Any, what: str) -> Shape:
    """A shape of positive integers, or a ValueError naming `what` and the shape given."""
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"{what} must be positive integers such as (784,), got {shape!r}")
    return tuple(int(d) for d in shape)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()  # Conv2D -> conv2d, MaxPooling2D -> max_pooling2d


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
    state_names: tuple[str, ...] = ()  # arrays kept but not trained (BatchNormalization's moving statistics)
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

    def state_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each non-trainable array (state_names) for inputs of `input_shape`."""
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

    def states(self) -> list[Any]:
        return [getattr(self, n) for n in self.state_names]

    def count_params(self) -> int:
        """Weights and non-trainable arrays together, as Keras counts a layer's parameters."""
        return sum(int(w.size) for w in self.weights() + self.states())

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

    # ---- regularization: penalties on the weights, added to the loss ----------------------------------------
    regularizers: Mapping[str, Any] = MappingProxyType({})  # weight name -> its regularizer (Dense's kernel_regularizer
    # is "W"); read-only here, so no layer can change every layer's by writing into it

    def penalty(self) -> Any:
        """The sum of this layer's weight penalties (added to the model's loss), or None without regularizers."""
        terms = [regularizer(getattr(self, name)) for name, regularizer in self.regularizers.items()]
        return sum(terms[1:], terms[0]) if terms else None

    def add_penalty_gradients(self) -> None:
        """dW += d penalty / dW for each regularized weight W (the loss's gradient is already in dW)."""
        for name, regularizer in self.regularizers.items():
            getattr(self, "d" + name)[...] += regularizer.gradient(getattr(self, name))


class WithActivation(Layer):
    """A layer whose output is an activation of its own linear part z (Dense, Conv2D):

    forward:   z = forward_logits(x);   y = activation(z)
    backward:  dz = activation.backward(dy, z, y);   dx = backward_logits(dz)

    When the loss takes scores (softmax or sigmoid followed by cross-entropy), the model
    calls forward_logits and backward_logits itself and leaves the activation to the loss,
    which has a simpler, stable gradient for the pair (see Sequential.fused_activation).
    """

    activation: Any = None

    def set_kernel_options(self, activation: Any, use_bias: Any, kernel_initializer: Any, bias_initializer: Any,
                           kernel_regularizer: Any, bias_regularizer: Any) -> None:
        """Keras's options of a layer with a kernel W, an optional bias b and an activation, checked and looked up."""
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"{self.name}: use_bias must be True or False, got {use_bias!r}")
        self.use_bias = bool(use_bias)
        self.activation = activations.get(activation, self.name)
        self.weight_names = ("W", "b") if self.use_bias else ("W",)
        self.kernel_initializer = initializers.get(kernel_initializer, self.name)
        self.bias_initializer = initializers.get(bias_initializer, self.name)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, self.name)
        self.bias_regularizer = regularizers.get(bias_regularizer, self.name)
        self.regularizers = {name: reg for name, reg in (("W", self.kernel_regularizer), ("b", self.bias_regularizer))
                             if reg is not None and name in self.weight_names}

    def draw_weights(self, input_shape: Shape, seed: int | None) -> None:
        """W and b drawn by their initializers (from the layer's own generator when it has a seed), gradients zeroed."""
        gen = backend.make_rng(seed)
        draws = {"W": self.kernel_initializer, "b": self.bias_initializer}
        for name, shape in self.weight_shapes(input_shape).items():
            setattr(self, name, backend.to_device(draws[name].draw(shape, gen), backend.floatx()))
            setattr(self, "d" + name, backend.xp().zeros_like(getattr(self, name)))

    def kernel_options_config(self) -> dict[str, Any]:
        return {"activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}

    def forward(self, x: Any, training: bool = False) -> Any:
        self.z = self.forward_logits(x, training)
        self.y = self.activation(self.z)
        return self.y

    def backward(self, dy: Any) -> Any:
        return self.backward_logits(self.activation.backward(dy, self.z, self.y))

    def forward_logits(self, x: Any, training: bool = False) -> Any:
        raise NotImplementedError

    def backward_logits(self, dz: Any) -> Any:
        raise NotImplementedError
