"""Regularizers: penalties against formulas written here, gradients against finite differences, configs, errors."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinynet import backend, regularizers
from tinynet.gradcheck import numerical_gradient, relative_error

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def weights(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """float64 weights whose magnitudes lie in [0.1, 2]: |W| and sign(W) are smooth within eps of each."""
    gen = np.random.default_rng(seed)
    return gen.uniform(0.1, 2.0, size=shape) * gen.choice([-1.0, 1.0], size=shape)


def l1_by_hand(w: np.ndarray, factor: float) -> float:
    return factor * sum(abs(float(v)) for v in w.ravel())


def l2_by_hand(w: np.ndarray, factor: float) -> float:
    return factor * sum(float(v) * float(v) for v in w.ravel())


CASES = {  # regularizer -> its penalty, computed element by element
    "L1(0.3)": (regularizers.L1(0.3), lambda w: l1_by_hand(w, 0.3)),
    "L2(0.2)": (regularizers.L2(0.2), lambda w: l2_by_hand(w, 0.2)),
    "L1L2(0.05, 0.7)": (regularizers.L1L2(0.05, 0.7), lambda w: l1_by_hand(w, 0.05) + l2_by_hand(w, 0.7)),
    "L1L2(l2=0.4)": (regularizers.L1L2(l2=0.4), lambda w: l2_by_hand(w, 0.4)),
}


@pytest.mark.parametrize("case", CASES)
@FAST
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_penalty_matches_the_formula(case, shape, seed):
    reg, by_hand = CASES[case]
    w = weights(shape, seed)
    penalty = reg(w)
    assert np.ndim(penalty) == 0
    assert float(penalty) == pytest.approx(by_hand(w), rel=1e-12)


@pytest.mark.parametrize("case", CASES)
@FAST
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_gradient_matches_central_differences(case, shape, seed):
    reg, _ = CASES[case]
    w = weights(shape, seed)
    numeric = numerical_gradient(lambda: float(reg(w)), w)
    analytic = reg.gradient(w)
    assert analytic.shape == w.shape
    assert relative_error(analytic, numeric) < 1e-7


def test_l1_gradient_is_zero_where_the_weight_is_zero():
    """|W| has no slope at 0; Keras's sign(0) = 0 there (a subgradient), so zero weights stay put."""
    assert np.array_equal(regularizers.L1(0.5).gradient(np.array([-2.0, 0.0, 3.0])), [-0.5, 0.0, 0.5])


def test_keras_example_values():
    assert float(regularizers.L2(2.0)(np.ones((5, 5)))) == 50.0  # from Keras's Regularizer docstring
    assert float(regularizers.L1(0.01)(np.ones((5, 5)))) == pytest.approx(0.25)


def test_float32_weights_keep_float32(xb):
    w = backend.to_device(weights((3, 4), 0), np.float32)
    for reg in (regularizers.L1(0.1), regularizers.L2(0.1), regularizers.L1L2(0.1, 0.1)):
        penalty, grad = reg(w), reg.gradient(w)
        assert penalty.dtype == np.float32 and grad.dtype == np.float32
        assert type(grad) is type(w)  # stays on the backend's device
        w64 = backend.to_numpy(w).astype(np.float64)
        assert float(penalty) == pytest.approx(float(reg(w64)), rel=1e-6)


# ---- names, get and serialize ------------------------------------------------------------------
def test_names_give_keras_defaults():
    assert regularizers.get("l1", "d").get_config() == {"l1": 0.01}
    assert regularizers.get("l2", "d").get_config() == {"l2": 0.01}
    assert regularizers.get("l1_l2", "d").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.get("L1L2", "d").get_config() == {"l1": 0.0, "l2": 0.0}  # the class's own defaults
    assert regularizers.l1_l2().get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.l1 is regularizers.L1 and regularizers.l2 is regularizers.L2
    assert regularizers.L1(None).l1 == 0.01  # Keras reads None as the default


