"""to_categorical against a one-hot matrix built independently."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.utils import to_categorical


def _one_hot(labels, classes):
    out = np.zeros((len(labels), classes))
    for row, label in enumerate(labels):
        out[row, label] = 1
    return out


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(st.integers(0, 9), max_size=30), extra=st.integers(0, 3))
def test_matches_an_independent_one_hot(labels, extra):
    top = max(labels, default=-1) + 1
    got = to_categorical(np.array(labels, dtype=np.int64))
    assert got.dtype == np.float32 and got.shape == (len(labels), top)
    np.testing.assert_array_equal(got, _one_hot(labels, top))
    explicit = to_categorical(labels, num_classes=top + extra)
    assert explicit.shape == (len(labels), top + extra)
    np.testing.assert_array_equal(explicit, _one_hot(labels, top + extra))


def test_mnist_style_example():
    np.testing.assert_array_equal(to_categorical([5], 10), [[0, 0, 0, 0, 0, 1, 0, 0, 0, 0]])


def test_column_labels_and_other_dtypes():
    labels = np.array([[2], [0], [1]], dtype=np.uint8)
    np.testing.assert_array_equal(to_categorical(labels), np.eye(3)[[2, 0, 1]])
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    assert to_categorical([0, 1], dtype="float64").dtype == np.float64
    assert to_categorical([0, 1], dtype="uint8").dtype == np.uint8


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0, -1, 2], None, r"to_categorical: labels must be >= 0, got -1"),
    ([0, 1.5], None, r"to_categorical: labels must be whole numbers, got dtype float64"),
    (["a", "b"], None, r"to_categorical: labels must be whole numbers, got dtype <U1"),
    ([0, 3, 1], 3, r"to_categorical: label 3 does not fit num_classes=3"),
    ([[0, 1], [1, 0]], None, r"to_categorical: expected labels of shape \(n,\), got \(2, 2\)"),
])
def test_bad_labels(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        to_categorical(labels, num_classes)
