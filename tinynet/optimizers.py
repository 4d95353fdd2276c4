"""Optimizers: how the gradients change the weights.

The model keeps every weight in one flat vector `params` (each layer's W and b
are views into it) and every gradient in a flat `grads` of the same length, so
an optimizer updates the whole network with a handful of vector operations:

    model.optimizer.step(model.params, model.grads)

Each optimizer's docstring states its rule, and its `update` method is those lines
on the flat vectors. Its state vectors (SGD's velocity, Adam's m and v) are in
`slots` under Keras's names, and `iterations` counts the steps.
"""
from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from tinynet import backend
from tinynet.engine import fast


MAX_ITERATIONS = 1 << 53  # steps a float64 counts exactly; far beyond any training run


class Optimizer:
    """Base class: `step(params, grads)` updates `params` in place and counts the step.

    A subclass names its state vectors in `slot_names` (zeros shaped like `params`, made
    at the first step, kept in `slots` under Keras's names) and writes its rule in `update`.
    An optimizer serves the one model it was compiled into (`model`): its state is that model's.
    A fast twin (tinynet/engine) steps the same `slots`; what it keeps besides, such as the step
    count in GPU memory or a scratch buffer, is in `engine_form`.
    """

    name = "optimizer"
    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = self.check_number("learning_rate", learning_rate, low=0, low_open=True)
        self.slots: dict[str, Any] = {}
        self.engine_form: Any = None
        self._iterations = 0
        self._built_shape: tuple[int, ...] | None = None
        self._model: weakref.ref | None = None

    def check_number(self, name: str, value: Any, low: float, high: float = math.inf, low_open: bool = False,
                     high_open: bool = False) -> float:
        """`value` as a float if it is a finite number in the range, else a TypeError or ValueError saying so."""
        kind = type(self).__name__
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
            raise TypeError(f"{kind}: {name} must be a number, got {value!r}")
        inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not math.isfinite(value) or not inside:
            if math.isinf(high):
                wanted = f"a finite number {'>' if low_open else '>='} {low:g}"
            else:
                wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ValueError(f"{kind}: {name} must be {wanted}, got {value!r}")
        return float(value)

    # ---- the step -------------------------------------------------------------------------
    def step(self, params: Any, grads: Any) -> None:
        """Update `params` in place from `grads`: one step of the rule in the docstring."""
        if not self.is_built_for(params):
            self.build(params)
        self.update(params, grads)

    def update(self, params: Any, grads: Any) -> None:
        raise NotImplementedError

    def build(self, params: Any) -> None:
        """Zeroed state vectors shaped like `params`, and the step count at 0 (the first step, or a resized model)."""
        zeros = fast.zeros or backend.xp().zeros  # the engine's zeros may sit in huge pages
        self.engine_form = None
        self.slots = {name: zeros(params.shape, params.dtype) for name in self.slot_names}
        self._iterations = 0
        self._built_shape = tuple(params.shape)

    def is_built_for(self, params: Any) -> bool:
        return self._built_shape == tuple(params.shape)

    # ---- the state ------------------------------------------------------------------------------
    @property
    def iterations(self) -> int:
        """How many updates were applied (counted in GPU memory while a fused kernel steps)."""
        return self._iterations if self.engine_form is None else int(self.engine_form.iterations)

    @iterations.setter
    def iterations(self, value: int) -> None:
        if self.engine_form is None:
            self._iterations = int(value)
        else:
            self.engine_form.iterations = value

    def get_state(self) -> dict[str, np.ndarray]:
        """Host copies of the state: `iterations` and each slot, under Keras's names."""
        return {"iterations": np.array(self.iterations),
                **{name: backend.to_numpy(value).copy() for name, value in self.slots.items()}}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a snapshot from get_state (copied, so later steps never write into `state`)."""
        kind = type(self).__name__
        present = [name for name in self.slot_names if name in state]
        if present and len(present) != len(self.slot_names):
            raise ValueError(f"{kind}: state has {', '.join(present)} but not all of {', '.join(self.slot_names)}")
        if "iterations" not in state:
            raise ValueError(f"{kind}: the state has no step count (iterations)")
        count = np.asarray(state["iterations"])
        if count.shape != () or count.dtype.kind not in "iu" or not 0 <= int(count) <= MAX_ITERATIONS:
            raise ValueError(f"{kind}: the step count (iterations) must be a whole number from 0 to {MAX_ITERATIONS}, "
                             f"got {count!r}")
        for name in present:
            value = np.asarray(backend.to_numpy(state[name]))
            if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
                raise ValueError(f"{kind}: state {name} must hold finite real floats, got {value.dtype}"
                                 + ("" if value.dtype.kind != "f" else " with NaN or inf"))
        self.engine_form = None
        self.slots = {name: backend.xp().array(state[name]) for name in present}
        self._iterations = int(state["iterations"])
        self._built_shape = next((tuple(a.shape) for a in self.slots.values()), None)

    # ---- which model, and configuration -------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model this optimizer serves, or None."""
        return None if self._model is None else self._model()

    def detach(self) -> None:
        self._model = None

    def attach(self, model: Any) -> None:
        """Serve `model`; an optimizer already serving another model refuses, leaving that model's state alone."""
        owner = self.model
        if owner is not None and owner is not model:
            kind = type(self).__name__
            raise ValueError(f"{model.name}.compile: this {kind} optimizer already serves model {owner.name!r} and "
                             f"holds its state; an optimizer serves one model: make a new one, e.g. {kind}()")
        self._model = weakref.ref(model)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**{key: value for key, value in config.items() if key != "name"})


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as in Keras.

    velocity = momentum * velocity - learning_rate * g
    p += velocity                                    (plain momentum)
    p += momentum * velocity - learning_rate * g     (nesterov=True)
    """

    name = "sgd"
    slot_names = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        self.momentum = self.check_number("momentum", momentum, low=0, high=1, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)

    def update(self, p: Any, g: Any) -> None:
        if fast.sgd_update:  # the same lines in one GPU kernel
            return fast.sgd_update(self, p, g)
        velocity = self.slots["velocity"]
        self.iterations += 1
        velocity *= self.momentum
        velocity -= self.learning_rate * g
        if self.nesterov:
            p += self.momentum * velocity - self.learning_rate * g
        else:
            p += velocity

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras's defaults and bias correction (Kingma & Ba, 2015), as Keras 3 writes it.

    t += 1
    m += (1 - beta_1) * (g - m)          running mean of the gradients
    v += (1 - beta_2) * (g^2 - v)        running mean of their squares
    alpha = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)    (the bias correction of m and v)
    p -= alpha * m / (sqrt(v) + epsilon)
    """

    name = "adam"
    slot_names = ("m", "v")

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        self.beta_1 = self.check_number("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = self.check_number("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = self.check_number("epsilon", epsilon, low=0)

    def update(self, p: Any, g: Any) -> None:
        if fast.adam_update:  # the same step in fewer passes over memory (CPU) or one kernel (GPU)
            return fast.adam_update(self, p, g)
        m, v = self.slots["m"], self.slots["v"]
        self.iterations += 1
        t = self.iterations
        m += (1 - self.beta_1) * (g - m)
        v += (1 - self.beta_2) * (g * g - v)
        alpha = self.learning_rate * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        p -= alpha * m / (backend.xp().sqrt(v) + self.epsilon)

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
    """The optimizer a get_config() described, looked up by its name."""
    return OPTIMIZERS[config["name"]].from_config(config)
