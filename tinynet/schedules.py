"""Learning-rate schedules: the learning rate as a function of the step count, as Keras 3 writes them.

    optimizer = Adam(learning_rate=schedules.ExponentialDecay(0.01, decay_steps=1000, decay_rate=0.9))

An optimizer calls its schedule with the number of steps it has taken so far, before the
step it is about to take (0 for the first step), as Keras 3 does; `optimizer.learning_rate`
is that value. Each schedule's docstring states its formula and `__call__` is that formula.
`serialize`/`deserialize` turn a schedule into {"class_name": ..., "config": ...} and back,
which is how an optimizer's get_config stores it.

The number checks shared with tinynet/optimizers.py live here too: optimizers.py imports
this module, so this is the one place both can reach without an import cycle.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


# ---- argument checks (also Optimizer.check_number) -------------------------------------------------------
def check_number(owner: object, name: str, value: Any, low: float, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False) -> float:
    """`value` as a float if it is a finite number in the range, else a TypeError or ValueError saying so.

    The error names the owner's class, the argument and the value, e.g. "RMSprop: rho must be in [0, 1), got 1".
    """
    kind = type(owner).__name__
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{kind}: {name} must be a number, got {value!r}")
    inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not math.isfinite(value) or not inside:
        if math.isinf(high):
            wanted = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{kind}: {name} must be {wanted}, got {value!r}")
    return float(value)


def check_bool(owner: object, name: str, value: Any) -> bool:
    """`value` if it is True or False, else a TypeError naming the owner's class, the argument and the value."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{type(owner).__name__}: {name} must be True or False, got {value!r}")
    return bool(value)


# ---- the schedules ----------------------------------------------------------------------------------------
class LearningRateSchedule:
    """Base class: `schedule(step)` is the learning rate after `step` steps; get_config/from_config describe it."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define __call__(self, step)")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must define get_config() to be saved")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)


class DecayBySteps(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: the rate decays with p = step / decay_steps
    (floor(step / decay_steps) with staircase=True)."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool = False) -> None:
        self.initial_learning_rate = check_number(self, "initial_learning_rate", initial_learning_rate, low=0)
        self.decay_steps = check_number(self, "decay_steps", decay_steps, low=0, low_open=True)
        self.decay_rate = check_number(self, "decay_rate", decay_rate, low=0)
        self.staircase = check_bool(self, "staircase", staircase)

    def progress(self, step: int) -> float:
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class ExponentialDecay(DecayBySteps):
    """The rate shrinks by decay_rate every decay_steps steps, smoothly or in stairs (Keras 3):

    learning_rate(step) = initial_learning_rate * decay_rate ^ (step / decay_steps)
    staircase=True:       initial_learning_rate * decay_rate ^ floor(step / decay_steps)
    """

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate * self.decay_rate ** self.progress(step)

class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate between boundaries (Keras 3):

    learning_rate(step) = values[0]    while step <= boundaries[0]
                          values[i]    while boundaries[i-1] < step <= boundaries[i]
                          values[-1]   once step > boundaries[-1]
    """

    def __init__(self, boundaries: list[float], values: list[float]) -> None:
        kind = type(self).__name__
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError(f"{kind}: boundaries and values must be lists, got {boundaries!r} and {values!r}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"{kind}: values must have one more entry than boundaries, got {len(boundaries)} "
                             f"boundaries {list(boundaries)!r} and {len(values)} values {list(values)!r}")
        self.boundaries = [check_number(self, "boundaries", b, low=-math.inf) for b in boundaries]
        self.values = [check_number(self, "values", v, low=0) for v in values]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{kind}: boundaries must be strictly increasing, got {list(boundaries)!r}")

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


class CosineDecay(LearningRateSchedule):
    """An optional linear warmup, then half a cosine down to alpha times the peak (Keras 3; Loshchilov & Hutter, 2017).

    Without warmup_target (no warmup), with s = min(step, decay_steps):
        learning_rate(step) = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)
    With warmup_target, s = min(step, warmup_steps + decay_steps):
        s < warmup_steps:  initial_learning_rate + (warmup_target - initial_learning_rate) * s / warmup_steps
        after:  warmup_target * ((1 - alpha) * 0.5 * (1 + cos(pi * (s - warmup_steps) / decay_steps)) + alpha)
    """

    def __init__(self, initial_learning_rate: float, decay_steps: float, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: float = 0) -> None:
        self.initial_learning_rate = check_number(self, "initial_learning_rate", initial_learning_rate, low=0)
        self.decay_steps = check_number(self, "decay_steps", decay_steps, low=0, low_open=True)
        self.alpha = check_number(self, "alpha", alpha, low=0, high=1)
        self.warmup_target = (None if warmup_target is None
                              else check_number(self, "warmup_target", warmup_target, low=0))
        self.warmup_steps = check_number(self, "warmup_steps", warmup_steps, low=0)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self.decayed(min(step, self.decay_steps), self.initial_learning_rate)
        s = min(step, self.warmup_steps + self.decay_steps)
        if s < self.warmup_steps:  # the linear warmup
            rise = self.warmup_target - self.initial_learning_rate
            return self.initial_learning_rate + rise * s / self.warmup_steps
        return self.decayed(s - self.warmup_steps, self.warmup_target)

    def decayed(self, s: float, peak: float) -> float:
        """The cosine part: from `peak` at s = 0 down to alpha * peak at s = decay_steps."""
        cosine = 0.5 * (1 + math.cos(math.pi * s / self.decay_steps))
        return peak * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class InverseTimeDecay(DecayBySteps):
    """The rate falls as 1 / time (Keras 3):

    learning_rate(step) = initial_learning_rate / (1 + decay_rate * step / decay_steps)
    staircase=True:       initial_learning_rate / (1 + decay_rate * floor(step / decay_steps))
    """

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate / (1 + self.decay_rate * self.progress(step))

SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay)}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """{"class_name": ..., "config": ...}: what an optimizer's get_config stores for its schedule."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict[str, Any]) -> LearningRateSchedule:
    """The schedule a serialize() described, looked up by its class name."""
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; known are {', '.join(SCHEDULES)}")
    return SCHEDULES[name].from_config(config["config"])
