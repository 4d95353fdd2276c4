"""A fresh clone, alone in a folder, with no network and no TINYNET_* variables, runs the example.

The clone's own tinynet is put on PYTHONPATH (what `pip install .` would install), HOME points at
an empty folder (no cached MNIST), and every download goes to a closed port on this machine: the
data must come from the clone's data/mnist.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: a connection there is refused at once


def test_a_fresh_clone_runs_the_example_offline(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    clone = tmp_path / "alone" / "tinynet"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    assert (clone / "data" / "mnist").is_dir()
    dead = f"http://127.0.0.1:{_closed_port()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TINYNET_")}
    env.update(PYTHONPATH=str(clone), HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "examples/mnist_mlp.py", "--epochs", "1", "--train-samples", "3000"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Downloading" not in proc.stderr
    summary = json.loads((clone / "results" / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.85
