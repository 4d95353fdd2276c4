"""Numerical gradient checks: does a backward pass agree with finite differences?

For a scalar function L(a), the central difference
    dL/da_i ~ (L(a + eps e_i) - L(a - eps e_i)) / (2 eps)
has an error of order eps^2, so in float64 with eps = 1e-6 it agrees with a
correct analytic gradient to about 1e-9. Each check returns, per array, the
relative error  max_i |analytic_i - numeric_i| / max_i max(|analytic_i|, |numeric_i|);
below 1e-6 means the backward pass is right.

Point it at a layer (`check_layer`), a loss (`check_loss`) or a whole compiled
model (`check_model`). Weights are checked in float64 whatever they are stored
in; randomness (dropout) is replayed from `seed`, and a layer's own generator
(`Dropout(seed=...)`) is rewound before every evaluation, so each one sees the
same mask.
"""
from __future__ import annotations

import copy as copy_module
from typing import Any, Callable

import numpy as np

from tinynet import backend

EPS = 1e-6


def numerical_gradient(f: Callable[[], float], a: Any, eps: float = EPS) -> np.ndarray:
    """Central differences of the scalar f() with respect to every element of the array `a` (changed in place, restored)."""
    if not a.flags.c_contiguous:  # reshape would copy, and the nudges would not reach `a`
        raise ValueError("numerical_gradient: the array must be C-contiguous")
    flat = a.reshape(-1)
    grad = np.zeros(a.size)
    for i in range(a.size):
        old = float(flat[i])
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(a.shape)


def relative_error(analytic: Any, numeric: Any) -> float:
    """max |a - n| / max(|a|, |n|) over the whole array (0 when both are all zero)."""
    a, n = backend.to_numpy(analytic).astype(np.float64), np.asarray(numeric, np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(n).max(initial=0))
    return 0.0 if scale == 0 else float(np.abs(a - n).max() / scale)


def _rewinder(layers: list[Any]) -> Callable[[], None]:
    """A function that puts each layer's own generator (Dropout(seed=...)) back where it is now."""
    gens = [layer._rng for layer in layers if getattr(layer, "_rng", None) is not None]
    states = [gen.bit_generator.state for gen in gens]

    def rewind() -> None:
        for gen, state in zip(gens, states):
            gen.bit_generator.state = state
    return rewind


def check_layer(layer: Any, x: Any, training: bool = True, seed: int = 0) -> dict[str, float]:
    """Relative errors of dL/dx and of each weight's gradient for L = sum(layer(x) * r), r random.

    The layer's weights are swapped for float64 copies during the check (its own stay
    untouched), and a backward that rebinds a gradient (`self.dW = ...`) instead of
    writing into it is refused with the same error a model gives.
    """
    xp = backend.xp()
    x = backend.to_device(np.array(backend.to_numpy(x), dtype=np.float64))
    if layer.output_shape is None:
        layer.build(tuple(x.shape[1:]))
    originals = [(name, getattr(layer, name), getattr(layer, "d" + name)) for name in layer.weight_names]
    installed = {}
    for name, w, _ in originals:
        setattr(layer, name, w.astype(xp.float64))  # a float64 copy, so float32 storage is untouched
        installed["d" + name] = xp.zeros(w.shape, xp.float64)
        setattr(layer, "d" + name, installed["d" + name])
    rewind = _rewinder([layer])
    needs_input_grad, layer.needs_input_grad = layer.needs_input_grad, True  # a model's first layer skips dx
    try:
        with backend.seeded(seed):
            r = backend.to_device(np.random.default_rng(seed).standard_normal(layer.forward(x, training).shape))

        def loss() -> float:
            rewind()
            with backend.seeded(seed):
                return float((layer.forward(x, training) * r).sum())

        loss()
        errors = {"x": relative_error(layer.backward(r), numerical_gradient(loss, x))}
        for name, gradient in installed.items():
            if getattr(layer, name) is not gradient:
                raise ValueError(f"{layer.name}: backward replaced {name} with a new array instead of writing into "
                                 f"it, so inside a model the optimizer would never see that gradient; write "
                                 f"self.{name}[...] = ...")
        analytic = {name: grad.copy() for name, grad in installed.items()}
        for name in layer.weight_names:
            errors[name] = relative_error(analytic["d" + name], numerical_gradient(loss, getattr(layer, name)))
    finally:
        rewind()
        layer.needs_input_grad = needs_input_grad
        for name, w, dw in originals:
            setattr(layer, name, w)
            setattr(layer, "d" + name, dw)
    return errors


def check_loss(loss: Any, y_pred: Any, y_true: Any, from_logits: bool | None = None) -> dict[str, float]:
    """Relative error of the loss's gradient with respect to its input (probabilities or scores)."""
    y_pred = backend.to_device(np.array(backend.to_numpy(y_pred), dtype=np.float64))
    y_true = backend.to_device(y_true)

    def value() -> float:
        return float(loss.forward(y_pred, y_true, from_logits))

    value()
    analytic = loss.backward().copy()
    return {"y_pred": relative_error(analytic, numerical_gradient(value, y_pred))}


def check_model(model: Any, x: Any, y: Any, training: bool = True, seed: int = 0) -> dict[str, float]:
    """Relative error of every weight's gradient of the model's loss on the batch (x, y).

    Checks a float64 copy of the model (copies of its layers, its weights and loss; `model`
    is left alone), driven through the public one-batch API: forward_loss, backward, params, grads.
    """
    model.require_compiled("check_model")
    x = np.asarray(backend.to_numpy(x), np.float64)
    if not model.built:
        model.build(x.shape[1:])
    layers = [copy_module.deepcopy(layer) for layer in model.layers]
    for layer in layers:
        layer.detach()  # the copy still names the original's model
    with backend.using(dtype="float64"), backend.seeded(seed):  # building draws from this stream, not tinynet's
        copy = type(model)(layers, name=model.name)
        copy.build(model.input_shape)
    copy.set_weights(model.get_weights())
    copy.compile(loss=copy_module.deepcopy(model.loss), optimizer="sgd")
    rewind = _rewinder(copy.layers)
    x = backend.to_device(x)

    def loss() -> float:
        rewind()
        with backend.seeded(seed):
            return float(copy.forward_loss(x, y, training))

    loss()
    copy.backward()
    analytic = copy.grads.copy()
    numeric = numerical_gradient(loss, copy.params)
    errors, offset = {}, 0
    for layer in copy.layers:
        for name, w in zip(layer.weight_names, layer.weights()):
            end = offset + int(w.size)
            errors[f"{layer.name}.{name}"] = relative_error(analytic[offset:end], numeric[offset:end])
            offset = end
    return errors
