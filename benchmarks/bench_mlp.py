"""Train the tutorial MLP on MNIST with tinynet, PyTorch and the bare matrix products; print one table.

The network is the Keras tutorial's: 784-512-512-10, ReLU, Dropout 0.2, softmax with
categorical cross-entropy, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7), batch 128.

Rows (each in its own worker process, so thread variables and peak RSS are per row):
    tinynet-numpy   tinynet's fit() on the CPU
    tinynet-cupy    tinynet's fit() on the GPU (CuPy), step replayed as a CUDA graph   needs CuPy and a GPU
    tinynet-cupy-eager  the same with CUDA graphs off: every kernel launched from Python
    tinynet-numpy-textbook  tinynet-numpy with the engine's fast twins off (TINYNET_FAST=0)   not run by default
    before-numpy    tinynet-numpy from another checkout (--before PATH): a change side by side   not run by default
    torch-cpu       the same network in eager PyTorch, manual batching     needs torch
    torch-cuda      the same on the GPU                                    needs torch with CUDA
    floor-numpy     only the step's eight matrix products, x 469 steps: the matmul floor
    floor-cupy      the same through CuPy, synchronised                    needs CuPy and a GPU

    python benchmarks/bench_mlp.py                    # 1 thread and all threads, real MNIST
    python benchmarks/bench_mlp.py --threads 1 --epochs 5 --rows tinynet-numpy,floor-numpy
    python benchmarks/bench_mlp.py --synthetic        # random data of MNIST's shapes
    git worktree add /tmp/before HEAD~1 && python benchmarks/bench_mlp.py --threads 1 \
        --rows tinynet-numpy,before-numpy,floor-numpy --before /tmp/before     # before/after a change

Epochs of all rows of a table are interleaved (one epoch of each row in turn), so a slow
spell of a shared machine hits every row alike; medians are printed, raw times go to the JSON.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import common

BATCH = 128
N_TRAIN, N_TEST, N_FEATURES, N_CLASSES, HIDDEN = 60000, 10000, 784, 10, 512
STEPS = math.ceil(N_TRAIN / BATCH)  # 469: 468 full batches and one of 96 rows
DROPOUT = 0.2
EVAL_BATCH = 1024  # tinynet's evaluate() default; torch uses the same
DEFAULT_ROWS = ("tinynet-numpy", "torch-cpu", "floor-numpy", "tinynet-cupy", "tinynet-cupy-eager", "torch-cuda",
                "floor-cupy")
ROWS = DEFAULT_ROWS + ("tinynet-numpy-textbook", "before-numpy")
BASELINE = {"numpy": "tinynet-numpy", "numpy-textbook": "tinynet-numpy", "cpu": "tinynet-numpy",
            "cupy": "tinynet-cupy", "cupy-eager": "tinynet-cupy", "cuda": "tinynet-cupy"}


# =============================================================================================
# Worker side: one row, driven by "epoch" / "eval" / "finish" lines on stdin (common.serve_row).
# =============================================================================================
def load_mnist(data_dir: str | None, synthetic: bool) -> tuple[Any, Any, Any, Any]:
    """x as float32 in [0, 1] of shape (n, 784), y as int64 labels: train then test."""
    import numpy as np
    x_train, y_train, x_test, y_test = common.load_mnist_raw(data_dir, synthetic)

    def prepare(x: Any) -> Any:
        return x.reshape(len(x), N_FEATURES).astype(np.float32) / np.float32(255)

    return prepare(x_train), y_train, prepare(x_test), y_test


def build_tinynet_model() -> Any:
    import tinynet
    from tinynet.layers import Activation, Dense, Dropout
    return tinynet.Sequential([
        Dense(HIDDEN, input_shape=(N_FEATURES,)), Activation("relu"), Dropout(DROPOUT),
        Dense(HIDDEN), Activation("relu"), Dropout(DROPOUT),
        Dense(N_CLASSES), Activation("softmax")])


def build_torch_model(nn: Any) -> Any:
    return nn.Sequential(
        nn.Linear(N_FEATURES, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN, N_CLASSES))  # softmax is fused into cross_entropy, as in tinynet


class TinynetRow(common.TinynetRow):
    """tinynet's own fit() and evaluate() of the tutorial MLP; evaluates on the 10,000 test images."""

    def __init__(self, backend: str, data: tuple[Any, Any, Any, Any]) -> None:
        super().__init__(backend, data, build_tinynet_model, BATCH, EVAL_BATCH, N_CLASSES)


