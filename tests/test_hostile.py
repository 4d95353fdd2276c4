"""Hostile input and faults: model files that lie, updates that overflow, bad arguments, killed saves, links.

Each case failed before (a huge allocation, NaN weights kept, a raw error from deep inside, a
world-writable moment, a file left behind) and must now give a clear error or do the right thing.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet import Sequential
from tinynet.layers import Activation, Dense, Dropout
from tinynet.optimizers import SGD
from tinynet.utils import to_categorical

ROOT = Path(__file__).resolve().parents[1]


def _model(optimizer="adam", rate=0.0, seed=None):
    tinynet.set_seed(0)
    model = Sequential([Dense(6, input_shape=(4,)), Activation("relu"), Dropout(rate, seed=seed), Dense(3),
                        Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def _data(n=40):
    gen = np.random.default_rng(0)
    labels = np.arange(n) % 3
    return (np.eye(3, 4)[labels] * 2 + gen.standard_normal((n, 4))).astype(np.float32), np.eye(3, dtype=np.float32)[labels]


def _arrays(path):
    with np.load(path) as archive:
        return dict(archive)


def _config(arrays):
    return json.loads(arrays["config"].tobytes())


def _savez(path, **arrays):
    with open(path, "wb") as f:  # np.savez would add ".npz" to a name without it
        np.savez(f, **arrays)


def _with_config(arrays, config):
    return {**arrays, "config": np.frombuffer(json.dumps(config).encode(), np.uint8)}


@pytest.fixture
def saved(tmp_path):
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.tinynet")
    return model, tmp_path / "m.tinynet"


# ---- model files: checked before anything is allocated --------------------------------------------------
def test_a_small_file_claiming_a_huge_layer_is_refused_before_any_allocation(saved, tmp_path):
    _, path = saved
    arrays = _arrays(path)
    config = _config(arrays)
    config["model"]["layers"][0]["config"]["units"] = 50_000_000  # 50 million units: 2.2 GiB of weights
    _savez(tmp_path / "huge.tinynet", **_with_config(arrays, config))
    assert (tmp_path / "huge.tinynet").stat().st_size < 4000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"huge.tinynet: not a valid tinynet model file .*params \(the weights\) "
                                             r"has shape \(51,\), expected 400000003 numbers"):
            tinynet.load_model(tmp_path / "huge.tinynet")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes allocated to read a 4 kB file"


def test_a_member_the_format_does_not_have_is_refused_unread(saved, tmp_path):
    _, path = saved
    bloated = tmp_path / "bloated.tinynet"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bloated, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        with target.open("extra.npy", "w") as member:  # 256 MB of zeros, a few hundred kB in the zip
            for _ in range(256):
                member.write(bytes(1 << 20))
    assert bloated.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"not a valid tinynet model file .*unexpected member 'extra.npy'"):
            tinynet.load_model(bloated)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_an_array_whose_header_lies_about_its_size_is_refused(saved, tmp_path):
    _, path = saved
    arrays = _arrays(path)
    arrays["optimizer.m"] = np.zeros(10**6, np.float32)  # a million moments for 51 weights
    _savez(tmp_path / "lies.tinynet", **arrays)
    with pytest.raises(ValueError, match=r"optimizer state m has shape \(1000000,\), expected 51 numbers"):
        tinynet.load_model(tmp_path / "lies.tinynet")


@pytest.mark.parametrize("version", [99, "1", "2", None, 1.0, True])
def test_unknown_format_versions_are_refused(saved, tmp_path, version):
    _, path = saved
    arrays = _arrays(path)
    config = _config(arrays)
    config["version"] = version
    _savez(tmp_path / "v.tinynet", **_with_config(arrays, config))
    with pytest.raises(ValueError, match=rf"format version {repr(version).replace('.', '[.]')}; "
                                         r"this tinynet reads versions 1 and 2"):
        tinynet.load_model(tmp_path / "v.tinynet")


@pytest.mark.parametrize("input_shape", [[float("inf")], [-100], [None], ["a"], [784.5], "784"])
def test_a_file_with_a_nonsense_input_shape_is_refused(saved, tmp_path, input_shape):
    _, path = saved
    arrays = _arrays(path)
    config = _config(arrays)
    config["model"]["input_shape"] = input_shape
    _savez(tmp_path / "shape.tinynet", **_with_config(arrays, config))
    with pytest.raises(ValueError, match=r"not a valid tinynet model file .*input_shape must be positive integers"):
        tinynet.load_model(tmp_path / "shape.tinynet")


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update({"optimizer.iterations": np.array(-3)}), r"iterations\) must be a whole number from 0 to"),
    (lambda a: a.update({"optimizer.iterations": np.array(np.inf)}), r"iterations\) must be a whole number from 0 to"),
    (lambda a: a.update({"optimizer.m": a["optimizer.m"].astype(np.int32)}), r"optimizer state m is int32"),
    (lambda a: a.update({"optimizer.v": a["optimizer.v"].astype(np.complex64)}), r"optimizer state v holds complex64"),
    (lambda a: a.update({"optimizer.m": a["optimizer.m"].astype(np.float64)}), r"optimizer state m is float64"),
    (lambda a: a.update({"params": np.full_like(a["params"], np.nan)}), r"the stored weights contain NaN or inf"),
    (lambda a: a.update({"config": np.array([{"format": "tinynet-model"}], dtype=object)}), r"not a tinynet model file"),
])
def test_crafted_weights_and_optimizer_state_are_refused(saved, tmp_path, change, message):
    _, path = saved
    arrays = _arrays(path)
    change(arrays)
    _savez(tmp_path / "crafted.tinynet", **arrays)
    with pytest.raises(ValueError, match=message):
        tinynet.load_model(tmp_path / "crafted.tinynet")


def test_a_reloaded_model_with_its_own_dropout_seed_trains_on_identically(tmp_path):
    x, y = _data()
    model = _model(rate=0.5, seed=3)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "seeded.tinynet")
    loaded = tinynet.load_model(tmp_path / "seeded.tinynet")
    for m in (model, loaded):
        tinynet.set_seed(1)  # the same shuffles; the masks come from the layer's own generator
        m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- writes: atomic, race-free, tidy ---------------------------------------------------------------------
def test_saving_never_touches_the_process_umask(tmp_path, monkeypatch):
    def forbidden(mask):
        raise AssertionError("os.umask was called: another thread could create a world-writable file meanwhile")
    monkeypatch.setattr(os, "umask", forbidden)
    _model().save(tmp_path / "m.tinynet")
    assert (tmp_path / "m.tinynet").is_file()


def test_a_killed_save_s_temporary_file_is_removed_by_the_next_save(tmp_path, dead_pid):
    from tinynet.files import HOST
    dead = dead_pid
    stale = tmp_path / f".m.tinynet.{HOST}-{dead}.abcd1234.tinynet-tmp"
    stale.write_bytes(b"half a model")
    keep = [tmp_path / f".m.tinynet.{HOST}-{os.getpid()}.ef567890.tinynet-tmp",  # a save of this process, under way
            tmp_path / f".m.tinynet.999999.{HOST}-{dead}.abcd1234.tinynet-tmp",  # another file's (m.tinynet.999999)
            tmp_path / f".m.tinynet.otherhost-{dead}.abcd1234.tinynet-tmp",  # another machine's, and recent
            tmp_path / f".m[0-9].tinynet.{HOST}-{dead}.abcd1234.tinynet-tmp"]  # a name with glob characters
    for path in keep:
        path.write_bytes(b"in progress")
    _model().save(tmp_path / "m.tinynet")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in keep] + ["m.tinynet"])


def test_resaving_keeps_the_file_s_permissions_and_names_the_user_s_path_on_failure(tmp_path):
    model = _model()
    path = tmp_path / "private.tinynet"
    model.save(path)
    os.chmod(path, 0o600)
    model.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError, match=rf"cannot write {tmp_path}/missing/m.tinynet"):
        model.save(tmp_path / "missing" / "m.tinynet")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_a_loop_of_links_is_an_error_not_a_new_file(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="too many levels of symbolic links"):
        _model().save(tmp_path / "a")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_a_save_is_killed_midway_and_leaves_the_old_file_whole(saved, tmp_path):
    model, path = saved
    before = path.read_bytes()
    code = ("import os, numpy as np, tinynet; from tinynet.layers import Dense, Activation\n"
            "m = tinynet.Sequential([Dense(4, input_shape=(3,)), Activation('softmax')])\n"
            "real = np.savez\n"
            "def die(f, **arrays):\n"
            "    f.write(b'PK half'); f.flush(); os.kill(os.getpid(), 9)\n"
            f"np.savez = die\nm.save({str(path)!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == -9
    assert path.read_bytes() == before  # the killed save never reached the real name
    assert any(p.name.endswith(".tinynet-tmp") for p in tmp_path.iterdir())  # its leftover ...
    model.save(path)
    assert not any(p.name.endswith(".tinynet-tmp") for p in tmp_path.iterdir())  # ... gone with the next save


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_saving_through_a_symlink_replaces_its_target(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "real.tinynet"
    target.write_bytes(b"old")
    link = tmp_path / "latest.tinynet"
    link.symlink_to(target)
    model = _model()
    model.save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    np.testing.assert_array_equal(tinynet.load_model(target).get_weights()[0], model.get_weights()[0])


# ---- training never keeps non-finite weights -------------------------------------------------------------
def test_an_update_that_overflows_the_weights_is_undone_by_fit(xb):
    """The loss is finite when the step is taken; the step itself turns the weights infinite."""
    x, y = _data(16)
    model = _model(optimizer=SGD(learning_rate=1e39))  # float32 overflows on the first update
    before = model.get_weights()
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.warns(RuntimeWarning, match=r"the weights or the optimizer's state became NaN or infinite during "
                                               r"epoch 1/3 .*keeping the weights and optimizer state from the start"):
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)  # one batch an epoch: no later loss to catch it
    assert history.epoch == []
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_an_update_that_overflows_the_weights_is_undone_by_train_on_batch(xb):
    x, y = _data(16)
    model = _model(optimizer=SGD(learning_rate=1e39))
    before = model.get_weights()
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(FloatingPointError, match="the update made the weights or the optimizer's state NaN or "
                                                    "infinite; the step was undone"):
        model.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# ---- targets and weights ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows, bad", [([[0, 0, 0]], "row 0 sums to 0"), ([[1, 1, 0]], "row 0 sums to 2")])
def test_one_hot_rows_must_sum_to_one(rows, bad):
    x, y = _data(4)
    y = y.copy()
    y[0] = rows[0]
    with pytest.raises(ValueError, match=rf"fit: categorical_crossentropy: each target row must sum to 1 .*{bad}"):
        _model().fit(x, y, verbose=0)


def test_smoothed_targets_are_accepted():
    x, y = _data(6)
    smoothed = y * 0.9 + 0.1 / 3  # Keras's label smoothing: rows still sum to 1
    _model().fit(x, smoothed, verbose=0)


@pytest.mark.parametrize("bad, error, message", [
    (np.full((6,), "a"), TypeError, r"layer .* weight b must be real numbers, got dtype <U1"),
    (np.array([None] * 6), TypeError, r"weight b must be real numbers, got dtype object"),
    (np.ones(6, complex), TypeError, r"weight b must be real numbers, got dtype complex128"),
    (np.array([0, 1, np.nan, 0, 0, 0.0]), ValueError, r"weight b contains NaN or inf"),
    (np.array([0, 1, 1e300, 0, 0, 0.0]), ValueError, r"weight b holds values up to 1e\+300, beyond the model's float32"),
    ([[1, 2], [3]], ValueError, r"weight b is not a rectangular array"),
])
def test_set_weights_checks_every_array_before_writing_any(bad, error, message):
    model = _model()
    before = model.get_weights()
    new = [np.ones_like(w) for w in before]
    new[1] = bad
    with pytest.raises(error, match=message):
        model.set_weights(new)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # not even the first array was written


# ---- clear messages ------------------------------------------------------------------------------------------
def test_fit_on_an_empty_model_says_so():
    model = Sequential()
    model.compile(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"sequential: the model has no layers yet; add them first"):
        model.fit(np.zeros((2, 4)), np.eye(3)[[0, 1]], verbose=0)


def test_a_softmax_output_with_a_logits_loss_warns():
    model = Sequential([Dense(3, input_shape=(4,)), Activation("softmax")])
    with pytest.warns(UserWarning, match=r"ends in a softmax, but the loss categorical_crossentropy has "
                                         r"from_logits=True"):
        model.compile(loss=tinynet.losses.CategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile(loss="categorical_crossentropy")  # the usual pairing: no warning


@pytest.mark.parametrize("input_shape", [(float("inf"),), (-100,), (None,), ("a",), (784.5,), (True,)])
def test_nonsense_input_shapes_name_the_layer(input_shape):
    with pytest.raises(ValueError, match=r"hidden: input_shape must be positive integers such as \(784,\), got"):
        Dense(3, input_shape=input_shape, name="hidden")


def test_a_large_but_finite_input_is_not_called_nan():
    x = np.zeros((3, 4))
    x[1, 2] = 1e300  # finite in float64, infinite in the model's float32
    with pytest.raises(ValueError, match=r"fit: x holds values up to 1e\+300, beyond the range of the model's float32"):
        _model().fit(x, np.eye(3)[[0, 1, 2]], verbose=0)


def test_a_ragged_list_is_a_clear_error():
    with pytest.raises(ValueError, match=r"predict: x must be a rectangular array of numbers \(every row the same "
                                         r"length\), got a list"):
        _model().predict([[1, 2, 3, 4], [1, 2]])


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match=r"activation(_\d+)?: activation must be a name such as 'relu', a function, or "
                                        r"None, got \['relu'\]"):
        Activation(["relu"])
    with pytest.raises(TypeError, match=r"set_weights: expected a list of arrays, as get_weights gives, got NoneType"):
        _model().set_weights(None)
    with pytest.raises(ValueError, match=r"to_categorical: labels must be whole numbers, got dtype float64 with values "
                                         r"such as inf"):
        to_categorical([0, np.inf])
    with pytest.raises(ValueError, match=r"to_categorical: num_classes must be a whole number >= 0, got 2.9"):
        to_categorical([0, 1], num_classes=2.9)
    with pytest.raises(ValueError, match=r"to_categorical: 2 labels x 1000000000000 classes would be"):
        to_categorical([0, 1], num_classes=10**12)
    with pytest.raises(ValueError, match=r"to_categorical: labels must be a flat list or array of whole numbers"):
        to_categorical([[0, 1], [2]])
    with pytest.raises(TypeError, match=r"categorical_crossentropy: from_logits must be True or False, got 'no'"):
        tinynet.losses.CategoricalCrossentropy(from_logits="no")
    with pytest.raises(TypeError, match=r"Dense: name must be a non-empty string, got 7"):
        Dense(3, name=7)
    model = Sequential([Dense(3, input_shape=(4,), name="twin")])
    with pytest.raises(ValueError, match=r"a layer named 'twin' is already in this model"):
        model.add(Dense(3, name="twin"))


def test_the_example_reports_an_out_path_that_is_a_file_in_one_line(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "mnist_mlp.py"), "--out", str(taken)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and f"--out {taken}" in proc.stderr and "Traceback" not in proc.stderr


def test_adam_moments_that_overflow_while_the_weights_stay_finite_are_undone_too(xb):
    """g^2 overflows float32 in v; the weights move by about the learning rate and stay finite."""
    x, y = _data(16)
    x = x * np.float32(1e20)
    unguarded = _model()
    with np.errstate(over="ignore", invalid="ignore"):
        unguarded.train_step(x, y)  # the bare one-batch API has no guard: what train_on_batch must not keep
    assert np.isfinite(unguarded.params).all() and not np.isfinite(unguarded.optimizer.slots["v"]).all()
    model = _model()
    before, state = model.get_weights(), model.optimizer.get_state()
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(FloatingPointError, match="the optimizer's state NaN or infinite; the step was undone"):
        model.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0 and model.optimizer.get_state().keys() == state.keys()


def test_a_model_with_non_finite_state_is_not_saved(tmp_path):
    model = _model()
    model.train_on_batch(*_data(8))
    model.optimizer.slots["v"][0] = np.inf  # as a hand-driven train_step could leave it
    with pytest.raises(ValueError, match=r"save: the weights of sequential or its optimizer's state contain NaN or inf; "
                                         r"not saved"):
        model.save(tmp_path / "m.tinynet")
    assert not list(tmp_path.iterdir())


def test_training_state_is_snapshotted_in_reused_buffers():
    """A snapshot per train_on_batch copies into buffers made once, not new arrays each call."""
    from tinynet import training
    model = _model()
    x, y = _data(8)
    model.train_on_batch(x, y)
    first = training._snapshots[model]
    buffers = [first.params] + list(first.slots.values())
    model.train_on_batch(x, y)
    assert training._snapshots[model] is first
    assert all(a is b for a, b in zip(buffers, [first.params] + list(first.slots.values())))


def _zip_with(path, source, name, write):
    """A copy of the model file at `source` with one more member `name`, written in pieces by `write`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename != name:
                new.writestr(info, old.read(info))
        with new.open(name, "w") as member:
            write(member)


