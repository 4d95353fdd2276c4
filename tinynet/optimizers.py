"""Optimizers: how the gradients change the weights.

The model keeps every weight in one flat vector `params` (each layer's W and b
are views into it) and every gradient in a flat `grads` of the same length, so
an optimizer updates the whole network with a handful of vector operations:

    model.optimizer.step(model.params, model.grads)

Each optimizer's docstring states its rule, and its `update` method is those lines
on the flat vectors. Its state vectors (SGD's velocity, Adam's m and v, ...) are in
`slots` under Keras's names, and `iterations` counts the steps. The names, arguments
and defaults are Keras 3's: SGD, RMSprop, Adagrad, Adam, AdamW, Nadam, each with the
base arguments weight_decay, clipnorm, clipvalue and global_clipnorm (see Optimizer.step),
and a learning rate that is a number or a schedule from tinynet.schedules.
"""
from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from tinynet import backend, schedules
from tinynet.engine import fast

MAX_ITERATIONS = 1 << 53  # steps a float64 counts exactly; far beyond any training run


class Optimizer:
    """Base class: `step(params, grads)` updates `params` in place and counts the step.

    A subclass names its state vectors in `slot_names` (made at the first step, shaped like
    `params`, zeros unless `slot_start` says otherwise, kept in `slots` under Keras's names) and
    writes its rule in `update`. `slot_names` may depend on the arguments (an instance attribute).
    An optimizer serves the one model it was compiled into (`model`): its state is that model's.
    A fast twin (tinynet/engine) steps the same `slots`; what it keeps besides, such as the step
    count in GPU memory or a scratch buffer, is in `engine_form`.
    """

    name = "optimizer"
    slot_names: tuple[str, ...] = ()
    check_number = schedules.check_number  # "Adam: beta_1 must be in [0, 1), got 1.5": the class, argument, value
    check_bool = schedules.check_bool

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        self._learning_rate: float | schedules.LearningRateSchedule | None = None
        self.learning_rate = learning_rate
        self.weight_decay = self.check_optional("weight_decay", weight_decay, low_open=False)
        self.clipnorm = self.check_optional("clipnorm", clipnorm)
        self.clipvalue = self.check_optional("clipvalue", clipvalue)
        self.global_clipnorm = self.check_optional("global_clipnorm", global_clipnorm)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(value is not None for value in clips.values()) > 1:
            raise ValueError(f"{type(self).__name__}: set at most one of clipnorm, clipvalue and global_clipnorm, got "
                             + ", ".join(f"{key}={value!r}" for key, value in clips.items() if value is not None))
        self.slots: dict[str, Any] = {}
        self.engine_form: Any = None
        self._iterations = 0
        self._built_shape: tuple[int, ...] | None = None
        self._model: weakref.ref | None = None

    def check_optional(self, name: str, value: Any, low_open: bool = True) -> float | None:
        """None, or a finite number > 0 (>= 0 with low_open=False): the optional base arguments."""
        return None if value is None else self.check_number(name, value, low=0, low_open=low_open)

    # ---- the learning rate ------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The rate of the next step: the number given, or the schedule at the steps taken so far (as Keras 3)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | schedules.LearningRateSchedule) -> None:
        """A new rate, e.g. between epochs: a number > 0, or a schedule. A schedule's rate is not settable."""
        if isinstance(value, schedules.LearningRateSchedule):
            self._learning_rate = value
        elif isinstance(self._learning_rate, schedules.LearningRateSchedule):
            kind = type(self).__name__
            raise TypeError(f"{kind}: the learning rate follows a schedule ({type(self._learning_rate).__name__}), "
                            f"so it cannot be set to a number (got {value!r}); make the optimizer with a number, "
                            f"e.g. {kind}(learning_rate=0.001), to set its rate, or set another schedule")
        else:
            self._learning_rate = self.check_number("learning_rate", value, low=0, low_open=True)

    def uses_schedule(self) -> bool:
        """Whether the learning rate is a schedule (a function of the step count) rather than a number."""
        return isinstance(self._learning_rate, schedules.LearningRateSchedule)

    # ---- the step -------------------------------------------------------------------------
    def step(self, params: Any, grads: Any) -> None:
        """Update `params` in place from `grads`, as Keras 3 does: clip the gradient, decay the weights, apply the rule.

        clipnorm, clipvalue, global_clipnorm:  see clip_gradients (a clipped copy; `grads` is left as it is)
        weight_decay:  p -= learning_rate * weight_decay * p    (decoupled from the gradient, before the rule)
        then `update`: the rule in the class's docstring.
        """
        if not self.is_built_for(params):
            self.build(params)
        if self.clipnorm or self.clipvalue or self.global_clipnorm:
            grads = self.clip_gradients(grads)
        if self.weight_decay:
            params -= self.learning_rate * self.weight_decay * params
        self.update(params, grads)

    def update(self, params: Any, grads: Any) -> None:
        raise NotImplementedError

    def clip_gradients(self, grads: Any) -> Any:
        """A clipped copy of the gradient, as Keras 3 clips it:

        clipvalue:        every element clipped to [-clipvalue, clipvalue]
        clipnorm:         each weight array's gradient g scaled by min(1, clipnorm / ||g||)
        global_clipnorm:  the whole gradient g scaled by min(1, global_clipnorm / ||g||)
        """
        xp = backend.xp()
        if self.clipvalue:
            return xp.clip(grads, -self.clipvalue, self.clipvalue)
        g = grads.copy()
        limit = self.clipnorm or self.global_clipnorm
        for weight in (self.weight_slices() if self.clipnorm else [slice(None)]):
            norm = xp.sqrt(xp.sum(g[weight] * g[weight]))
            g[weight] *= limit / xp.maximum(norm, limit)  # = min(1, limit / ||g||), and 1 (not 0/0) for g = 0
        return g

    def weight_slices(self) -> list[slice]:
        """Where each weight array sits in the flat vector: the model's, or the whole vector as one without a model."""
        model = self.model
        return [slice(None)] if model is None else list(model.weight_slices())

    def count_step(self) -> tuple[float, int]:
        """This step's learning rate (read before the count moves, so a schedule sees the steps taken so far) and
        its number t, now counted in `iterations`."""
        learning_rate = self.learning_rate
        self.iterations += 1
        return learning_rate, self.iterations

    def only_its_rule(self) -> bool:
        """Whether a step is nothing but `update` at a fixed rate: a number for learning_rate, no clipping, no
        weight decay. Only such a step may be fused into one GPU kernel (engine/cuda.py step_if)."""
        clipped = self.clipnorm or self.clipvalue or self.global_clipnorm
        return not (self.uses_schedule() or clipped or self.weight_decay)

    def build(self, params: Any) -> None:
        """State vectors shaped like `params` at their starting values, and the step count at 0 (the first step,
        or a resized model)."""
        zeros = fast.zeros or backend.xp().zeros  # the engine's zeros may sit in huge pages
        self.engine_form = None
        self.slots = {name: zeros(params.shape, params.dtype) for name in self.slot_names}
        for name, vector in self.slots.items():
            if self.slot_start(name):
                vector.fill(self.slot_start(name))
        self._iterations = 0
        self._built_shape = tuple(params.shape)

    def slot_start(self, name: str) -> float:
        """The value a state vector starts from: 0 (Adagrad's accumulator starts elsewhere)."""
        return 0.0

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
        """The arguments, as Keras writes them; a schedule as {"class_name": ..., "config": ...}."""
        rate = self._learning_rate
        return {"name": self.name,
                "learning_rate": schedules.serialize(rate) if self.uses_schedule() else rate,
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        arguments = {key: value for key, value in config.items() if key != "name"}
        if isinstance(arguments.get("learning_rate"), dict):
            arguments["learning_rate"] = schedules.deserialize(arguments["learning_rate"])
        return cls(**arguments)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as in Keras.

    velocity = momentum * velocity - learning_rate * g
    p += velocity                                    (plain momentum)
    p += momentum * velocity - learning_rate * g     (nesterov=True)
    """

    name = "sgd"

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.momentum = self.check_number("momentum", momentum, low=0, high=1, high_open=True)
        self.nesterov = self.check_bool("nesterov", nesterov)
        self.slot_names = ("velocity",)

    def update(self, p: Any, g: Any) -> None:
        if fast.sgd_update and not self.uses_schedule():  # the same lines in one GPU kernel (at a fixed rate: see Adam)
            return fast.sgd_update(self, p, g)
        velocity = self.slots["velocity"]
        learning_rate, _ = self.count_step()
        velocity *= self.momentum
        velocity -= learning_rate * g
        if self.nesterov:
            p += self.momentum * velocity - learning_rate * g
        else:
            p += velocity

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), as Keras 3 writes it: each step divided by a running root mean square of the gradient.

    velocity = rho * velocity + (1 - rho) * g^2                    running mean of the squared gradients
    average_gradient = rho * average_gradient + (1 - rho) * g      (centered=True) running mean of the gradients
    denominator = velocity - average_gradient^2 + epsilon          (centered=True: the gradient's variance)
    denominator = velocity + epsilon                               (centered=False)
    increment = learning_rate * g / sqrt(denominator)
    p -= increment                                                 (momentum = 0)
    momentum_buffer = momentum * momentum_buffer + increment       (momentum > 0: slot "momentum")
    p -= momentum_buffer
    """

    name = "rmsprop"

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False,
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.rho = self.check_number("rho", rho, low=0, high=1, high_open=True)
        self.momentum = self.check_number("momentum", momentum, low=0, high=1, high_open=True)
        self.epsilon = self.check_number("epsilon", epsilon, low=0)
        self.centered = self.check_bool("centered", centered)
        # as Keras: the momentum and average-gradient slots exist only when used
        self.slot_names = (("velocity",) + (("momentum",) if self.momentum > 0 else ())
                           + (("average_gradient",) if self.centered else ()))

    def update(self, p: Any, g: Any) -> None:
        xp = backend.xp()
        velocity = self.slots["velocity"]
        learning_rate, _ = self.count_step()
        velocity *= self.rho
        velocity += (1 - self.rho) * g * g
        if self.centered:
            average_gradient = self.slots["average_gradient"]
            average_gradient *= self.rho
            average_gradient += (1 - self.rho) * g
            denominator = velocity - average_gradient * average_gradient + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = learning_rate * g / xp.sqrt(denominator)
        if self.momentum > 0:
            momentum_buffer = self.slots["momentum"]
            momentum_buffer *= self.momentum
            momentum_buffer += increment
            p -= momentum_buffer
        else:
            p -= increment

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), as Keras 3 writes it: each weight's step shrinks with all its past gradients.

    accumulator += g^2                                       (starts at initial_accumulator_value, not 0)
    p -= learning_rate * g / sqrt(accumulator + epsilon)
    """

    name = "adagrad"

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.initial_accumulator_value = self.check_number("initial_accumulator_value", initial_accumulator_value,
                                                           low=0)
        self.epsilon = self.check_number("epsilon", epsilon, low=0)
        self.slot_names = ("accumulator",)

    def slot_start(self, name: str) -> float:
        return self.initial_accumulator_value

    def update(self, p: Any, g: Any) -> None:
        accumulator = self.slots["accumulator"]
        learning_rate, _ = self.count_step()
        accumulator += g * g
        p -= learning_rate * g / backend.xp().sqrt(accumulator + self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam with Keras's defaults and bias correction (Kingma & Ba, 2015), as Keras 3 writes it.

    t += 1
    m += (1 - beta_1) * (g - m)          running mean of the gradients
    v += (1 - beta_2) * (g^2 - v)        running mean of their squares
    alpha = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)    (the bias correction of m and v)
    p -= alpha * m / (sqrt(v) + epsilon)

    amsgrad=True (Reddi et al., 2018) divides by the largest v so far instead:
    velocity_hat = max(velocity_hat, v)
    p -= alpha * m / (sqrt(velocity_hat) + epsilon)
    """

    name = "adam"

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = self.check_number("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = self.check_number("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = self.check_number("epsilon", epsilon, low=0)
        self.amsgrad = self.check_bool("amsgrad", amsgrad)
        self.slot_names = ("m", "v") + (("velocity_hat",) if self.amsgrad else ())

    def update(self, p: Any, g: Any) -> None:
        # the same step in fewer passes over memory (CPU) or one kernel (GPU), for plain Adam at a fixed rate only:
        # the twins know no AMSGrad, and read learning_rate after counting the step (a schedule would be one ahead)
        if fast.adam_update and not self.amsgrad and not self.uses_schedule():
            return fast.adam_update(self, p, g)
        m, v = self.slots["m"], self.slots["v"]
        learning_rate, t = self.count_step()
        m += (1 - self.beta_1) * (g - m)
        v += (1 - self.beta_2) * (g * g - v)
        if self.amsgrad:
            v = backend.xp().maximum(self.slots["velocity_hat"], v, out=self.slots["velocity_hat"])
        alpha = learning_rate * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        p -= alpha * m / (backend.xp().sqrt(v) + self.epsilon)

    def only_its_rule(self) -> bool:
        return super().only_its_rule() and not self.amsgrad

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as Keras 3 writes it.

    p -= learning_rate * weight_decay * p     (in step, before the rule: see Optimizer.step)
    then Adam's rule (see Adam), amsgrad included.
    """

    name = "adamw"

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         self.check_number("weight_decay", weight_decay, low=0), clipnorm, clipvalue, global_clipnorm)


class Nadam(Optimizer):
    """Nadam: Adam with Nesterov momentum (Dozat, 2016), as Keras 3 writes it.

    t += 1
    u_t = beta_1 * (1 - 0.5 * 0.96^t)          the momentum schedule; u_next is the same at t + 1
    u_product = u_1 * u_2 * ... * u_t
    m += (1 - beta_1) * (g - m)
    v += (1 - beta_2) * (g^2 - v)
    m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
    v_hat = v / (1 - beta_2^t)
    p -= learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    Keras keeps u_product in a variable; here it is recomputed from `iterations` (it depends on
    nothing else for a fixed beta_1), so the state is only m, v and the step count.
    """

    name = "nadam"

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = self.check_number("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = self.check_number("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = self.check_number("epsilon", epsilon, low=0)
        self.slot_names = ("m", "v")
        self._last_product = (0, 1.0)  # (t, u_product at t): a cache, not state; see u_product

    def update(self, p: Any, g: Any) -> None:
        m, v = self.slots["m"], self.slots["v"]
        learning_rate, t = self.count_step()
        u_t, u_next, u_product = self.u(t), self.u(t + 1), self.u_product(t)
        m += (1 - self.beta_1) * (g - m)
        v += (1 - self.beta_2) * (g * g - v)
        m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
        v_hat = v / (1 - self.beta_2 ** t)
        p -= learning_rate * m_hat / (backend.xp().sqrt(v_hat) + self.epsilon)

    def u(self, t: int) -> float:
        return self.beta_1 * (1 - 0.5 * 0.96 ** t)

    def u_product(self, t: int) -> float:
        """u_1 * u_2 * ... * u_t, multiplied in that order (as Keras's variable is); the last product is
        remembered, so the next step multiplies in one more u rather than all t again."""
        done, product = self._last_product if self._last_product[0] <= t else (0, 1.0)
        for i in range(done + 1, t + 1):
            product *= self.u(i)
        self._last_product = (t, product)
        return product

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, RMSprop, Adagrad, AdamW, Nadam)}


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
    if config.get("name") not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.get('name')!r}; valid optimizers are {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[config["name"]].from_config(config)
