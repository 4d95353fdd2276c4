"""Initializers: each draw follows its formula, seeds behave as in Keras, configs round-trip, errors are clear.

The statistical checks compare a sample's mean and variance with the formula, with
tolerances of 5 standard errors for the sample size N (the draws are seeded, so a
test is deterministic; 5 standard errors means a correct formula fails for fewer
than one seed in a million):
    mean:      standard error = std / sqrt(N)
    variance:  standard error = var * sqrt((kurtosis - 1) / N) <= var * sqrt(2 / N)
               (kurtosis is 3 for a normal, less for a truncated normal or a uniform)
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import tinynet
from tinynet import backend
from tinynet import initializers as init

K = 5  # standard errors allowed
MATRIX, MATRIX_FANS = (400, 300), (400, 300)
KERNEL, KERNEL_FANS = (3, 3, 16, 32), (3 * 3 * 16, 3 * 3 * 32)  # fans of a conv kernel count its 3x3 window
SHAPES = [(MATRIX, MATRIX_FANS), (KERNEL, KERNEL_FANS)]

# the std of a unit normal cut at +-2, from its density: Var = 1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2))
PHI_2 = math.exp(-2) / math.sqrt(2 * math.pi)
CUT_STD = math.sqrt(1 - 4 * PHI_2 / math.erf(2 / math.sqrt(2)))


def draw(initializer: init.Initializer, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    values = initializer.draw(shape, np.random.default_rng(seed))
    assert values.shape == shape and values.dtype == np.float64
    return values


def assert_mean_and_variance(w: np.ndarray, mean: float, var: float) -> None:
    n = w.size
    assert abs(w.mean() - mean) < K * math.sqrt(var / n), (w.mean(), mean)
    assert abs(w.var() - var) < K * var * math.sqrt(2 / n), (w.var(), var)


def test_keras_truncation_constant_is_the_std_of_a_normal_cut_at_two_std():
    assert init.TRUNCATED_STD == pytest.approx(CUT_STD, rel=1e-12)


@pytest.mark.parametrize("shape, fans", SHAPES + [((7,), (7, 7)), ((5, 2, 3), (10, 15)), ((), (1, 1))])
def test_fans_as_keras_counts_them(shape, fans):
    assert init.compute_fans(shape) == fans


# Each variance-scaling initializer: (variance, uniform?) as a function of (fan_in, fan_out), from the papers.
VARIANCE_SCALING = {
    "glorot_uniform": (lambda fi, fo: 2 / (fi + fo), True),  # limit sqrt(6 / (fi + fo)), var = limit^2 / 3
    "glorot_normal": (lambda fi, fo: 2 / (fi + fo), False),
    "he_uniform": (lambda fi, fo: 2 / fi, True),  # limit sqrt(6 / fi)
    "he_normal": (lambda fi, fo: 2 / fi, False),
    "lecun_uniform": (lambda fi, fo: 1 / fi, True),  # limit sqrt(3 / fi)
    "lecun_normal": (lambda fi, fo: 1 / fi, False),
}


@pytest.mark.parametrize("shape, fans", SHAPES)
@pytest.mark.parametrize("name", VARIANCE_SCALING)
def test_variance_scaling_family_follows_its_formula(name, shape, fans):
    variance_of, uniform = VARIANCE_SCALING[name]
    var = variance_of(*fans)
    w = draw(init.get(name, "test"), shape)
    assert_mean_and_variance(w, 0.0, var)
    # uniform: within +-limit and reaching it; truncated: within 2 std of the normal before the cut, and reaching it
    bound = math.sqrt(3 * var) if uniform else 2 * math.sqrt(var) / CUT_STD
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound


@pytest.mark.parametrize("mode, n", [("fan_in", 144), ("fan_out", 288), ("fan_avg", 216)])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_modes_and_distributions(mode, n, distribution):
    w = draw(init.VarianceScaling(scale=3.0, mode=mode, distribution=distribution), KERNEL)
    assert_mean_and_variance(w, 0.0, 3.0 / n)
    if distribution == "untruncated_normal":
        assert np.abs(w).max() > 3 * math.sqrt(3.0 / n)  # no cut: 4608 normals pass 3 std (~12 expected)


def test_glorot_and_he_draw_the_same_numbers_as_tinynet_did_before():
    """Models saved and seeded before the rewrite still start from the same weights."""
    gen = np.random.default_rng(7)
    limit = math.sqrt(6 / (20 + 30))
    assert np.array_equal(draw(init.GlorotUniform(), (20, 30), seed=7), gen.uniform(-limit, limit, size=(20, 30)))
    gen = np.random.default_rng(7)
    z = gen.standard_normal(size=(20, 30))
    while np.any(bad := np.abs(z) > 2):
        z[bad] = gen.standard_normal(size=int(bad.sum()))
    assert np.allclose(draw(init.HeNormal(), (20, 30), seed=7), z * math.sqrt(2 / 20) / CUT_STD, rtol=1e-15)


def test_random_normal():
    w = draw(init.RandomNormal(mean=1.5, stddev=0.3), MATRIX)
    assert_mean_and_variance(w, 1.5, 0.09)
    assert np.abs(w - 1.5).max() > 4 * 0.3  # not truncated: 120000 normals pass 4 std (~8 expected)
    d = init.RandomNormal().get_config()
    assert (d["mean"], d["stddev"]) == (0.0, 0.05)  # Keras's defaults


def test_truncated_normal_stays_within_two_std():
    w = draw(init.TruncatedNormal(mean=-1.0, stddev=0.5), MATRIX)
    assert_mean_and_variance(w, -1.0, (0.5 * CUT_STD) ** 2)  # the cut shrinks the spread; no compensation here
    assert np.abs(w + 1.0).max() <= 2 * 0.5
    assert np.abs(w + 1.0).max() > 1.99 * 0.5
    assert init.TruncatedNormal().get_config()["stddev"] == 0.05


def test_random_uniform():
    w = draw(init.RandomUniform(minval=-1.0, maxval=3.0), MATRIX)
    assert_mean_and_variance(w, 1.0, 4.0 ** 2 / 12)  # U(a, b): mean (a + b) / 2, variance (b - a)^2 / 12
    assert w.min() >= -1.0 and w.max() < 3.0
    assert w.min() < -0.999 and w.max() > 2.999
    d = init.RandomUniform().get_config()
    assert (d["minval"], d["maxval"]) == (-0.05, 0.05)


@pytest.mark.parametrize("initializer, value", [(init.Zeros(), 0.0), (init.Ones(), 1.0), (init.Constant(), 0.0),
                                                (init.Constant(2.5), 2.5), (init.Constant(value=-3), -3.0)])
def test_constant_initializers(initializer, value):
    assert np.array_equal(draw(initializer, KERNEL), np.full(KERNEL, value))


# ---- seeds ------------------------------------------------------------------------------------
RANDOM = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
          "random_normal", "random_uniform", "truncated_normal", "variance_scaling"]


@pytest.mark.parametrize("name", RANDOM)
def test_an_int_seed_repeats_at_every_call_whatever_the_generator(name):
    cls = init.INITIALIZERS[name]
    seeded = cls.from_config({**cls().get_config(), "seed": 42})
    first = seeded.draw((30, 20), np.random.default_rng(0))
    assert np.array_equal(seeded.draw((30, 20), np.random.default_rng(1)), first)
    assert np.array_equal(seeded((30, 20), dtype="float64"), first)
    assert np.array_equal(seeded((30, 20), dtype="float64"), first)


@pytest.mark.parametrize("name", RANDOM)
def test_without_a_seed_draws_follow_the_generator(name):
    initializer = init.get(name, "test")
    gen = np.random.default_rng(0)
    first, second = initializer.draw((30, 20), gen), initializer.draw((30, 20), gen)
    assert not np.array_equal(first, second)  # the layer's generator moves on
    assert np.array_equal(initializer.draw((30, 20), np.random.default_rng(0)), first)  # and replays from its seed


def test_keras_call_uses_the_global_generator_and_floatx():
    initializer = init.GlorotUniform()
    tinynet.set_seed(3)
    a, b = initializer((30, 20)), initializer((30, 20))
    tinynet.set_seed(3)
    assert np.array_equal(initializer((30, 20)), a) and not np.array_equal(a, b)
    assert a.dtype == backend.floatx() == np.float32
    assert initializer((2, 2), dtype="float64").dtype == np.float64
    assert type(initializer((2, 2))) is np.ndarray


def test_different_seeds_differ():
    assert not np.array_equal(init.HeNormal(seed=1)((10, 10)), init.HeNormal(seed=2)((10, 10)))


# ---- names, get and serialize ------------------------------------------------------------------
def test_keras_names_and_aliases():
    assert init.glorot_uniform is init.GlorotUniform and init.truncated_normal is init.TruncatedNormal
    for name, cls in init.INITIALIZERS.items():
        assert type(init.get(name, "test")) is cls
        assert type(init.get(cls.__name__, "test")) is cls  # Keras also takes the class name
        assert getattr(init, name) is cls
    assert isinstance(init.glorot_uniform(seed=1), init.VarianceScaling)


def test_get_passes_instances_through_and_builds_classes():
    instance = init.HeNormal(seed=3)
    assert init.get(instance, "test") is instance
    assert type(init.get(init.LecunNormal, "test")) is init.LecunNormal


def _all_kinds() -> list[init.Initializer]:
    defaults = [cls() for cls in init.INITIALIZERS.values()]
    changed = [init.GlorotUniform(seed=5), init.RandomNormal(1.0, 2.0, seed=4), init.RandomUniform(0, 1),
               init.TruncatedNormal(stddev=0.2), init.Constant(0.25),
               init.VarianceScaling(2.0, "fan_avg", "uniform", seed=9)]
    return defaults + changed


@pytest.mark.parametrize("initializer", _all_kinds(), ids=repr)
def test_serialize_then_get_gives_the_same_initializer(initializer):
    saved = json.loads(json.dumps(init.serialize(initializer)))  # survives a JSON model config
    restored = init.get(saved, "test")
    assert type(restored) is type(initializer) and restored.get_config() == initializer.get_config()
    shape = (6, 4)
    assert np.array_equal(draw(restored, shape, seed=8), draw(initializer, shape, seed=8))


def test_serialize_names_default_builtins_and_writes_configs_otherwise():
    assert init.serialize(init.GlorotUniform()) == "glorot_uniform"  # old configs said "glorot_uniform"
    assert init.serialize(init.Zeros()) == "zeros"
    assert init.serialize(init.get("he_normal", "test")) == "he_normal"
    assert init.serialize(init.GlorotUniform(seed=1)) == {"class_name": "GlorotUniform", "config": {"seed": 1}}
    assert init.serialize(init.Constant(2)) == {"class_name": "Constant", "config": {"value": 2.0}}
    # Keras reads distribution="normal" as the default "truncated_normal"
    assert init.serialize(init.VarianceScaling(distribution="normal")) == "variance_scaling"


class Halves(init.Initializer):
    """A user's own initializer with a config: saved and loaded by class name."""

    def __init__(self, factor: float = 0.5) -> None:
        self.factor = factor

    def sample(self, shape, gen):
        return np.full(shape, self.factor)

    def get_config(self):
        return {"factor": self.factor}