def test_an_npy_header_claiming_megabytes_is_refused_unread(saved, tmp_path):
    import struct
    _, path = saved

    def huge_header(member):  # .npy 2.0: magic, a 4-byte header length of 32 MiB, then that many spaces
        member.write(b"\x93NUMPY\x02\x00" + struct.pack("<I", 32 << 20))
        for _ in range(32):
            member.write(b" " * (1 << 20))
    _zip_with(tmp_path / "header.tinynet", path, "params.npy", huge_header)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"params \(the weights\) has a header longer than the 65536 bytes"):
            tinynet.load_model(tmp_path / "header.tinynet")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes allocated for a header that should be refused at 64 kB"


@pytest.mark.parametrize("name", ["optimizer.junk.npy", "optimizer..npy", "optimizer.m_sum.npy", "params.npy.bak"])
def test_arrays_the_configuration_does_not_call_for_are_refused(saved, tmp_path, name):
    _, path = saved

    def weights(member):
        np.lib.format.write_array(member, np.zeros(51, np.float32))
    _zip_with(tmp_path / "extra.tinynet", path, name, weights)
    with pytest.raises(ValueError, match=rf"unexpected member '{re.escape(name)}' \(this model's file holds config and "
                                         r"params, optimizer.iterations, optimizer.m, optimizer.v\)"):
        tinynet.load_model(tmp_path / "extra.tinynet")


def test_trained_models_are_not_kept_alive_by_their_snapshots():
    import gc
    import weakref
    x, y = _data(16)

    def trained():
        model = _model()
        model.fit(x, y, epochs=1, verbose=0)
        model.train_on_batch(x, y)
        return weakref.ref(model)
    refs = [trained() for _ in range(3)]
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_a_model_that_changes_size_starts_its_optimizer_afresh(tmp_path):
    x, y = _data(16)
    model = Sequential([Dense(8, input_shape=(4,)), Activation("relu"), Dense(3), Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=SGD(learning_rate=1.0, momentum=0.9))
    model.fit(x, y, epochs=1, verbose=0)
    model.build((6,))  # new weights of another size: the old velocity belongs to nothing
    assert model.optimizer.iterations == 0 and model.optimizer.slots == {}
    model.save(tmp_path / "resized.tinynet")
    tinynet.load_model(tmp_path / "resized.tinynet")  # what save wrote, load reads
    x6 = np.concatenate([x, x[:, :2]], axis=1)
    model.optimizer.learning_rate = 1e39
    before = model.get_weights()
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(FloatingPointError, match="the step was undone"):
        model.train_on_batch(x6, y)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
