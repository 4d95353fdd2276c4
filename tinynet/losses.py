"""Cross-entropy losses, with the fused softmax-cross-entropy gradient.

For probabilities p (n samples, k classes) and one-hot targets y:
    L = -1/n * sum_i sum_k y_ik * log p_ik

When the network ends in softmax, p = softmax(z) and the gradient with respect
to the scores z collapses to the famous, numerically stable
    dL/dz = (p - y) / n
so the model hands the scores z to `forward(..., from_logits=True)` and skips
the softmax's own backward pass. log p is then computed as z - logsumexp(z),
which stays finite for scores as large as 1e4.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import backend
from tinynet.engine import fast

EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] so log never sees 0
SUM_TOLERANCE = 1e-3  # how far a target row may sum from 1 (float32 rounding, label smoothing stay inside)


class CategoricalCrossentropy:
    """Cross-entropy against one-hot targets y of shape (n, classes).

    on probabilities p:  L = -1/n * sum(y * log(clip(p, eps, 1 - eps))),  dL/dp = -y / p / n  (0 where clipped)
    on scores z (from_logits, or after a softmax layer):
                         L = -1/n * sum(y * log_softmax(z)),              dL/dz = (softmax(z) - y) / n
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"{self.name}: from_logits must be True or False, got {from_logits!r}")
        self.from_logits = bool(from_logits)

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

    def one_hot(self, y: Any, classes: int) -> Any:
        return backend.to_device(y, backend.floatx())

    def forward(self, y_pred: Any, y_true: Any, from_logits: bool | None = None) -> Any:
        """Mean loss over the batch (a 0-d array on the backend); remembers dL/dy_pred for backward."""
        y = self.target = self.one_hot(y_true, y_pred.shape[1])
        xp, n = backend.xp(), y_pred.shape[0]
        if self.from_logits if from_logits is None else from_logits:
            if fast.softmax_cross_entropy:  # the same lines in one GPU kernel
                loss, self.grad = fast.softmax_cross_entropy(y_pred, y)
                return loss
            log_p = log_softmax(y_pred)
            self.grad = (xp.exp(log_p) - y) / n  # (softmax(z) - y) / n
            return -(y * log_p).sum() / n
        p = xp.clip(y_pred, EPSILON, 1 - EPSILON)
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)  # the clip has no gradient outside
        self.grad = -y / p * inside / n
        return -(y * xp.log(p)).sum() / n

    def backward(self) -> Any:
        return self.grad

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CategoricalCrossentropy:
        return cls(**{key: value for key, value in config.items() if key != "name"})


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy against integer labels of shape (n,) (or (n, 1)), values in 0..classes-1."""

    name = "sparse_categorical_crossentropy"

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

    def one_hot(self, y: Any, classes: int) -> Any:
        xp = backend.xp()
        labels = backend.to_device(y).reshape(-1).astype(xp.int64)
        return (labels[:, None] == xp.arange(classes)).astype(backend.floatx())


def log_softmax(z: Any) -> Any:
    """log softmax(z) = z - max(z) - log(sum(exp(z - max(z)))) per row.

    Shifting by the row max keeps exp from overflowing, so scores of 1e4 are fine.
    """
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - backend.xp().log(backend.xp().exp(shifted).sum(axis=1, keepdims=True))


def _check_length(loss: str, y: Any, n: int) -> None:
    if y.shape[0] != n:
        raise ValueError(f"{loss}: x has {n} samples but y has {y.shape[0]}")


LOSSES = {cls.name: cls for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy)}


def get(loss: str | CategoricalCrossentropy) -> CategoricalCrossentropy:
    """A loss instance from its name (as in Keras) or an instance."""
    if isinstance(loss, CategoricalCrossentropy):
        return loss
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name ({', '.join(LOSSES)}) or a loss instance, got {type(loss).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses are {', '.join(LOSSES)}")
    return LOSSES[loss]()


def from_config(config: dict[str, Any]) -> CategoricalCrossentropy:
    """The loss a get_config() described, looked up by its name."""
    return LOSSES[config["name"]].from_config(config)