def test_user_subclass_round_trips_by_class_name():
    saved = init.serialize(Halves(0.25))
    assert saved == {"class_name": "Halves", "config": {"factor": 0.25}}
    assert np.array_equal(draw(init.get(saved, "test"), (2, 3)), np.full((2, 3), 0.25))


class KerasStyle(init.Initializer):
    """Keras users write __call__(shape, dtype) only."""

    def __call__(self, shape, dtype=None):
        return np.arange(math.prod(shape), dtype=dtype).reshape(shape)


def test_keras_style_subclass_writing_only_call_is_drawn_through_it():
    assert np.array_equal(draw(KerasStyle(), (2, 3)), np.arange(6.0).reshape(2, 3))


def test_subclass_writing_neither_method_says_so():
    class Empty(init.Initializer):
        pass
    with pytest.raises(NotImplementedError, match=r"Empty: an Initializer subclass must define sample"):
        draw(Empty(), (2, 2))


def test_a_plain_function_is_wrapped_and_cannot_be_saved():
    calls = []

    def my_init(shape, dtype=None):
        calls.append((shape, dtype))
        return np.full(shape, 7.0, dtype=dtype)

    wrapped = init.get(my_init, "hidden")
    assert isinstance(wrapped, init.Initializer)
    assert np.array_equal(draw(wrapped, (3, 2)), np.full((3, 2), 7.0))
    assert calls == [((3, 2), "float64")]
    assert wrapped((3, 2)).dtype == np.float32
    with pytest.raises(ValueError, match=r"custom initializer function my_init cannot be saved.*subclass "
                                         r"tinynet.initializers.Initializer and give it get_config"):
        init.serialize(wrapped)


