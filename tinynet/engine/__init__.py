"""The engine: code that exists only for speed, bound once per backend.

Every idea tinynet teaches is written out in the file that names it (`layers.py`,
`losses.py`, `optimizers.py`) as plain array code under a docstring that states it.
Some of those lines have a *fast twin* here: the same math, done faster on one backend.

    engine/cpu.py     NumPy tricks: products written straight into the gradient vector,
                      dropout masks from raw random bits, Adam in cache-sized pieces,
                      flat vectors in huge pages; for convnets, im2col in long copies,
                      Conv2D's dx one kernel offset at a time, and pooling on views of
                      the image where its windows do not overlap (no im2col at all)
    engine/cuda.py    fused CuPy kernels: one launch each for Adam, SGD, softmax +
                      cross-entropy, ReLU's gradient, a dropout mask, and the training
                      step's bookkeeping on the device
    engine/graphs.py  the training step recorded as CUDA graphs and replayed

A concept calls its twin in one visible line, with its textbook lines right beside it:

    if fast.relu_backward:
        return fast.relu_backward(dy, self.y)
    return dy * (self.y > 0)

`fast` holds the twins of the active backend, None where that backend has none. It is
bound when the backend is set, as `xp` is, so no function asks "NumPy or CuPy?" itself.
`TINYNET_FAST=0` in the environment, or `set_fast(False)`, sets every twin to None: only
the textbook lines run, and a debugger steps through exactly the docstrings' math.
tests/test_engine.py (the convnet's: tests/test_engine_cnn.py) checks every twin against the textbook
lines it replaces.
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Optional

Twin = Optional[Callable[..., Any]]


class Twins:
    """The fast twins of the active backend; each is None where that backend has none, or with TINYNET_FAST=0.

    Beside each, the textbook code it stands in for, and where that code lives.
    """

    dense_forward: Twin = None          # layers.Dense.forward:     y = x @ W + b
    dense_backward: Twin = None         # layers.Dense.backward:    dW = x.T @ dy, db = sum(dy), dx = dy @ W.T
    relu_backward: Twin = None          # layers.ReLU.backward:     dx = dy * (y > 0)
    dropout_mask: Twin = None           # layers.Dropout.draw_mask: (uniform >= rate) / (1 - rate)
    im2col: Twin = None                 # convolution.im2col:       cols[n, i, j, p, q, c] = x[n, i*sh + p, j*sw + q, c]
    conv_input_gradient: Twin = None    # convolution.Conv2D.backward: dx = col2im(dz @ W.T)
    max_pool_forward: Twin = None       # pooling.MaxPooling2D.forward, windows side by side:  y = max of each window
    max_pool_backward: Twin = None      # pooling.MaxPooling2D.backward, the same:  dy to each window's first maximum
    avg_pool_forward: Twin = None       # pooling.AveragePooling2D.forward, the same:  y = sum of each window / ph*pw
    avg_pool_backward: Twin = None      # pooling.AveragePooling2D.backward, the same:  dx = dy / ph*pw at each pixel
    softmax_cross_entropy: Twin = None  # losses.CategoricalCrossentropy.forward with from_logits
    adam_update: Twin = None            # optimizers.Adam.update
    sgd_update: Twin = None             # optimizers.SGD.update
    zeros: Twin = None                  # xp.zeros for the flat parameter, gradient and state vectors
    take_rows: Twin = None              # training.Batches.gather:  out[:len(rows)] = x[rows]
    record_batch: Twin = None           # training.EpochTotals.add, without reading the loss on the host
    step_if: Twin = None                # training: `if ok: optimizer.step(...)`, decided on the device
    replayable: Twin = None             # training: the step function itself (CUDA graphs on the GPU)


fast = Twins()
_NAMES = tuple(name for name in vars(Twins) if not name.startswith("_"))
_state = {"backend": "numpy",
          "fast": os.environ.get("TINYNET_FAST", "1") != "0",
          "cuda_graphs": os.environ.get("TINYNET_CUDA_GRAPHS", "1") != "0"}


def bind(backend: str) -> None:
    """Point `fast` at the twins of `backend` ("numpy" or "cupy"); backend.set_backend calls this."""
    _state["backend"] = backend
    twins: dict[str, Twin] = dict.fromkeys(_NAMES)
    if _state["fast"]:
        # imported here, not at the top: engine.cuda needs CuPy, which only GPU machines have
        module = importlib.import_module("tinynet.engine." + ("cuda" if backend == "cupy" else "cpu"))
        twins.update({name: getattr(module, name) for name in _NAMES if hasattr(module, name)})
        if not _state["cuda_graphs"]:
            twins["replayable"] = None
    vars(fast).update(twins)


def set_fast(enabled: bool) -> None:
    """Run the fast twins (default) or, with False, only the textbook lines (also: TINYNET_FAST=0)."""
    _state["fast"] = bool(enabled)
    bind(_state["backend"])


def is_fast() -> bool:
    """Whether the fast twins are on."""
    return _state["fast"]


def set_cuda_graphs(enabled: bool) -> None:
    """Record fit()'s training step as CUDA graphs on the GPU (default), or launch every kernel from Python.

    Also settable with TINYNET_CUDA_GRAPHS=0/1. No effect on the CPU, or with the fast twins off.
    """
    _state["cuda_graphs"] = bool(enabled)
    bind(_state["backend"])
