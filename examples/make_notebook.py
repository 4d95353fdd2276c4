"""Make examples/mnist_mlp.ipynb from examples/mnist_mlp.py, cell for cell.

The script is written in "percent" cells: a line `# %%` starts a code cell, `# %% [markdown]`
a text cell whose lines are comments. The notebook gets one cell of its own first, `%matplotlib
inline`, so that a cell ending in a figure shows it. It is stored without outputs.

    python examples/make_notebook.py          # rewrite the notebook after editing the script

tests/test_notebook.py checks that the committed notebook is what this makes, and runs it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SCRIPT, NOTEBOOK = HERE / "mnist_mlp.py", HERE / "mnist_mlp.ipynb"


def cells(source: str) -> list[tuple[str, str]]:
    """The script's cells as (kind, text) pairs, kind "markdown" or "code"."""
    found: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("# %%"):
            found.append(("markdown" if "[markdown]" in line else "code", []))
        elif found:
            found[-1][1].append(line)
    result = []
    for kind, lines in found:
        if kind == "markdown":
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines]
        result.append((kind, "\n".join(lines).strip("\n")))
    return result


def notebook(source: str) -> nbformat.NotebookNode:
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells.append(nbformat.v4.new_code_cell("%matplotlib inline"))
    for kind, text in cells(source):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        book.cells.append(make(text))
    for i, cell in enumerate(book.cells):
        cell["id"] = f"cell-{i}"  # stable ids: regenerating an unchanged script changes nothing
    return book


def main() -> int:
    nbformat.write(notebook(SCRIPT.read_text()), NOTEBOOK)
    print(f"wrote {NOTEBOOK} from {SCRIPT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
