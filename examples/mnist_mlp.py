"""MNIST handwritten digit recognition with tinynet: the classic Keras tutorial, step by step.

A 784-512-512-10 multilayer perceptron with ReLU, Dropout 0.2 and softmax, trained with
categorical cross-entropy and Adam, batch 128, 20 epochs. Every forward and backward pass
it runs is written out by hand in the tinynet package.

    python examples/mnist_mlp.py                       # the whole tutorial, CPU
    python examples/mnist_mlp.py --epochs 1 --backend cupy

Figures (PNG) and the trained model go to --out (default results/).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tinynet
from tinynet import Sequential, load_model
from tinynet.datasets import mnist
from tinynet.layers import Activation, Dense, Dropout
from tinynet.utils import to_categorical


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def shipped_data_dir() -> str | None:
    """The repository's copy of MNIST beside this example, unless $TINYNET_DATA names another folder.

    tinynet finds that copy by itself only when it is imported from the checkout; after
    `pip install .` it is imported from site-packages, so the example points at it.
    """
    shipped = Path(__file__).resolve().parents[1] / "data" / "mnist"
    return None if os.environ.get("TINYNET_DATA") or not shipped.is_dir() else str(shipped)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--backend", choices=tinynet.backend.BACKENDS, default="numpy")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four MNIST files (default: $TINYNET_DATA, else the repository's "
                             "data/mnist beside this example, else ~/.cache/tinynet/mnist)")
    parser.add_argument("--out", default="results", help="folder for figures and the saved model")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def load_pyplot() -> Any:
    """matplotlib's pyplot with a file-only backend, or None (figures skipped) when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: figures are skipped (pip install tinynet[plots])")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(plt: Any, fig: Any, out: str, name: str) -> None:
    path = os.path.join(out, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"Saved figure {path}")


def plot_examples(plt: Any, images: np.ndarray, labels: np.ndarray, out: str) -> None:
    fig, axes = plt.subplots(3, 3, figsize=(6, 6))
    for ax, image, label in zip(axes.flat, images, labels):
        ax.imshow(image, cmap="gray", interpolation="none")
        ax.set_title(f"Digit: {label}")
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(plt, fig, out, "examples.png")