def test_get_passes_none_and_instances_through():
    reg = regularizers.L2(0.3)
    assert regularizers.get(None, "d") is None
    assert regularizers.get(reg, "d") is reg
    assert type(regularizers.get(regularizers.L1, "d")) is regularizers.L1


@pytest.mark.parametrize("reg", [regularizers.L1(0.2), regularizers.L2(), regularizers.L1L2(0.1, 0.3),
                                 regularizers.L1L2()], ids=repr)
def test_serialize_then_get_round_trips(reg):
    saved = regularizers.serialize(reg)
    assert saved == {"class_name": type(reg).__name__, "config": reg.get_config()}
    restored = regularizers.get(json.loads(json.dumps(saved)), "d")
    assert type(restored) is type(reg) and restored.get_config() == reg.get_config()
    assert type(reg).from_config(reg.get_config()).get_config() == reg.get_config()
    assert regularizers.serialize(None) is None


class Quartic(regularizers.Regularizer):
    """A user's own penalty: c * sum(W^4), gradient 4 c W^3."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def __call__(self, W):
        return self.c * (W ** 4).sum()

    def gradient(self, W):
        return 4 * self.c * W ** 3

    def get_config(self):
        return {"c": self.c}


def test_user_subclass_round_trips_by_class_name():
    restored = regularizers.get(regularizers.serialize(Quartic(0.5)), "d")
    assert isinstance(restored, Quartic) and restored.c == 0.5


def test_subclass_without_a_gradient_says_tinynet_needs_one():
    class OnlyPenalty(regularizers.Regularizer):
        def __call__(self, W):
            return W.sum()
    with pytest.raises(NotImplementedError, match=r"OnlyPenalty: a Regularizer subclass must define gradient\(W\)"):
        OnlyPenalty().gradient(np.ones(2))


# ---- errors --------------------------------------------------------------------------------------
def test_unknown_name_names_the_layer_and_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"^dense_1: unknown regularizer 'l3'; valid names are l1, l2, l1_l2$"):
        regularizers.get("l3", "dense_1")
    with pytest.raises(ValueError, match=r"^dense_1: unknown regularizer class 'L3'"):
        regularizers.get({"class_name": "L3", "config": {}}, "dense_1")
    with pytest.raises(ValueError, match=r"^dense_1: a regularizer dict needs exactly the keys"):
        regularizers.get({"name": "l2"}, "dense_1")


def test_a_plain_function_is_refused_because_it_has_no_gradient():
    with pytest.raises(TypeError, match=r"^dense_1: expected a regularizer name .*got function .*a plain function "
                                        r"has no gradient: subclass tinynet.regularizers.Regularizer"):
        regularizers.get(lambda w: 0.01 * (w ** 2).sum(), "dense_1")
    with pytest.raises(TypeError, match=r"^dense_1: expected a regularizer name such as 'l2'.*got float 0.01$"):
        regularizers.get(0.01, "dense_1")


@pytest.mark.parametrize("make, error, message", [
    (lambda: regularizers.L1(-0.1), ValueError, "L1: l1 must be a non-negative finite number, got -0.1"),
    (lambda: regularizers.L2(float("nan")), ValueError, "L2: l2 must be a non-negative finite number, got nan"),
    (lambda: regularizers.L1L2(l2=float("inf")), ValueError, "L1L2: l2 must be a non-negative finite number, got inf"),
    (lambda: regularizers.L1L2(l1=-1), ValueError, "L1L2: l1 must be a non-negative finite number, got -1"),
    (lambda: regularizers.l1_l2(l1=-2.0), ValueError, "L1L2: l1 must be a non-negative finite number, got -2.0"),
    (lambda: regularizers.L2("0.1"), TypeError, "L2: l2 must be a number, got str '0.1'"),
    (lambda: regularizers.L1(True), TypeError, "L1: l1 must be a number, got bool True"),
])
def test_bad_factors_name_the_class_and_the_value(make, error, message):
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        make()
