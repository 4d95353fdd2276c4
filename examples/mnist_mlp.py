# %% [markdown]
# # MNIST handwritten digit recognition with tinynet
#
# The classic Keras tutorial, step by step: a 784-512-512-10 multilayer perceptron with ReLU,
# Dropout 0.2 and softmax, trained with categorical cross-entropy and Adam, batch 128, 20 epochs.
# Every forward and backward pass it runs is written out by hand in the tinynet package
# (`tinynet/layers.py`, `losses.py`, `optimizers.py`; `docs/how-tinynet-trains.md` walks through them).
#
# This file is both a script and, cell for cell, the notebook `examples/mnist_mlp.ipynb`
# (made from it by `examples/make_notebook.py`; a test keeps the two in step):
#
#     python examples/mnist_mlp.py                       # the whole tutorial, CPU
#     python examples/mnist_mlp.py --epochs 1 --backend cupy
#
# Figures (PNG) and the trained model go to `--out` (default `results/`). In the notebook the
# settings are the defaults below, or what the environment variable `MNIST_MLP_ARGS` says
# (e.g. `--epochs 1 --train-samples 2000`).

# %%
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import tinynet
from tinynet import Sequential, load_model, plotting
from tinynet.callbacks import EarlyStopping
from tinynet.datasets import mnist
from tinynet.layers import Activation, Dense, Dropout
from tinynet.utils import to_categorical

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()  # a notebook has no __file__


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def parse_args() -> argparse.Namespace:
    """The command line, or in a notebook the words of $MNIST_MLP_ARGS (the defaults when unset)."""
    parser = argparse.ArgumentParser(description="MNIST with tinynet: the classic Keras tutorial, step by step")
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--train-samples", type=positive_int, default=60000,
                        help="train on the first N training images only (quick runs; the tutorial uses all 60000)")
    parser.add_argument("--backend", choices=tinynet.backend.BACKENDS, default="numpy")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four MNIST files (default: $TINYNET_DATA, else the repository's "
                             "data/mnist beside this example, else ~/.cache/tinynet/mnist)")
    parser.add_argument("--out", default="results", help="folder for figures and the saved model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-split", type=float, default=0.0,
                        help="validate on this last fraction of the training images, with early stopping (patience 3, "
                             "best weights restored), instead of on the test set as the tutorial does (default: off)")
    in_notebook = "__file__" not in globals()  # `%run mnist_mlp.py --epochs 1` has a file and its own arguments
    return parser.parse_args(shlex.split(os.environ.get("MNIST_MLP_ARGS", "")) if in_notebook else None)


def shipped_data_dir() -> str | None:
    """The repository's copy of MNIST beside this example, unless $TINYNET_DATA names another folder.

    tinynet finds that copy by itself only when it is imported from the checkout; after
    `pip install .` it is imported from site-packages, so the example points at it.
    """
    shipped = HERE.parent / "data" / "mnist"
    complete = all((shipped / f"{name}.gz").is_file() for name in mnist.CHECKSUMS)
    return None if os.environ.get("TINYNET_DATA") or not complete else str(shipped)


def figure_path(name: str) -> str | None:
    """Where a figure goes (and a line saying so), or None when matplotlib is missing."""
    if not plotting.available():
        return None
    path = os.path.join(args.out, name)
    print(f"Saved figure {path}")
    return path


args = parse_args()
try:
    tinynet.set_backend(args.backend)
except ValueError as err:  # e.g. cupy without CuPy or a GPU: say so and how to get it
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(2) from None
tinynet.set_seed(args.seed)
try:
    os.makedirs(args.out, exist_ok=True)
except OSError as err:  # e.g. --out names an existing file
    print(f"error: --out {args.out}: cannot make a folder there ({err.strerror})", file=sys.stderr)
    raise SystemExit(2) from None
print(f"tinynet {tinynet.__version__}, backend {tinynet.get_backend()}, seed {args.seed}")
if not plotting.available():
    print(f"figures are skipped: {plotting.INSTALL_HINT}")

# %% [markdown]
# ## The data
#
# 60,000 training and 10,000 test images of handwritten digits, 28 x 28 pixels with values
# 0 (background) to 255 (ink), and their labels 0-9.

# %%
try:
    (X_train, y_train), (X_test, y_test) = mnist.load_data(args.data_dir or shipped_data_dir())
except (OSError, ValueError) as err:
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(2) from None
X_train, y_train = X_train[:args.train_samples], y_train[:args.train_samples]
print("X_train shape", X_train.shape, "y_train shape", y_train.shape)
print("X_test shape", X_test.shape, "y_test shape", y_test.shape)
figure = plotting.digits(X_train[:9], y_train[:9], path=figure_path("examples.png")) if plotting.available() else None
figure  # a notebook shows the cell's last value: the figure

