"""Train Keras's simple MNIST convnet with tinynet, PyTorch and the bare matrix products; print one table.

The network is examples/mnist_cnn.py's (Keras's "simple MNIST convnet", 34,826 parameters):
Input 28x28x1 -> Conv2D 32 3x3 relu -> MaxPooling 2x2 -> Conv2D 64 3x3 relu -> MaxPooling 2x2
-> Flatten -> Dropout 0.5 -> Dense 10 softmax; categorical cross-entropy, Adam (lr 1e-3, betas
0.9/0.999, eps 1e-7), batch 128. One epoch is what fit(validation_split=0.1) trains on: the first
54,000 training images, 422 steps (421 x 128 + one batch of 112). The validation pass over the
last 6,000 images (in batches of 128, as fit validates) is timed apart, in the `val 6k s` column.

Rows (each in its own worker process, so thread variables and peak RSS are per row):
    tinynet-numpy   tinynet's fit() on the CPU (images channels last: NHWC)
    tinynet-cupy    tinynet's fit() on the GPU (CuPy)                      needs CuPy and a GPU
    tinynet-cupy-eager  the same with CUDA graphs off                      needs CuPy and a GPU
    tinynet-numpy-textbook  tinynet-numpy with the engine's fast twins off (TINYNET_FAST=0)   not run by default
    torch-cpu       the same network in eager PyTorch (NCHW), manual batching     needs torch
    torch-cuda      the same on the GPU                                    needs torch with CUDA
    floor-numpy     only the step's eight matrix products at tinynet's im2col shapes, x 422 steps
    floor-cupy      the same through CuPy, synchronised                    needs CuPy and a GPU

    python benchmarks/bench_cnn.py                    # 1 thread, real MNIST, every row this machine can run
    python benchmarks/bench_cnn.py --threads 1 --epochs 3 --rows tinynet-numpy,torch-cpu,floor-numpy
    python benchmarks/bench_cnn.py --synthetic --epochs 1 --steps 20     # a quick check of the script
    python benchmarks/profile_cnn.py                  # where tinynet's step spends its time, layer by layer

Epochs of all rows of a table are interleaved (one epoch of each row in turn), so a slow
spell of a shared machine hits every row alike; medians are printed, raw times go to the JSON.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable

import common

BATCH = 128
N_IMAGES, N_CLASSES = 60000, 10
VALIDATION_SPLIT = 0.1
N_TRAIN = int(math.floor(N_IMAGES * (1 - VALIDATION_SPLIT)))  # 54,000: fit trains on the first 90%
N_VAL = N_IMAGES - N_TRAIN                                     # 6,000: and validates on the last 10%
EVAL_BATCH = BATCH  # fit validates in batches of batch_size, as Keras; torch uses the same
DROPOUT = 0.5
DEFAULT_ROWS = ("tinynet-numpy", "torch-cpu", "floor-numpy", "tinynet-cupy", "tinynet-cupy-eager", "torch-cuda",
                "floor-cupy")
ROWS = DEFAULT_ROWS + ("tinynet-numpy-textbook",)
BASELINE = {"numpy": "tinynet-numpy", "numpy-textbook": "tinynet-numpy", "cpu": "tinynet-numpy",
            "cupy": "tinynet-cupy", "cupy-eager": "tinynet-cupy", "cuda": "tinynet-cupy"}

# The layers' shapes, as tinynet computes them (channels last, padding "valid", strides 1):
#   conv1: 28x28x1 -> 26x26x32, im2col cols (batch*26*26, 3*3*1)  @ W (9, 32)
#   pool1: 26x26x32 -> 13x13x32
#   conv2: 13x13x32 -> 11x11x64, im2col cols (batch*11*11, 3*3*32) @ W (288, 64)
#   pool2: 11x11x64 -> 5x5x64 (the last row and column are dropped)
#   dense: 1600 -> 10
KERNEL, FILTERS1, FILTERS2 = 3, 32, 64
SIDE1 = 28 - KERNEL + 1        # 26
SIDE2 = SIDE1 // 2 - KERNEL + 1  # 11
FLAT = (SIDE2 // 2) ** 2 * FILTERS2  # 1600
K1, K2 = KERNEL * KERNEL * 1, KERNEL * KERNEL * FILTERS1  # 9, 288


def steps_per_epoch(n_train: int) -> list[int]:
    """The batch size of each step of an epoch over n_train images: full batches, then the rest."""
    return [BATCH] * (n_train // BATCH) + ([n_train % BATCH] if n_train % BATCH else [])


def train_size(args: argparse.Namespace) -> int:
    """54,000, or --steps full batches of it for a quick check."""
    return N_TRAIN if not args.steps else min(N_TRAIN, args.steps * BATCH)


# =============================================================================================
# Worker side: one row, driven by "epoch" / "eval" / "finish" lines on stdin (common.serve_row).
# =============================================================================================
def load_data(args: argparse.Namespace, channels_first: bool) -> tuple[Any, Any, Any, Any]:
    """(x_train, y_train, x_val, y_val): the first 54,000 training images and the last 6,000, as
    fit(validation_split=0.1) splits them (before shuffling); float32 in [0, 1], (n, 28, 28, 1)
    channels last for tinynet, (n, 1, 28, 28) for torch; labels int64."""
    import numpy as np
    x, y, _, _ = common.load_mnist_raw(args.data_dir, args.synthetic)
    x = x.astype(np.float32) / np.float32(255)
    x = x[:, None, :, :] if channels_first else x[..., None]
    x, n_train = np.ascontiguousarray(x), train_size(args)
    return x[:n_train], y[:n_train], x[N_TRAIN:], y[N_TRAIN:]


def build_tinynet_model() -> Any:
    """examples/mnist_cnn.py's build_model()."""
    import tinynet
    from tinynet.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
    return tinynet.Sequential([
        Input(shape=(28, 28, 1)),
        Conv2D(FILTERS1, kernel_size=(KERNEL, KERNEL), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Conv2D(FILTERS2, kernel_size=(KERNEL, KERNEL), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Flatten(),
        Dropout(DROPOUT),
        Dense(N_CLASSES, activation="softmax"),
    ])


def build_torch_model(nn: Any) -> Any:
    """The same layers in NCHW; the softmax is fused into cross_entropy, as tinynet fuses it into its loss."""
    return nn.Sequential(
        nn.Conv2d(1, FILTERS1, KERNEL), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(FILTERS1, FILTERS2, KERNEL), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(FLAT, N_CLASSES))


class FloorRow(common.FloorRow):
    """Only the eight matrix products of a training step, at the shapes tinynet's layers compute them:

    forward:  z1 = cols1 @ W1          (batch*676, 9) @ (9, 32)        conv1, after im2col
              z2 = cols2 @ W2          (batch*121, 288) @ (288, 64)    conv2, after im2col
              z3 = h @ W3              (batch, 1600) @ (1600, 10)      dense
    backward: dW3 = h.T @ d3,  dh = d3 @ W3.T                          dense
              dW2 = cols2.T @ dz2,  dcols2 = dz2 @ W2.T                conv2 (dcols2 then goes to col2im)
              dW1 = cols1.T @ dz1                                      conv1 (the first layer: no dx)

    x 422 steps (421 of 128 images, one of 112). No im2col, col2im, pooling, ReLU, dropout, loss
    or Adam: no training step through that backend can be faster.
    """

    def __init__(self, backend: str, n_train: int) -> None:
        super().__init__(backend, steps_per_epoch(n_train))

    def make_buffers(self, rows: int) -> dict[str, Any]:
        p1, p2 = rows * SIDE1 * SIDE1, rows * SIDE2 * SIDE2
        inputs = {"cols1": (p1, K1), "W1": (K1, FILTERS1), "dz1": (p1, FILTERS1),
                  "cols2": (p2, K2), "W2": (K2, FILTERS2), "dz2": (p2, FILTERS2),
                  "h": (rows, FLAT), "W3": (FLAT, N_CLASSES), "d3": (rows, N_CLASSES)}
        outputs = {"z1": (p1, FILTERS1), "z2": (p2, FILTERS2), "z3": (rows, N_CLASSES),
                   "dW3": (FLAT, N_CLASSES), "dh": (rows, FLAT), "dW2": (K2, FILTERS2), "dcols2": (p2, K2),
                   "dW1": (K1, FILTERS1)}
        return self.arrays(inputs, outputs)

    def named_products(self, b: dict[str, Any]) -> list[tuple[str, Callable[[], Any]]]:
        """The step's products in the order a step computes them, each with the layer it belongs to."""
        mm = self.xp.matmul
        return [("conv1 forward   z1 = cols1 @ W1", lambda: mm(b["cols1"], b["W1"], out=b["z1"])),
                ("conv2 forward   z2 = cols2 @ W2", lambda: mm(b["cols2"], b["W2"], out=b["z2"])),
                ("dense forward   z3 = h @ W3", lambda: mm(b["h"], b["W3"], out=b["z3"])),
                ("dense backward  dW3 = h.T @ d3", lambda: mm(b["h"].T, b["d3"], out=b["dW3"])),
                ("dense backward  dh = d3 @ W3.T", lambda: mm(b["d3"], b["W3"].T, out=b["dh"])),
                ("conv2 backward  dW2 = cols2.T @ dz2", lambda: mm(b["cols2"].T, b["dz2"], out=b["dW2"])),
                ("conv2 backward  dcols2 = dz2 @ W2.T", lambda: mm(b["dz2"], b["W2"].T, out=b["dcols2"])),
                ("conv1 backward  dW1 = cols1.T @ dz1", lambda: mm(b["cols1"].T, b["dz1"], out=b["dW1"]))]

    def products(self, b: dict[str, Any]) -> None:
        for _, product in self.named_products(b):
            product()


class TinynetRow(common.TinynetRow):
    """tinynet's fit() of the convnet on the first 54,000 images; evaluate() on the last 6,000."""

    def __init__(self, backend: str, args: argparse.Namespace) -> None:
        super().__init__(backend, load_data(args, channels_first=False), build_tinynet_model, BATCH, EVAL_BATCH,
                         N_CLASSES)


def make_row(name: str, args: argparse.Namespace) -> Any:
    kind, backend = name.split("-", 1)
    if kind == "floor":
        return FloorRow(backend, train_size(args))
    if kind == "tinynet":
        return TinynetRow(backend, args)
    return common.TorchRow(backend, args.worker_threads, load_data(args, channels_first=True), build_torch_model,
                           BATCH, EVAL_BATCH)


def worker_main(args: argparse.Namespace) -> None:
    common.use_checkout()
    common.serve_row(lambda: make_row(args.worker, args))


# =============================================================================================
# Parent side: common.run_benchmark decides the rows, drives the workers in interleaved rounds,
# prints and saves.
# =============================================================================================
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_row_options(parser, ROWS, DEFAULT_ROWS, default_threads="1")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"train on the first STEPS batches only (default: all {len(steps_per_epoch(N_TRAIN))}); "
                             "for checking the script, not for results")
    return common.parse_row_args(parser, argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        common.serve_worker(worker_main, args)
        return
    n_train = train_size(args)
    settings = {"batch": BATCH, "steps_per_epoch": len(steps_per_epoch(n_train)), "samples_per_epoch": n_train,
                "eval_set": f"validation: the last {N_VAL} of the 60,000 training images (fit's validation_split="
                            f"{VALIDATION_SPLIT}), batch {EVAL_BATCH}", "model": "Keras's simple MNIST convnet"}
    common.run_benchmark(Path(__file__).resolve(), args, ROWS, settings, BASELINE, "bench-cnn",
                         eval_header="val 6k s", accuracy_header="val acc")


if __name__ == "__main__":
    main()
