"""Optimizers: how the gradients change the weights.

The model keeps every weight in one flat vector `params` (each layer's W and b
are views into it) and every gradient in a flat `grads` of the same length, so
an optimizer updates the whole network with a handful of vector operations.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import backend


class Optimizer:
    """Base class: `step(params, grads)` updates `params` in place; state is kept between steps.

    The step count `t` lives on the backend, next to the state vectors: on the GPU a
    step never waits for the host, and `apply` (a 0-d bool array from the model,
    false when the batch's loss was not finite) can skip it without the host looking.
    """

    name = "optimizer"
    state_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float) -> None:
        if not isinstance(learning_rate, (int, float, np.integer, np.floating)) or isinstance(learning_rate, bool):
            raise TypeError(f"{type(self).__name__}: learning_rate must be a number, got {learning_rate!r}")
        if not learning_rate > 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be > 0, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.t: Any = None
        for name in self.state_names:
            setattr(self, name, None)

    @property
    def iterations(self) -> int:
        """How many steps were applied (read from the device: not for the hot path)."""
        return 0 if self.t is None else int(self.t)

    def step(self, params: Any, grads: Any, apply: Any = True) -> None:
        """Update `params` in place from `grads`, unless `apply` is false."""
        self._zeros_like_state(params)
        self.t += apply
        self._update(params, grads, apply)

    def _update(self, params: Any, grads: Any, apply: Any) -> None:
        raise NotImplementedError

    def _zeros_like_state(self, params: Any) -> None:
        """Create zeroed state vectors (on the backend) the first time, or after the model changed size."""
        first = getattr(self, self.state_names[0])
        if first is None or first.shape != params.shape:
            for name in self.state_names:
                setattr(self, name, backend.xp().zeros_like(params))
            self.t = backend.xp().zeros((), dtype=np.int64)

    def get_state(self) -> dict[str, np.ndarray]:
        """A snapshot (host copies) of the step count and the state vectors."""
        state = {"iterations": np.array(self.iterations)}
        for name in self.state_names:
            if getattr(self, name) is not None:
                state[name] = backend.to_numpy(getattr(self, name)).copy()
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a snapshot from get_state (copied, so later steps never write into `state`)."""
        self.t = backend.xp().array(int(state["iterations"]), dtype=np.int64)
        for name in self.state_names:
            if name in state:
                setattr(self, name, backend.xp().array(state[name]))  # keeps the dtype it was saved with

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate}


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as in Keras.

    velocity = momentum * velocity - learning_rate * g
    p += velocity                                    (plain momentum)
    p += momentum * velocity - learning_rate * g     (nesterov=True)
    backend.sgd_update does these lines (one kernel on the GPU).
    """

    name = "sgd"
    state_names = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, params: Any, grads: Any, apply: Any) -> None:
        backend.sgd_update(params, grads, self.velocity, self.learning_rate, self.momentum, self.nesterov, apply)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras's defaults and bias correction (Kingma & Ba, 2015).

    t += 1
    m = beta_1 * m + (1 - beta_1) * g            running mean of gradients
    v = beta_2 * v + (1 - beta_2) * g^2          running mean of squared gradients
    alpha = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)   (bias correction of m and v)
    p -= alpha * m / (sqrt(v) + epsilon)

    We keep the running *sums* m_sum = m / (1 - beta_1) and v_sum = v / (1 - beta_2)
    instead. Their updates, m_sum = beta_1 * m_sum + g and v_sum = beta_2 * v_sum + g^2,
    are two passes over the parameters fewer, and the last line becomes
    p -= alpha * (1 - beta_1) / sqrt(1 - beta_2) * m_sum / (sqrt(v_sum) + epsilon / sqrt(1 - beta_2)).
    backend.adam_update does these three lines (one kernel on the GPU).
    """

    name = "adam"
    state_names = ("m_sum", "v_sum")

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        for label, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= beta < 1:
                raise ValueError(f"Adam: {label} must be in [0, 1), got {beta!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _update(self, params: Any, grads: Any, apply: Any) -> None:
        backend.adam_update(params, grads, self.m_sum, self.v_sum, self.t, self.learning_rate,
                            self.beta_1, self.beta_2, self.epsilon, apply)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam)}


def get(optimizer: str | Optimizer) -> Optimizer:
    """An optimizer from its name (with default settings, as in Keras) or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or an Optimizer, "
                        f"got {type(optimizer).__name__}")
    if optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid optimizers are {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[optimizer.lower()]()


def from_config(config: dict[str, Any]) -> Optimizer:
    config = dict(config)
    return OPTIMIZERS[config.pop("name")](**config)
