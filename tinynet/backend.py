"""Where arrays live: NumPy on the CPU or CuPy on an NVIDIA GPU.

This module is the only place that knows NumPy from CuPy. Layers, losses and
optimizers ask it for the array module (`xp()`) and write `xp.maximum(...)`,
`xp.exp(...)`, so the same code runs on both. Pick the backend with
`set_backend("numpy" | "cupy" | "auto")` or the environment variable
`TINYNET_BACKEND` (default "numpy").
"""
from __future__ import annotations

import contextlib
import math
import os
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np

BACKENDS = ("numpy", "cupy", "auto")
CUPY_INSTALL_HINT = (
    "install CuPy for your CUDA version, e.g. `pip install tinynet[cuda12]` "
    "(which pulls cupy-cuda12x), and make sure an NVIDIA GPU and driver are visible"
)

_name = "numpy"
_xp: ModuleType = np
_floatx = np.dtype(np.float32)
_rng = np.random.default_rng()


def _import_cupy() -> ModuleType:
    """Import CuPy and check it sees a GPU; one clear error otherwise."""
    try:
        import cupy
    except ImportError as err:
        raise ValueError(f"backend 'cupy' needs CuPy, which is not installed: {CUPY_INSTALL_HINT}") from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA raises its own error types when no driver is present
        raise ValueError(f"backend 'cupy': CuPy is installed but sees no CUDA device ({err}); {CUPY_INSTALL_HINT}") from err
    if count < 1:
        raise ValueError(f"backend 'cupy': CuPy is installed but sees no CUDA device; {CUPY_INSTALL_HINT}")
    return cupy


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
    except ValueError:
        return False
    return True


def set_backend(name: str) -> str:
    """Select "numpy", "cupy" or "auto" (cupy when it imports and sees a GPU). Returns the chosen name."""
    global _name, _xp
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends are {', '.join(BACKENDS)}")
    if name == "auto":
        name = "cupy" if cupy_available() else "numpy"
    _xp = _import_cupy() if name == "cupy" else np
    _name = name
    return name


def get_backend() -> str:
    """The name of the active backend: "numpy" or "cupy"."""
    return _name


def xp() -> ModuleType:
    """The array module of the active backend (numpy or cupy)."""
    return _xp


def floatx() -> np.dtype:
    """The float dtype new parameters and inputs get (float32 unless changed)."""
    return _floatx


def set_floatx(dtype: str | np.dtype) -> None:
    """Use "float32" (default, fast) or "float64" (gradient checks) for new arrays."""
    global _floatx
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"floatx must be float32 or float64, got {dtype}")
    _floatx = dtype


@contextlib.contextmanager
def using(backend: str | None = None, dtype: str | None = None) -> Iterator[None]:
    """Temporarily switch backend and/or float dtype (tests and gradcheck use this)."""
    old_name, old_dtype = _name, _floatx
    try:
        if backend is not None:
            set_backend(backend)
        if dtype is not None:
            set_floatx(dtype)
        yield
    finally:
        set_backend(old_name)
        set_floatx(old_dtype)


