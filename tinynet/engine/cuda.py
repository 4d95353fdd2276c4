"""Fast twins for the GPU: fused CuPy kernels, each doing in one launch what its textbook lines do in several.

On a GPU every kernel launched from Python costs microseconds of host time, far more
than the arithmetic of a 128-row batch, so fewer launches is what makes a step fast.
The update kernels also read the step count and a "may this update be applied?" flag
in GPU memory, so the training step never waits for the host and can be recorded as
CUDA graphs (engine/graphs.py). tests/test_engine.py holds each twin to its textbook lines.
"""
from __future__ import annotations

import functools
from typing import Any

import cupy
import numpy as np

from tinynet.engine import graphs
from tinynet.engine.cpu import dropout_threshold

# ---- Dense: products that a CUDA-graph recording can cut out ------------------------------


def dense_forward(x: Any, W: Any, b: Any) -> Any:
    """Dense.forward's y = x @ W + b, the product through graphs.matmul and the bias added in place."""
    y = graphs.matmul(x, W)
    y += b
    return y


def dense_backward(x: Any, dy: Any, W: Any, dW: Any, db: Any, needs_input_grad: bool) -> Any:
    """Dense.backward with the products through graphs.matmul, written straight into the gradient vector."""
    graphs.matmul(x.T, dy, out=dW)
    cupy.sum(dy, axis=0, out=db)
    return graphs.matmul(dy, W.T) if needs_input_grad else None


# ---- ReLU, dropout, softmax + cross-entropy ---------------------------------------------------

_relu_backward = cupy.ElementwiseKernel("T dy, T y", "T dx", "dx = y > 0 ? dy : (T)0", "tinynet_relu_backward")


def relu_backward(dy: Any, y: Any) -> Any:
    """ReLU.backward's dy * (y > 0) in one pass instead of a compare and a multiply."""
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


