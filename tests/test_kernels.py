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


def test_hashed_dropout_mask_changes_with_the_counter():
    masks = [backend.hashed_dropout_mask((64, 32), 13107, 1.25, np.float32, seed=1, counter=c) for c in (0, 1, 2)]
    assert np.array_equal(masks[0], backend.hashed_dropout_mask((64, 32), 13107, 1.25, np.float32, seed=1))
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    # consecutive counters are unrelated streams, not shifted copies of one another
    assert not np.array_equal(masks[0].reshape(-1)[1:], masks[1].reshape(-1)[:-1])


def test_replayable_is_the_plain_function_on_the_cpu():
    def step(a):
        a += 1
    with backend.using(backend="numpy"):
        assert backend.replayable(step) is step


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
@pytest.mark.parametrize("counter", [None, 5])
def test_dropout_kernel_equals_its_twin_exactly(dtype, counter):
    from tinynet import _cuda
    scale = 1 / (1 - 13107 / 65536)
    with backend.using(backend="cupy"):
        on_device = None if counter is None else backend.xp().asarray(counter, dtype=np.uint64)
        gpu = backend.to_numpy(_cuda.dropout_mask((128, 512), 13107, scale, dtype, seed=12345, counter=on_device))
    cpu = backend.hashed_dropout_mask((128, 512), 13107, scale, dtype, seed=12345, counter=counter or 0)
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


# ---- CUDA graphs, on a GPU ------------------------------------------------------------------------------------
@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
def test_captured_step_replays_with_the_new_contents_of_its_arrays():
    with backend.using(backend="cupy"):
        xp = backend.xp()
        step = backend.replayable(lambda a, total: xp.add(total, a * 2, out=total))
        a, total = xp.zeros(1000, np.float32), xp.zeros(1000, np.float32)
        for k in range(1, 6):  # an eager call, the recording (replayed at once), then plain replays
            a[...] = k
            step(a, total)
        np.testing.assert_array_equal(backend.to_numpy(total), 2 * (1 + 2 + 3 + 4 + 5))
        with pytest.raises(ValueError, match="same arrays"):
            step(xp.zeros(1000, np.float32), total)


@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
def test_captured_step_runs_its_matrix_products_between_the_graphs():
    """CuPy refuses cuBLAS during a recording: the products are cut out and run in order at each replay."""
    gen = np.random.default_rng(7)
    w = gen.standard_normal((16, 16)).astype(np.float32)
    with backend.using(backend="cupy"):
        def step(a, weights, out):
            h = backend.matmul(a, weights)
            h += 1
            backend.matmul(h, weights, out=out)
            out *= 2
        replay = backend.replayable(step)
        a, weights, out = backend.xp().empty((8, 16), np.float32), backend.to_device(w), backend.xp().empty((8, 16), np.float32)
        for _ in range(4):
            host_a = gen.standard_normal((8, 16)).astype(np.float32)
            a[...] = backend.to_device(host_a)
            replay(a, weights, out)
            np.testing.assert_allclose(backend.to_numpy(out), 2 * ((host_a @ w + 1) @ w), rtol=1e-4, atol=1e-4)
        assert len(replay.parts) == 5  # graph, product, graph, product, graph


@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
def test_captured_dropout_masks_are_fresh_at_every_replay():
    """Call k uses replay counter k; the first (eager) call draws its own seed, the recording fixes the next one."""
    threshold = round(0.5 * 65536)
    with backend.using(backend="cupy"):
        gen = np.random.default_rng(3)
        seeds = np.random.default_rng(3).integers(2**63, size=2)  # the eager call's seed, then the recorded one
        out = backend.xp().empty((32, 64), np.float32)

        def draw(buffer):
            buffer[...] = backend.dropout_mask(buffer.shape, 0.5, gen)
        step = backend.replayable(draw)
        for call in range(1, 5):
            step(out)
            seed = seeds[0] if call == 1 else seeds[1]
            want = backend.hashed_dropout_mask(out.shape, threshold, 2.0, np.float32, seed=int(seed), counter=call)
            np.testing.assert_array_equal(backend.to_numpy(out), want)


def _graph_fit(graphs, dropout, epochs=2, hidden_activation="relu"):
    from tinynet import Sequential
    from tinynet.layers import Activation, Dense, Dropout
    gen = np.random.default_rng(4)
    x = gen.standard_normal((300, 12)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[gen.integers(0, 4, 300)]
    backend.set_seed(8)
    model = Sequential([Dense(32, input_shape=(12,)), Activation(hidden_activation), Dropout(dropout), Dense(4),
                        Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    backend.set_cuda_graphs(graphs)
    try:
        history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)  # 4 full batches and one of 44
    finally:
        backend.set_cuda_graphs(True)
    return history.history, model.get_weights(), model.optimizer.iterations


@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
@pytest.mark.parametrize("hidden_activation", ["relu", "linear"])  # linear: two products in a row, an empty graph between
def test_fit_with_a_cuda_graph_matches_fit_without(hidden_activation):
    with backend.using(backend="cupy"):
        h_graph, w_graph, steps_graph = _graph_fit(True, dropout=0.0, hidden_activation=hidden_activation)
        h_plain, w_plain, steps_plain = _graph_fit(False, dropout=0.0, hidden_activation=hidden_activation)
    assert steps_graph == steps_plain == 10
    for key in h_plain:
        np.testing.assert_allclose(h_graph[key], h_plain[key], rtol=1e-5)
    for a, b in zip(w_graph, w_plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
def test_fit_with_a_cuda_graph_and_dropout_is_reproducible_and_learns():
    with backend.using(backend="cupy"):
        first, second = _graph_fit(True, dropout=0.2, epochs=8), _graph_fit(True, dropout=0.2, epochs=8)
    for a, b in zip(first[1], second[1]):
        np.testing.assert_array_equal(a, b)
    assert first[0]["loss"][-1] < first[0]["loss"][0]
