"""The engine's fast twins against the textbook lines they replace, and TINYNET_FAST=0 running only the textbook.

Each comparison runs the same thing with the twins on and off. A twin the active backend
does not have is skipped with a visible reason (most GPU twins on a machine without one;
tests/test_engine_cuda.py has the kernels' own checks).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend, engine
from tinynet.layers import Activation, Dense, Dropout, ReLU
from tinynet.losses import CategoricalCrossentropy
from tinynet.optimizers import SGD, Adam
from tinynet.training import EpochTotals

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def fast_mode(on):
    was = engine.is_fast()
    engine.set_fast(on)
    try:
        yield
    finally:
        engine.set_fast(was)


def _twin_or_skip(name):
    with fast_mode(True):
        if getattr(engine.fast, name) is None:
            pytest.skip(f"the {backend.get_backend()} backend has no fast twin {name}")


def _both_ways(run):
    """run() with the twins on, then off; both results on the host."""
    results = []
    for on in (True, False):
        with fast_mode(on):
            results.append([backend.to_numpy(a) for a in run()])
    return results


def test_which_twins_each_backend_has(xb):
    with fast_mode(True):
        present = {name for name in vars(engine.Twins) if not name.startswith("_") and getattr(engine.fast, name)}
    if xb == "numpy":
        assert present == {"dense_forward", "dense_backward", "dropout_mask", "adam_update", "zeros", "take_rows",
                           "im2col", "conv_input_gradient", "max_pool_forward", "max_pool_backward",
                           "avg_pool_forward", "avg_pool_backward"}  # the last six: tests/test_engine_cnn.py
    else:
        assert {"relu_backward", "softmax_cross_entropy", "adam_update", "sgd_update", "record_batch", "step_if",
                "replayable"} <= present


# ---- layers --------------------------------------------------------------------------------
@pytest.mark.parametrize("needs_input_grad", [True, False])
def test_dense_twins_equal_the_textbook_lines(xb, needs_input_grad):
    _twin_or_skip("dense_forward")
    gen = np.random.default_rng(0)
    x, W, b, dy = gen.standard_normal((7, 5)), gen.standard_normal((5, 3)), gen.standard_normal(3), gen.standard_normal((7, 3))

    def run():
        layer = Dense(3)
        layer.build((5,))
        layer.W[...], layer.b[...] = backend.to_device(W), backend.to_device(b)
        layer.needs_input_grad = needs_input_grad
        y = layer.forward(backend.to_device(x))
        dx = layer.backward(backend.to_device(dy))
        return [y, layer.dW, layer.db] + ([dx] if needs_input_grad else [])

    with backend.using(dtype="float64"):
        fast, textbook = _both_ways(run)
    for a, b_ in zip(fast, textbook):
        np.testing.assert_allclose(a, b_, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(textbook[0], x @ W + b, rtol=1e-13)  # and the textbook line is the math


def test_relu_backward_twin(xb):
    _twin_or_skip("relu_backward")
    gen = np.random.default_rng(1)
    x, dy = gen.standard_normal((2, 64, 33))

    def run():
        layer = ReLU()
        layer.forward(backend.to_device(x))
        return [layer.backward(backend.to_device(dy))]

    fast, textbook = _both_ways(run)
    np.testing.assert_array_equal(fast[0], textbook[0])


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_mask_twin_has_the_textbook_distribution(xb, rate):
    """The twin draws other random bits, so the masks differ; their distribution may not."""
    _twin_or_skip("dropout_mask")
    shape = (400, 500)

    def run():
        return [Dropout(rate, seed=3).draw_mask(shape)]

    (fast,), (textbook,) = _both_ways(run)
    assert not np.array_equal(fast, textbook)
    for mask in (fast, textbook):
        assert mask.shape == shape and mask.dtype == backend.floatx()
        dropped = mask == 0
        assert abs(dropped.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / mask.size)
        np.testing.assert_allclose(mask[~dropped], 1 / (1 - rate), rtol=2e-5)  # the twin rounds rate to 1/65536
        assert abs(mask.mean() - 1) < 5 * np.sqrt(rate / (1 - rate) / mask.size)


def test_softmax_cross_entropy_twin(xb):
    _twin_or_skip("softmax_cross_entropy")
    gen = np.random.default_rng(2)
    z, y = gen.standard_normal((50, 10)) * 20, np.eye(10)[gen.integers(0, 10, 50)]

    def run():
        loss = CategoricalCrossentropy(from_logits=True)
        value = loss.forward(backend.to_device(z), backend.to_device(y))
        return [value, loss.backward()]

    with backend.using(dtype="float64"):
        fast, textbook = _both_ways(run)
    for a, b in zip(fast, textbook):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


# ---- optimizers ----------------------------------------------------------------------------------
def _steps(make, p0, grads, modes):
    """Step a fresh optimizer through `grads`, the twins on or off at each step as `modes` says."""
    optimizer = make()
    params = backend.to_device(p0.copy())
    for g, on in zip(grads, modes):
        with fast_mode(on):
            optimizer.step(params, backend.to_device(g))
    return backend.to_numpy(params), optimizer.get_state()


def _problem(n=300, steps=6, seed=0):
    gen = np.random.default_rng(seed)
    return gen.standard_normal(n), [gen.standard_normal(n) * 10.0 ** gen.uniform(-3, 1, n) for _ in range(steps)]


@pytest.mark.parametrize("make, twin", [(lambda: Adam(0.01), "adam_update"),
                                        (lambda: Adam(0.3, beta_1=0.5, beta_2=0.9, epsilon=1e-3), "adam_update"),
                                        (lambda: SGD(0.1, momentum=0.9, nesterov=True), "sgd_update")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizer_twins_equal_the_textbook(xb, make, twin, dtype):
    _twin_or_skip(twin)
    p0, grads = _problem()
    with backend.using(dtype=dtype):
        p0, grads = p0.astype(dtype), [g.astype(dtype) for g in grads]
        fast_p, fast_state = _steps(make, p0, grads, [True] * 6)
        text_p, text_state = _steps(make, p0, grads, [False] * 6)
        # handing the optimizer over between the twin and the textbook, both ways, changes nothing either
        mixed_p, mixed_state = _steps(make, p0, grads, [True, True, False, False, True, True])
    assert fast_state.keys() == text_state.keys() == mixed_state.keys()
    assert int(fast_state["iterations"]) == int(mixed_state["iterations"]) == 6
    if xb == "numpy":  # the CPU twin runs the textbook's own operations: equal to the bit
        for got in (fast_p, mixed_p):
            np.testing.assert_array_equal(got, text_p)
        for key in text_state:
            np.testing.assert_array_equal(fast_state[key], text_state[key], err_msg=key)
            np.testing.assert_array_equal(mixed_state[key], text_state[key], err_msg=key)
    else:  # a GPU kernel rounds in its own order (fused multiply-adds)
        rtol = 1e-12 if dtype == "float64" else 1e-5
        for got in (fast_p, mixed_p):
            np.testing.assert_allclose(got, text_p, rtol=rtol, atol=rtol)
        for key in text_state:
            np.testing.assert_allclose(fast_state[key], text_state[key], rtol=rtol, atol=rtol * 1e-3, err_msg=key)


def test_reading_the_state_mid_run_changes_nothing(xb):
    """A checkpoint does not perturb training: the state is read as it is, in Keras's form, in any dtype."""
    p0, grads = _problem(steps=8)
    p0, grads = p0.astype(np.float32), [g.astype(np.float32) for g in grads]
    straight_p, straight_state = _steps(Adam, p0, grads, [True] * 8)
    optimizer, params = Adam(), backend.to_device(p0.copy())
    for k, g in enumerate(grads):
        optimizer.step(params, backend.to_device(g))
        if k % 3 == 0:
            optimizer.get_state()
            copy = Adam()
            copy.set_state(optimizer.get_state())
    np.testing.assert_array_equal(backend.to_numpy(params), straight_p)
    for key, value in optimizer.get_state().items():
        np.testing.assert_array_equal(value, straight_state[key], err_msg=key)


