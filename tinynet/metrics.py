"""Metrics: accuracy, reported next to the loss as in the tutorial, and the confusion matrix's counts."""
from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import backend

METRICS = ("accuracy",)
MAX_CLASSES = 1000  # a confusion table of more is not for reading (and 10^5 classes would be 75 GB)
ALIASES = {"acc": "accuracy", "categorical_accuracy": "accuracy", "sparse_categorical_accuracy": "accuracy"}


def get(names: list[str] | tuple[str, ...] | None) -> list[str]:
    """Canonical metric names for `compile(metrics=...)`; unknown names raise with the valid list."""
    if names is None:
        return []
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"metrics must be a list of names such as ['accuracy'], got {names!r}")
    result = []
    for name in names:
        canonical = ALIASES.get(name, name)
        if canonical not in METRICS:
            raise ValueError(f"unknown metric {name!r}; valid metrics are {', '.join(METRICS + tuple(ALIASES))}")
        result.append(canonical)
    return result


def count_correct(probs: Any, one_hot: Any) -> Any:
    """How many rows have their highest score at the true class (a 0-d array on the backend)."""
    xp = backend.xp()
    return (xp.argmax(probs, axis=1) == xp.argmax(one_hot, axis=1)).sum()


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
