"""The diagnosis's comparison of observations: exact where it must be, and never raising on odd
values."""

import copy

import numpy as np

from tito.course.grading.diagnosis import same


def test_numbers_and_arrays_match_to_the_tolerance_and_everything_else_exactly():
    assert same(
        [np.array([1.0, np.nan]), 0.5, True, None, "raised ZeroDivisionError"],
        [np.array([1.0 + 1e-12, np.nan]), 0.5 + 1e-13, True, None, "raised ZeroDivisionError"],
        1e-9,
        1e-12,
    )
    assert not same([np.array([1.0, 2.0])], [np.array([1.0, 2.0 + 1e-6])], 1e-9, 1e-12)
    assert not same([np.array([1.0, 2.0])], [np.array([[1.0, 2.0]])], 1e-9, 1e-12)  # another shape
    assert not same([True], [1], 1e-9, 1e-12) and not same([1.0], ["1.0"], 1e-9, 1e-12)
    assert not same([0.5], [0.5, 0.5], 1e-9, 1e-12)


def test_values_a_student_left_that_cannot_be_compared_match_nothing_and_raise_nothing():
    odd = [[np.zeros(2), np.ones(2)], {"a": np.zeros(3)}, np.array([{}, 1], dtype=object)]
    for value in odd:
        assert not same([value], [np.zeros(2)], 1e-9, 1e-12)
        assert not same(
            [value], [copy.deepcopy(value)], 1e-9, 1e-12
        )  # not comparable, so not alike, even with a copy
