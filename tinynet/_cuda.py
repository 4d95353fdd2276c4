"""CuPy kernels: the GPU twins of the NumPy code in backend.py.

Each kernel fuses several elementwise passes into one launch, so the data is
read from GPU memory once. Tests compare every kernel with its NumPy twin.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import cupy
import numpy as np

_adam = cupy.ElementwiseKernel(
    "T g, int64 t, float64 learning_rate, float64 beta_1, float64 beta_2, float64 epsilon, bool apply",
    "T p, T m_sum, T v_sum",
    """
    if (!apply) return;
    // the bias correction, from the step count in GPU memory (so a CUDA graph replay sees the new count)
    double root = sqrt(1.0 - beta_2);
    T step = learning_rate * sqrt(1.0 - pow(beta_2, (double)t)) / (1.0 - pow(beta_1, (double)t)) * (1.0 - beta_1) / root;
    m_sum = (T)beta_1 * m_sum + g;
    v_sum = (T)beta_2 * v_sum + g * g;
    p -= m_sum / (sqrt(v_sum) + (T)(epsilon / root)) * step;
    """,
    "tinynet_adam",
)


def adam_update(p: Any, g: Any, m_sum: Any, v_sum: Any, t: Any, learning_rate: float, beta_1: float,
                beta_2: float, epsilon: float, apply: Any) -> None:
    """Twin of backend.adam_update: all its passes over memory in one."""
    _adam(g, _int64(t), learning_rate, beta_1, beta_2, epsilon, _bool(apply), p, m_sum, v_sum)


_sgd = cupy.ElementwiseKernel(
    "T g, float64 learning_rate, float64 momentum, bool nesterov, bool apply",
    "T p, T velocity",
    """
    if (!apply) return;
    velocity = (T)momentum * velocity - (T)learning_rate * g;
    p += nesterov ? (T)momentum * velocity - (T)learning_rate * g : velocity;
    """,
    "tinynet_sgd",
)


def sgd_update(p: Any, g: Any, velocity: Any, learning_rate: float, momentum: float, nesterov: bool,
               apply: Any) -> None:
    """Twin of backend.sgd_update, in one pass."""
    _sgd(g, learning_rate, momentum, bool(nesterov), _bool(apply), p, velocity)


_record_batch = cupy.ElementwiseKernel(
    "T loss, int64 correct, float64 batch_size",
    "float64 loss_sum, float64 correct_sum, float64 good, float64 failed, bool ok",
    """
    ok = isfinite(loss) && failed == 0;
    if (ok) {
        loss_sum += loss * batch_size;
        correct_sum += correct;
        good += 1;
    } else {
        failed = 1;
    }
    """,
    "tinynet_record_batch",
)


def record_batch(totals: Any, loss: Any, correct: Any, batch_size: int) -> Any:
    """Twin of backend.record_batch: one tiny kernel, so the host never waits for the loss."""
    ok = cupy.empty((), dtype=bool)
    # a typed parameter: CuPy cannot infer a placeholder type from a bare scalar (0 without metrics)
    correct = correct.astype(np.int64, copy=False) if isinstance(correct, cupy.ndarray) else np.int64(correct)
    _record_batch(loss, correct, np.float64(batch_size), totals[0], totals[1], totals[2], totals[3], ok)
    return ok


def _int64(value: Any) -> Any:
    return value if isinstance(value, cupy.ndarray) else np.int64(value)


def _bool(value: Any) -> Any:
    return value if isinstance(value, cupy.ndarray) else np.bool_(value)


_relu_backward = cupy.ElementwiseKernel("T dy, T y", "T dx", "dx = y > 0 ? dy : (T)0", "tinynet_relu_backward")


def relu_backward(dy: Any, y: Any) -> Any:
    """Twin of backend.relu_backward: one pass instead of a compare and a multiply."""
    return _relu_backward(dy, y)


_SPLITMIX64 = """
__device__ unsigned long long tinynet_splitmix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
"""
# A counter-based generator: every unit's bits depend only on the seed, the counter and its
# index, so no random state lives on the GPU, and a graph replay gets new masks by a new counter.
_dropout_mask = cupy.ElementwiseKernel(
    "uint64 seed, uint64 counter, uint32 threshold, T scale",
    "T mask",
    """
    const unsigned long long golden = 0x9E3779B97F4A7C15ULL;
    unsigned long long key = tinynet_splitmix64(seed + (counter + 1) * golden);
    unsigned long long z = tinynet_splitmix64(key + (unsigned long long)(i + 1) * golden);
    mask = (unsigned int)(z >> 48) >= threshold ? scale : (T)0;
    """,
    "tinynet_dropout_mask",
    preamble=_SPLITMIX64,
)

# While a CapturedStep records, dropout masks read this counter, which the graph advances at every replay.
_replay_counter: Any = None


def dropout_mask(shape: tuple[int, ...], threshold: int, scale: float, dtype: Any, seed: int,
                 counter: Any = None) -> Any:
    """Twin of backend.hashed_dropout_mask, drawn on the GPU in one launch."""
    dtype = np.dtype(dtype)
    if counter is None:
        counter = np.uint64(0) if _replay_counter is None else _replay_counter
    mask = cupy.empty(shape, dtype=dtype)
    _dropout_mask(np.uint64(seed), counter, np.uint32(threshold), dtype.type(scale), mask)
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


def matmul(a: Any, b: Any, out: Any) -> Any:
    """Twin of backend.matmul; while a CapturedStep records, the product is cut out of the graph."""
    if _recording is not None:
        return _recording.record_matmul(a, b, out)
    return cupy.matmul(a, b, out=out)


_recording: CapturedStep | None = None  # the step being recorded, if any


class CapturedStep:
    """The GPU version of backend.replayable(fn): run fn once, record it as CUDA graphs, then replay.

    CuPy refuses cuBLAS calls while a stream is being captured, so the recording is cut
    at every matrix product: the step becomes graph, product, graph, product, ... graph,
    and a replay launches the graphs and calls cuBLAS for the products in between, all
    in order on the current stream. The recording runs on a side stream (CUDA cannot
    record the legacy default stream) and allocates from a memory pool of its own: the
    graphs keep using the addresses of the temporaries they allocated, so no ordinary
    array may ever be given that memory. All recordings share that pool and it is never
    freed, so no memory is returned to CUDA (which would spoil a recording) while one runs.
    """

    def __init__(self, fn: Callable[..., None]) -> None:
        self.fn = fn
        self.args: tuple[Any, ...] | None = None
        self.parts: list[Callable[[], Any]] | None = None  # graph launches and products, in order
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.counter = cupy.zeros((), dtype=np.uint64)

    def __call__(self, *args: Any) -> None:
        if self.args is None:
            self.args = args
            self._run_with_counter()  # compiles every kernel before the recording
            return
        if len(args) != len(self.args) or any(a is not b for a, b in zip(args, self.args)):
            raise ValueError("replayable step: a recorded CUDA graph must be given the same arrays at every call")
        if self.parts is None:
            try:
                self.parts = self._record()
            except Exception as err:  # noqa: BLE001 - a graph is only a speed-up: train on without one
                warnings.warn(f"CUDA graph: recording the training step failed ({type(err).__name__}: {err}); "
                              f"continuing without graphs (tinynet.backend.set_cuda_graphs(False) skips the attempt)",
                              RuntimeWarning, stacklevel=3)
                self.parts = [self._run_with_counter]
        for part in self.parts:
            part()

    def _run_with_counter(self) -> None:
        """fn(*args) with dropout masks keyed to self.counter, which moves on first (fresh masks every call)."""
        global _replay_counter
        _replay_counter = self.counter
        try:
            self.counter += np.uint64(1)
            self.fn(*self.args)
        finally:
            _replay_counter = None

    def _record(self) -> list[Callable[[], Any]]:
        global _recording
        self.parts = []
        with self.stream, cupy.cuda.using_allocator(_graph_pool().malloc):
            self.stream.begin_capture()
            _recording = self
            try:
                self._run_with_counter()
            except BaseException:
                _end_capture_quietly(self.stream)
                self.parts = None  # the next call records again rather than replaying half a step
                raise
            finally:
                _recording = None
            self.parts.append(self.stream.end_capture().launch)
        return self.parts

    def record_matmul(self, a: Any, b: Any, out: Any) -> Any:
        """Close the graph so far, note the product a @ b for replays, and open the next graph."""
        self.parts.append(self.stream.end_capture().launch)
        if out is None:  # from the recordings' pool: later graphs read it at this address
            out = cupy.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a.dtype, b.dtype))
        self.parts.append(functools.partial(cupy.matmul, a, b, out=out))
        self.stream.begin_capture()
        return out


@functools.lru_cache(maxsize=None)
def _graph_pool() -> Any:
    return cupy.cuda.MemoryPool()


def _end_capture_quietly(stream: Any) -> None:
    """Leave capture mode after a failure, keeping the original error rather than CUDA's follow-up one."""
    try:
        stream.end_capture()
    except Exception:  # noqa: BLE001 - the capture is already invalid; the caller re-raises the real error
        pass
