"""Losses: how far the network's outputs are from the targets, and the gradient of that distance.

Every loss is the mean over the batch of a per-sample loss (Keras's reduction), and remembers
dL/dy_pred for `backward()`. For n samples and k outputs:

    mean_squared_error        L = 1/(n k) sum (p - y)^2                  dL/dp = 2 (p - y) / (n k)
    mean_absolute_error       L = 1/(n k) sum |p - y|                    dL/dp = sign(p - y) / (n k)
    huber                     L = 1/(n k) sum h(p - y)                   dL/dp = clip(p - y, -delta, delta) / (n k)
    binary_crossentropy       L = -1/(n k) sum y log p + (1 - y) log(1 - p)
    categorical_crossentropy  L = -1/n sum y log p

When the network ends in softmax (or sigmoid) and the loss is the matching cross-entropy, the
gradient with respect to the scores z collapses to the famous, numerically stable

    dL/dz = (softmax(z) - y) / n        (binary: (sigmoid(z) - y) / (n k))

so the model hands the scores z to `forward(..., from_logits=True)` and skips the activation's
own backward pass (see `Loss.fuses`). log p is then computed from z directly (z - logsumexp(z)),
which stays finite for scores as large as 1e4.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import activations, backend, saving
from tinynet.engine import fast

EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] so log never sees 0
SUM_TOLERANCE = 1e-3  # how far a target row may sum from 1 (float32 rounding, label smoothing stay inside)


class Loss:
    """Base class: `forward(y_pred, y_true)` gives the mean loss over the batch (a 0-d array) and sets
    `self.grad` = dL/dy_pred, which `backward()` returns.

    A loss of your own subclasses this and writes `forward`; `model.compile(loss=MyLoss())` then
    trains with it. `check_targets` refuses targets that cannot fit (called once per fit, not per batch).
    """

    name = "loss"  # a subclass without a name of its own gets its class name (what custom_objects then uses)
    integer_targets = False  # sparse labels stay integers; other targets take the model's float dtype
    from_logits = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls):
            cls.name = cls.__name__

    def check_targets(self, y: Any, n: int, width: int) -> None:
        """A clear error unless y holds n finite targets of width `width` (shape (n, width), or (n,) for width 1)."""
        if not (y.shape == (n, width) or (width == 1 and y.shape == (n,))):
            raise ValueError(f"{self.name}: expected targets of shape ({n}, {width})"
                             f"{f' or ({n},)' if width == 1 else ''}, got {tuple(y.shape)}"
                             + (f" (the network has {width} outputs)" if y.shape[:1] == (n,) else ""))
        if not np.all(np.isfinite(backend.to_numpy(y))):
            raise ValueError(f"{self.name}: targets contain NaN or inf")

    def targets(self, y_true: Any, y_pred: Any) -> Any:
        """y_true on the backend, in y_pred's dtype and shape ((n,) becomes (n, 1) for one output)."""
        return backend.to_device(y_true, y_pred.dtype).reshape(y_pred.shape)

    def forward(self, y_pred: Any, y_true: Any, from_logits: bool | None = None, sample_weight: Any = None) -> Any:
        raise NotImplementedError

    def backward(self) -> Any:
        return self.grad

    def reduce(self, per_sample: Any, sample_weight: Any = None) -> Any:
        """Keras's reduction: the mean over the batch of w_i * loss_i (w = 1 without sample weights).

        self.grad holds the gradient of the unweighted mean; each sample's row of it scales by w_i too.
        """
        if sample_weight is None:
            return per_sample.mean()
        self.grad = self.grad * sample_weight.reshape((-1,) + (1,) * (self.grad.ndim - 1))
        return (per_sample * sample_weight).mean()

    def fuses(self, activation: Any) -> bool:
        """Whether this loss takes over `activation`, the network's last one (it then gets the scores)."""
        return False

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**{key: value for key, value in config.items() if key != "name"})


class MeanSquaredError(Loss):
    """L = mean over samples and outputs of (p - y)^2;   dL/dp = 2 (p - y) / (n k)"""

    name = "mean_squared_error"

    def forward(self, y_pred: Any, y_true: Any, from_logits: bool | None = None, sample_weight: Any = None) -> Any:
        error = y_pred - self.targets(y_true, y_pred)
        self.grad = 2 * error / error.size
        return self.reduce((error * error).mean(axis=-1), sample_weight)


class MeanAbsoluteError(Loss):
    """L = mean over samples and outputs of |p - y|;   dL/dp = sign(p - y) / (n k)   (0 where p = y)"""

    name = "mean_absolute_error"

    def forward(self, y_pred: Any, y_true: Any, from_logits: bool | None = None, sample_weight: Any = None) -> Any:
        error = y_pred - self.targets(y_true, y_pred)
        self.grad = backend.xp().sign(error) / error.size
        return self.reduce(abs(error).mean(axis=-1), sample_weight)


