"""CuPy kernels: the GPU twins of the NumPy code in backend.py.

Each kernel fuses several elementwise passes into one launch, so the data is
read from GPU memory once. Tests compare every kernel with its NumPy twin.
"""
from __future__ import annotations

from typing import Any

import cupy

_adam = cupy.ElementwiseKernel(
    "T g, T step, T beta_1, T beta_2, T epsilon",
    "T p, T m_sum, T v_sum",
    """
    m_sum = beta_1 * m_sum + g;
    v_sum = beta_2 * v_sum + g * g;
    p -= step * m_sum / (sqrt(v_sum) + epsilon);
    """,
    "tinynet_adam",
)


def adam_update(p: Any, g: Any, m_sum: Any, v_sum: Any, step: float, beta_1: float, beta_2: float,
                epsilon: float) -> None:
    """Twin of backend.adam_update: all five lines of the NumPy version in one pass over memory."""
    dtype = p.dtype.type
    _adam(g, dtype(step), dtype(beta_1), dtype(beta_2), dtype(epsilon), p, m_sum, v_sum)
