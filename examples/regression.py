"""Regression with tinynet: fit a noisy curve by minimising the mean squared error.

The data are y = sin(3x) + x/2 plus Gaussian noise of standard deviation 0.1, for x in [-2, 2].
A 1-64-64-1 network with tanh hidden units learns the curve with loss="mse" and Adam. On new
noisy points no model can do better than the noise's variance, 0.01 (it cannot predict the
noise), so the script reports its test error against that floor.

    python examples/regression.py                 # 300 epochs, a few seconds on one CPU thread
    python examples/regression.py --epochs 50 --out results

With matplotlib installed it draws the data and the learned curve to OUT/regression.png.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

import tinynet
from tinynet import Sequential, plotting
from tinynet.layers import Dense, Input
from tinynet.optimizers import Adam, schedules

NOISE = 0.1


def make_data(n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points of the noisy curve, x shaped (n, 1) and y shaped (n, 1)."""
    x = gen.uniform(-2, 2, size=(n, 1))
    return x, np.sin(3 * x) + x / 2 + NOISE * gen.standard_normal((n, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description="tinynet regression: a noisy curve, mean squared error")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1000, help="training points (the test set has as many)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results", help="folder for the figure and summary.json")
    args = parser.parse_args()
    tinynet.set_seed(args.seed)
    gen = np.random.default_rng(args.seed)
    (x_train, y_train), (x_test, y_test) = make_data(args.samples, gen), make_data(args.samples, gen)

    model = Sequential([Input(shape=(1,)), Dense(64, activation="tanh"), Dense(64, activation="tanh"), Dense(1)])
    model.summary()
    decay = schedules.ExponentialDecay(0.01, decay_steps=1000, decay_rate=0.7)  # large steps first, then fine ones
    model.compile(optimizer=Adam(learning_rate=decay), loss="mse", metrics=["mae"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=0,
                        validation_data=(x_test, y_test))
    test_mse, test_mae = model.evaluate(x_test, y_test, verbose=0)
    print(f"after {args.epochs} epochs: train mse {history.history['loss'][-1]:.4f}, "
          f"test mse {test_mse:.4f} (the noise floor is {NOISE ** 2:.4f}), test mae {test_mae:.4f}")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "regression_summary.json"), "w") as f:
        json.dump({"epochs": args.epochs, "test_mse": test_mse, "test_mae": test_mae, "noise_floor": NOISE ** 2}, f)
    if plotting.available():
        draw(model, x_test, y_test, os.path.join(args.out, "regression.png"))


def draw(model: Sequential, x: np.ndarray, y: np.ndarray, path: str) -> None:
    """The test points and the network's curve through them."""
    grid = np.linspace(-2, 2, 400)[:, None]
    fig = plotting.Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.scatter(x[:, 0], y[:, 0], s=4, alpha=0.4, label="test data")
    ax.plot(grid[:, 0], np.sin(3 * grid[:, 0]) + grid[:, 0] / 2, "k--", lw=1, label="true curve")
    ax.plot(grid[:, 0], model.predict(grid, verbose=0)[:, 0], "r", lw=2, label="network")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    fig.savefig(path, dpi=100)
    print(f"Saved figure {path}")


if __name__ == "__main__":
    main()
