"""Metrics: numbers reported beside the loss (accuracy, mean errors), named as in Keras, and the confusion matrix.

Each metric is a function of the targets and the outputs giving one value per sample; fit and
evaluate add them up where the arrays live and report their mean over the data.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tinynet import backend, saving

MAX_CLASSES = 1000  # a confusion table of more is not for reading (and 10^5 classes would be 75 GB)


# ---- the metric functions: one value per sample, averaged over the data by fit and evaluate -------------
def categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1 where the highest output is at the true class of a one-hot target, else 0"""
    xp = backend.xp()
    return (xp.argmax(y_pred, axis=-1) == xp.argmax(y_true, axis=-1)).astype(y_pred.dtype)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1 where the highest output is at the integer label, else 0"""
    labels = y_true.reshape(-1)
    return (backend.xp().argmax(y_pred, axis=-1) == labels).astype(y_pred.dtype)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> Any:
    """1 where the true class of a one-hot target is among the k highest outputs: fewer than k outputs beat it"""
    xp = backend.xp()
    true_score = y_pred[xp.arange(y_pred.shape[0]), xp.argmax(y_true, axis=-1)]
    return ((y_pred > true_score[:, None]).sum(axis=-1) < k).astype(y_pred.dtype)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """The fraction of a sample's outputs on the right side of the threshold: mean((p > threshold) == y)"""
    decided = (y_pred > threshold).astype(y_pred.dtype)
    return (decided == y_true.reshape(y_pred.shape)).astype(y_pred.dtype).mean(axis=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    """mean over the outputs of (p - y)^2"""
    error = y_pred - y_true.reshape(y_pred.shape)
    return (error * error).mean(axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    """mean over the outputs of |p - y|"""
    return abs(y_pred - y_true.reshape(y_pred.shape)).mean(axis=-1)


FUNCTIONS: dict[str, Callable[[Any, Any], Any]] = {f.__name__: f for f in (
    categorical_accuracy, sparse_categorical_accuracy, top_k_categorical_accuracy, binary_accuracy,
    mean_squared_error, mean_absolute_error)}
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}
ON_SCORES = {categorical_accuracy, sparse_categorical_accuracy, top_k_categorical_accuracy}  # softmax keeps the order


class Metric:
    """A metric as compile keeps it: the name shown in the logs and the function giving one value per sample.

    `on_scores` is true where the value is the same on the scores z as on softmax(z) (the order of the
    outputs is all it reads), so when the loss took the softmax over, no softmax is computed for it.
    """

    def __init__(self, name: str, function: Callable[[Any, Any], Any]) -> None:
        self.name, self.function = name, function
        self.on_scores = function in ON_SCORES

    def __call__(self, y_true: Any, y_pred: Any) -> Any:
        return self.function(y_true, y_pred)

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {getattr(self.function, '__name__', self.function)})"


def accuracy_for(loss: Any, outputs: int | None) -> Callable[[Any, Any], Any]:
    """Which accuracy "accuracy" means, as Keras 3 decides: binary for one output, sparse for integer labels,
    categorical otherwise."""
    if outputs == 1:
        return binary_accuracy
    return sparse_categorical_accuracy if getattr(loss, "integer_targets", False) else categorical_accuracy


def get(identifiers: Any, loss: Any = None, outputs: int | None = None) -> list[Metric]:
    """The metrics for `compile(metrics=[...])`: names as in Keras (logged under the name given), or your own
    functions f(y_true, y_pred) returning one value per sample. Unknown names raise with the valid list."""
    if identifiers is None:
        return []
    if isinstance(identifiers, str) or not isinstance(identifiers, (list, tuple)):
        raise TypeError(f"metrics must be a list of names such as ['accuracy'] (or functions), got {identifiers!r}")
    return [_metric(identifier, loss, outputs) for identifier in identifiers]


def _metric(identifier: Any, loss: Any, outputs: int | None) -> Metric:
    if isinstance(identifier, Metric):
        return identifier
    if callable(identifier):
        return Metric(getattr(identifier, "__name__", "metric"), identifier)
    if identifier in ("accuracy", "acc"):
        return Metric(identifier, accuracy_for(loss, outputs))
    function = FUNCTIONS.get(ALIASES.get(identifier, identifier)) if isinstance(identifier, str) else None
    if function in (categorical_accuracy, top_k_categorical_accuracy) and getattr(loss, "integer_targets", False):
        raise ValueError(f"metric {identifier!r} reads one-hot targets, but the loss {loss.name} takes integer "
                         f"labels; use 'sparse_categorical_accuracy' (or 'accuracy')")
    custom = saving.get_custom_object(identifier) if isinstance(identifier, str) else None
    if function is None and callable(custom):  # a function of yours, named in load_model's custom_objects
        function = custom
    if function is None:
        valid = ", ".join(["accuracy", "acc"] + list(FUNCTIONS) + list(ALIASES))
        raise ValueError(f"unknown metric {identifier!r}; valid metrics are {valid}, or a function "
                         f"f(y_true, y_pred) returning one value per sample")
    return Metric(identifier, function)


def confusion_counts(truth: Any, predicted: Any, num_classes: int | None = None) -> np.ndarray:
    """counts[i, j] = how many samples of true class i were predicted as class j (on the host)."""
    truth = np.asarray(backend.to_numpy(truth)).reshape(-1)
    predicted = np.asarray(backend.to_numpy(predicted)).reshape(-1)
    if truth.shape != predicted.shape:
        raise ValueError(f"confusion_counts: {truth.size} true labels but {predicted.size} predictions")
    for name, labels in (("true labels", truth), ("predictions", predicted)):
        if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0):
            raise ValueError(f"confusion_counts: {name} must be class numbers 0, 1, 2, ..., got dtype {labels.dtype}"
                             + (f" with values from {labels.min()}" if labels.dtype.kind in "iuf" else ""))
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer)) or num_classes < 0):
        raise ValueError(f"confusion_counts: num_classes must be a whole number >= 0, got {num_classes!r}")
    truth, predicted = truth.astype(np.int64), predicted.astype(np.int64)  # uint8 labels would overflow below
    top = int(max(truth.max(initial=0), predicted.max(initial=0))) + 1 if truth.size else 0
    n = top if num_classes is None else int(num_classes)
    if top > n:
        raise ValueError(f"confusion_counts: class {top - 1} does not fit num_classes={n}")
    if n > MAX_CLASSES:
        raise ValueError(f"confusion_counts: {n} classes make a {n} x {n} table; at most {MAX_CLASSES} are drawn")
    return np.bincount(truth * n + predicted, minlength=n * n).reshape(n, n)
