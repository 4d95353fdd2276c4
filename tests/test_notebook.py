"""examples/mnist_mlp.ipynb: made from examples/mnist_mlp.py cell for cell, and it runs (on a small subset)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat, nbclient and ipykernel "
                                                  "(the test extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (the test extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (the test extra)")
sys.path.insert(0, str(ROOT / "examples"))
import make_notebook  # noqa: E402 - examples/ is not a package


def _sources(book):
    return [(cell.cell_type, cell.source) for cell in book.cells]


def test_the_notebook_is_the_script_cell_for_cell():
    committed = nbformat.read(ROOT / "examples" / "mnist_mlp.ipynb", as_version=4)
    made = make_notebook.notebook((ROOT / "examples" / "mnist_mlp.py").read_text())
    assert _sources(committed) == _sources(made), "run `python examples/make_notebook.py` after editing the script"
    assert all(not cell.get("outputs") for cell in committed.cells if cell.cell_type == "code")  # stored clean
    code = [source for kind, source in _sources(committed) if kind == "code"]
    assert any("model.fit(" in source for source in code) and any("model.add(Dense(512" in source for source in code)


def test_the_notebook_runs_and_shows_its_figures(tmp_path, monkeypatch):
    data = ROOT / "data" / "mnist"
    if not all((data / f"{name}.gz").is_file() for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        pytest.skip(f"real MNIST not found in {data} (the repository ships it there)")
    out = tmp_path / "results"
    monkeypatch.setenv("MNIST_MLP_ARGS", f"--epochs 1 --train-samples 3000 --data-dir {data} --out {out}")
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):  # never a download
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's tinynet
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    book = nbformat.read(ROOT / "examples" / "mnist_mlp.ipynb", as_version=4)
    client = nbclient.NotebookClient(book, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "examples")}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    images = [cell for cell in book.cells if cell.cell_type == "code"
              and any("image/png" in output.get("data", {}) for output in cell.outputs)]
    assert len(images) == 6  # digits, pixel histogram, learning curves, predictions, confusion matrix, weights
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_samples"] == 3000 and summary["epochs"] == 1
    assert summary["test_accuracy"] > 0.85 and summary["identical_predictions_after_reload"]