# %%
figure = plotting.pixel_histogram(X_train[0], y_train[0], path=figure_path("pixel_distribution.png")) \
    if plotting.available() else None
figure

# %% [markdown]
# ## Preparing the inputs
#
# Each image is unrolled into a vector of 784 pixels and scaled from 0..255 to 0..1; each label
# becomes a one-hot vector of 10 (5 -> [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).

# %%
X_train = X_train.reshape(len(X_train), 784).astype("float32")
X_test = X_test.reshape(len(X_test), 784).astype("float32")
X_train /= 255  # in place: a second 188 MB copy of the training set would be a waste
X_test /= 255
print("Train matrix shape", X_train.shape)
print("Test matrix shape", X_test.shape)
print("Class counts:", np.unique(y_train, return_counts=True))

Y_train = to_categorical(y_train, 10)
Y_test = to_categorical(y_test, 10)
print("Shape before one-hot encoding:", y_train.shape)
print("Shape after one-hot encoding:", Y_train.shape)

# %% [markdown]
# ## The network
#
# Two hidden layers of 512 units with ReLU and dropout, and a softmax over the 10 classes.

# %%
model = Sequential()
model.add(Dense(512, input_shape=(784,)))
model.add(Activation("relu"))
model.add(Dropout(0.2))
model.add(Dense(512))
model.add(Activation("relu"))
model.add(Dropout(0.2))
model.add(Dense(10))
model.add(Activation("softmax"))
model.summary()

# %% [markdown]
# ## Training
#
# Categorical cross-entropy, Adam with Keras's defaults, mini-batches of 128, validated on the
# test set after every epoch (as the tutorial does). With `--validation-split 0.1` the last tenth
# of the training images is held out for validation instead, so the test set stays unseen until
# the end, and an EarlyStopping callback ends training once val_loss has not improved for three
# epochs, putting back the weights of the best one.

# %%
model.compile(loss="categorical_crossentropy", metrics=["accuracy"], optimizer="adam")
if args.validation_split:
    validation = {"validation_split": args.validation_split,
                  "callbacks": [EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True, verbose=1)]}
else:
    validation = {"validation_data": (X_test, Y_test)}
start = time.perf_counter()
history = model.fit(X_train, Y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2, **validation)
train_seconds = time.perf_counter() - start

model_path = os.path.join(args.out, "mnist_mlp.tinynet")
model.save(model_path)
print(f"Saved trained model at {model_path}")
figure = plotting.learning_curves(history, path=figure_path("learning_curves.png")) if plotting.available() else None
figure

# %% [markdown]
# ## Evaluating the saved model
#
# The model file is loaded back and evaluated on the 10,000 test images.

# %%
mnist_model = load_model(model_path)
test_loss, test_accuracy = mnist_model.evaluate(X_test, Y_test, verbose=0)
print("Test Loss", test_loss)
print("Test Accuracy", test_accuracy)

predicted_classes = np.argmax(mnist_model.predict(X_test, verbose=0), axis=1)
identical = np.array_equal(mnist_model.predict(X_test, verbose=0), model.predict(X_test, verbose=0))
print("Loaded model gives identical predictions:", identical)
correct = int(np.sum(predicted_classes == y_test))
print(f"{correct} classified correctly")
print(f"{len(y_test) - correct} classified incorrectly")
figure = plotting.predictions(X_test, y_test, predicted_classes, path=figure_path("predictions.png")) \
    if plotting.available() else None
figure

# %% [markdown]
# ## What the network learned
#
# Which digits it confuses with which, and the weights of the first layer: each hidden unit's
# 784 incoming weights drawn as a 28 x 28 image (red pushes the unit up, blue down).

# %%
figure = plotting.confusion_matrix(y_test, predicted_classes, 10, path=figure_path("confusion_matrix.png")) \
    if plotting.available() else None
figure

# %%
figure = plotting.first_layer_weights(model, count=64, path=figure_path("first_layer_weights.png")) \
    if plotting.available() else None
figure

# %%
summary = {"backend": tinynet.get_backend(), "seed": args.seed, "epochs": args.epochs,
           "batch_size": args.batch_size, "train_samples": len(X_train), "test_loss": test_loss,
           "test_accuracy": test_accuracy, "correct": correct, "incorrect": len(y_test) - correct,
           "train_seconds": train_seconds, "identical_predictions_after_reload": identical,
           "history": dict(history.history)}
with open(os.path.join(args.out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(f"Saved run summary {os.path.join(args.out, 'summary.json')}")
