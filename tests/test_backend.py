"""Backend selection, float dtype, seeding, host/device moves and the fused Adam kernel."""
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
    with pytest.raises(ValueError, match=r"backend 'cupy'.*pip install tinynet\[cuda12\].*cupy-cuda12x"):
        backend.set_backend("cupy")
    assert backend.get_backend() == "numpy" and backend.xp() is np  # the failed switch changed nothing


def test_auto_picks_cupy_only_with_a_gpu():
    with backend.using(backend="auto"):
        assert backend.get_backend() == ("cupy" if backend.cupy_available() else "numpy")
    assert backend.get_backend() == "numpy"


def test_get_backend_and_xp_follow_the_switch(xb):
    assert backend.get_backend() == xb
    assert backend.xp().__name__ == xb


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


# ---- the fused optimizer updates and the per-batch record ---------------------------------------------------
def _adam_reference(p, g, m, v, t, lr, b1, b2, eps):
    # the documented update on running sums (test_optimizers compares Adam with the textbook form)
    step = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * (1 - b1) / np.sqrt(1 - b2)
    m = b1 * m + g
    v = b2 * v + g * g
    return p - step * m / (np.sqrt(v) + eps / np.sqrt(1 - b2)), m, v


@FAST
@given(n=st.integers(1, 50), seed=st.integers(0, 2**31), t=st.integers(1, 10000), lr=st.floats(1e-5, 1.0),
       b1=st.floats(0.0, 0.99), b2=st.floats(0.0, 0.9999), eps=st.sampled_from([1e-7, 1e-3, 0.0]))
def test_adam_update_matches_the_formula(xb, n, seed, t, lr, b1, b2, eps):
    gen = np.random.default_rng(seed)
    p, g, m = gen.standard_normal((3, n))
    v = gen.random(n) + 0.1  # a running sum of squares is positive
    dp, dg, dm, dv = (backend.to_device(a.copy()) for a in (p, g, m, v))
    backend.adam_update(dp, dg, dm, dv, backend.to_device(np.int64(t)), lr, b1, b2, eps)
    want_p, want_m, want_v = _adam_reference(p, g, m, v, t, lr, b1, b2, eps)
    np.testing.assert_allclose(backend.to_numpy(dm), want_m, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(dv), want_v, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(dp), want_p, rtol=1e-11, atol=1e-13)
    assert np.array_equal(backend.to_numpy(dg), g)  # the gradient is read, not written


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_update_matches_the_formula(xb, nesterov):
    gen = np.random.default_rng(5)
    p, g, velocity = gen.standard_normal((3, 40))
    dp, dg, dvel = (backend.to_device(a.copy()) for a in (p, g, velocity))
    backend.sgd_update(dp, dg, dvel, 0.1, 0.9, nesterov)
    want_v = 0.9 * velocity - 0.1 * g
    want_p = p + (0.9 * want_v - 0.1 * g if nesterov else want_v)
    np.testing.assert_allclose(backend.to_numpy(dvel), want_v, rtol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(dp), want_p, rtol=1e-14)


@pytest.mark.parametrize("update", ["adam", "sgd"])
def test_a_refused_update_changes_nothing(xb, update):
    gen = np.random.default_rng(6)
    host = gen.standard_normal((4, 30))
    host[1, 3] = np.nan  # the gradient of a batch whose loss was not finite
    p, g, a, b = (backend.to_device(h.copy()) for h in host)
    refused = backend.xp().zeros((), dtype=bool)  # on the device, as the model passes it
    if update == "adam":
        backend.adam_update(p, g, a, b, backend.to_device(np.int64(3)), 0.1, 0.9, 0.999, 1e-7, apply=refused)
    else:
        backend.sgd_update(p, g, a, 0.1, 0.9, True, apply=refused)
    for name, before, after in (("p", host[0], p), ("state", host[2], a), ("state", host[3], b)):
        assert np.array_equal(backend.to_numpy(after), before), name


def test_record_batch_sums_good_batches_and_stops_at_the_first_bad_one(xb):
    xp = backend.xp()
    totals = xp.zeros(4)
    verdicts = []
    for loss, correct, size in ((0.5, 3, 4), (0.25, 4, 4), (np.nan, 1, 4), (0.125, 2, 4), (np.inf, 0, 2)):
        ok = backend.record_batch(totals, xp.asarray(loss, dtype=backend.floatx()), xp.asarray(correct), size)
        verdicts.append(bool(ok))
    assert verdicts == [True, True, False, False, False]  # once one fails, every later batch is refused
    np.testing.assert_allclose(backend.to_numpy(totals), [0.5 * 4 + 0.25 * 4, 3 + 4, 2, 1])


def test_record_batch_without_metrics_counts_zero_correct(xb):
    totals = backend.xp().zeros(4)
    assert bool(backend.record_batch(totals, backend.xp().asarray(2.0), 0, 8))
    np.testing.assert_allclose(backend.to_numpy(totals), [16, 0, 1, 0])


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-13)])
def test_cupy_update_kernels_match_their_numpy_twins(dtype, rtol):
    if not backend.cupy_available():
        pytest.skip("cupy backend: CuPy not installed or no GPU")
    gen = np.random.default_rng(0)
    host = [gen.standard_normal(1000).astype(dtype) for _ in range(3)] + [gen.random(1000).astype(dtype)]
    results = {}
    for name in ("numpy", "cupy"):
        with backend.using(backend=name):
            p, g, m, v = (backend.to_device(a.copy()) for a in host)
            for t in range(1, 4):
                backend.adam_update(p, g, m, v, backend.to_device(np.int64(t)), 0.01, 0.9, 0.999, 1e-7)
            backend.sgd_update(p, g, m, 0.01, 0.9, True)
            results[name] = [backend.to_numpy(a) for a in (p, m, v)]
    for a, b in zip(results["numpy"], results["cupy"]):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol)