def set_seed(seed: int) -> None:
    """Seed every random choice tinynet makes (initial weights, dropout, shuffling)."""
    global _rng
    _rng = np.random.default_rng(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with a fresh generator seeded with `seed`, then restore the old one.

    Entering twice with the same seed replays the same random numbers (gradcheck
    relies on this to see the same dropout mask in every forward pass).
    """
    global _rng
    old = _rng
    _rng = np.random.default_rng(seed)
    try:
        yield
    finally:
        _rng = old


def rng() -> np.random.Generator:
    """The global host-side random generator (weights are drawn on the host, then moved)."""
    return _rng


def make_rng(seed: int | None) -> np.random.Generator:
    """A private generator for `seed`, or the global one when seed is None."""
    return _rng if seed is None else np.random.default_rng(seed)


def to_device(a: Any, dtype: Any = None) -> Any:
    """Move `a` to the active backend (no copy when it is already there with that dtype)."""
    return _xp.asarray(a, dtype=dtype)


def to_numpy(a: Any) -> np.ndarray:
    """Bring an array back to the host as a NumPy array."""
    if _name == "cupy" and isinstance(a, _xp.ndarray):
        return _xp.asnumpy(a)
    return np.asarray(a)


def dropout_mask(shape: tuple[int, ...], rate: float, gen: np.random.Generator) -> Any:
    """A float mask of 0 and 1/(1-rate): keep each unit with probability 1 - rate.

    Each unit gets 16 random bits, compared with rate * 65536; `rate` is thus
    rounded to a multiple of 1/65536, and the scale uses the rounded value, so
    the mean stays exact. On the CPU the bits come straight from the
    generator's raw 64-bit output (three times cheaper than float32 uniforms).
    On the GPU one kernel hashes a seed drawn from `gen` with each unit's index
    (see hashed_dropout_mask, its NumPy twin), so seeds work on both backends;
    inside a CUDA graph the seed is fixed when the step is recorded, and a
    counter in GPU memory, advanced at every replay, gives each step fresh masks.
    """
    threshold = min(round(rate * 65536), 65535)  # a rate just below 1 still keeps something
    scale = 1.0 / (1.0 - threshold / 65536)
    if _name == "cupy":
        from tinynet import _cuda
        return _cuda.dropout_mask(shape, threshold, scale, _floatx, seed=int(gen.integers(2**63)))
    size = int(np.prod(shape))
    raw = gen.bit_generator.random_raw(-(-size // 4))  # 4 units per 64-bit word
    bits = raw.view(np.uint16)[:size].reshape(shape)
    return (bits >= threshold).astype(_floatx) * _floatx.type(scale)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The output function of splitmix64: a bijection of 64-bit integers that scrambles every bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hashed_dropout_mask(shape: tuple[int, ...], threshold: int, scale: float, dtype: Any, seed: int,
                        counter: int = 0) -> np.ndarray:
    """NumPy twin of the GPU dropout kernel.

    key = splitmix64(seed + (counter + 1) * golden), number counter + 1 of the splitmix64 stream
    started at `seed`; the bits of unit i are the top 16 of splitmix64(key + (i + 1) * golden).
    """
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around, as it does in C
        key = _splitmix64(np.uint64(seed) + np.uint64(counter + 1) * _GOLDEN)
        z = _splitmix64(key + np.arange(1, int(np.prod(shape)) + 1, dtype=np.uint64) * _GOLDEN)
    return np.where((z >> np.uint64(48)) >= threshold, scale, 0).astype(dtype).reshape(shape)


def matmul(a: Any, b: Any, out: Any = None) -> Any:
    """a @ b, into `out` when given. Layers call this rather than `@` for the GPU's sake: CuPy
    refuses cuBLAS calls while a CUDA graph is being recorded, so there the product is run
    between the parts of the graph (see _cuda.CapturedStep)."""
    if _name == "cupy":
        from tinynet import _cuda
        return _cuda.matmul(a, b, out)
    return np.matmul(a, b, out=out)


def relu_backward(dy: Any, y: Any) -> Any:
    """dx = dy where the ReLU's output y > 0, else 0 (one fused kernel on the GPU)."""
    if _name == "cupy":
        from tinynet import _cuda
        return _cuda.relu_backward(dy, y)
    return dy * (y > 0)


def softmax_cross_entropy(z: Any, y: Any) -> tuple[Any, Any]:
    """Mean cross-entropy of softmax(z) against targets y, and its gradient (softmax(z) - y) / n.

    log softmax(z) = z - max(z) - log(sum(exp(z - max(z)))) per row: shifting by the
    row max keeps exp from overflowing, so scores of 1e4 are fine. On the GPU one
    kernel does all of it, a thread per row.
    """
    if _name == "cupy":
        from tinynet import _cuda
        return _cuda.softmax_cross_entropy(z, y)
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(y * log_p).sum() / n, (np.exp(log_p) - y) / n


def adam_update(p: Any, g: Any, m_sum: Any, v_sum: Any, t: Any, learning_rate: float, beta_1: float,
                beta_2: float, epsilon: float, apply: Any = True) -> None:
    """Adam step number `t` over flat vectors, in place, unless `apply` is false (see optimizers.Adam):

    step = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t) * (1 - beta_1) / sqrt(1 - beta_2)
    m_sum = beta_1 * m_sum + g;  v_sum = beta_2 * v_sum + g*g
    p -= step * m_sum / (sqrt(v_sum) + epsilon / sqrt(1 - beta_2))

    `t` and `apply` may live on the device: the GPU kernel reads them there, so the
    host never waits for them and a recorded CUDA graph sees their new values.
    """
    if _name == "cupy":
        from tinynet import _cuda
        _cuda.adam_update(p, g, m_sum, v_sum, t, learning_rate, beta_1, beta_2, epsilon, apply)
        return
    if not apply:
        return
    t = int(t)
    root = math.sqrt(1 - beta_2)
    step = learning_rate * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * (1 - beta_1) / root
    tmp = _scratch(p)  # one reused buffer: NumPy would otherwise allocate a temporary per operation
    m_sum *= beta_1
    m_sum += g
    np.multiply(g, g, out=tmp)
    v_sum *= beta_2
    v_sum += tmp
    np.sqrt(v_sum, out=tmp)
    tmp += epsilon / root
    np.divide(m_sum, tmp, out=tmp)
    tmp *= step
    p -= tmp


def sgd_update(p: Any, g: Any, velocity: Any, learning_rate: float, momentum: float, nesterov: bool,
               apply: Any = True) -> None:
    """One SGD step in place, unless `apply` is false (see optimizers.SGD):

    velocity = momentum * velocity - learning_rate * g
    p += velocity,  or with nesterov:  p += momentum * velocity - learning_rate * g
    """
    if _name == "cupy":
        from tinynet import _cuda
        _cuda.sgd_update(p, g, velocity, learning_rate, momentum, nesterov, apply)
        return
    if not apply:
        return
    velocity *= momentum
    velocity -= learning_rate * g
    if nesterov:
        p += momentum * velocity - learning_rate * g
    else:
        p += velocity


def record_batch(totals: Any, loss: Any, correct: Any, batch_size: int) -> Any:
    """Add one training batch to an epoch's running totals, which stay on the device; may its update be applied?

    totals = [loss_sum, correct_sum, good_batches, failed]. A batch is good when its loss is
    finite and no earlier batch failed; the first bad batch sets `failed`, and every later one
    is refused too, so the weights stay as they were before it. Returns that verdict as a 0-d
    bool array, which the optimizer step reads on the device (one kernel on the GPU): the
    host reads `totals` once per epoch instead of waiting for every batch's loss.
    """
    if _name == "cupy":
        from tinynet import _cuda
        return _cuda.record_batch(totals, loss, correct, batch_size)
    ok = bool(np.isfinite(loss)) and not totals[3]
    if ok:
        totals[:3] += (float(loss) * batch_size, float(correct), 1)
    else:
        totals[3] = 1
    return np.bool_(ok)


def take_rows(x: Any, rows: Any, out: Any) -> Any:
    """out[:] = x[rows]: gather a batch into a buffer that is reused for every batch."""
    if _name == "cupy":
        return _xp.take(x, rows, axis=0, out=out)
    return np.take(x, rows, axis=0, out=out, mode="clip")  # "clip" skips the bounds check that would copy


# ---- CUDA graphs ---------------------------------------------------------------------------
_cuda_graphs = os.environ.get("TINYNET_CUDA_GRAPHS", "1") != "0"


def set_cuda_graphs(enabled: bool) -> None:
    """Record fit()'s training step as a CUDA graph on the GPU (default) or launch every kernel from Python.

    Also settable with the environment variable TINYNET_CUDA_GRAPHS=0/1. No effect on the CPU.
    """
    global _cuda_graphs
    _cuda_graphs = bool(enabled)


def replayable(fn: Callable[..., None]) -> Callable[..., None]:
    """`fn` itself on the CPU (or with graphs off); on the GPU, a version that replays a CUDA graph of it.

    The GPU version runs fn once as usual (compiling its kernels and creating any state
    fn makes lazily), records the second call as CUDA graphs, and from then on replays
    them: a handful of launches instead of one per kernel. So fn must be given the same
    arrays at every call (their contents may change), must not read device values on
    the host, must do its matrix products with backend.matmul, and may only keep what it
    allocates until the next call. If the recording fails, a RuntimeWarning says why and
    the step runs without graphs from then on.
    """
    if _name == "cupy" and _cuda_graphs:
        from tinynet import _cuda
        return _cuda.CapturedStep(fn)
    return fn


_scratch_buffers: dict[tuple[tuple[int, ...], np.dtype], np.ndarray] = {}


def _scratch(like: np.ndarray) -> np.ndarray:
    key = (like.shape, like.dtype)
    if key not in _scratch_buffers:
        _scratch_buffers.clear()  # keep one buffer: a model uses one parameter size at a time
        _scratch_buffers[key] = np.empty_like(like)
    return _scratch_buffers[key]


set_backend(os.environ.get("TINYNET_BACKEND") or "numpy")
