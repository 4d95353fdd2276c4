"""Initial values for weights, named as in Keras.

Weights are drawn on the host with NumPy (so a seed gives the same network on
CPU and GPU) and moved to the backend by the layer.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], np.random.Generator], np.ndarray]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    fan_in = shape[0] if len(shape) > 1 else 1
    return fan_in, shape[-1]


def glorot_uniform(shape: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)): keeps activation variance steady."""
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return gen.uniform(-limit, limit, size=shape)


def he_normal(shape: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
    """N(0, 2 / fan_in), truncated at 2 std as Keras does: suits ReLU layers."""
    fan_in, _ = _fans(shape)
    std = np.sqrt(2.0 / fan_in) / 0.87962566103423978  # std of a unit normal truncated at +-2
    w = gen.standard_normal(size=shape)
    while np.any(bad := np.abs(w) > 2):
        w[bad] = gen.standard_normal(size=int(bad.sum()))
    return w * std


def zeros(shape: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
    return np.zeros(shape)


def ones(shape: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
    return np.ones(shape)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "he_normal": he_normal,
    "zeros": zeros,
    "ones": ones,
}


def get(name: str, layer: str) -> Initializer:
    """Look up an initializer by name; `layer` names the asking layer in the error."""
    if name not in INITIALIZERS:
        raise ValueError(f"{layer}: unknown initializer {name!r}; valid names are {', '.join(INITIALIZERS)}")
    return INITIALIZERS[name]
