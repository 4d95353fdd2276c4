"""tinynet.plotting: every figure is written as a real PNG of the stated size; the confusion counts are right."""
from __future__ import annotations

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, plotting
from tinynet.layers import Activation, Dense
from tinynet.metrics import confusion_counts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
needs_matplotlib = pytest.mark.skipif(not plotting.available(), reason="figures need matplotlib (pip install matplotlib)")


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _assert_png(path, width, height):
    got = _png_size(path)
    assert abs(got[0] - width) <= 1 and abs(got[1] - height) <= 1, got
    assert path.stat().st_size > 3000  # more than an empty canvas


@pytest.fixture
def digits_and_model():
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, (20, 28, 28)).astype(np.uint8)
    labels = np.arange(20) % 10
    model = Sequential([Dense(16, input_shape=(784,)), Activation("relu"), Dense(10), Activation("softmax")])
    return images, labels, model


@needs_matplotlib
def test_each_figure_is_a_png_of_its_size(tmp_path, digits_and_model):
    images, labels, model = digits_and_model
    predicted = (labels + (np.arange(20) % 3 == 0)) % 10  # some right, some wrong
    history = {"loss": [0.5, 0.3, 0.2], "accuracy": [0.8, 0.9, 0.95], "val_loss": [0.6, 0.4, 0.35],
               "val_accuracy": [0.75, 0.85, 0.9]}
    cases = [
        (plotting.digits, (images[:9], labels[:9], predicted[:9]), {}, (660, 660)),
        (plotting.digits, (images[:4].reshape(4, 784),), {"columns": 2}, (440, 440)),  # flat vectors are fine
        (plotting.pixel_histogram, (images[0], 7), {}, (900, 400)),
        (plotting.learning_curves, (history,), {}, (700, 700)),
        (plotting.learning_curves, ({"loss": [1.0, 0.5]},), {}, (700, 350)),  # loss only, no validation
        (plotting.predictions, (images, labels, predicted), {}, (1320, 720)),
        (plotting.first_layer_weights, (model,), {"count": 16}, (480, 530)),
        (plotting.confusion_matrix, (labels, predicted, 10), {}, (700, 700)),
    ]
    for i, (draw, positional, keywords, (width, height)) in enumerate(cases):
        path = tmp_path / f"figure{i}.png"
        fig = draw(*positional, path=str(path), **keywords)
        assert fig.get_size_inches().tolist() == pytest.approx([width / 100, height / 100])
        _assert_png(path, width, height)


def test_confusion_counts_against_a_loop():
    gen = np.random.default_rng(1)
    truth, predicted = gen.integers(0, 4, 200), gen.integers(0, 4, 200)
    want = np.zeros((5, 5), int)
    for t, p in zip(truth, predicted):
        want[t, p] += 1
    np.testing.assert_array_equal(confusion_counts(truth, predicted, 5), want)
    np.testing.assert_array_equal(confusion_counts(truth.astype(np.uint8), predicted.astype(np.uint8), 5), want)
    assert confusion_counts(truth, predicted).shape == (4, 4)
    assert confusion_counts(truth, predicted).sum() == 200
    with pytest.raises(ValueError, match="class 3 does not fit num_classes=3"):
        confusion_counts(truth, predicted, 3)
    with pytest.raises(ValueError, match="200 true labels but 199 predictions"):
        confusion_counts(truth, predicted[:-1])
    with pytest.raises(ValueError, match="predictions must be class numbers"):
        confusion_counts(truth, predicted + 0.5)


@needs_matplotlib
def test_first_layer_weights_needs_square_inputs():
    model = Sequential([Dense(4, input_shape=(10,), name="odd"), Activation("softmax")])
    with pytest.raises(ValueError, match=r"odd: first_layer_weights draws square images, but the layer has 10 inputs"):
        plotting.first_layer_weights(model)


@needs_matplotlib
def test_weights_images_are_the_columns_of_the_first_layer(digits_and_model):
    _, _, model = digits_and_model
    fig = plotting.first_layer_weights(model, count=4)
    W = tinynet.backend.to_numpy(model.layers[0].W)
    for j, ax in enumerate(fig.axes[:4]):
        np.testing.assert_array_equal(ax.images[0].get_array(), W[:, j].reshape(28, 28))


def test_without_matplotlib_each_figure_says_how_to_install_it(monkeypatch, digits_and_model):
    images, labels, _ = digits_and_model
    monkeypatch.setattr(plotting, "Figure", None)
    assert not plotting.available()
    with pytest.raises(ImportError, match=r"tinynet.plotting needs matplotlib: pip install matplotlib"):
        plotting.digits(images[:4], labels[:4])
