"""Small helpers from Keras's utils."""
from __future__ import annotations

from typing import Any

import numpy as np

MAX_ELEMENTS = 1 << 31  # a one-hot matrix larger than this is a mistake, not a data set (8 GiB of float32)


def to_categorical(y: Any, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot encode integer labels: 5 -> [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]. Shape (n,) -> (n, num_classes)."""
    try:
        y = np.asarray(y)
    except ValueError as err:  # a ragged list
        raise ValueError(f"to_categorical: labels must be a flat list or array of whole numbers ({err})") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"to_categorical: expected labels of shape (n,), got {y.shape}")
    if y.dtype.kind not in "biuf" or (y.size and not (np.all(np.isfinite(y)) and np.all(y == np.round(y)))):
        raise ValueError(f"to_categorical: labels must be whole numbers, got dtype {y.dtype}"
                         + (f" with values such as {float(y[~(np.isfinite(y) & (y == np.round(y)))][0])!r}"
                            if y.dtype.kind == "f" else ""))
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool)
                                    or num_classes < 0):
        raise ValueError(f"to_categorical: num_classes must be a whole number >= 0, got {num_classes!r}")
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {y.min()}")
    top = int(y.max()) + 1 if y.size else 0
    num_classes = top if num_classes is None else int(num_classes)
    if top > num_classes:
        raise ValueError(f"to_categorical: label {top - 1} does not fit num_classes={num_classes}")
    if y.shape[0] * num_classes > MAX_ELEMENTS:
        raise ValueError(f"to_categorical: {y.shape[0]} labels x {num_classes} classes would be "
                         f"{y.shape[0] * num_classes} numbers, more than the {MAX_ELEMENTS} allowed")
    one_hot = np.zeros((y.shape[0], num_classes), dtype=dtype)
    one_hot[np.arange(y.shape[0]), y.astype(np.int64)] = 1
    return one_hot
