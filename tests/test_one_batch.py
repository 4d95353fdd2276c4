"""The public one-batch API (forward_loss, backward, optimizer.step, train_step), the README's hand-written
loop, and ownership: a layer in one model once, an optimizer serving one model, gradients written in place."""
from __future__ import annotations

import contextlib
import gc
import io
import re
from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet import Sequential, backend, gradcheck
from tinynet.layers import Activation, Dense, Dropout
from tinynet.optimizers import SGD, Adam

README = Path(__file__).resolve().parents[1] / "README.md"


def _data(n=50, features=4, classes=3, seed=0):
    gen = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    x = (2 * np.eye(classes, features)[labels] + gen.standard_normal((n, features))).astype(np.float32)
    return x, np.eye(classes, dtype=np.float32)[labels]


def _model(rate=0.0, optimizer="adam", seed=5):
    tinynet.set_seed(seed)
    model = Sequential([Dense(8, input_shape=(4,)), Activation("relu"), Dropout(rate), Dense(3), Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


# ---- by hand ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_train_step_by_hand_gives_the_weights_fit_gives(xb, optimizer):
    x, y = _data()
    fitted, by_hand = _model(optimizer=optimizer), _model(optimizer=optimizer)
    fitted.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)  # 16, 16, 16 and 2 rows per epoch
    for _ in range(3):
        for start in range(0, 50, 16):
            by_hand.train_step(x[start:start + 16], y[start:start + 16])
    for a, b in zip(fitted.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert fitted.optimizer.iterations == by_hand.optimizer.iterations == 12


def test_the_three_calls_are_train_step(xb):
    x, y = _data(16)
    three, one = _model(), _model()
    loss = three.forward_loss(x, y)
    three.backward()
    three.optimizer.step(three.params, three.grads)
    assert float(one.train_step(x, y)) == float(loss)
    for a, b in zip(three.get_weights(), one.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_backward_fills_every_layer_s_gradient_views(xb):
    x, y = _data(16)
    model = _model()
    model.forward_loss(x, y)
    model.backward()
    offset = 0
    for layer in (model.layers[0], model.layers[3]):
        for name in ("W", "b"):
            grad = getattr(layer, "d" + name)
            flat = backend.to_numpy(model.grads[offset:offset + grad.size]).reshape(grad.shape)
            np.testing.assert_array_equal(backend.to_numpy(grad), flat)
            assert np.any(flat != 0)
            offset += grad.size
    assert offset == model.grads.size


def test_the_readme_hand_written_loop_runs_and_learns():
    text = README.read_text()
    block = re.search(r"<!-- the hand-written loop -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README: no hand-written loop after the marker"
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(block[1], "README.md", "exec"), scope)
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out.getvalue())]
    assert len(losses) >= 3 and losses[-1] < losses[0] / 2, out.getvalue()
    model, x, y = scope["model"], scope["x"], scope["y"]
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], optimizer=model.optimizer)
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


# ---- one model per layer, once -----------------------------------------------------------------------------
def test_a_layer_of_one_model_cannot_join_another(xb, tmp_path):
    x, y = _data()
    first = _model()
    first.fit(x, y, epochs=2, verbose=0)
    trained = first.get_weights()
    hidden = first.layers[0]
    second = Sequential(name="second")
    with pytest.raises(ValueError, match=rf"second.add: layer '{hidden.name}' already belongs to model 'sequential'; "
                                         r".*make a new layer, e.g. another Dense"):
        second.add(hidden)
    assert second.layers == [] and hidden.model is first
    for a, b in zip(trained, first.get_weights()):
        np.testing.assert_array_equal(a, b)  # the first model's weights were not replaced
    first.fit(x, y, epochs=1, verbose=0)  # and every one of its layers still trains there
    assert all(not np.array_equal(a, b) for a, b in zip(trained, first.get_weights()))
    first.save(tmp_path / "first.tinynet")
    np.testing.assert_array_equal(tinynet.load_model(tmp_path / "first.tinynet").predict(x), first.predict(x))


