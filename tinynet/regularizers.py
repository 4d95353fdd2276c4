"""Weight penalties, named as in Keras 3.

A regularizer R adds R(W) to the loss, so training must add dR/dW to the
weight's gradient as well: a layer computes `penalty = R(W)` beside its loss and
`dW += R.gradient(W)` after its backward pass. tinynet has no automatic
differentiation, so every regularizer writes its gradient out next to its penalty.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet import backend, saving


class Regularizer:
    """Base class: a subclass writes `__call__(W)` (the penalty) and `gradient(W)` (dPenalty/dW)."""

    def __call__(self, W: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: a Regularizer subclass must define __call__(W)")

    def gradient(self, W: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: a Regularizer subclass must define gradient(W), "
                                  "the derivative of its penalty (tinynet does not differentiate for you)")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not define get_config(), so it cannot be saved")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(Regularizer):
    """penalty = l1 * sum(|W|),   dpenalty/dW = l1 * sign(W)   (0 at W = 0, where |W| has no slope)."""

    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = _check_factor("L1", "l1", 0.01 if l1 is None else l1)  # Keras reads None as the default

    def __call__(self, W: Any) -> Any:
        xp = backend.xp()
        return self.l1 * xp.sum(xp.abs(W))

    def gradient(self, W: Any) -> Any:
        return self.l1 * backend.xp().sign(W)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    """penalty = l2 * sum(W^2),   dpenalty/dW = 2 * l2 * W   (Keras has no 1/2 in front)."""

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = _check_factor("L2", "l2", 0.01 if l2 is None else l2)

    def __call__(self, W: Any) -> Any:
        return self.l2 * backend.xp().sum(W * W)

    def gradient(self, W: Any) -> Any:
        return 2 * self.l2 * W

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


class L1L2(Regularizer):
    """penalty = l1 * sum(|W|) + l2 * sum(W^2),   dpenalty/dW = l1 * sign(W) + 2 * l2 * W."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check_factor("L1L2", "l1", 0.0 if l1 is None else l1)
        self.l2 = _check_factor("L1L2", "l2", 0.0 if l2 is None else l2)

    def __call__(self, W: Any) -> Any:
        xp = backend.xp()
        return self.l1 * xp.sum(xp.abs(W)) + self.l2 * xp.sum(W * W)

    def gradient(self, W: Any) -> Any:
        return self.l1 * backend.xp().sign(W) + 2 * self.l2 * W

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


# Keras's lower-case names: l1(0.01) and l2(0.01) are the classes themselves
l1, l2 = L1, L2


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """L1L2 with both factors 0.01 by default (what the name "l1_l2" gives)."""
    return L1L2(l1=l1, l2=l2)


REGULARIZERS = {"l1": L1, "l2": L2, "l1_l2": l1_l2}  # each called with no argument gives Keras's defaults
CLASSES: dict[str, type[Regularizer]] = {"L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier: Any, layer: str) -> Regularizer | None:
    """A Regularizer from None (none), a name, an instance, a class or a serialize() dict.

    `layer` names the asking layer in errors.
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        return _make_from_name(identifier, layer)
    if isinstance(identifier, dict):
        return _from_dict(identifier, layer)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    hint = (" (a plain function has no gradient: subclass tinynet.regularizers.Regularizer "
            "and define __call__(W) and gradient(W))") if callable(identifier) else ""
    raise TypeError(f"{layer}: expected a regularizer name such as 'l2', a Regularizer, None or a "
                    f"{{'class_name', 'config'}} dict, got {type(identifier).__name__} {identifier!r}{hint}")


def serialize(reg: Regularizer | None) -> dict[str, Any] | None:
    """None for no regularizer, else {"class_name", "config"} (what get() reads back)."""
    if reg is None:
        return None
    if not isinstance(reg, Regularizer):
        raise TypeError(f"serialize: expected a Regularizer or None, got {type(reg).__name__} {reg!r}")
    return {"class_name": type(reg).__name__, "config": reg.get_config()}


# ---- lookups and argument checks (kept apart from the math above) --------------------------------

def _make_from_name(name: str, layer: str) -> Regularizer:
    make = REGULARIZERS.get(name) or CLASSES.get(name)
    if make is None:
        raise ValueError(f"{layer}: unknown regularizer {name!r}; valid names are {', '.join(REGULARIZERS)}")
    return make()


def _from_dict(identifier: dict[str, Any], layer: str) -> Regularizer:
    return saving.from_class_and_config(identifier, Regularizer, CLASSES, layer)


def _check_factor(owner: str, arg: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {arg} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {arg} must be a non-negative finite number, got {value!r}")
    return float(value)