def dropout_mask(shape: tuple[int, ...], rate: float, gen: np.random.Generator, dtype: Any,
                 counter: Any = None) -> Any:
    """Dropout.draw_mask in one launch: unit i keeps when the top 16 bits of a hash of (seed, counter, i) >= threshold.

    The seed is drawn from `gen` (so tinynet.set_seed and Dropout(seed=...) work as on the
    CPU, with other masks); inside a CapturedStep the counter is its replay counter.
    """
    threshold, scale = dropout_threshold(rate)
    dtype = np.dtype(dtype)
    if counter is None:
        counter = graphs.replay_counter()
    mask = cupy.empty(shape, dtype=dtype)
    _dropout_mask(np.uint64(gen.integers(2**63)), np.uint64(0) if counter is None else counter,
                  np.uint32(threshold), dtype.type(scale), mask)
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
    """The loss -sum(y * log_softmax(z)) / n and its gradient (softmax(z) - y) / n, a thread per row."""
    z = cupy.ascontiguousarray(z)
    y = cupy.ascontiguousarray(y, dtype=z.dtype)
    n, k = z.shape
    grad, row_loss = cupy.empty_like(z), cupy.empty(n, dtype=z.dtype)
    threads = 128
    _softmax_xent_kernel(z.dtype)(((n + threads - 1) // threads,), (threads,),
                                  (z, y, grad, row_loss, np.int32(n), np.int32(k)))
    return row_loss.sum() / n, grad


# ---- optimizers: one kernel over the flat vectors, the step count on the device ---------------------

_adam = cupy.ElementwiseKernel(
    "T g, int64 t, float64 learning_rate, float64 beta_1, float64 beta_2, float64 epsilon, bool ok",
    "T p, T m, T v",
    """
    if (!ok) return;
    // the bias correction, from the step count in GPU memory (so a CUDA graph replay sees the new count)
    T alpha = learning_rate * sqrt(1.0 - pow(beta_2, (double)t)) / (1.0 - pow(beta_1, (double)t));
    m += (T)(1.0 - beta_1) * (g - m);
    v += (T)(1.0 - beta_2) * (g * g - v);
    p -= alpha * m / (sqrt(v) + (T)epsilon);
    """,
    "tinynet_adam",
)

_sgd = cupy.ElementwiseKernel(
    "T g, float64 learning_rate, float64 momentum, bool nesterov, bool ok",
    "T p, T velocity",
    """
    if (!ok) return;
    velocity = (T)momentum * velocity - (T)learning_rate * g;
    p += nesterov ? (T)momentum * velocity - (T)learning_rate * g : velocity;
    """,
    "tinynet_sgd",
)

_count = cupy.ElementwiseKernel("bool ok", "int64 t", "t += ok ? 1 : 0", "tinynet_count_step")


def _launch_adam(opt: Any, slots: dict[str, Any], p: Any, g: Any, t: Any, ok: Any) -> None:
    _adam(g, t, opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon, ok, p, slots["m"], slots["v"])


def _launch_sgd(opt: Any, slots: dict[str, Any], p: Any, g: Any, t: Any, ok: Any) -> None:
    _sgd(g, opt.learning_rate, opt.momentum, bool(opt.nesterov), ok, p, slots["velocity"])


class FusedUpdate:
    """What a fused update kernel keeps besides the optimizer's own slots: the step count, in GPU memory.

    There the kernel can count a step, or skip it when the flag `ok` is false, and a CUDA
    graph replay can advance it, without the host knowing the count.
    """

    def __init__(self, optimizer: Any, launch: Any) -> None:
        self.optimizer, self.launch = optimizer, launch
        self.t = cupy.array(optimizer.iterations, dtype=np.int64)

    @property
    def iterations(self) -> int:
        return int(self.t)

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.t[...] = value

    def step(self, p: Any, g: Any, ok: Any) -> None:
        _count(ok, self.t)
        self.launch(self.optimizer, self.optimizer.slots, p, g, self.t, ok)


# The optimizers whose whole step can be one of these kernels: exactly Adam and SGD, and only when
# optimizer.only_its_rule() (a number for learning_rate, no clipping, no weight decay, no AMSGrad).
# Any other step (a class of your own, a subclass such as AdamW, a schedule, clipping) may do more
# than the kernel, so fit looks at its `ok` on the host and calls optimizer.step (see step_if).
_FUSED = {("tinynet.optimizers", "Adam"): _launch_adam, ("tinynet.optimizers", "SGD"): _launch_sgd}


def _form(optimizer: Any, launch: Any) -> FusedUpdate:
    form = optimizer.engine_form
    if not (isinstance(form, FusedUpdate) and form.launch is launch):
        form = optimizer.engine_form = FusedUpdate(optimizer, launch)
    return form


@functools.lru_cache(maxsize=None)
def _always(device: int) -> Any:
    """A flag that is always true, for updates outside fit's guarded step."""
    return cupy.ones((), dtype=bool)


def adam_update(optimizer: Any, p: Any, g: Any) -> None:
    """Adam.update's lines in one kernel, its bias correction computed from the step count on the GPU."""
    _form(optimizer, _launch_adam).step(p, g, _always(cupy.cuda.Device().id))


def sgd_update(optimizer: Any, p: Any, g: Any) -> None:
    """SGD.update's lines in one kernel."""
    _form(optimizer, _launch_sgd).step(p, g, _always(cupy.cuda.Device().id))


def fuses(optimizer: Any) -> bool:
    """Whether the optimizer's whole step is one of the kernels above, which read `ok` on the device."""
    launch = _FUSED.get((type(optimizer).__module__, type(optimizer).__qualname__))
    return launch is not None and optimizer.only_its_rule()


def replayable(fn: Any, optimizer: Any) -> Any:
    """fit's step recorded as CUDA graphs (graphs.CapturedStep), where that can work: only when the optimizer
    step is a fused kernel (any other reads `ok` on the host, which a recording cannot), and recorded
    afresh whenever the optimizer's settings change (a new learning rate between epochs: the recording
    holds the old one as a constant)."""
    return graphs.CapturedStep(fn, settings=optimizer.get_config) if fuses(optimizer) else fn


def step_if(ok: Any, optimizer: Any, params: Any, grads: Any) -> None:
    """`if ok: optimizer.step(params, grads)` with `ok` in GPU memory, decided there for plain Adam and SGD.

    Their kernels read `ok` themselves, so the host never waits (and the step can be recorded
    as a CUDA graph); any other optimizer's step, or one that does more than its rule
    (not optimizer.only_its_rule()), is taken after looking at `ok` on the host.
    """
    if not fuses(optimizer):
        if bool(ok):
            optimizer.step(params, grads)
        return
    if not optimizer.is_built_for(params):
        optimizer.build(params)
    _form(optimizer, _FUSED[(type(optimizer).__module__, type(optimizer).__qualname__)]).step(params, grads, ok)


# ---- fit's bookkeeping ---------------------------------------------------------------------------------

_record_batch = cupy.ElementwiseKernel(
    "T loss, float64 batch_size",
    "float64 loss_sum, float64 good_batches, float64 failed, bool ok",
    """
    ok = isfinite(loss) && failed == 0;
    if (ok) {
        loss_sum += loss * batch_size;
        good_batches += 1;
    } else {
        failed = 1;
    }
    """,
    "tinynet_record_batch",
)


def record_batch(totals: Any, loss: Any, metric_sums: Any, batch_size: int) -> Any:
    """EpochTotals.add in one tiny kernel (and one for the metrics), so the host never waits for the loss;
    returns `ok` on the GPU."""
    ok = cupy.empty((), dtype=bool)
    _record_batch(loss, np.float64(batch_size), totals.loss_sum, totals.good_batches, totals.failed, ok)
    if metric_sums.size:
        totals.metric_sums += metric_sums * ok  # `if ok:` as arithmetic: nothing is read back to the host
    return ok


def take_rows(x: Any, rows: Any, out: Any) -> Any:
    """out[...] = x[rows] without the temporary x[rows]."""
    return cupy.take(x, rows, axis=0, out=out)

