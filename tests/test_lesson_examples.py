"""The regression and binary-classifier examples run from the command line and reach what the README states."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinynet.datasets import mnist

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_regression_gets_near_the_noise_floor(tmp_path):
    proc = _run("regression.py", "--epochs", "100", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "regression_summary.json").read_text())
    assert summary["test_mse"] < 1.6 * summary["noise_floor"]  # the full 300 epochs get within 10 %: README
    assert "Dense" in proc.stdout and "test mse" in proc.stdout


def test_binary_classifier_tells_two_digits_apart(tmp_path):
    if not all((mnist.SHIPPED / f"{name}.gz").exists() for name in mnist.CHECKSUMS):
        pytest.skip("the repository's copy of MNIST (data/mnist) is missing")
    proc = _run("mnist_binary.py", "--epochs", "1", "--train-samples", "4000", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "binary_summary.json").read_text())
    assert summary["digits"] == [3, 5] and summary["test_accuracy"] > 0.95
    assert "val_accuracy" in proc.stdout  # binary accuracy, under Keras's name


def test_binary_classifier_refuses_a_pair_that_is_not_one():
    proc = _run("mnist_binary.py", "--digits", "3", "3")
    assert proc.returncode == 2 and "two different digits" in proc.stderr