class Huber(Loss):
    """Squared error near the target, absolute error far from it (less swayed by outliers than MSE).

    h(e) = e^2 / 2                    where |e| <= delta
    h(e) = delta * (|e| - delta / 2)  elsewhere          e = p - y
    L = mean of h(e);   dL/dp = clip(e, -delta, delta) / (n k)
    """

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        if not isinstance(delta, (int, float, np.integer, np.floating)) or isinstance(delta, bool) \
                or not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"Huber: delta must be a finite number > 0, got {delta!r}")
        self.delta = float(delta)

    def forward(self, y_pred: Any, y_true: Any, from_logits: bool | None = None, sample_weight: Any = None) -> Any:
        xp, d = backend.xp(), self.delta
        error = y_pred - self.targets(y_true, y_pred)
        size = abs(error)
        self.grad = xp.clip(error, -d, d) / error.size
        return self.reduce(xp.where(size <= d, 0.5 * error * error, d * (size - 0.5 * d)).mean(axis=-1), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta": self.delta}


class BinaryCrossentropy(Loss):
    """Cross-entropy of k independent yes/no outputs against targets y in [0, 1].

    on probabilities p:  L = -mean(y log p + (1 - y) log(1 - p))   (p clipped to [eps, 1 - eps])
                         dL/dp = (p - y) / (p (1 - p)) / (n k)     (0 where clipped)
    on scores z (from_logits, or after a sigmoid layer):
                         L = mean(max(z, 0) - z y + log(1 + exp(-|z|)))   (the same, written so no exp overflows)
                         dL/dz = (sigmoid(z) - y) / (n k)
    label_smoothing s pulls the targets towards 1/2: y = y (1 - s) + s / 2.
    """

    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = _check_flag(self.name, from_logits)
        self.label_smoothing = _check_smoothing(self.name, label_smoothing)

    def check_targets(self, y: Any, n: int, width: int) -> None:
        super().check_targets(y, n, width)
        y = backend.to_numpy(y)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"{self.name}: targets must lie in [0, 1] (labels 0 and 1, or probabilities), "
                             f"got values from {y.min():g} to {y.max():g}")

    def fuses(self, activation: Any) -> bool:
        return activation is activations.sigmoid and not self.from_logits

    def forward(self, y_pred: Any, y_true: Any, from_logits: bool | None = None, sample_weight: Any = None) -> Any:
        xp = backend.xp()
        y = self.targets(y_true, y_pred) * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits if from_logits is None else from_logits:
            z = y_pred
            self.grad = (activations.sigmoid(z) - y) / z.size
            return self.reduce((xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-abs(z)))).mean(axis=-1), sample_weight)
        p = xp.clip(y_pred, EPSILON, 1 - EPSILON)
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)  # the clip has no gradient outside
        self.grad = (p - y) / (p * (1 - p)) * inside / p.size
        return self.reduce(-(y * xp.log(p) + (1 - y) * xp.log(1 - p)).mean(axis=-1), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot targets y of shape (n, classes).

    on probabilities p:  L = -1/n * sum(y * log(clip(p, eps, 1 - eps))),  dL/dp = -y / p / n  (0 where clipped)
    on scores z (from_logits, or after a softmax layer):
                         L = -1/n * sum(y * log_softmax(z)),              dL/dz = (softmax(z) - y) / n
    label_smoothing s spreads some certainty over all k classes: y = y (1 - s) + s / k.
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = _check_flag(self.name, from_logits)
        self.label_smoothing = _check_smoothing(self.name, label_smoothing)

    def fuses(self, activation: Any) -> bool:
        return activation is activations.softmax and not self.from_logits

    def check_targets(self, y: Any, n: int, classes: int) -> None:
        """Raise a clear error when y cannot be targets for n predictions over `classes` classes."""
        if y.ndim != 2 or y.shape[1] != classes:
            hint = " (integer labels? use loss='sparse_categorical_crossentropy' or to_categorical)" if y.ndim == 1 else ""
            raise ValueError(f"{self.name}: expected one-hot targets of shape ({n}, {classes}), "
                             f"got {tuple(y.shape)}{hint}")
        _check_length(self.name, y, n)
        y = backend.to_numpy(y)
        if not np.all(np.isfinite(y)) or y.min(initial=0) < 0 or y.max(initial=0) > 1:
            raise ValueError(f"{self.name}: one-hot targets must lie in [0, 1], "
                             f"got values from {y.min():g} to {y.max():g}")
        sums = y.sum(axis=1, dtype=np.float64)
        off = np.flatnonzero(np.abs(sums - 1) > SUM_TOLERANCE)
        if off.size:  # all zeros, or several ones: the loss and accuracy would come out wrong
            raise ValueError(f"{self.name}: each target row must sum to 1 (a one-hot or smoothed distribution over "
                             f"the classes); {off.size} rows do not, row {off[0]} sums to {sums[off[0]]:g}")

    def one_hot(self, y: Any, classes: int, dtype: Any) -> Any:
        return backend.to_device(y, dtype)

    def forward(self, y_pred: Any, y_true: Any, from_logits: bool | None = None, sample_weight: Any = None) -> Any:
        """Mean loss over the batch (a 0-d array on the backend); remembers dL/dy_pred for backward."""
        y = self.one_hot(y_true, y_pred.shape[1], y_pred.dtype)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / y_pred.shape[1]
        xp, n = backend.xp(), y_pred.shape[0]
        if self.from_logits if from_logits is None else from_logits:
            if fast.softmax_cross_entropy and sample_weight is None:  # the same lines in one GPU kernel
                loss, self.grad = fast.softmax_cross_entropy(y_pred, y)
                return loss
            log_p = log_softmax(y_pred)
            self.grad = (xp.exp(log_p) - y) / n  # (softmax(z) - y) / n
            return self.reduce(-(y * log_p).sum(axis=1), sample_weight)
        p = xp.clip(y_pred, EPSILON, 1 - EPSILON)
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)  # the clip has no gradient outside
        self.grad = -y / p * inside / n
        return self.reduce(-(y * xp.log(p)).sum(axis=1), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy against integer labels of shape (n,) (or (n, 1)), values in 0..classes-1: the labels are
    made one-hot, then it is categorical_crossentropy. (label_smoothing is tinynet's addition; Keras 3's
    sparse loss has none.)"""

    name = "sparse_categorical_crossentropy"
    integer_targets = True

    def check_targets(self, y: Any, n: int, classes: int) -> None:
        if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            raise ValueError(f"{self.name}: expected integer labels of shape ({n},), got {tuple(y.shape)}"
                             + (" (one-hot targets? use loss='categorical_crossentropy')" if y.ndim == 2 else ""))
        _check_length(self.name, y, n)
        y = backend.to_numpy(y)
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{self.name}: labels must be whole numbers, got dtype {y.dtype} with non-integer values")
        low, high = y.min(initial=0), y.max(initial=0)
        if low < 0 or high >= classes:
            raise ValueError(f"{self.name}: labels must lie in 0..{classes - 1} for {classes} classes, "
                             f"got values from {low:g} to {high:g}")

    def one_hot(self, y: Any, classes: int, dtype: Any) -> Any:
        xp = backend.xp()
        labels = backend.to_device(y).reshape(-1).astype(xp.int64)
        return (labels[:, None] == xp.arange(classes)).astype(dtype)


def log_softmax(z: Any) -> Any:
    """log softmax(z) = z - max(z) - log(sum(exp(z - max(z)))) per row.

    Shifting by the row max keeps exp from overflowing, so scores of 1e4 are fine.
    """
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - backend.xp().log(backend.xp().exp(shifted).sum(axis=1, keepdims=True))


def _check_length(loss: str, y: Any, n: int) -> None:
    if y.shape[0] != n:
        raise ValueError(f"{loss}: x has {n} samples but y has {y.shape[0]}")


def _check_flag(loss: str, from_logits: Any) -> bool:
    if not isinstance(from_logits, (bool, np.bool_)):
        raise TypeError(f"{loss}: from_logits must be True or False, got {from_logits!r}")
    return bool(from_logits)


def _check_smoothing(loss: str, label_smoothing: Any) -> float:
    if not isinstance(label_smoothing, (int, float, np.integer, np.floating)) or isinstance(label_smoothing, bool) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{loss}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy)}
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
           **{cls.__name__: name for name, cls in LOSSES.items()}}


def get(loss: str | Loss) -> Loss:
    """A loss instance from its name (as in Keras: "mse", "binary_crossentropy", "MeanSquaredError", ...)
    or an instance (your own Loss subclass too)."""
    if isinstance(loss, Loss):
        return loss
    valid = ", ".join(list(LOSSES) + ["mse", "mae"])
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name ({valid}) or a tinynet.losses.Loss instance, got {type(loss).__name__}")
    name = ALIASES.get(loss, loss)
    if name not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses are {valid}")
    return LOSSES[name]()


def from_config(config: dict[str, Any]) -> Loss:
    """The loss a get_config() described, looked up by its name (your own Loss class through load_model's
    custom_objects)."""
    cls = LOSSES.get(config.get("name")) or saving.get_custom_object(config.get("name"))
    if not (isinstance(cls, type) and issubclass(cls, Loss)):
        raise ValueError(f"unknown loss {config.get('name')!r} in the configuration; known are {', '.join(LOSSES)} "
                         f"(pass your own Loss class as load_model(..., custom_objects={{'Name': Class}}))")
    return cls.from_config(config)
