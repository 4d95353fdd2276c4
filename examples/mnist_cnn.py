"""MNIST with a convolutional network: the tutorial's promised "next article", in tinynet.

Keras's "simple MNIST convnet", layer for layer: Input 28x28x1 -> Conv2D 32 3x3 relu -> MaxPooling 2x2
-> Conv2D 64 3x3 relu -> MaxPooling 2x2 -> Flatten -> Dropout 0.5 -> Dense 10 softmax (34,826
parameters), trained with categorical cross-entropy and Adam, batch 128, 15 epochs, validating on
the last tenth of the training set. Every convolution, pooling and their gradients are written out
in tinynet/convolution.py and tinynet/pooling.py.

    python examples/mnist_cnn.py                          # 15 epochs on the CPU (about 25 s each, one thread)
    python examples/mnist_cnn.py --epochs 1 --backend cupy

Figures (PNG), the trained model and summary.json go to --out (default results/): the 32 learned
first-layer filters, the feature maps of one test digit after each convolution, the learning
curves, and 9 right and 9 wrong predictions.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import tinynet
from tinynet import Sequential, load_model, plotting
from tinynet.callbacks import LambdaCallback
from tinynet.datasets import mnist
from tinynet.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
from tinynet.utils import to_categorical


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="MNIST with tinynet's convolutional network (Keras's simple convnet)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-samples", type=int, default=60000, help="use the first N training images only")
    parser.add_argument("--backend", choices=tinynet.backend.BACKENDS, default="numpy")
    parser.add_argument("--data-dir", default=None, help="folder with the four MNIST files (default: as tinynet finds)")
    parser.add_argument("--out", default="results", help="folder for figures, the saved model and summary.json")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def build_model() -> Sequential:
    """Keras's simple MNIST convnet."""
    return Sequential([
        Input(shape=(28, 28, 1)),
        Conv2D(32, kernel_size=(3, 3), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Conv2D(64, kernel_size=(3, 3), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Flatten(),
        Dropout(0.5),
        Dense(10, activation="softmax"),
    ])


def main() -> None:
    args = parse_args()
    tinynet.set_backend(args.backend)
    tinynet.set_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir)
    x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    x_train = x_train.astype("float32")[..., None] / 255  # (n, 28, 28, 1): channels last, as Keras
    x_test = x_test.astype("float32")[..., None] / 255
    print("x_train shape:", x_train.shape, f"({len(x_train)} train samples, {len(x_test)} test samples)")

    model = build_model()
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    epoch_seconds: list[float] = []
    timer = LambdaCallback(on_epoch_begin=lambda epoch, logs: epoch_seconds.append(time.perf_counter()),
                           on_epoch_end=lambda epoch, logs: epoch_seconds.append(time.perf_counter() - epoch_seconds.pop()))
    history = model.fit(x_train, to_categorical(y_train, 10), batch_size=args.batch_size, epochs=args.epochs,
                        validation_split=0.1, callbacks=[timer])
    loss, accuracy = model.evaluate(x_test, to_categorical(y_test, 10), verbose=0)
    print(f"Test loss: {loss:.4f}\nTest accuracy: {accuracy:.4f}")

    path = os.path.join(args.out, "mnist_cnn.tinynet")
    model.save(path)
    reloaded = load_model(path)
    same = np.array_equal(reloaded.predict(x_test[:256], verbose=0), model.predict(x_test[:256], verbose=0))
    print(f"Saved the model to {path}; reloaded, it predicts {'the same' if same else 'DIFFERENTLY'}")
    predicted = model.predict(x_test, verbose=0).argmax(axis=1)
    with open(os.path.join(args.out, "cnn_summary.json"), "w") as f:
        json.dump({"epochs": len(history.history["loss"]), "seed": args.seed, "backend": args.backend,
                   "test_loss": loss, "test_accuracy": accuracy, "epoch_seconds": epoch_seconds,
                   "reload_same": bool(same)}, f, indent=1)
    if plotting.available():
        draw_figures(model, history, x_test, y_test, predicted, args.out)


def draw_figures(model: Sequential, history: tinynet.History, x_test: np.ndarray, y_test: np.ndarray,
                 predicted: np.ndarray, out: str) -> None:
    """What a learner wants to look at: filters, feature maps, learning curves, right and wrong guesses."""
    conv_layers = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    figures = {"cnn_filters.png": lambda p: plotting.conv_filters(conv_layers[0], path=p),
               "cnn_learning_curves.png": lambda p: plotting.learning_curves(history, path=p),
               "cnn_predictions.png": lambda p: plotting.predictions(x_test[..., 0], y_test, predicted, path=p)}
    x = tinynet.backend.to_device(x_test[:1], model.params.dtype)  # one test digit, through the layers by hand
    for layer in model.layers:
        x = layer.forward(x)
        if isinstance(layer, Conv2D):
            maps, title = x[0], f"{layer.name}: its {x.shape[-1]} feature maps for a test digit {y_test[0]}"
            figures[f"cnn_{layer.name}_maps.png"] = lambda p, maps=maps, title=title: plotting.feature_maps(
                maps, title, path=p)
    for name, draw in figures.items():
        draw(os.path.join(out, name))
        print(f"Saved figure {os.path.join(out, name)}")


if __name__ == "__main__":
    main()