# ---- memory and batches -----------------------------------------------------------------------------
def test_zeros_twin_gives_huge_page_aligned_zeros_for_big_vectors(xb):
    _twin_or_skip("zeros")
    with fast_mode(True):
        big = engine.fast.zeros((669706,), np.float32)
        small = engine.fast.zeros((10,), np.float64)
    assert big.shape == (669706,) and big.dtype == np.float32 and not big.any()
    assert small.shape == (10,) and small.dtype == np.float64 and not small.any()
    if xb == "numpy":
        from tinynet.engine import cpu
        assert big.ctypes.data % cpu.HUGE_PAGE == 0
    big[...] = 1  # writable, and the whole length is there
    assert float(big.sum()) == 669706


def test_take_rows_twin(xb):
    _twin_or_skip("take_rows")
    x = backend.to_device(np.arange(60, dtype=np.float32).reshape(20, 3))
    rows = backend.to_device(np.array([19, 0, 7, 7, 3]))
    out = backend.xp().empty((5, 3), np.float32)
    with fast_mode(True):
        engine.fast.take_rows(x, rows, out=out)
    np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(x)[[19, 0, 7, 7, 3]])


def test_record_batch_twin_keeps_the_textbook_totals(xb):
    _twin_or_skip("record_batch")
    batches = ((0.5, 3, 4), (0.25, 4, 4), (np.nan, 1, 4), (0.125, 2, 4))

    def run():
        totals = EpochTotals(metrics=2)
        verdicts = [totals.add(backend.xp().asarray(loss, dtype=np.float32), backend.xp().asarray([c, 2.5 * c]), n)
                    for loss, c, n in batches]
        return [backend.xp().asarray([bool(v) for v in verdicts])] + [backend.xp().asarray(v) for v in totals.read().values()]

    fast, textbook = _both_ways(run)
    for a, b in zip(fast, textbook):
        np.testing.assert_array_equal(a, b)


