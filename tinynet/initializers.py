"""Initial values for weights, named as in Keras 3.

Weights are drawn on the host with NumPy in float64 (so a seed gives the same
network on CPU and GPU) and moved to the backend by the layer. A layer calls
`init.draw(shape, gen)` with its own generator; `init(shape)` is Keras's public
form. An initializer built with an int seed gives the same values at every call.

Glorot, He and Lecun are one formula, `VarianceScaling`, with a fixed scale and
fan. The fans of a weight, as Keras counts them:
    (in, out)                     fan_in = in,                fan_out = out
    (kh, kw, in, out) (a kernel)  fan_in = kh * kw * in,      fan_out = kh * kw * out
    (n,)                          fan_in = fan_out = n
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from tinynet import backend, saving

Shape = tuple[int, ...]
TRUNCATED_STD = 0.87962566103423978  # std of a unit normal cut at +-2 std (Keras's constant)


def compute_fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape; axes before the last two are a kernel's receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def draw_truncated_normal(shape: Shape, mean: float, stddev: float, gen: np.random.Generator) -> np.ndarray:
    """N(mean, stddev^2) with every value more than 2 stddev from the mean redrawn, as Keras does."""
    z = gen.standard_normal(size=shape)
    while np.any(outside := np.abs(z) > 2):
        z[outside] = gen.standard_normal(size=int(outside.sum()))
    return mean + stddev * z


class Initializer:
    """Base class. A subclass writes the math in `sample(shape, gen)`; the base handles seeds.

    A Keras-style subclass that writes only `__call__(shape, dtype=None)` works too:
    it is called instead of `sample` (with its own randomness, not the layer's).
    """

    seed: int | None = None

    def draw(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        """Values for a weight of `shape` (float64, host), from `gen` unless this initializer has a seed."""
        if self.seed is not None:  # a fresh generator each time: a seeded initializer repeats, as in Keras
            gen = np.random.default_rng(self.seed)
        shape = _check_shape(type(self).__name__, shape)
        return np.asarray(self.sample(shape, gen), dtype=np.float64)

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        if type(self).__call__ is Initializer.__call__:  # neither written: the two would call each other
            raise NotImplementedError(f"{type(self).__name__}: an Initializer subclass must define "
                                      "sample(shape, gen) or __call__(shape, dtype=None)")
        return backend.to_numpy(self(shape, dtype="float64"))

    def __call__(self, shape: Shape, dtype: Any = None) -> np.ndarray:
        """Keras's `init(shape, dtype)`: a NumPy array in `dtype` (default: backend.floatx())."""
        values = self.draw(shape, backend.rng())
        return values.astype(backend.floatx() if dtype is None else dtype)

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros (Keras's default for biases)."""

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        return np.ones(shape)


class Constant(Initializer):
    """Every value equal to `value`."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = _check_number("Constant", "value", value)

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        return np.full(shape, self.value)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class RandomNormal(Initializer):
    """N(mean, stddev^2)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = _check_number("RandomNormal", "mean", mean)
        self.stddev = _check_positive("RandomNormal", "stddev", stddev)
        self.seed = _check_seed("RandomNormal", seed)

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        return gen.normal(self.mean, self.stddev, size=shape)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(Initializer):
    """N(mean, stddev^2), values more than 2 stddev from the mean redrawn (so the spread is below stddev)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = _check_number("TruncatedNormal", "mean", mean)
        self.stddev = _check_positive("TruncatedNormal", "stddev", stddev)
        self.seed = _check_seed("TruncatedNormal", seed)

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        return draw_truncated_normal(shape, self.mean, self.stddev, gen)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    """U(minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        self.minval = _check_number("RandomUniform", "minval", minval)
        self.maxval = _check_number("RandomUniform", "maxval", maxval)
        if self.minval >= self.maxval:
            raise ValueError(f"RandomUniform: minval must be below maxval, got minval={minval!r}, maxval={maxval!r}")
        self.seed = _check_seed("RandomUniform", seed)

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        return gen.uniform(self.minval, self.maxval, size=shape)

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


class VarianceScaling(Initializer):
    """Zero-mean values with variance scale / n, where n counts the weight's inputs or outputs:

        n = fan_in                       mode="fan_in"
        n = fan_out                      mode="fan_out"
        n = (fan_in + fan_out) / 2       mode="fan_avg"        (n is at least 1)

    distribution="uniform":            U(-limit, limit),  limit = sqrt(3 * scale / n)   (U(-a, a) has variance a^2 / 3)
    distribution="untruncated_normal": N(0, scale / n)
    distribution="truncated_normal":   N(0, std^2) cut at +-2 std,  std = sqrt(scale / n) / 0.8796...
                                       (the cut shrinks the spread by 0.8796..., so the result has variance scale / n)
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None) -> None:
        name = type(self).__name__
        self.scale = _check_positive(name, "scale", scale)
        self.mode = _check_choice(name, "mode", mode, MODES)
        distribution = "truncated_normal" if distribution == "normal" else distribution  # as Keras reads it
        self.distribution = _check_choice(name, "distribution", distribution, DISTRIBUTIONS)
        self.seed = _check_seed(name, seed)

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return gen.uniform(-limit, limit, size=shape)
        if self.distribution == "untruncated_normal":
            return gen.normal(0.0, math.sqrt(variance), size=shape)
        return draw_truncated_normal(shape, 0.0, math.sqrt(variance) / TRUNCATED_STD, gen)

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


class _FixedVarianceScaling(VarianceScaling):
    """A named VarianceScaling: only the seed is an argument (Glorot, He and Lecun below)."""

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_in", "truncated_normal"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(self.SCALE, self.MODE, self.DISTRIBUTION, seed)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class GlorotUniform(_FixedVarianceScaling):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)): keeps activation variance steady both ways."""

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_avg", "uniform"


class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal with variance 2 / (fan_in + fan_out)."""

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_avg", "truncated_normal"


class HeUniform(_FixedVarianceScaling):
    """U(-limit, limit), limit = sqrt(6 / fan_in): suits ReLU layers."""

    SCALE, MODE, DISTRIBUTION = 2.0, "fan_in", "uniform"


class HeNormal(_FixedVarianceScaling):
    """Truncated normal with variance 2 / fan_in: suits ReLU layers."""

    SCALE, MODE, DISTRIBUTION = 2.0, "fan_in", "truncated_normal"


class LecunUniform(_FixedVarianceScaling):
    """U(-limit, limit), limit = sqrt(3 / fan_in)."""

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_in", "uniform"


class LecunNormal(_FixedVarianceScaling):
    """Truncated normal with variance 1 / fan_in (for SELU networks)."""

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_in", "truncated_normal"


class CallableInitializer(Initializer):
    """Wraps a plain function f(shape, dtype=None) -> array, Keras's form of a custom initializer.

    The function brings its own randomness (the layer's generator and seed do not reach it),
    and it cannot be saved: a model config has no way to name a Python function.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def sample(self, shape: Shape, gen: np.random.Generator) -> np.ndarray:
        values = backend.to_numpy(self.fn(shape, dtype="float64"))
        if values.shape != shape:
            raise ValueError(f"initializer {_name_of(self.fn)}: asked for shape {shape}, returned {values.shape}")
        return values

    def get_config(self) -> dict[str, Any]:
        raise ValueError(f"the custom initializer function {_name_of(self.fn)} cannot be saved in a model config; "
                         "use a built-in initializer name, or subclass tinynet.initializers.Initializer "
                         "and give it get_config")

    def __repr__(self) -> str:
        return f"CallableInitializer({_name_of(self.fn)})"


# Keras's snake_case names; the first four were tinynet's only ones and lead the list in error messages
INITIALIZERS: dict[str, type[Initializer]] = {
    "glorot_uniform": GlorotUniform, "he_normal": HeNormal, "zeros": Zeros, "ones": Ones,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal, "random_normal": RandomNormal, "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal, "constant": Constant, "variance_scaling": VarianceScaling,
}
CLASSES: dict[str, type[Initializer]] = {cls.__name__: cls for cls in INITIALIZERS.values()}

# Keras users write initializers.glorot_uniform(seed=1) as well as initializers.GlorotUniform(seed=1)
glorot_uniform, he_normal, zeros, ones = GlorotUniform, HeNormal, Zeros, Ones
glorot_normal, he_uniform, lecun_uniform, lecun_normal = GlorotNormal, HeUniform, LecunUniform, LecunNormal
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
constant, variance_scaling = Constant, VarianceScaling


def get(identifier: Any, layer: str) -> Initializer:
    """An Initializer from a name, an instance, a class, a function f(shape, dtype=None) or a serialize() dict.

    `layer` names the asking layer in errors.
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        return _class_for_name(identifier, layer)()
    if isinstance(identifier, dict):
        return _from_dict(identifier, layer)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier) and not isinstance(identifier, type):
        return CallableInitializer(identifier)
    raise TypeError(f"{layer}: expected an initializer name such as 'glorot_uniform', an Initializer, "
                    f"a function f(shape, dtype=None) or a {{'class_name', 'config'}} dict, "
                    f"got {type(identifier).__name__} {identifier!r}")


def serialize(init: Initializer) -> str | dict[str, Any]:
    """The snake_case name of a built-in with default arguments, else {"class_name", "config"}.

    A wrapped function raises ValueError: it has no config to save.
    """
    if not isinstance(init, Initializer):
        raise TypeError(f"serialize: expected an Initializer, got {type(init).__name__} {init!r}")
    config = init.get_config()
    cls = type(init)
    names = [name for name, builtin in INITIALIZERS.items() if builtin is cls]
    if names and config == cls().get_config():  # so configs saved as "glorot_uniform" keep reading the same
        return names[0]
    return {"class_name": cls.__name__, "config": config}


# ---- lookups and argument checks (kept apart from the math above) --------------------------------

def _class_for_name(name: str, layer: str) -> type[Initializer]:
    cls = INITIALIZERS.get(name) or CLASSES.get(name)
    if cls is None:
        raise ValueError(f"{layer}: unknown initializer {name!r}; valid names are {', '.join(INITIALIZERS)}")
    return cls


def _from_dict(identifier: dict[str, Any], layer: str) -> Initializer:
    return saving.from_class_and_config(identifier, Initializer, CLASSES, layer)


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or repr(fn)


def _check_shape(owner: str, shape: Any) -> Shape:
    try:
        dims = None if isinstance(shape, (str, bytes)) else tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        dims = None
    if dims is None or any(d < 0 for d in dims):
        raise ValueError(f"{owner}: expected a shape, a tuple of non-negative ints, got {shape!r}")
    return dims


def _check_number(owner: str, arg: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {arg} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {arg} must be finite, got {value!r}")
    return float(value)


def _check_positive(owner: str, arg: str, value: Any) -> float:
    number = _check_number(owner, arg, value)
    if number <= 0:
        raise ValueError(f"{owner}: {arg} must be positive, got {value!r}")
    return number


def _check_choice(owner: str, arg: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{owner}: {arg} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_seed(owner: str, seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{owner}: seed must be an int or None, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{owner}: seed must be non-negative, got {seed!r}")
    return int(seed)
