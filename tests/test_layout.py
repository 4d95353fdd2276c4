"""The package's shape: no import cycle, no import hidden inside a function, each concept's math in its own file."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinynet"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """The tinynet modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("tinynet")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tinynet"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if _is_module(child) else node.module)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert "tinynet.saving" in graph and "tinynet.engine.cuda" in graph
    done, path = set(), []

    def visit(name: str) -> None:
        if name in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for child in sorted(graph.get(name, ())):
            visit(child)
        path.pop()
        done.add(name)

    for module in sorted(graph):
        visit(module)


OPTIONAL = {"cupy", "cupyx", "mpi4py"}  # only some machines have them, and importing mpi4py starts MPI


def test_no_import_inside_a_function():
    """Imports sit at the top of a module; the exceptions are the optional packages above, imported where used."""
    hidden = []
    for path in PACKAGE.rglob("*.py"):
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                        if not all(name.split(".")[0] in OPTIONAL for name in names):
                            hidden.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {names}")
    assert not hidden, hidden


def test_model_training_and_saving_stay_apart():
    graph = _graph()
    assert "tinynet.model" not in graph["tinynet.saving"] | graph["tinynet.training"]
    assert graph["tinynet.saving"] <= {"tinynet.backend", "tinynet.files"}  # a file format: arrays, not models
    assert graph["tinynet.backend"] == {"tinynet.engine"}  # binds the twins as it binds xp, nothing more
    for concept in ("layers", "losses", "optimizers"):  # the engine is reached through `fast`, never a backend module
        assert not graph[f"tinynet.{concept}"] & {"tinynet.engine.cpu", "tinynet.engine.cuda", "tinynet.engine.graphs"}
