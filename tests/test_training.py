"""training.py's pieces: an epoch's totals, the guarded step, the reused batch buffers."""
from __future__ import annotations

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend
from tinynet.layers import Activation, Dense
from tinynet.training import Batches, EpochTotals, train_batch


def test_epoch_totals_sum_good_batches_and_stop_at_the_first_bad_one(xb):
    xp = backend.xp()
    totals = EpochTotals(metrics=2)
    verdicts = []
    for loss, correct, size in ((0.5, 3, 4), (0.25, 4, 4), (np.nan, 1, 4), (0.125, 2, 4), (np.inf, 0, 2)):
        ok = totals.add(xp.asarray(loss, dtype=backend.floatx()), xp.asarray([correct, 0.5 * correct]), size)
        verdicts.append(bool(ok))
    assert verdicts == [True, True, False, False, False]  # once one fails, every later batch is refused
    sums = totals.read()
    np.testing.assert_array_equal(sums.pop("metric_sums"), [3 + 4, 0.5 * (3 + 4)])
    assert sums == {"loss_sum": 0.5 * 4 + 0.25 * 4, "good_batches": 2, "failed": 1}
    totals.reset()
    sums = totals.read()
    np.testing.assert_array_equal(sums.pop("metric_sums"), [0, 0])
    assert sums == dict.fromkeys(("loss_sum", "good_batches", "failed"), 0.0)


def test_epoch_totals_without_metrics_keep_an_empty_vector(xb):
    totals = EpochTotals()
    assert bool(totals.add(backend.xp().asarray(2.0), backend.xp().zeros(0), 8))
    sums = totals.read()
    assert sums.pop("metric_sums").shape == (0,)
    assert sums == {"loss_sum": 16.0, "good_batches": 1.0, "failed": 0.0}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_batch_whose_loss_is_not_finite_changes_nothing(xb, optimizer):
    tinynet.set_seed(0)
    model = Sequential([Dense(6, input_shape=(3,)), Activation("relu"), Dense(2), Activation("softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    gen = np.random.default_rng(0)
    x, y = backend.to_device(gen.standard_normal((8, 3)).astype(np.float32)), backend.to_device(np.arange(8) % 2)
    totals = EpochTotals()
    train_batch(model, x, y, None, totals)  # a good step first, so the optimizer holds state
    weights, state = model.get_weights(), model.optimizer.get_state()
    bad = backend.to_numpy(x).copy()
    bad[2, 1] = np.inf  # the scores of that row become NaN, and so does the batch's loss
    with np.errstate(over="ignore", invalid="ignore"):
        train_batch(model, backend.to_device(bad), y, None, totals)
    assert totals.read()["failed"] == 1 and totals.read()["good_batches"] == 1
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for key, value in model.optimizer.get_state().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)


def test_batches_reuse_two_buffers_and_cover_every_row_once(xb):
    gen = np.random.default_rng(1)
    x = backend.to_device(gen.standard_normal((50, 3)).astype(np.float32))
    y = backend.to_device(np.arange(50))
    batches = Batches(x, y, None, batch_size=16, shuffle=True)
    assert batches.steps == 4
    seen = []
    for xb_, yb_, wb_ in batches:
        assert xb_.shape[0] == yb_.shape[0] and xb_.shape[0] in (16, 2) and wb_ is None
        assert np.shares_memory(backend.to_numpy(xb_), backend.to_numpy(batches.buffers[0])) if xb == "numpy" else \
            xb_.data.ptr == batches.buffers[0].data.ptr  # the reused buffer, not a new array
        np.testing.assert_array_equal(backend.to_numpy(xb_), backend.to_numpy(x)[backend.to_numpy(yb_)])
        seen.extend(backend.to_numpy(yb_).tolist())
    assert sorted(seen) == list(range(50)) and seen != list(range(50))  # every row once, shuffled
    unshuffled = [backend.to_numpy(yb_).tolist() for _, yb_, _ in Batches(x, y, None, 16, shuffle=False)]
    assert sum(unshuffled, []) == list(range(50))