# ---- TINYNET_FAST=0: the textbook only ---------------------------------------------------------------
def test_tinynet_fast_0_turns_every_twin_off():
    env = {**os.environ, "TINYNET_FAST": "0", "PYTHONPATH": str(ROOT)}
    code = ("import tinynet; from tinynet import engine; "
            "print(engine.is_fast(), [n for n in vars(engine.Twins) if not n.startswith('_') and getattr(engine.fast, n)])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "[]"]


def _files_that_ran(fn):
    """The tinynet source files whose functions ran during fn()."""
    seen = set()

    def profile(frame, event, arg):
        if event == "call" and "tinynet" in frame.f_code.co_filename:
            seen.add(Path(frame.f_code.co_filename).resolve().relative_to(ROOT).as_posix())
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def _train_the_tutorial_network():
    gen = np.random.default_rng(0)
    x, labels = gen.standard_normal((300, 20)).astype(np.float32), gen.integers(0, 10, 300)
    model = Sequential([Dense(16, input_shape=(20,)), Activation("relu"), Dropout(0.2), Dense(16), Activation("relu"),
                        Dropout(0.2), Dense(10), Activation("softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, labels, batch_size=128, epochs=2, verbose=0)


def test_with_the_twins_off_no_engine_code_runs():
    with fast_mode(False):
        textbook = _files_that_ran(_train_the_tutorial_network)
    with fast_mode(True):
        fast = _files_that_ran(_train_the_tutorial_network)
    assert not any(f.startswith("tinynet/engine/") for f in textbook), textbook
    # every computing line ran in the files that name the concepts
    assert {"tinynet/layers.py", "tinynet/losses.py", "tinynet/optimizers.py"} <= textbook
    assert "tinynet/engine/cpu.py" in fast  # the probe sees the engine when it does run


def test_training_with_the_twins_off_matches_training_with_them_on():
    results = []
    for on in (True, False):
        with fast_mode(on):
            tinynet.set_seed(4)
            model = Sequential([Dense(8, input_shape=(4,)), Activation("relu"), Dense(3), Activation("softmax")])
            model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
            gen = np.random.default_rng(0)
            x = gen.standard_normal((64, 4)).astype(np.float32)
            model.fit(x, np.eye(3, dtype=np.float32)[np.arange(64) % 3], batch_size=16, epochs=3, verbose=0)
            results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # float32: the twins round differently


def test_the_cpu_adam_twin_flushes_vanishing_moments_before_they_turn_subnormal():
    """A weight with no gradient has m shrink by beta_1 every step; the twin zeroes it while still a normal
    float (subnormals are ~100x slower on many x86 CPUs) and the weights still follow the textbook."""
    from tinynet.engine import cpu
    grads = [np.array([1.0, 1.0], np.float32)] + [np.array([1.0, 0.0], np.float32)] * 999
    tiny = np.finfo(np.float32).tiny
    with fast_mode(True):
        fast_opt, fast_p = Adam(), backend.to_device(np.zeros(2, np.float32))
        for g in grads:
            fast_opt.step(fast_p, g)
            m = fast_opt.slots["m"]
            assert not np.any((m != 0) & (np.abs(m) < tiny)), f"subnormal m at step {fast_opt.iterations}"
    with fast_mode(False):
        text_opt, text_p = Adam(), backend.to_device(np.zeros(2, np.float32))
        for g in grads[:700]:
            text_opt.step(text_p, g)
        assert 0 < abs(text_opt.slots["m"][1]) < 1e-27  # the textbook's m of that weight, still shrinking
        for g in grads[700:]:
            text_opt.step(text_p, g)
    assert fast_opt.get_state()["m"][1] == 0 and cpu.FLUSH_EVERY <= 64
    np.testing.assert_allclose(fast_p, text_p, rtol=1e-5)
