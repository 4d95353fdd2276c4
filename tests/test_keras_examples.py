"""Keras's own MNIST example runs on tinynet with only its imports changed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinynet.datasets import mnist

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "keras_mnist_mlp.py"
CONVERTED = "y_test = keras.utils.to_categorical(y_test, num_classes)\n"
SMALLER = "x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]\n"


def _code() -> str:
    code = EXAMPLE.read_text()
    lines = [line for line in code.splitlines() if line and not line.startswith("#")]
    naming_tinynet = [line for line in lines if "tinynet" in line]
    assert naming_tinynet and all(re.match(r"(import tinynet as keras|from tinynet(\.\w+)? import )", line)
                                  for line in naming_tinynet), naming_tinynet  # only imports changed
    assert code.count(CONVERTED) == 1
    return code.replace(CONVERTED, CONVERTED + SMALLER)  # the data size: a slice, so the test is quick


def test_keras_mnist_mlp_runs_unchanged_but_for_imports(capsys):
    if not all((mnist.SHIPPED / f"{name}.gz").exists() for name in mnist.CHECKSUMS):
        pytest.skip("the repository's copy of MNIST (data/mnist) is missing")
    namespace: dict = {"__name__": "__main__"}
    exec(compile(_code(), str(EXAMPLE), "exec"), namespace)
    out = capsys.readouterr().out
    assert "60000 train samples" in out and "Total params: 669,706" in out
    assert "val_accuracy" in namespace["history"].history
    assert len(namespace["history"].history["val_loss"]) == 20  # epochs = 20, as Keras wrote
    loss, accuracy = namespace["score"]
    assert f"Test accuracy: {accuracy}" in out
    assert accuracy > 0.9 and loss < 0.5  # 3000 images, 20 epochs of RMSprop
