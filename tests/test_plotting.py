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
    with pytest.raises(ValueError, match="true labels must be class numbers"):
        confusion_counts(np.array(["a", "b"]), np.array([0, 1]))
    with pytest.raises(ValueError, match="num_classes must be a whole number >= 0, got 2.7"):
        confusion_counts(truth, predicted, 2.7)
    with pytest.raises(ValueError, match="100001 classes make a 100001 x 100001 table"):
        confusion_counts([0, 100000], [0, 0])
    assert confusion_counts([], []).shape == (0, 0) and confusion_counts([], [], 3).sum() == 0


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
    images, labels, model = digits_and_model
    monkeypatch.setattr(plotting, "Figure", None)
    assert not plotting.available()
    for draw in (lambda: plotting.digits(images[:4], labels[:4]), lambda: plotting.pixel_histogram(images[0]),
                 lambda: plotting.learning_curves({"loss": [1.0]}), lambda: plotting.predictions(images, labels, labels),
                 lambda: plotting.first_layer_weights(model), lambda: plotting.confusion_matrix(labels, labels)):
        with pytest.raises(ImportError, match=r"tinynet.plotting needs matplotlib: pip install matplotlib"):
            draw()


@needs_matplotlib
def test_confusion_matrix_rows_are_true_classes_and_columns_predictions():
    truth, predicted = np.array([0, 0, 0, 1, 2, 2]), np.array([0, 0, 1, 1, 0, 2])  # two 0s right, one 0 taken for 1
    fig = plotting.confusion_matrix(truth, predicted, 3)
    ax = fig.axes[0]
    cells = {(int(round(t.get_position()[1])), int(round(t.get_position()[0]))): int(t.get_text()) for t in ax.texts}
    assert cells[(0, 0)] == 2 and cells[(0, 1)] == 1 and cells[(2, 0)] == 1 and cells[(1, 0)] == 0
    assert ax.get_ylabel() == "true class" and ax.get_xlabel() == "predicted class"
    np.testing.assert_array_equal(ax.images[0].get_array(), confusion_counts(truth, predicted, 3))


@needs_matplotlib
@pytest.mark.parametrize("draw, message", [
    (lambda model, images, labels: plotting.predictions(images, labels, labels, count=0), "count must be a positive integer"),
    (lambda model, images, labels: plotting.first_layer_weights(model, count=0), "count must be a positive integer"),
    (lambda model, images, labels: plotting.confusion_matrix([], []), "no samples and no classes"),
])
def test_nothing_to_draw_is_a_clear_error(draw, message, digits_and_model):
    images, labels, model = digits_and_model
    with pytest.raises(ValueError, match=message):
        draw(model, images, labels)


@needs_matplotlib
def test_learning_curves_label_the_last_epoch():
    fig = plotting.learning_curves({"loss": list(np.linspace(1, 0.1, 20)), "val_accuracy": [0.5] * 20})
    assert [ax.get_title() for ax in fig.axes] == ["model accuracy", "model loss"]  # validation-only accuracy shown
    assert 20 in [int(t) for t in fig.axes[-1].get_xticks()]


@needs_matplotlib
def test_learning_curves_of_a_fit_that_recorded_nothing_say_so():
    with pytest.raises(ValueError, match="learning_curves: the history has no epochs"):
        plotting.learning_curves(tinynet.History())
