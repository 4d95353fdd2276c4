"""Backend selection, float dtype, seeding and host/device moves (the fast twins are in test_engine.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import backend
from tinynet.layers import Dense

ROOT = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---- choosing a backend ----------------------------------------------------------------
def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*numpy, cupy, auto"):
        backend.set_backend("nope")
    assert backend.get_backend() == "numpy"


def test_cupy_without_cupy_says_how_to_install_it():
    if backend.cupy_available():
        pytest.skip("CuPy and a GPU are available here, so selecting cupy succeeds")
    with pytest.raises(ValueError, match=r"backend 'cupy'.*pip install cupy-cuda12x.*cupy-cuda13x.*\.\[cuda12\]"):
        backend.set_backend("cupy")
    assert backend.get_backend() == "numpy" and backend.xp() is np  # the failed switch changed nothing


def test_auto_picks_cupy_only_with_a_gpu():
    with backend.using(backend="auto"):
        assert backend.get_backend() == ("cupy" if backend.cupy_available() else "numpy")
    assert backend.get_backend() == "numpy"


def test_get_backend_and_xp_follow_the_switch(xb):
    assert backend.get_backend() == xb
    assert backend.xp().__name__ == xb


def test_backend_py_only_knows_where_arrays_live():
    """Choosing the backend, dtype, seeds and moving arrays: no layer, loss or optimizer math, and short."""
    import inspect
    functions = {name for name, f in vars(backend).items() if inspect.isfunction(f) and f.__module__ == backend.__name__}
    assert functions == {"_import_cupy", "cupy_available", "set_backend", "get_backend", "xp", "floatx", "set_floatx",
                         "using", "set_seed", "seeded", "rng", "make_rng", "to_device", "to_numpy",
                         "erf"}  # NumPy has no erf, CuPy has: a difference between the array modules
    assert len((ROOT / "tinynet" / "backend.py").read_text().splitlines()) < 200


def _import_with_env(value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TINYNET_BACKEND": value, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", "import tinynet; print(tinynet.get_backend())"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_env_var_selects_the_backend():
    proc = _import_with_env("numpy")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "numpy"


def test_env_var_with_a_bogus_name_fails_at_import():
    proc = _import_with_env("bogus")
    assert proc.returncode != 0
    assert "unknown backend 'bogus'" in proc.stderr and "numpy, cupy, auto" in proc.stderr


# ---- float dtype -------------------------------------------------------------------------
def test_floatx_is_float32_by_default_and_float64_inside_using():
    assert backend.floatx() == np.float32
    with backend.using(dtype="float64"):
        assert backend.floatx() == np.float64
        layer = Dense(3)
        layer.build((2,))
        assert layer.W.dtype == np.float64 and layer.b.dtype == np.float64
    assert backend.floatx() == np.float32


def test_using_restores_the_dtype_after_an_error():
    with pytest.raises(RuntimeError):
        with backend.using(dtype="float64"):
            raise RuntimeError
    assert backend.floatx() == np.float32


@pytest.mark.parametrize("dtype", ["float16", "int32"])
def test_only_float32_and_float64_are_allowed(dtype):
    with pytest.raises(ValueError, match=f"floatx must be float32 or float64, got {dtype}"):
        backend.set_floatx(dtype)


# ---- seeding -----------------------------------------------------------------------------
def test_set_seed_replays_weights_and_random_numbers():
    def draw():
        layer = Dense(4)
        layer.build((3,))
        return backend.to_numpy(layer.W), backend.rng().random(5)

    tinynet.set_seed(7)
    w1, r1 = draw()
    tinynet.set_seed(7)
    w2, r2 = draw()
    tinynet.set_seed(8)
    w3, _ = draw()
    assert np.array_equal(w1, w2) and np.array_equal(r1, r2)
    assert not np.array_equal(w1, w3)


def test_seeded_replays_and_leaves_the_global_stream_alone():
    tinynet.set_seed(3)
    expected = backend.rng().random(4)
    tinynet.set_seed(3)
    with backend.seeded(99):
        a = backend.rng().random(3)
    with backend.seeded(99):
        b = backend.rng().random(3)
    assert np.array_equal(a, b)
    assert np.array_equal(backend.rng().random(4), expected)


def test_make_rng_is_private_for_a_seed_and_global_without():
    assert backend.make_rng(None) is backend.rng()
    assert np.array_equal(backend.make_rng(5).random(3), np.random.default_rng(5).random(3))


# ---- moving arrays -----------------------------------------------------------------------
@FAST
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=3), dtype=st.sampled_from(["float32", "float64", "uint8"]))
def test_to_device_to_numpy_round_trip(xb, shape, dtype):
    a = (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)
    d = backend.to_device(a)
    assert isinstance(d, backend.xp().ndarray)
    back = backend.to_numpy(d)
    assert isinstance(back, np.ndarray) and back.dtype == a.dtype and np.array_equal(back, a)
    assert backend.to_numpy(backend.to_device(a, "float64")).dtype == np.float64
