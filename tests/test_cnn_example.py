"""examples/mnist_cnn.py on a slice of MNIST: it trains, saves and reloads, and draws its figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinynet import plotting
from tinynet.datasets import mnist

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_cnn_example_trains_saves_reloads_and_draws(tmp_path):
    if not all((mnist.SHIPPED / f"{name}.gz").exists() for name in mnist.CHECKSUMS):
        pytest.skip("the repository's copy of MNIST (data/mnist) is missing")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "mnist_cnn.py"), "--epochs", "1",
                           "--train-samples", "1280", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Total params: 34,826" in proc.stdout and "val_accuracy" in proc.stdout
    summary = json.loads((tmp_path / "cnn_summary.json").read_text())
    assert summary["reload_same"] and summary["test_accuracy"] > 0.5  # 9 steps of 128 images: well past chance
    assert (tmp_path / "mnist_cnn.tinynet").stat().st_size > 34826 * 4
    if plotting.available():
        for name in ("cnn_filters.png", "cnn_learning_curves.png", "cnn_predictions.png", "cnn_conv2d_maps.png",
                     "cnn_conv2d_1_maps.png"):
            assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE, name
