"""Shared fixtures: run backend math on NumPy and (where a GPU is present) CuPy; reseed every test."""
from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

import tinynet
from tinynet import backend

SEED = 1234
CUPY_SKIP_REASON = "cupy backend: CuPy not installed or no GPU"


@functools.lru_cache(maxsize=None)
def _cupy_available() -> bool:
    return backend.cupy_available()


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """The MNIST loader's parsed-array cache goes to a folder of the test session, not the user's ~/.cache
    (subprocesses and notebook kernels inherit the variable)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test starts from the same random state and the default float dtype."""
    tinynet.set_seed(SEED)
    with backend.using(dtype="float32"):
        yield


@pytest.fixture(params=["numpy", "cupy"])
def xb(request):
    """Switch the backend for the duration of the test; yields its name."""
    if request.param == "cupy" and not _cupy_available():
        pytest.skip(CUPY_SKIP_REASON)
    with backend.using(backend=request.param):
        tinynet.set_seed(SEED)
        yield request.param


@pytest.fixture(autouse=True)
def _engine_as_configured():
    """A test that switches the fast twins or CUDA graphs off leaves them as they were."""
    from tinynet import engine
    fast, graphs = engine.is_fast(), engine._state["cuda_graphs"]
    yield
    engine._state["cuda_graphs"] = graphs
    engine.set_fast(fast)


@pytest.fixture
def dead_pid() -> int:
    """The process id of a process that has ended (a writer killed midway leaves files named with one)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    return int(proc.stdout)
