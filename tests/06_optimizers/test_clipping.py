"""clip_grad_norm: hand-computed values and properties (hypothesis)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinytorch.core.optimizers import clip_grad_norm
from tinytorch.core.tensor import Parameter


def with_grads(*grads, dtype=np.float64):
    params = []
    for g in grads:
        p = Parameter(np.zeros(np.shape(g), dtype=dtype))
        p.grad = np.array(g, dtype=dtype)
        params.append(p)
    return params


def global_norm(params, norm_type=2.0):
    flat = np.concatenate([p.grad.ravel() for p in params if p.grad is not None])
    return float(np.max(np.abs(flat))) if norm_type == math.inf else float(np.sqrt(np.sum(flat**2)))


def test_clipping_scales_by_max_norm_over_norm_plus_1e_minus_6():
    params = with_grads([3.0], [[4.0]])
    total = clip_grad_norm(params, max_norm=1.0)
    assert total == 5.0
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad, [3.0 * coef], rtol=4e-16, atol=0)
    np.testing.assert_allclose(params[1].grad, [[4.0 * coef]], rtol=4e-16, atol=0)


def test_clipping_returns_a_python_float_of_the_norm_before_clipping():
    params = with_grads([6.0, 8.0])
    total = clip_grad_norm(params, max_norm=2.0)
    assert type(total) is float and total == 10.0


def test_gradients_below_the_threshold_are_left_unchanged():
    params = with_grads([0.3, -0.4], [0.0])
    total = clip_grad_norm(params, max_norm=1.0)
    assert total == pytest.approx(0.5, rel=1e-15)
    assert np.array_equal(params[0].grad, [0.3, -0.4]) and np.array_equal(params[1].grad, [0.0])


def test_infinity_norm_is_the_largest_absolute_entry():
    params = with_grads([[1.0, -8.0]], [3.0, 4.0])
    total = clip_grad_norm(params, max_norm=2.0, norm_type=math.inf)
    assert total == 8.0
    coef = 2.0 / (8.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad, [[coef, -8.0 * coef]], rtol=4e-16, atol=0)


def test_parameters_without_gradient_are_skipped():
    params = with_grads([3.0], [4.0])
    params.insert(1, Parameter(np.ones(2)))  # grad is None
    assert clip_grad_norm(params, max_norm=10.0) == 5.0
    assert params[1].grad is None


def test_clipping_accepts_a_generator():
    params = with_grads([30.0], [40.0])
    assert clip_grad_norm((p for p in params), max_norm=5.0) == 50.0
    assert global_norm(params) == pytest.approx(5.0, rel=1e-6)


def test_clipping_scales_in_place_and_keeps_float32():
    params = with_grads([30.0, 40.0], dtype=np.float32)
    grad = params[0].grad
    clip_grad_norm(params, max_norm=1.0)
    assert params[0].grad is grad and grad.dtype == np.float32
    assert global_norm(params) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_norm_raises_when_asked(bad):
    params = with_grads([1.0, bad])
    with pytest.raises(RuntimeError):
        clip_grad_norm(params, max_norm=1.0, error_if_nonfinite=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_norm_is_returned_when_not_asked_to_raise():
    params = with_grads([1.0, np.inf])
    assert clip_grad_norm(params, max_norm=1.0) == math.inf


# ---------------------------------------------------------------- properties

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
grad_lists = st.lists(
    arrays(np.float64, st.integers(1, 6), elements=finite), min_size=1, max_size=4
)
max_norms = st.floats(min_value=1e-3, max_value=1e3)
norm_types = st.sampled_from([2.0, math.inf])


@settings(max_examples=60, deadline=None)
@given(grads=grad_lists, max_norm=max_norms, norm_type=norm_types)
def test_clipping_never_increases_the_norm_and_ends_at_most_max_norm(grads, max_norm, norm_type):
    params = with_grads(*grads)
    before = global_norm(params, norm_type)
    total = clip_grad_norm(params, max_norm, norm_type)
    after = global_norm(params, norm_type)
    assert total == pytest.approx(before, rel=1e-12, abs=1e-300)
    assert after <= before * (1 + 4e-16)  # recomputing a norm may round up by one ulp
    assert after <= max_norm * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(grads=grad_lists, max_norm=max_norms, norm_type=norm_types)
def test_clipping_is_idempotent(grads, max_norm, norm_type):
    # After a clip the norm is max_norm * T / (T + 1e-6), so a second clip's coefficient is
    # 1 - O(1e-6 / max_norm): idempotent up to that term, exactly so when nothing was clipped.
    params = with_grads(*grads)
    first = clip_grad_norm(params, max_norm, norm_type)
    once = [p.grad.copy() for p in params]
    second = clip_grad_norm(params, max_norm, norm_type)
    assert second <= max_norm
    for p, g in zip(params, once):
        if max_norm / (first + 1e-6) >= 1.0:
            assert np.array_equal(p.grad, g)
        else:
            np.testing.assert_allclose(p.grad, g, rtol=1e-6 / max_norm + 1e-15, atol=0)


@settings(max_examples=60, deadline=None)
@given(grads=grad_lists, max_norm=max_norms, norm_type=norm_types)
def test_clipping_preserves_the_direction(grads, max_norm, norm_type):
    params = with_grads(*grads)
    original = np.concatenate([np.ravel(g) for g in grads])
    total = clip_grad_norm(params, max_norm, norm_type)
    clipped = np.concatenate([p.grad.ravel() for p in params])
    coef = min(1.0, max_norm / (total + 1e-6))
    np.testing.assert_allclose(clipped, coef * original, rtol=1e-14, atol=1e-300)