@pytest.mark.parametrize("make", [lambda: Activation("relu"), lambda: Dense(4)], ids=["Activation", "Dense"])
def test_a_layer_cannot_appear_twice_in_one_model(make):
    shared = make()
    model = Sequential([Dense(4, input_shape=(4,)), shared])
    with pytest.raises(ValueError, match=rf"sequential.add: layer '{shared.name}' is already in this model; "
                                         r"a layer belongs to one model and appears in it once"):
        model.add(shared)
    assert len(model.layers) == 2
    with pytest.raises(ValueError, match="is already in this model"):
        Sequential([Dense(4, input_shape=(4,)), (relu := Activation("relu")), Dense(4), relu])
    assert relu.model is None  # the model that failed to build let its layers go


def test_a_layer_is_free_again_when_its_model_is_gone():
    layer = Dense(3)
    model = Sequential([layer])
    del model
    gc.collect()
    assert layer.model is None
    Sequential([layer], name="new")
    assert layer.model is None or layer.model.name == "new"


# ---- one model per optimizer ------------------------------------------------------------------------------------
def test_an_optimizer_serves_one_model(xb):
    x, y = _data()
    adam = Adam(0.01)
    first = _model(optimizer=adam)
    first.fit(x, y, epochs=1, verbose=0)
    state = adam.get_state()
    second = _model()
    with pytest.raises(ValueError, match=r"sequential.compile: this Adam optimizer already serves model 'sequential' "
                                         r"and holds its state; an optimizer serves one model: make a new one, e.g. Adam\(\)"):
        second.compile(loss="categorical_crossentropy", optimizer=adam)
    assert second.optimizer is not adam and adam.model is first
    for key, value in adam.get_state().items():
        np.testing.assert_array_equal(value, state[key])  # the first model's state untouched
    first.compile(loss="categorical_crossentropy", optimizer=adam, metrics=["accuracy"])  # its own model: fine
    first.fit(x, y, epochs=1, verbose=0)
    assert adam.iterations == 2 * 2  # two fits of two batches: the state went on, not reset
    first.compile(loss="categorical_crossentropy", optimizer="sgd")  # replaced: free to serve another model
    second.compile(loss="categorical_crossentropy", optimizer=adam)
    assert adam.model is second


# ---- gradients are written in place ------------------------------------------------------------------------------
class RebindsDW(Dense):
    """A Dense layer with the bug: its backward binds a new array to dW instead of writing into the model's."""

    def backward(self, dy):
        self.dW = self.x.T @ dy
        self.db[...] = dy.sum(axis=0)
        return dy @ self.W.T if self.needs_input_grad else None


@pytest.mark.parametrize("how", ["fit", "train_step", "train_on_batch"])
def test_a_backward_that_rebinds_a_gradient_is_named_at_the_first_step(xb, how):
    x, y = _data(20)
    model = Sequential([Dense(8, input_shape=(4,)), Activation("relu"), RebindsDW(3, name="mine"), Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.1))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"mine: backward replaced dW with a new array instead of writing into it, "
                                         r".*write self.dW\[...\] = "):
        {"fit": lambda: model.fit(x, y, epochs=1, verbose=0), "train_step": lambda: model.train_step(x, y),
         "train_on_batch": lambda: model.train_on_batch(x, y)}[how]()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # stopped before the optimizer saw a half-filled gradient


def test_check_layer_refuses_a_backward_that_rebinds_a_gradient(xb):
    with backend.using(dtype="float64"):
        layer = RebindsDW(3, name="mine")
        layer.build((4,))
        with pytest.raises(ValueError, match=r"mine: backward replaced dW with a new array"):
            gradcheck.check_layer(layer, np.random.default_rng(0).standard_normal((5, 4)))
