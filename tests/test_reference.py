"""Acceptance test: tinynet trains exactly like an independent NumPy MLP written out below.

The reference shares no code with tinynet. For the network
    h1 = relu(x W1 + b1),  h2 = relu(h1 W2 + b2),  p = softmax(h2 W3 + b3)
and the mean categorical cross-entropy L = -1/n sum_i sum_k y_ik log p_ik, the chain rule gives
    dz3 = (p - y) / n                       (softmax and cross-entropy together)
    dW3 = h2^T dz3,  db3 = sum_i dz3,  dh2 = dz3 W3^T,  dz2 = dh2 * [h1 W2 + b2 > 0]
    dW2 = h1^T dz2,  db2 = sum_i dz2,  dh1 = dz2 W2^T,  dz1 = dh1 * [x W1 + b1 > 0]
    dW1 = x^T dz1,   db1 = sum_i dz1
Everything runs in float64, so tinynet must agree to ~1e-10.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from tinynet import Sequential, backend
from tinynet.layers import Activation, Dense, Dropout
from tinynet.optimizers import SGD, Adam

SIZES = (20, 16, 16, 5)
BATCH = 8
STEPS = 5
RTOL = 1e-10


# ---- the reference ------------------------------------------------------------------------------------------
def reference_loss_and_grads(weights, x, y):
    W1, b1, W2, b2, W3, b3 = weights
    n = x.shape[0]
    a1 = x.dot(W1) + b1
    h1 = np.where(a1 > 0, a1, 0.0)
    a2 = h1.dot(W2) + b2
    h2 = np.where(a2 > 0, a2, 0.0)
    z = h2.dot(W3) + b3
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.sum(y * np.log(p)) / n
    accuracy = np.mean(z.argmax(axis=1) == y.argmax(axis=1))
    dz3 = (p - y) / n
    dz2 = dz3.dot(W3.T) * (a2 > 0)
    dz1 = dz2.dot(W2.T) * (a1 > 0)
    grads = [x.T.dot(dz1), dz1.sum(axis=0), h1.T.dot(dz2), dz2.sum(axis=0), h2.T.dot(dz3), dz3.sum(axis=0)]
    return loss, accuracy, grads


class ReferenceAdam:
    def __init__(self, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = self.v = None

    def step(self, weights, grads):
        if self.m is None:
            self.m = [np.zeros_like(w) for w in weights]
            self.v = [np.zeros_like(w) for w in weights]
        self.t += 1
        alpha = self.lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        out = []
        for i, (w, g) in enumerate(zip(weights, grads)):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            out.append(w - alpha * self.m[i] / (np.sqrt(self.v[i]) + self.eps))
        return out


class ReferenceSGD:
    def __init__(self, lr, momentum=0.0):
        self.lr, self.momentum, self.velocity = lr, momentum, None

    def step(self, weights, grads):
        if self.velocity is None:
            self.velocity = [np.zeros_like(w) for w in weights]
        self.velocity = [self.momentum * v - self.lr * g for v, g in zip(self.velocity, grads)]
        return [w + v for w, v in zip(weights, self.velocity)]


# ---- the comparison -----------------------------------------------------------------------------------------------
def _batches(seed):
    gen = np.random.default_rng(seed)
    for _ in range(STEPS):
        x = gen.standard_normal((BATCH, SIZES[0]))
        labels = gen.integers(0, SIZES[-1], BATCH)
        yield x, np.eye(SIZES[-1])[labels]


def _tinynet_mlp(optimizer):
    model = Sequential([
        Dense(SIZES[1], input_shape=(SIZES[0],)), Activation("relu"), Dropout(0.0),
        Dense(SIZES[2]), Activation("relu"), Dropout(0.0),
        Dense(SIZES[3]), Activation("softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def _initial_weights(seed):
    gen = np.random.default_rng(seed)
    shapes = [(SIZES[0], SIZES[1]), (SIZES[1],), (SIZES[1], SIZES[2]), (SIZES[2],), (SIZES[2], SIZES[3]), (SIZES[3],)]
    return [gen.uniform(-0.5, 0.5, s) for s in shapes]  # nonzero biases exercise db


def _train_both(optimizer, reference, steps=STEPS, seed=0):
    """train_on_batch `steps` times in tinynet (float64) and in the reference; compare after every step."""
    weights = _initial_weights(seed)
    with backend.using(dtype="float64"):
        model = _tinynet_mlp(optimizer)
        model.set_weights(weights)
        assert model.params.dtype == np.float64
        for step, (x, y) in zip(range(1, steps + 1), _batches(seed + 1)):
            loss, accuracy = model.train_on_batch(x, y)
            want_loss, want_accuracy, grads = reference_loss_and_grads(weights, x, y)
            weights = reference.step(weights, grads)
            assert loss == pytest.approx(want_loss, rel=RTOL), f"loss at step {step}"
            assert accuracy == want_accuracy, f"accuracy at step {step}"
            for i, (got, want) in enumerate(zip(model.get_weights(), weights)):
                np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-13, err_msg=f"weight {i} after step {step}")
    return model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adam_training_matches_the_reference(xb, seed):
    model = _train_both("adam", ReferenceAdam(), seed=seed)
    assert model.optimizer.iterations == STEPS


def test_adam_with_other_settings_matches_the_reference(xb):
    _train_both(Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6), ReferenceAdam(0.01, 0.8, 0.99, 1e-6))


def test_one_sgd_step_matches_the_reference(xb):
    _train_both(SGD(0.1), ReferenceSGD(0.1), steps=1)


def test_momentum_sgd_matches_the_reference(xb):
    _train_both(SGD(0.05, momentum=0.9), ReferenceSGD(0.05, momentum=0.9))


def test_the_reference_gradients_are_right():
    """The reference's hand-derived backward pass against central differences, so the oracle is trusted too."""
    weights = _initial_weights(0)
    x, y = next(_batches(1))
    _, _, grads = reference_loss_and_grads(weights, x, y)
    eps = 1e-6
    for w, g in zip(weights, grads):
        numeric = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            old = w[i]
            w[i] = old + eps
            plus = reference_loss_and_grads(weights, x, y)[0]
            w[i] = old - eps
            minus = reference_loss_and_grads(weights, x, y)[0]
            w[i] = old
            numeric[i] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8)


def test_the_one_batch_api_by_hand_matches_the_reference(xb):
    """forward_loss and backward, called by hand, give the reference's loss and every gradient."""
    weights = _initial_weights(3)
    x, y = next(_batches(4))
    want_loss, _, want_grads = reference_loss_and_grads(weights, x, y)
    with backend.using(dtype="float64"):
        model = _tinynet_mlp("sgd")
        model.set_weights(weights)
        loss = model.forward_loss(x, y)
        model.backward()
    assert float(loss) == pytest.approx(want_loss, rel=RTOL)
    got = [backend.to_numpy(g) for layer in model.layers for g in layer.gradients()]
    assert len(got) == len(want_grads)
    for i, (g, want) in enumerate(zip(got, want_grads)):
        np.testing.assert_allclose(g, want, rtol=RTOL, atol=1e-13, err_msg=f"gradient {i}")
    offset = 0
    for g in got:  # the layers' gradients are the model's flat gradient vector, piece by piece
        np.testing.assert_array_equal(backend.to_numpy(model.grads[offset:offset + g.size]), g.reshape(-1))
        offset += g.size
