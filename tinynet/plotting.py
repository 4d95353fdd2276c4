"""Teaching figures: learning curves, digits with their labels, what the first layer learned, where the model errs.

    from tinynet import plotting
    plotting.learning_curves(history, path="curves.png")
    plotting.confusion_matrix(y_test, predicted, path="confusion.png")

Each function draws one matplotlib figure and returns it; `path=` also writes it as a PNG
(100 dots per inch, so a 7 x 7 inch figure is 700 x 700 pixels). In a notebook, a returned
figure shows inline. The figures are matplotlib `Figure` objects made without pyplot, so they
need no display and are freed like any object. matplotlib is an extra: `import tinynet` never
loads it, and each function here says how to install it when it is missing.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet import backend
from tinynet.metrics import confusion_counts

try:
    from matplotlib.figure import Figure
except ImportError:  # an extra; _figure() says how to get it
    Figure = None

INSTALL_HINT = 'tinynet.plotting needs matplotlib: pip install matplotlib (or ".[plots]" from a tinynet checkout)'
DPI = 100


def available() -> bool:
    """Whether matplotlib is installed (the figures need it)."""
    return Figure is not None


def _figure(width: float, height: float) -> Any:
    if Figure is None:
        raise ImportError(INSTALL_HINT)
    return Figure(figsize=(width, height), dpi=DPI)


def _check_count(count: Any) -> None:
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")


def _done(fig: Any, path: str | None) -> Any:
    if path is not None:
        fig.savefig(path, dpi=DPI)
    return fig


def learning_curves(history: Any, path: str | None = None) -> Any:
    """Accuracy (when recorded) and loss per epoch, training and validation: `fit`'s History or its dict."""
    logs = getattr(history, "history", history)
    if not logs.get("loss"):
        raise ValueError("learning_curves: the history has no epochs (a fit that stopped in its first epoch?)")
    epochs = np.arange(1, len(logs["loss"]) + 1)
    metrics = [m for m in ("accuracy", "loss") if m in logs or "val_" + m in logs]
    fig = _figure(7, 3.5 * len(metrics))
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        if metric in logs:
            ax.plot(epochs, logs[metric], "o-", label="train")
        if "val_" + metric in logs:
            ax.plot(epochs, logs["val_" + metric], "o-", label="validation")
        ax.set_title(f"model {metric}")
        ax.set_ylabel(metric)
        ax.legend(loc="lower right" if metric == "accuracy" else "upper right")
    axes[-1].set_xlabel("epoch")
    step = max(1, math.ceil(len(epochs) / 10))
    axes[-1].set_xticks(np.unique(np.append(epochs[::step], epochs[-1])))  # the last epoch always has its label
    fig.tight_layout()
    return _done(fig, path)


def _draw_digits(fig: Any, images: np.ndarray, titles: list[str], columns: int) -> None:
    rows = max(1, math.ceil(len(images) / columns))
    for ax in fig.subplots(rows, columns, squeeze=False).flat:
        ax.set_axis_off()
    for ax, image, title in zip(fig.axes, images, titles):
        ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray", interpolation="none")
        ax.set_title(title, fontsize=9)


def digits(images: Any, labels: Any = None, predicted: Any = None, columns: int = 3,
           path: str | None = None) -> Any:
    """A grid of 28 x 28 digits (flat 784-vectors are fine), titled with their label and the model's guess."""
    images = backend.to_numpy(images)
    titles = []
    for i in range(len(images)):
        parts = [] if labels is None else [f"digit {labels[i]}"]
        parts += [] if predicted is None else [f"predicted {predicted[i]}"]
        titles.append(", ".join(parts))
    rows = max(1, math.ceil(len(images) / columns))
    fig = _figure(2.2 * columns, 2.2 * rows)
    _draw_digits(fig, images, titles, columns)
    fig.tight_layout()
    return _done(fig, path)


def pixel_histogram(image: Any, label: Any = None, path: str | None = None) -> Any:
    """One digit beside the histogram of its pixel values: most pixels are background."""
    image = backend.to_numpy(image).reshape(28, 28)
    fig = _figure(9, 4)
    left, right = fig.subplots(1, 2)
    left.imshow(image, cmap="gray", interpolation="none")
    left.set_title("digit" if label is None else f"digit {label}")
    left.set_axis_off()
    top = 1.0 if image.max() <= 1 else 255.0  # images scaled to 0..1, or raw bytes
    right.hist(image.reshape(-1), bins=32, range=(0, max(top, float(image.max()))))
    right.set_title("pixel value distribution")
    right.set_xlabel("pixel value (0 = background)")
    right.set_ylabel("number of pixels")
    fig.tight_layout()
    return _done(fig, path)


