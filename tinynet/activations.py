"""Activation functions, named as in Keras, each beside its derivative.

    y = f(x)                     forward: applied element by element (softmax: along the last axis)
    dx = f.backward(dy, x, y)    backward: dL/dx = dL/dy * f'(x), written with x or y, whichever is simpler

`Dense(10, activation="relu")` and `Activation("tanh")` look a function up here by name.
Your own activation is a function with its derivative attached the same way:

    def cube(x):
        return x ** 3

    @activations.backward_of(cube)
    def cube_backward(dy, x, y):
        return dy * 3 * x ** 2

and then `Dense(10, activation=cube)`. tests/test_activations.py checks every derivative
here against finite differences.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from tinynet import backend, saving
from tinynet.engine import fast

Activation = Callable[[Any], Any]
SELU_ALPHA = 1.6732632423543772848170429916717  # from Klambauer et al. (2017): makes SELU self-normalizing
SELU_SCALE = 1.0507009873554804934193349852946


def backward_of(forward: Activation) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: attach `backward(dy, x, y)` to the activation `forward` as `forward.backward`."""
    def attach(backward: Callable[..., Any]) -> Callable[..., Any]:
        forward.backward = backward
        return backward
    return attach


def linear(x: Any) -> Any:
    """y = x"""
    return x


@backward_of(linear)
def linear_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = dy"""
    return dy


def relu(x: Any) -> Any:
    """y = max(x, 0)"""
    return backend.xp().maximum(x, 0)


@backward_of(relu)
def relu_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = dy where y > 0, else 0"""
    if fast.relu_backward:  # the same line in one GPU kernel
        return fast.relu_backward(dy, y)
    return dy * (y > 0)


def sigmoid(x: Any) -> Any:
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x / 2)) / 2: the same number, and no exp overflows"""
    return 0.5 * (1 + backend.xp().tanh(0.5 * x))


@backward_of(sigmoid)
def sigmoid_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = dy * y * (1 - y)"""
    return dy * y * (1 - y)


def tanh(x: Any) -> Any:
    """y = (exp(x) - exp(-x)) / (exp(x) + exp(-x))"""
    return backend.xp().tanh(x)


@backward_of(tanh)
def tanh_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = dy * (1 - y^2)"""
    return dy * (1 - y * y)


def softmax(x: Any) -> Any:
    """y = exp(x - max x) / sum(exp(x - max x)) along the last axis (the shift keeps exp from overflowing)"""
    e = backend.xp().exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


@backward_of(softmax)
def softmax_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = y * (dy - sum(dy * y)): the Jacobian diag(y) - y y^T applied to dy"""
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """y = x where x > 0, else negative_slope * x"""
    return backend.xp().where(x > 0, x, negative_slope * x)


@backward_of(leaky_relu)
def leaky_relu_backward(dy: Any, x: Any, y: Any, negative_slope: float = 0.2) -> Any:
    """dx = dy where x > 0, else negative_slope * dy"""
    return backend.xp().where(x > 0, dy, negative_slope * dy)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """y = x where x > 0, else alpha * (exp(x) - 1)"""
    xp = backend.xp()
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))  # the min keeps exp of large x from overflowing


@backward_of(elu)
def elu_backward(dy: Any, x: Any, y: Any, alpha: float = 1.0) -> Any:
    """dx = dy where x > 0, else dy * (y + alpha)   (the derivative alpha * exp(x) is y + alpha)"""
    return backend.xp().where(x > 0, dy, dy * (y + alpha))


def selu(x: Any) -> Any:
    """y = scale * elu(x, alpha) with Klambauer et al.'s scale and alpha"""
    return SELU_SCALE * elu(x, SELU_ALPHA)


@backward_of(selu)
def selu_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = scale * dy where x > 0, else dy * (y + scale * alpha)"""
    return backend.xp().where(x > 0, SELU_SCALE * dy, dy * (y + SELU_SCALE * SELU_ALPHA))


def gelu(x: Any) -> Any:
    """y = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 the standard normal's CDF (Keras's approximate=False)"""
    return x * normal_cdf(x)


@backward_of(gelu)
def gelu_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = dy * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi) the normal density"""
    phi = backend.xp().exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return dy * (normal_cdf(x) + x * phi)


def normal_cdf(x: Any) -> Any:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2"""
    return 0.5 * (1 + backend.erf(x / math.sqrt(2)))


def softplus(x: Any) -> Any:
    """y = log(1 + exp(x)), computed as logaddexp(0, x) so that large x does not overflow"""
    return backend.xp().logaddexp(0, x)


@backward_of(softplus)
def softplus_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = dy * sigmoid(x)"""
    return dy * sigmoid(x)


def silu(x: Any) -> Any:
    """y = x * sigmoid(x)   (also called swish)"""
    return x * sigmoid(x)


@backward_of(silu)
def silu_backward(dy: Any, x: Any, y: Any) -> Any:
    """dx = dy * s * (1 + x * (1 - s)),  s = sigmoid(x)"""
    s = sigmoid(x)
    return dy * s * (1 + x * (1 - s))


ACTIVATIONS: dict[str, Activation] = {
    f.__name__: f for f in (linear, relu, sigmoid, tanh, softmax, leaky_relu, elu, selu, gelu, softplus, silu)}
ALIASES = {"swish": "silu", None: "linear"}


def get(identifier: str | Activation | None, layer: str = "activation") -> Activation:
    """The activation function named `identifier` (or None: linear), or your own function with a backward."""
    name = ALIASES.get(identifier, identifier) if identifier is None or isinstance(identifier, str) else None
    if isinstance(name, str) and name not in ACTIVATIONS and saving.get_custom_object(name) is not None:
        identifier, name = saving.get_custom_object(name), None  # load_model's custom_objects
    if isinstance(name, str):
        if name not in ACTIVATIONS:
            raise ValueError(f"{layer}: unknown activation {identifier!r}; valid names are "
                             f"{', '.join(list(ACTIVATIONS) + [a for a in ALIASES if a])}")
        return ACTIVATIONS[name]
    if not callable(identifier):
        raise TypeError(f"{layer}: activation must be a name such as 'relu', a function, or None, got {identifier!r}")
    if not callable(getattr(identifier, "backward", None)):
        raise TypeError(f"{layer}: the activation {getattr(identifier, '__name__', identifier)!r} has no derivative; "
                        f"tinynet computes gradients by hand, so attach one with @tinynet.activations.backward_of(f) "
                        f"on a function backward(dy, x, y) returning dL/dx")
    return identifier


def serialize(activation: Activation) -> str:
    """The name a model file stores for `activation` (get() finds built-ins again by it)."""
    return getattr(activation, "__name__", type(activation).__name__)
