"""Run examples/mnist_mlp.py for one epoch on the real MNIST and check what it promises."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet.datasets import mnist
from tinynet.utils import to_categorical

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"examples.png": (660, 660), "pixel_distribution.png": (900, 400), "learning_curves.png": (700, 700),
           "predictions.png": (1320, 720), "confusion_matrix.png": (700, 700), "first_layer_weights.png": (960, 1010)}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _data_dir() -> str:
    data = os.environ.get("TINYNET_DATA") or str(mnist.SHIPPED)
    if not all((Path(data) / f"{name}.gz").exists() or (Path(data) / name).exists() for name in mnist.CHECKSUMS):
        pytest.skip(f"real MNIST not found in {data} (the repository ships it in data/mnist)")
    return data


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "examples" / "mnist_mlp.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    data = _data_dir()
    out = tmp_path_factory.mktemp("results")
    return _run("--epochs", "1", "--data-dir", data, "--out", str(out), "--seed", "1"), out


def test_example_runs_and_reaches_95_percent(one_epoch_run):
    proc, out = one_epoch_run
    assert proc.returncode == 0, proc.stderr
    assert "X_train shape (60000, 28, 28)" in proc.stdout
    assert "Shape after one-hot encoding: (60000, 10)" in proc.stdout
    assert "Total params: 669,706" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.95
    assert f"Test Accuracy {summary['test_accuracy']}" in proc.stdout
    assert f"{summary['correct']} classified correctly" in proc.stdout
    assert summary["correct"] + summary["incorrect"] == 10000


def test_example_writes_every_figure_as_png(one_epoch_run):
    pytest.importorskip("matplotlib", reason="figures need matplotlib (pip install matplotlib)")
    proc, out = one_epoch_run
    for name, (width, height) in FIGURES.items():
        path = out / name
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        got = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the PNG's IHDR chunk
        assert abs(got[0] - width) <= 1 and abs(got[1] - height) <= 1, (name, got)
        assert path.stat().st_size > 5000, f"{name} is suspiciously small"
        assert f"Saved figure {path}" in proc.stdout


def test_saved_model_reloads_with_identical_predictions(one_epoch_run):
    proc, out = one_epoch_run
    assert "Loaded model gives identical predictions: True" in proc.stdout
    (_, _), (x_test, y_test) = mnist.load_data(_data_dir())
    x_test = x_test.reshape(10000, 784).astype("float32") / 255
    model = tinynet.load_model(out / "mnist_mlp.tinynet")
    first, second = model.predict(x_test), tinynet.load_model(out / "mnist_mlp.tinynet").predict(x_test)
    assert np.array_equal(first, second)
    summary = json.loads((out / "summary.json").read_text())
    assert int(np.sum(first.argmax(axis=1) == y_test)) == summary["correct"]
    loss, accuracy = model.evaluate(x_test, to_categorical(y_test, 10), verbose=0)
    assert accuracy == summary["test_accuracy"]


def test_missing_data_dir_names_the_expected_files(tmp_path):
    proc = _run("--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    for name in mnist.CHECKSUMS:
        assert name in proc.stderr


def test_unknown_backend_lists_valid_ones(tmp_path):
    proc = _run("--backend", "tpu", "--out", str(tmp_path))
    assert proc.returncode != 0
    assert "numpy" in proc.stderr and "cupy" in proc.stderr


def test_bad_options_give_one_line_errors(tmp_path):
    proc = _run("--epochs", "0", "--out", str(tmp_path))
    assert proc.returncode == 2 and "expected a positive integer, got '0'" in proc.stderr
    if not tinynet.backend.cupy_available():
        proc = _run("--backend", "cupy", "--out", str(tmp_path))
        assert proc.returncode == 2 and "pip install cupy-cuda12x" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_validation_split_holds_out_training_images_and_stops_early(tmp_path):
    data = _data_dir()
    proc = _run("--epochs", "30", "--train-samples", "2000", "--validation-split", "0.1", "--data-dir", data,
                "--out", str(tmp_path), "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Train on 1800 samples, validate on 200 samples" in proc.stdout  # the test set is not used to validate
    assert "early stopping" in proc.stdout and "Restoring model weights from the end of the best epoch" in proc.stdout
    epochs_run = proc.stdout.count("\nEpoch ")
    assert 4 <= epochs_run < 30  # patience 3: stopped well before the 30 epochs asked for