def predictions(images: Any, truth: Any, predicted: Any, count: int = 9, path: str | None = None) -> Any:
    """`count` digits the model classified correctly beside `count` it got wrong, each with both labels."""
    images, truth, predicted = (backend.to_numpy(a) for a in (images, truth, predicted))
    _check_count(count)
    columns = math.ceil(math.sqrt(count))
    fig = _figure(2 * 2.2 * columns, 2.2 * math.ceil(count / columns) + 0.6)
    for subfig, (title, pick) in zip(fig.subfigures(1, 2), (("classified correctly", predicted == truth),
                                                            ("classified incorrectly", predicted != truth))):
        chosen = np.flatnonzero(pick)[:count]
        subfig.suptitle(f"{title} ({int(pick.sum())} of {len(truth)})")
        _draw_digits(subfig, images[chosen], [f"predicted {predicted[i]}, truth {truth[i]}" for i in chosen], columns)
    return _done(fig, path)


def first_layer_weights(model: Any, count: int = 64, path: str | None = None) -> Any:
    """The first Dense layer's weights into each of `count` hidden units, as 28 x 28 images.

    Unit j computes x @ W[:, j]: its column of W, seen as an image, shows which pixels push
    it up (red) or down (blue). Untrained, the columns are noise; trained, strokes appear.
    """
    layer = next((layer for layer in model.layers if "W" in layer.weight_names), None)
    if layer is None:
        raise ValueError(f"{model.name}: first_layer_weights needs a model with a Dense layer")
    _check_count(count)
    W = backend.to_numpy(layer.W)
    side = math.isqrt(W.shape[0])
    if side * side != W.shape[0]:
        raise ValueError(f"{layer.name}: first_layer_weights draws square images, but the layer has "
                         f"{W.shape[0]} inputs (expected a square number such as 784 = 28 x 28)")
    count = min(count, W.shape[1])
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    fig = _figure(1.2 * columns, 1.2 * rows + 0.5)
    limit = float(np.abs(W[:, :count]).max()) or 1.0  # one symmetric colour scale: white is zero
    for ax in fig.subplots(rows, columns, squeeze=False).flat:
        ax.set_axis_off()
    for j, ax in zip(range(count), fig.axes):
        ax.imshow(W[:, j].reshape(side, side), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="none")
    fig.suptitle(f"{layer.name}: weights into the first {count} units")
    return _done(fig, path)


def _grid(fig: Any, images: np.ndarray, titles: list[str] | None, cmap: str, symmetric: bool) -> None:
    """Images in a near-square grid of axes, one colour scale for all (symmetric around 0 when asked)."""
    columns = math.ceil(math.sqrt(len(images)))
    for ax in fig.subplots(math.ceil(len(images) / columns), columns, squeeze=False).flat:
        ax.set_axis_off()
    top = float(np.abs(images).max()) or 1.0
    low, high = (-top, top) if symmetric else (float(images.min()), float(images.max()) or 1.0)
    for i, (ax, image) in enumerate(zip(fig.axes, images)):
        ax.imshow(image, cmap=cmap, vmin=low, vmax=high, interpolation="none")
        if titles:
            ax.set_title(titles[i], fontsize=7)


def conv_filters(layer: Any, path: str | None = None) -> Any:
    """A Conv2D layer's filters, one small image each (its kernel over the first input channel).

    Filter f computes sum over the window of x * W[:, :, c, f]: red pixels push its output up,
    blue ones down. Trained on digits, the first layer's 3 x 3 filters become edge and stroke detectors.
    """
    if getattr(layer, "W", None) is None or backend.to_numpy(layer.W).ndim != 4:
        raise ValueError(f"conv_filters: {getattr(layer, 'name', layer)!r} is not a built Conv2D layer")
    kernels = np.moveaxis(backend.to_numpy(layer.W)[:, :, 0, :], -1, 0)  # (filters, kh, kw)
    fig = _figure(1.0 * math.ceil(math.sqrt(len(kernels))) + 0.5, 1.0 * math.ceil(math.sqrt(len(kernels))) + 0.8)
    _grid(fig, kernels, None, "RdBu_r", symmetric=True)
    fig.suptitle(f"{layer.name}: {len(kernels)} filters of {kernels.shape[1]} x {kernels.shape[2]}")
    return _done(fig, path)


def feature_maps(maps: Any, title: str, path: str | None = None, count: int = 32) -> Any:
    """A layer's output for one image, (height, width, channels): each channel as an image."""
    maps = backend.to_numpy(maps)
    if maps.ndim != 3:
        raise ValueError(f"feature_maps: expected one image's maps of shape (height, width, channels), "
                         f"got {maps.shape}")
    _check_count(count)
    channels = np.moveaxis(maps[:, :, :count], -1, 0)
    side = math.ceil(math.sqrt(len(channels)))
    fig = _figure(1.2 * side, 1.2 * side + 0.5)
    _grid(fig, channels, [str(c) for c in range(len(channels))], "viridis", symmetric=False)
    fig.suptitle(title)
    return _done(fig, path)


def confusion_matrix(truth: Any, predicted: Any, num_classes: int | None = None, path: str | None = None) -> Any:
    """How often each true class (row) was predicted as each class (column); the diagonal is right."""
    counts = confusion_counts(truth, predicted, num_classes)
    n = counts.shape[0]
    if n == 0:
        raise ValueError("confusion_matrix: no samples and no classes to draw")
    fig = _figure(1 + 0.6 * n, 1 + 0.6 * n)
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix: {int(np.trace(counts))} of {int(counts.sum())} right")
    fig.tight_layout()
    return _done(fig, path)