class FloorRow(common.FloorRow):
    """Only the eight matrix products of a training step, at the step's shapes, 469 times per "epoch".

    forward:  x@W1, h1@W2, h2@W3;  backward: dW3 = h2.T@d3, dx3 = d3@W3.T, dW2 = h1.T@d2,
    dx2 = d2@W2.T, dW1 = x.T@d1 (the first layer's dx is never needed). Outputs go to preallocated
    buffers so nothing but the products is timed: no step can be faster than this.
    """

    def __init__(self, backend: str) -> None:
        super().__init__(backend, [BATCH] * (N_TRAIN // BATCH) + ([N_TRAIN % BATCH] if N_TRAIN % BATCH else []))

    def make_buffers(self, rows: int) -> dict[str, Any]:
        sizes = {"x": (rows, N_FEATURES), "h1": (rows, HIDDEN), "h2": (rows, HIDDEN), "d1": (rows, HIDDEN),
                 "d2": (rows, HIDDEN), "d3": (rows, N_CLASSES), "W1": (N_FEATURES, HIDDEN),
                 "W2": (HIDDEN, HIDDEN), "W3": (HIDDEN, N_CLASSES)}
        outs = {"y1": (rows, HIDDEN), "y2": (rows, HIDDEN), "y3": (rows, N_CLASSES), "dx3": (rows, HIDDEN),
                "dx2": (rows, HIDDEN), "dW1": sizes["W1"], "dW2": sizes["W2"], "dW3": sizes["W3"]}
        return self.arrays(sizes, outs)

    def products(self, b: dict[str, Any]) -> None:
        mm = self.xp.matmul
        mm(b["x"], b["W1"], out=b["y1"])
        mm(b["h1"], b["W2"], out=b["y2"])
        mm(b["h2"], b["W3"], out=b["y3"])
        mm(b["h2"].T, b["d3"], out=b["dW3"])
        mm(b["d3"], b["W3"].T, out=b["dx3"])
        mm(b["h1"].T, b["d2"], out=b["dW2"])
        mm(b["d2"], b["W2"].T, out=b["dx2"])
        mm(b["x"].T, b["d1"], out=b["dW1"])


def make_row(name: str, args: argparse.Namespace) -> Any:
    kind, backend = name.split("-", 1)
    if kind == "floor":
        return FloorRow(backend)
    data = load_mnist(args.data_dir, args.synthetic)
    if kind in ("tinynet", "before"):
        return TinynetRow(backend, data)
    return common.TorchRow(backend, args.worker_threads, data, build_torch_model, BATCH, EVAL_BATCH)


def worker_main(args: argparse.Namespace) -> None:
    common.use_checkout(args.before if args.worker.startswith("before-") else None)
    common.serve_row(lambda: make_row(args.worker, args))


# =============================================================================================
# Parent side: common.run_benchmark decides the rows, drives the workers in interleaved rounds,
# prints and saves.
# =============================================================================================
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_row_options(parser, ROWS, DEFAULT_ROWS)
    parser.add_argument("--before", default=None,
                        help="another tinynet checkout (e.g. a git worktree of the previous commit) for the before-numpy row")
    return common.parse_row_args(parser, argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        common.serve_worker(worker_main, args)
        return
    settings = {"batch": BATCH, "steps_per_epoch": STEPS, "samples_per_epoch": N_TRAIN,
                "eval_set": f"test, {N_TEST} images"}
    common.run_benchmark(Path(__file__).resolve(), args, ROWS, settings, BASELINE, "bench")


if __name__ == "__main__":
    main()
