"""A binary classifier with tinynet: tell two MNIST digits apart with a sigmoid and binary cross-entropy.

Only the images of two digits are kept (3 and 5 by default: they look alike more often than most
pairs); the label is 1 for the second digit and 0 for the first. The network ends in one sigmoid
unit, the probability of "second digit", and trains on binary cross-entropy. As with softmax and
categorical cross-entropy, the model hands the loss the unit's score z and the loss's gradient is
the stable (sigmoid(z) - y) / n (see tinynet/losses.py).

    python examples/mnist_binary.py                    # 3 against 5, 5 epochs: seconds on one CPU thread
    python examples/mnist_binary.py --digits 4 9 --epochs 3
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

import tinynet
from tinynet import Sequential
from tinynet.datasets import mnist
from tinynet.layers import Dense, Dropout, Input


def two_digits(x: np.ndarray, labels: np.ndarray, first: int, second: int) -> tuple[np.ndarray, np.ndarray]:
    """The images of the two digits, flattened and scaled to [0, 1], and labels 0 (first) or 1 (second)."""
    keep = (labels == first) | (labels == second)
    return x[keep].reshape(-1, 784).astype("float32") / 255, (labels[keep] == second).astype("float32")


def main() -> None:
    parser = argparse.ArgumentParser(description="tinynet binary classifier: two MNIST digits, sigmoid + "
                                                 "binary cross-entropy")
    parser.add_argument("--digits", type=int, nargs=2, default=(3, 5), metavar=("FIRST", "SECOND"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-samples", type=int, default=None, help="train on the first N images of the pair")
    parser.add_argument("--data-dir", default=None, help="folder with the four MNIST files (default: as tinynet finds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results", help="folder for binary_summary.json")
    args = parser.parse_args()
    first, second = args.digits
    if not (0 <= first <= 9 and 0 <= second <= 9 and first != second):
        parser.error(f"--digits must be two different digits from 0 to 9, got {first} {second}")
    tinynet.set_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir)
    x_train, y_train = two_digits(x_train, y_train, first, second)
    x_test, y_test = two_digits(x_test, y_test, first, second)
    x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    print(f"{first} against {second}: {len(x_train)} training images, {len(x_test)} test images, "
          f"{y_train.mean():.0%} of them {second}s")

    model = Sequential([Input(shape=(784,)), Dense(128, activation="relu"), Dropout(0.2),
                        Dense(1, activation="sigmoid")])
    model.summary()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=2, validation_data=(x_test, y_test))
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    probabilities = model.predict(x_test, verbose=0)[:, 0]
    wrong = np.flatnonzero((probabilities > 0.5) != (y_test == 1))
    print(f"Test loss {loss:.4f}, test accuracy {accuracy:.4f}: {len(wrong)} of {len(y_test)} images wrong")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "binary_summary.json"), "w") as f:
        json.dump({"digits": [first, second], "epochs": args.epochs, "test_loss": loss, "test_accuracy": accuracy}, f)


if __name__ == "__main__":
    main()
