"""Saving and loading: an exact round trip, atomic writes, and clear errors for files that are not models."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend, initializers
from tinynet.layers import Activation, Dense, Dropout
from tinynet.optimizers import SGD


def _data(n=40, features=6, classes=3, seed=0):
    gen = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    x = (2 * np.eye(classes, features)[labels] + gen.standard_normal((n, features))).astype(np.float32)
    return x, np.eye(classes, dtype=np.float32)[labels]


def _trained_model(optimizer="adam", epochs=2):
    x, y = _data()
    model = Sequential([Dense(10, input_shape=(6,), kernel_initializer="he_normal"), Activation("relu"),
                        Dropout(0.25), Dense(3), Activation("softmax")], name="saved")
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return model


def _assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        assert u.dtype == v.dtype and np.array_equal(u, v)


@pytest.fixture
def saved(tmp_path):
    """A real model file, and the model it came from."""
    model = _trained_model()
    path = tmp_path / "model.tinynet"
    model.save(path)
    return model, path


# ---- round trip --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", SGD(0.05, momentum=0.9, nesterov=True)])
def test_round_trip_is_exact(xb, tmp_path, optimizer):
    model = _trained_model(optimizer)
    path = tmp_path / "m.tinynet"
    model.save(str(path))
    loaded = tinynet.load_model(path)
    x, y = _data(seed=1)
    assert loaded.name == "saved" and loaded.input_shape == (6,)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.layers[2].rate == 0.25 and initializers.serialize(loaded.layers[0].kernel_initializer) == "he_normal"
    _assert_same_weights(model, loaded)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    state, loaded_state = model.optimizer.get_state(), loaded.optimizer.get_state()
    assert state.keys() == loaded_state.keys() and int(state["iterations"]) == 10  # 2 epochs x 5 batches
    for key in state:
        assert np.array_equal(state[key], loaded_state[key])


def test_loaded_model_keeps_training_identically(xb, saved):
    model, path = saved
    loaded = tinynet.load_model(path)
    x, y = _data(seed=2)
    for m in (model, loaded):
        tinynet.set_seed(77)  # same shuffling and dropout masks for both
        m.fit(x, y, epochs=1, batch_size=8, verbose=0)
        m.train_on_batch(x[:5], y[:5])
    _assert_same_weights(model, loaded)


def test_float64_model_comes_back_in_float64(xb, tmp_path):
    with backend.using(dtype="float64"):
        model = _trained_model()
    model.save(tmp_path / "m64.npz")
    loaded = tinynet.load_model(tmp_path / "m64.npz")  # outside `using`: floatx is float32 here
    assert loaded.params.dtype == np.float64
    _assert_same_weights(model, loaded)
    x, y = _data(seed=3)
    tinynet.set_seed(1)
    model.fit(x, y, epochs=1, verbose=0)
    tinynet.set_seed(1)
    loaded.fit(x, y, epochs=1, verbose=0)
    _assert_same_weights(model, loaded)


def test_uncompiled_model_round_trip(tmp_path):
    model = Sequential([Dense(4, input_shape=(3,)), Activation("softmax")])
    model.save(tmp_path / "plain.tinynet")
    loaded = tinynet.load_model(tmp_path / "plain.tinynet")
    assert loaded.loss is None and loaded.optimizer is None
    _assert_same_weights(model, loaded)


def test_save_leaves_no_temporary_files(saved, tmp_path):
    model, path = saved
    model.save(path)  # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["model.tinynet"]


def test_saved_file_is_readable_by_others(saved):
    _, path = saved
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_failed_save_leaves_no_temporary_files(tmp_path, monkeypatch):
    model = Sequential([Dense(4, input_shape=(3,)), Activation("softmax")])

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "m.tinynet")
    assert os.listdir(tmp_path) == []


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match=r"save: the model is not built yet"):
        Sequential([Dense(3)]).save(tmp_path / "m.tinynet")


# ---- files that are not tinynet models ----------------------------------------------------------------------------
def _not_a_model(path):
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": not a (valid )?tinynet model file"):
        tinynet.load_model(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.tinynet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _not_a_model(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a model\n" * 20)
    _not_a_model(path)


def test_npz_without_config(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.arange(3), b=np.ones((2, 2)))
    with pytest.raises(ValueError, match="no tinynet config inside"):
        tinynet.load_model(path)


def test_plain_npy_file(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(10))
    _not_a_model(path)


def test_npz_with_a_foreign_config(tmp_path):
    path = tmp_path / "foreign.npz"
    config = json.dumps({"format": "something-else"}).encode()
    np.savez(path, config=np.frombuffer(config, np.uint8), params=np.zeros(3))
    with pytest.raises(ValueError, match=r"format 'something-else' is not 'tinynet-model'"):
        tinynet.load_model(path)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "pickle.npz"
    np.savez(path, config=np.array([{"format": "tinynet-model"}], dtype=object))
    _not_a_model(path)


def test_weights_that_do_not_fit_the_architecture(saved, tmp_path):
    _, path = saved
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["params"] = arrays["params"][:-1]
    bad = tmp_path / "short.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"not a valid tinynet model file .*as many as the architecture holds"):
        tinynet.load_model(bad)


def test_truncated_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    truncated = tmp_path / "half.tinynet"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(truncated)) + ": not a tinynet model file, or a truncated one"):
        tinynet.load_model(truncated)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        tinynet.load_model(tmp_path / "nope.tinynet")


def test_optimizer_state_that_does_not_fit_the_weights_is_rejected(tmp_path):
    model = tinynet.Sequential([tinynet.layers.Dense(3, input_shape=(4,)), tinynet.layers.Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.train_on_batch(np.ones((2, 4), np.float32), np.eye(3)[[0, 1]])
    model.save(tmp_path / "m.tinynet")
    with np.load(tmp_path / "m.tinynet") as archive:
        arrays = dict(archive)
    arrays["optimizer.m"] = arrays["optimizer.m"][:-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"bad\.npz: not a valid tinynet model file .*optimizer state m "):
        tinynet.load_model(tmp_path / "bad.npz")


# ---- files of the previous format ------------------------------------------------------------------------
DATA = os.path.join(os.path.dirname(__file__), "data")  # made by data/make_v1.py with tinynet at commit 1218518


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_version_1_files_still_load_and_train_on(name):  # no xb: the file's continuation was made on the CPU
    path = os.path.join(DATA, f"v1-{name}.tinynet")
    with np.load(path) as archive:
        raw = dict(archive)
    assert json.loads(raw["config"].tobytes())["version"] == 1
    loaded = tinynet.load_model(path)
    assert loaded.name == f"v1_{name}" and loaded.optimizer.iterations == int(raw["optimizer.iterations"]) == 10
    # the weights are the stored vector: the forward pass written out in NumPy from the raw file agrees
    p = raw["params"].astype(np.float64)
    W1, b1, W2, b2 = p[:20].reshape(4, 5), p[20:25], p[25:40].reshape(5, 3), p[40:43]
    continued = np.load(os.path.join(DATA, "v1-continued.npz"))
    x, y = continued["x"], continued["y"]
    z = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    want = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(loaded.predict(x), want / want.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    state = loaded.optimizer.get_state()
    if name == "adam":  # version 1 stored the running sums m / (1 - beta_1), v / (1 - beta_2); Keras's m and v now
        np.testing.assert_allclose(state["m"], raw["optimizer.m_sum"] * 0.1, rtol=1e-6)
        np.testing.assert_allclose(state["v"], raw["optimizer.v_sum"] * 0.001, rtol=1e-6)
    else:
        np.testing.assert_array_equal(state["velocity"], raw["optimizer.velocity"])
    # and one more epoch ends where the previous version's did (up to float32 rounding of the converted state),
    # with the dropout masks that version drew: the CPU twin's
    tinynet.engine.set_fast(True)
    tinynet.set_seed(5)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for i, w in enumerate(loaded.get_weights()):
        np.testing.assert_allclose(w, continued[f"{name}.after_one_more_epoch.{i}"], rtol=1e-5, atol=1e-6)


def test_optimizer_state_with_a_slot_missing_is_rejected(saved, tmp_path):
    _, path = saved
    with np.load(path) as archive:
        arrays = dict(archive)
    del arrays["optimizer.v"]
    np.savez(tmp_path / "half.npz", **arrays)
    with pytest.raises(ValueError, match=r"half\.npz: not a valid tinynet model file .*Adam: state has m but not all of m, v"):
        tinynet.load_model(tmp_path / "half.npz")


def test_a_newer_format_version_is_named(saved, tmp_path):
    _, path = saved
    with np.load(path) as archive:
        arrays = dict(archive)
    config = json.loads(arrays["config"].tobytes())
    config["version"] = 3
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), np.uint8)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match=r"future\.npz: not a valid tinynet model file .*format version 3; "
                                         r"this tinynet reads versions 1 and 2"):
        tinynet.load_model(tmp_path / "future.npz")


def test_saving_never_imports_the_model():
    import ast
    source = open(os.path.join(os.path.dirname(tinynet.__file__), "saving.py")).read()
    imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                for alias in node.names} | {node.module for node in ast.walk(ast.parse(source))
                                             if isinstance(node, ast.ImportFrom)}
    assert not imported & {"model", "tinynet.model", "layers", "optimizers", "losses", "Sequential"}
