"""Metrics reported next to the loss. Only accuracy, as in the tutorial."""
from __future__ import annotations

from typing import Any

from tinynet import backend

METRICS = ("accuracy",)
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