def plot_pixel_distribution(plt: Any, image: np.ndarray, label: int, out: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.imshow(image, cmap="gray", interpolation="none")
    left.set_title(f"Digit: {label}")
    left.set_axis_off()
    right.hist(image.reshape(-1), bins=32, range=(0, 255))
    right.set_title("Pixel value distribution")
    right.set_xlabel("pixel value (0 = background, 255 = ink)")
    right.set_ylabel("number of pixels")
    fig.tight_layout()
    save_figure(plt, fig, out, "pixel_distribution.png")


def plot_learning_curves(plt: Any, history: dict[str, list[float]], out: str) -> None:
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for ax, metric in ((top, "accuracy"), (bottom, "loss")):
        ax.plot(epochs, history[metric], "o-", label="train")
        ax.plot(epochs, history["val_" + metric], "o-", label="test")
        ax.set_title(f"model {metric}")
        ax.set_ylabel(metric)
        ax.legend(loc="lower right" if metric == "accuracy" else "upper right")
    bottom.set_xlabel("epoch")
    bottom.set_xticks(epochs[:: max(1, len(epochs) // 10)])
    fig.tight_layout()
    save_figure(plt, fig, out, "learning_curves.png")


def plot_predictions(plt: Any, images: np.ndarray, truth: np.ndarray, predicted: np.ndarray, out: str) -> None:
    fig = plt.figure(figsize=(13, 7))
    for subfig, (title, pick) in zip(fig.subfigures(1, 2), (("Classified correctly", predicted == truth),
                                                            ("Classified incorrectly", predicted != truth))):
        subfig.suptitle(title)
        for ax, i in zip(subfig.subplots(3, 3).flat, np.flatnonzero(pick)[:9]):
            ax.imshow(images[i], cmap="gray", interpolation="none")
            ax.set_title(f"Predicted {predicted[i]}, Truth {truth[i]}", fontsize=9)
            ax.set_axis_off()
    save_figure(plt, fig, out, "predictions.png")


def build_model() -> Sequential:
    """The tutorial's network, line for line."""
    model = Sequential()
    model.add(Dense(512, input_shape=(784,)))
    model.add(Activation("relu"))
    model.add(Dropout(0.2))
    model.add(Dense(512))
    model.add(Activation("relu"))
    model.add(Dropout(0.2))
    model.add(Dense(10))
    model.add(Activation("softmax"))
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tinynet.set_backend(args.backend)
    except ValueError as err:  # e.g. cupy without CuPy or a GPU: say so and how to get it
        print(f"error: {err}", file=sys.stderr)
        return 2
    tinynet.set_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    print(f"tinynet {tinynet.__version__}, backend {tinynet.get_backend()}, seed {args.seed}")
    plt = load_pyplot()

    # --- the data -------------------------------------------------------------
    try:
        (X_train, y_train), (X_test, y_test) = mnist.load_data(args.data_dir or shipped_data_dir())
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("X_train shape", X_train.shape, "y_train shape", y_train.shape)
    print("X_test shape", X_test.shape, "y_test shape", y_test.shape)
    if plt:
        plot_examples(plt, X_train[:9], y_train[:9], args.out)
        plot_pixel_distribution(plt, X_train[0], y_train[0], args.out)

    # unroll 28x28 images into 784-vectors and scale pixels from 0..255 to 0..1
    X_train = X_train.reshape(60000, 784).astype("float32")
    X_test = X_test.reshape(10000, 784).astype("float32")
    X_train /= 255  # in place: a second 188 MB copy of the training set would be a waste
    X_test /= 255
    print("Train matrix shape", X_train.shape)
    print("Test matrix shape", X_test.shape)
    print("Class counts:", np.unique(y_train, return_counts=True))

    Y_train = to_categorical(y_train, 10)
    Y_test = to_categorical(y_test, 10)
    print("Shape before one-hot encoding:", y_train.shape)
    print("Shape after one-hot encoding:", Y_train.shape)

    # --- the network ------------------------------------------------------------
    model = build_model()
    model.summary()
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"], optimizer="adam")

    start = time.perf_counter()
    history = model.fit(X_train, Y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
                        validation_data=(X_test, Y_test))
    train_seconds = time.perf_counter() - start

    model_path = os.path.join(args.out, "mnist_mlp.tinynet")
    model.save(model_path)
    print(f"Saved trained model at {model_path}")
    if plt:
        plot_learning_curves(plt, history.history, args.out)

    # --- evaluate the saved copy -------------------------------------------------------
    mnist_model = load_model(model_path)
    test_loss, test_accuracy = mnist_model.evaluate(X_test, Y_test, verbose=0)
    print("Test Loss", test_loss)
    print("Test Accuracy", test_accuracy)

    predicted_classes = np.argmax(mnist_model.predict(X_test), axis=1)
    identical = np.array_equal(mnist_model.predict(X_test), model.predict(X_test))
    print("Loaded model gives identical predictions:", identical)
    correct = int(np.sum(predicted_classes == y_test))
    print(f"{correct} classified correctly")
    print(f"{len(y_test) - correct} classified incorrectly")
    if plt:
        plot_predictions(plt, X_test.reshape(-1, 28, 28), y_test, predicted_classes, args.out)

    summary = {"backend": tinynet.get_backend(), "seed": args.seed, "epochs": args.epochs,
               "batch_size": args.batch_size, "test_loss": test_loss, "test_accuracy": test_accuracy,
               "correct": correct, "incorrect": len(y_test) - correct, "train_seconds": train_seconds,
               "identical_predictions_after_reload": identical, "history": dict(history.history)}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"Saved run summary {os.path.join(args.out, 'summary.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
