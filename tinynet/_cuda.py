"""CuPy kernels: the GPU twins of the NumPy code in backend.py.

Each kernel fuses several elementwise passes into one launch, so the data is
read from GPU memory once. Tests compare every kernel with its NumPy twin.
"""
from __future__ import annotations

from typing import Any

import cupy

_adam = cupy.ElementwiseKernel(
    "T g, T alpha, T beta_1, T beta_2, T epsilon",
    "T p, T m, T v",
    """
    m += (1 - beta_1) * (g - m);
    v += (1 - beta_2) * (g * g - v);
    p -= alpha * m / (sqrt(v) + epsilon);
    """,
    "tinynet_adam",
)


def adam_update(p: Any, g: Any, m: Any, v: Any, alpha: float, beta_1: float, beta_2: float,
                epsilon: float) -> None:
    dtype = p.dtype.type
    _adam(g, dtype(alpha), dtype(beta_1), dtype(beta_2), dtype(epsilon), p, m, v)
