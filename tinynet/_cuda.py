"""CuPy kernels: the GPU twins of the NumPy code in backend.py.

Each kernel fuses several elementwise passes into one launch, so the data is
read from GPU memory once. Tests compare every kernel with its NumPy twin.
"""
from __future__ import annotations

import functools
from typing import Any

import cupy
import numpy as np

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


_relu_backward = cupy.ElementwiseKernel("T dy, T y", "T dx", "dx = y > 0 ? dy : (T)0", "tinynet_relu_backward")


def relu_backward(dy: Any, y: Any) -> Any:
    """Twin of backend.relu_backward: one pass instead of a compare and a multiply."""
    return _relu_backward(dy, y)


# splitmix64 of (seed + (i+1) * golden ratio): a counter-based generator, so every unit's bits
# depend only on the seed and its index, and no random state lives on the GPU.
_dropout_mask = cupy.ElementwiseKernel(
    "uint64 seed, uint32 threshold, T scale",
    "T mask",
    """
    unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    mask = (unsigned int)(z >> 48) >= threshold ? scale : (T)0;
    """,
    "tinynet_dropout_mask",
)


def dropout_mask(shape: tuple[int, ...], threshold: int, scale: float, dtype: Any, seed: int) -> Any:
    """Twin of backend.hashed_dropout_mask, drawn on the GPU in one launch."""
    dtype = np.dtype(dtype)
    mask = cupy.empty(shape, dtype=dtype)
    _dropout_mask(np.uint64(seed), np.uint32(threshold), dtype.type(scale), mask)
    return mask


_SOFTMAX_XENT = r"""
extern "C" __global__ void tinynet_softmax_xent(const T* z, const T* y, T* grad, T* row_loss, int n, int k) {
    int row = blockDim.x * blockIdx.x + threadIdx.x;
    if (row >= n) return;
    const T* zr = z + (long long)row * k;
    const T* yr = y + (long long)row * k;
    T* gr = grad + (long long)row * k;
    T top = zr[0];
    for (int j = 1; j < k; ++j) top = FMAX(top, zr[j]);
    T sum = 0;
    for (int j = 0; j < k; ++j) sum += EXP(zr[j] - top);
    T log_sum = LOG(sum), loss = 0;
    for (int j = 0; j < k; ++j) {
        T log_p = zr[j] - top - log_sum;
        loss -= yr[j] * log_p;
        gr[j] = (EXP(log_p) - yr[j]) / (T)n;
    }
    row_loss[row] = loss;
}
"""
_C_MATH = {np.dtype(np.float32): ("float", "expf", "logf", "fmaxf"),
           np.dtype(np.float64): ("double", "exp", "log", "fmax")}


@functools.lru_cache(maxsize=None)
def _softmax_xent_kernel(dtype: np.dtype) -> Any:
    ctype, exp, log, fmax = _C_MATH[dtype]
    header = f"typedef {ctype} T;\n#define EXP {exp}\n#define LOG {log}\n#define FMAX {fmax}\n"
    return cupy.RawKernel(header + _SOFTMAX_XENT, "tinynet_softmax_xent")


def softmax_cross_entropy(z: Any, y: Any) -> tuple[Any, Any]:
    """Twin of backend.softmax_cross_entropy: loss terms and gradient of a row in one thread."""
    z = cupy.ascontiguousarray(z)
    y = cupy.ascontiguousarray(y, dtype=z.dtype)
    n, k = z.shape
    grad, row_loss = cupy.empty_like(z), cupy.empty(n, dtype=z.dtype)
    threads = 128
    _softmax_xent_kernel(z.dtype)(((n + threads - 1) // threads,), (threads,),
                                  (z, y, grad, row_loss, np.int32(n), np.int32(k)))
    return row_loss.sum() / n, grad
