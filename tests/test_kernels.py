"""The GPU kernels of tinynet/_cuda.py against their NumPy twins in tinynet/backend.py.

The twins' own math is checked here on any machine; the kernel comparisons need
CuPy and a GPU and skip with a visible reason otherwise.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinynet import backend

needs_gpu = pytest.mark.skipif(not backend.cupy_available(), reason="cupy backend: CuPy not installed or no GPU")


# ---- the twins, on NumPy ---------------------------------------------------------------------
def test_hashed_dropout_mask_keeps_the_right_fraction_with_the_right_scale():
    threshold = round(0.2 * 65536)
    scale = 1 / (1 - threshold / 65536)
    mask = backend.hashed_dropout_mask((256, 512), threshold, scale, np.float32, seed=7)
    assert mask.dtype == np.float32 and mask.shape == (256, 512)
    assert set(np.unique(mask)) == {np.float32(0), np.float32(scale)}
    kept = np.mean(mask > 0)
    assert abs(kept - 0.8) < 4 * np.sqrt(0.8 * 0.2 / mask.size)  # binomial: 4 standard errors
    assert abs(mask.mean() - 1) < 0.01  # inverted dropout keeps the mean


def test_hashed_dropout_mask_depends_on_seed_and_index_only():
    a = backend.hashed_dropout_mask((64, 32), 13107, 1.25, np.float64, seed=1)
    assert np.array_equal(a, backend.hashed_dropout_mask((64, 32), 13107, 1.25, np.float64, seed=1))
    assert not np.array_equal(a, backend.hashed_dropout_mask((64, 32), 13107, 1.25, np.float64, seed=2))
    # unit i's bits depend on i alone, so a longer draw starts with the shorter one
    assert np.array_equal(a.reshape(-1), backend.hashed_dropout_mask((4096,), 13107, 1.25, np.float64, seed=1)[:2048])


def test_relu_backward_twin():
    gen = np.random.default_rng(0)
    dy, y = gen.standard_normal((2, 50, 7))
    y = np.maximum(y, 0)
    np.testing.assert_array_equal(backend.relu_backward(dy, y), np.where(y > 0, dy, 0))


def test_softmax_cross_entropy_twin_against_logaddexp():
    gen = np.random.default_rng(1)
    z = gen.standard_normal((9, 6)) * 30
    y = np.eye(6)[gen.integers(0, 6, 9)]
    loss, grad = backend.softmax_cross_entropy(z, y)
    log_p = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -np.sum(y * log_p) / 9, rtol=1e-12)
    np.testing.assert_allclose(grad, (np.exp(log_p) - y) / 9, rtol=1e-12, atol=1e-15)


# ---- the kernels, on a GPU ---------------------------------------------------------------------------------
def _on(name, fn, *host_arrays):
    with backend.using(backend=name):
        out = fn(*(backend.to_device(a) for a in host_arrays))
        return [backend.to_numpy(o) for o in (out if isinstance(out, tuple) else (out,))]


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel_equals_its_twin_exactly(dtype):
    from tinynet import _cuda
    with backend.using(backend="cupy"):
        gpu = backend.to_numpy(_cuda.dropout_mask((128, 512), 13107, 1 / (1 - 13107 / 65536), dtype, seed=12345))
    cpu = backend.hashed_dropout_mask((128, 512), 13107, 1 / (1 - 13107 / 65536), dtype, seed=12345)
    np.testing.assert_array_equal(gpu, cpu)


@needs_gpu
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_softmax_cross_entropy_kernel_matches_its_twin(dtype, rtol):
    gen = np.random.default_rng(2)
    z = (gen.standard_normal((300, 10)) * 20).astype(dtype)
    y = np.eye(10, dtype=dtype)[gen.integers(0, 10, 300)]
    for a, b in zip(_on("cupy", backend.softmax_cross_entropy, z, y), _on("numpy", backend.softmax_cross_entropy, z, y)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)


@needs_gpu
def test_relu_backward_kernel_matches_its_twin():
    gen = np.random.default_rng(3)
    dy, y = gen.standard_normal((2, 128, 512)).astype(np.float32)
    y = np.maximum(y, 0)
    np.testing.assert_array_equal(_on("cupy", backend.relu_backward, dy, y)[0], _on("numpy", backend.relu_backward, dy, y)[0])