def test_a_function_returning_the_wrong_shape_is_caught():
    wrapped = init.get(lambda shape, dtype=None: np.zeros(3), "hidden")
    with pytest.raises(ValueError, match=re.escape("initializer <lambda>: asked for shape (3, 2), returned (3,)")):
        draw(wrapped, (3, 2))


# ---- errors --------------------------------------------------------------------------------------
def test_unknown_name_names_the_layer_and_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"^dense_3: unknown initializer 'glorot'; valid names are glorot_uniform, "
                                         r"he_normal, zeros, ones, glorot_normal, .*variance_scaling$"):
        init.get("glorot", "dense_3")
    with pytest.raises(ValueError, match=r"dense_3: unknown initializer class 'Glorot'"):
        init.get({"class_name": "Glorot", "config": {}}, "dense_3")
    with pytest.raises(ValueError, match=r"dense_3: an initializer dict needs exactly the keys"):
        init.get({"class_name": "Zeros"}, "dense_3")


@pytest.mark.parametrize("identifier", [3, 0.5, None, ["zeros"], int])
def test_other_types_are_a_type_error(identifier):
    with pytest.raises(TypeError, match=r"^dense_3: expected an initializer name such as 'glorot_uniform'.*got "):
        init.get(identifier, "dense_3")


@pytest.mark.parametrize("make, error, message", [
    (lambda: init.RandomNormal(stddev=0), ValueError, "RandomNormal: stddev must be positive, got 0"),
    (lambda: init.TruncatedNormal(stddev=-0.1), ValueError, "TruncatedNormal: stddev must be positive, got -0.1"),
    (lambda: init.RandomNormal(mean=float("nan")), ValueError, "RandomNormal: mean must be finite, got nan"),
    (lambda: init.RandomUniform(1.0, 1.0), ValueError,
     "RandomUniform: minval must be below maxval, got minval=1.0, maxval=1.0"),
    (lambda: init.RandomUniform(maxval=float("inf")), ValueError, "RandomUniform: maxval must be finite, got inf"),
    (lambda: init.Constant(float("-inf")), ValueError, "Constant: value must be finite, got -inf"),
    (lambda: init.Constant("1"), TypeError, "Constant: value must be a number, got str '1'"),
    (lambda: init.VarianceScaling(scale=0.0), ValueError, "VarianceScaling: scale must be positive, got 0.0"),
    (lambda: init.VarianceScaling(mode="fan"), ValueError,
     "VarianceScaling: mode must be one of fan_in, fan_out, fan_avg, got 'fan'"),
    (lambda: init.VarianceScaling(distribution="cauchy"), ValueError,
     "VarianceScaling: distribution must be one of truncated_normal, untruncated_normal, uniform, got 'cauchy'"),
    (lambda: init.GlorotUniform(seed=1.5), TypeError, "GlorotUniform: seed must be an int or None, got float 1.5"),
    (lambda: init.HeNormal(seed="1"), TypeError, "HeNormal: seed must be an int or None, got str '1'"),
    (lambda: init.RandomUniform(seed=True), TypeError, "RandomUniform: seed must be an int or None, got bool True"),
    (lambda: init.LecunNormal(seed=-1), ValueError, "LecunNormal: seed must be non-negative, got -1"),
    (lambda: init.Zeros().draw((2, -1), np.random.default_rng()), ValueError,
     "Zeros: expected a shape, a tuple of non-negative ints, got (2, -1)"),
    (lambda: init.Ones()("3"), ValueError, "Ones: expected a shape, a tuple of non-negative ints, got '3'"),
])
def test_bad_arguments_name_the_class_and_the_value(make, error, message):
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        make()


def test_numpy_numbers_are_accepted():
    assert init.RandomNormal(np.float32(0.5), np.int64(2), seed=np.int64(3)).get_config() == \
        {"mean": 0.5, "stddev": 2.0, "seed": 3}
