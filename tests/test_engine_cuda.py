"""The GPU engine (tinynet/engine/cuda.py, graphs.py) beyond what test_engine.py compares with the textbook.

The dropout kernel hashes (seed, counter, index) into each unit's bits; the NumPy
reference of that hash is written out here and checked on any machine, and the kernel
must equal it bit for bit. The rest needs CuPy and a GPU and skips with a visible reason.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinynet import backend, engine

needs_gpu = pytest.mark.skipif(not backend.cupy_available(), reason="cupy backend: CuPy not installed or no GPU")
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z):
    """The output function of splitmix64: a bijection of 64-bit integers that scrambles every bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hashed_dropout_mask(shape, threshold, scale, dtype, seed, counter=0):
    """What the GPU dropout kernel computes: key = splitmix64(seed + (counter + 1) * golden), and unit i
    keeps (scale) when the top 16 bits of splitmix64(key + (i + 1) * golden) are >= threshold."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around, as it does in C
        key = _splitmix64(np.uint64(seed) + np.uint64(counter + 1) * GOLDEN)
        z = _splitmix64(key + np.arange(1, int(np.prod(shape)) + 1, dtype=np.uint64) * GOLDEN)
    return np.where((z >> np.uint64(48)) >= threshold, scale, 0).astype(dtype).reshape(shape)


# ---- the hash, on NumPy ---------------------------------------------------------------------
def test_hashed_dropout_mask_keeps_the_right_fraction_with_the_right_scale():
    threshold = round(0.2 * 65536)
    scale = 1 / (1 - threshold / 65536)
    mask = hashed_dropout_mask((256, 512), threshold, scale, np.float32, seed=7)
    assert mask.dtype == np.float32 and mask.shape == (256, 512)
    assert set(np.unique(mask)) == {np.float32(0), np.float32(scale)}
    kept = np.mean(mask > 0)
    assert abs(kept - 0.8) < 4 * np.sqrt(0.8 * 0.2 / mask.size)  # binomial: 4 standard errors
    assert abs(mask.mean() - 1) < 0.01  # inverted dropout keeps the mean


def test_hashed_dropout_mask_depends_on_seed_and_index_only():
    a = hashed_dropout_mask((64, 32), 13107, 1.25, np.float64, seed=1)
    assert np.array_equal(a, hashed_dropout_mask((64, 32), 13107, 1.25, np.float64, seed=1))
    assert not np.array_equal(a, hashed_dropout_mask((64, 32), 13107, 1.25, np.float64, seed=2))
    # unit i's bits depend on i alone, so a longer draw starts with the shorter one
    assert np.array_equal(a.reshape(-1), hashed_dropout_mask((4096,), 13107, 1.25, np.float64, seed=1)[:2048])


def test_hashed_dropout_mask_changes_with_the_counter():
    masks = [hashed_dropout_mask((64, 32), 13107, 1.25, np.float32, seed=1, counter=c) for c in (0, 1, 2)]
    assert np.array_equal(masks[0], hashed_dropout_mask((64, 32), 13107, 1.25, np.float32, seed=1))
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    # consecutive counters are unrelated streams, not shifted copies of one another
    assert not np.array_equal(masks[0].reshape(-1)[1:], masks[1].reshape(-1)[:-1])


def test_no_cuda_graphs_on_the_cpu():
    with backend.using(backend="numpy"):
        assert engine.fast.replayable is None


# ---- the kernels, on a GPU ---------------------------------------------------------------------------------
def _on(name, fn, *host_arrays):
    with backend.using(backend=name):
        out = fn(*(backend.to_device(a) for a in host_arrays))
        return [backend.to_numpy(o) for o in (out if isinstance(out, tuple) else (out,))]


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("counter", [None, 5])
def test_dropout_kernel_equals_its_twin_exactly(dtype, counter):
    from tinynet.engine import cuda
    rate = 13107 / 65536
    seed = int(np.random.default_rng(9).integers(2**63))  # what the kernel draws from the generator below
    with backend.using(backend="cupy"):
        on_device = None if counter is None else backend.xp().asarray(counter, dtype=np.uint64)
        gpu = backend.to_numpy(cuda.dropout_mask((128, 512), rate, np.random.default_rng(9), dtype, counter=on_device))
    cpu = hashed_dropout_mask((128, 512), 13107, 1 / (1 - rate), dtype, seed=seed, counter=counter or 0)
    np.testing.assert_array_equal(gpu, cpu)


# ---- CUDA graphs, on a GPU ------------------------------------------------------------------------------------
@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
def test_captured_step_replays_with_the_new_contents_of_its_arrays():
    with backend.using(backend="cupy"):
        from tinynet.engine import graphs
        xp = backend.xp()
        step = graphs.CapturedStep(lambda a, total: xp.add(total, a * 2, out=total))
        a, total = xp.zeros(1000, np.float32), xp.zeros(1000, np.float32)
        for k in range(1, 6):  # an eager call, the recording (replayed at once), then plain replays
            a[...] = k
            step(a, total)
        np.testing.assert_array_equal(backend.to_numpy(total), 2 * (1 + 2 + 3 + 4 + 5))
        other = xp.full(10, 7, np.float32)  # other arrays (fit's last, smaller batch) run as usual...
        step(other, total[:10])
        np.testing.assert_array_equal(backend.to_numpy(total[:10]), 2 * 15 + 14)
        a[...] = 1  # ...and the recording still replays on its own arrays
        step(a, total)
        np.testing.assert_array_equal(backend.to_numpy(total[10:]), 2 * 15 + 2)
        assert len(step.parts) == 1  # one graph, recorded once


@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
def test_captured_step_runs_its_matrix_products_between_the_graphs():
    """CuPy refuses cuBLAS during a recording: the products are cut out and run in order at each replay."""
    gen = np.random.default_rng(7)
    w = gen.standard_normal((16, 16)).astype(np.float32)
    with backend.using(backend="cupy"):
        from tinynet.engine import graphs

        def step(a, weights, out):
            h = graphs.matmul(a, weights)
            h += 1
            graphs.matmul(h, weights, out=out)
            out *= 2
        replay = graphs.CapturedStep(step)
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

        from tinynet.engine import graphs

        def draw(buffer):
            buffer[...] = engine.fast.dropout_mask(buffer.shape, 0.5, gen, np.float32)
        step = graphs.CapturedStep(draw)
        for call in range(1, 5):
            step(out)
            seed = seeds[0] if call == 1 else seeds[1]
            want = hashed_dropout_mask(out.shape, threshold, 2.0, np.float32, seed=int(seed), counter=call)
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
    engine.set_cuda_graphs(graphs)
    try:
        history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)  # 4 full batches and one of 44
    finally:
        engine.set_cuda_graphs(True)
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


@needs_gpu
@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-13)])
def test_update_kernels_match_the_textbook_in_both_dtypes(dtype, rtol):
    gen = np.random.default_rng(0)
    host = [gen.standard_normal(1000).astype(dtype) for _ in range(4)]
    results = {}
    for on in (True, False):
        engine.set_fast(on)
        try:
            with backend.using(backend="cupy"):
                from tinynet.optimizers import SGD, Adam
                p = backend.to_device(host[0].copy())
                adam, sgd = Adam(0.01), SGD(0.01, momentum=0.9, nesterov=True)
                for g in host[1:]:
                    adam.step(p, backend.to_device(g))
                    sgd.step(p, backend.to_device(g))
                results[on] = [backend.to_numpy(p)] + [adam.get_state()[k] for k in ("m", "v")]
        finally:
            engine.set_fast(True)
    for a, b in zip(results[True], results[False]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@needs_gpu
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_refused_update_changes_nothing(optimizer):
    """fit's guarded step: with `ok` false on the device, the kernel leaves weights, state and step count alone."""
    from tinynet.optimizers import SGD, Adam
    with backend.using(backend="cupy", dtype="float64"):
        xp = backend.xp()
        opt = Adam(0.1) if optimizer == "adam" else SGD(0.1, momentum=0.9)
        gen = np.random.default_rng(6)
        p = backend.to_device(gen.standard_normal(30))
        opt.step(p, backend.to_device(gen.standard_normal(30)))  # the first step makes the fused form
        before = backend.to_numpy(p).copy(), opt.get_state()
        bad = gen.standard_normal(30)
        bad[3] = np.nan  # the gradient of a batch whose loss was not finite
        engine.fast.step_if(xp.zeros((), dtype=bool), opt, p, backend.to_device(bad))
        np.testing.assert_array_equal(backend.to_numpy(p), before[0])
        after = opt.get_state()
        for key in before[1]:
            np.testing.assert_array_equal(after[key], before[1][key], err_msg=key)


@needs_gpu
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a failed recording falls back with a warning
def test_fit_records_only_fused_steps_and_records_again_for_a_new_learning_rate():
    from tinynet import optimizers
    with backend.using(backend="cupy"):
        from tinynet.engine import graphs
        xp = backend.xp()
        adam, rmsprop = optimizers.Adam(), optimizers.RMSprop()
        assert isinstance(engine.fast.replayable(lambda: None, adam), graphs.CapturedStep)
        step = lambda total: None  # noqa: E731
        assert engine.fast.replayable(step, rmsprop) is step  # its step reads `ok` on the host: never recorded
        total = xp.zeros((), np.float32)
        recorded = engine.fast.replayable(lambda t: xp.add(t, adam.learning_rate, out=t), adam)
        for _ in range(3):
            recorded(total)
        adam.learning_rate = 0.5  # between epochs: the recording held 0.001 as a constant
        for _ in range(3):
            recorded(total)
        assert float(total) == pytest.approx(3 * 0.001 + 3 * 0.5)
