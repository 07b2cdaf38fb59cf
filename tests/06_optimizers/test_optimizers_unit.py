"""Hand-computed one-element cases and edge cases of tinytorch.core.optimizers.

Values are chosen so that the float64 arithmetic is exact (powers of two) wherever possible and
compared with ``np.array_equal``; Adam's square roots and bias corrections round, so its expected
values (hand-computed or the formula written out step by step) are compared at a relative
tolerance of 1e-14, far below any mistake in the update rule.
"""

import re
import threading

import numpy as np
import pytest

from tinytorch.core.optimizers import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    adam_step,
    adamw_step,
    gradient_descent_step,
    sgd_step,
)
from tinytorch.core.tensor import Parameter

ULPS = 1e-14


def param(*values, dtype=np.float64):
    return Parameter(np.array(values, dtype=dtype))


def run(opt, params, grads_per_step):
    """Set each step's gradients (copies) and call step()."""
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = None if g is None else np.array(g, dtype=p.data.dtype)
        opt.step()


def assert_exact(got, expected):
    np.testing.assert_allclose(got, expected, rtol=ULPS, atol=0)


# ---------------------------------------------------------------- gradient_descent_step


def test_gradient_descent_step_moves_against_the_gradient():
    p = param(3.0, -1.0)
    p.grad = np.array([2.0, -4.0])
    gradient_descent_step(p, 0.25)
    assert np.array_equal(p.data, [2.5, 0.0])


def test_gradient_descent_step_without_gradient_is_a_no_op():
    p = param(3.0)
    before = p.data
    gradient_descent_step(p, 0.25)
    assert p.data is before and np.array_equal(p.data, [3.0])


def test_gradient_descent_step_updates_in_place():
    p = param(3.0, 1.0)
    view = p.data[:1]
    p.grad = np.array([2.0, 2.0])
    gradient_descent_step(p, 0.5)
    assert np.array_equal(view, [2.0])


# ---------------------------------------------------------------- SGD, hand-computed


def test_sgd_plain_step():
    p = param(1.0)
    run(SGD([p], lr=0.5), [p], [[[0.5]]])
    assert np.array_equal(p.data, [0.75])


def test_sgd_default_learning_rate_is_1e_minus_3():
    p = param(1.0)
    opt = SGD([p])
    assert opt.param_groups[0]["lr"] == 1e-3
    run(opt, [p], [[[1.0]]])
    assert_exact(p.data, [1.0 - 1e-3])


def test_sgd_momentum_buffer_starts_as_the_first_gradient():
    # step 1: buf = g = 1 -> p = 1 - 0.5 = 0.5; step 2: buf = 0.5*1 + 1 = 1.5 -> p = 0.5 - 0.75
    p = param(1.0)
    opt = SGD([p], lr=0.5, momentum=0.5)
    run(opt, [p], [[[1.0]]])
    assert np.array_equal(p.data, [0.5])
    assert np.array_equal(opt.state[p]["momentum_buffer"], [1.0])
    run(opt, [p], [[[1.0]]])
    assert np.array_equal(p.data, [-0.25])
    assert np.array_equal(opt.state[p]["momentum_buffer"], [1.5])


def test_sgd_dampening_is_not_applied_to_the_first_step():
    # buf1 = g = 1 (undamped, PyTorch's rule); buf2 = 0.5*1 + (1-0.5)*1 = 1
    p = param(1.0)
    opt = SGD([p], lr=0.5, momentum=0.5, dampening=0.5)
    run(opt, [p], [[[1.0]], [[1.0]]])
    assert np.array_equal(opt.state[p]["momentum_buffer"], [1.0])
    assert np.array_equal(p.data, [0.0])


def test_sgd_nesterov_uses_gradient_plus_momentum_times_buffer():
    # step 1: buf = 1, d = 1 + 0.5*1 = 1.5 -> p = 0.25; step 2: buf = 1.5, d = 1.75 -> p = -0.625
    p = param(1.0)
    opt = SGD([p], lr=0.5, momentum=0.5, nesterov=True)
    run(opt, [p], [[[1.0]]])
    assert np.array_equal(p.data, [0.25])
    run(opt, [p], [[[1.0]]])
    assert np.array_equal(p.data, [-0.625])


def test_sgd_weight_decay_adds_l2_term_before_momentum():
    # d = g + wd*p = 0.5 + 0.25*2 = 1; the momentum buffer stores d, not g
    p = param(2.0)
    opt = SGD([p], lr=0.5, momentum=0.5, weight_decay=0.25)
    run(opt, [p], [[[0.5]]])
    assert np.array_equal(p.data, [1.5])
    assert np.array_equal(opt.state[p]["momentum_buffer"], [1.0])


def test_sgd_without_momentum_keeps_no_momentum_buffer():
    p = param(1.0)
    opt = SGD([p], lr=0.5)
    run(opt, [p], [[[1.0]]])
    assert "momentum_buffer" not in opt.state.get(p, {})


def test_sgd_group_keys_follow_pytorch():
    opt = SGD([param(1.0)], lr=0.1)
    assert set(opt.param_groups[0]) == {
        "params",
        "lr",
        "momentum",
        "dampening",
        "weight_decay",
        "nesterov",
    }


# ---------------------------------------------------------------- Adam / AdamW, hand-computed


def test_adam_first_step_moves_exactly_lr():
    # with bias correction m_hat = g and v_hat = g^2, so with eps = 0 the step is lr * sign(g)
    p = param(1.0, -1.0)
    opt = Adam([p], lr=0.125, eps=0.0)
    run(opt, [p], [[[0.5, -3.0]]])
    assert_exact(p.data, [0.875, -0.875])


def test_adam_constant_gradient_moves_lr_every_step():
    p = param(1.0)
    opt = Adam([p], lr=0.125, eps=0.0)
    for k in range(1, 4):
        run(opt, [p], [[[0.3]]])
        assert_exact(p.data, [1.0 - 0.125 * k])
    assert opt.state[p]["step"] == 3


def test_adam_two_steps_match_the_formula():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    p = param(1.0)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    expected, m, v = 1.0, 0.0, 0.0
    for step, g in enumerate([0.5, -0.25], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected -= lr * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + eps)
        run(opt, [p], [[[g]]])
        assert_exact(p.data, [expected])
    assert_exact(opt.state[p]["exp_avg"], [m])
    assert_exact(opt.state[p]["exp_avg_sq"], [v])


def test_adam_eps_is_added_outside_the_square_root():
    # g = eps: update = lr * g / (|g| + eps) = lr / 2 (inside the root it would be ~lr * 1e-4)
    p = param(1.0)
    run(Adam([p], lr=0.5, eps=1e-8), [p], [[[1e-8]]])
    assert_exact(p.data, [0.75])


def test_adam_weight_decay_is_l2_added_to_the_gradient():
    # g = 0 + 0.5 * 2 = 1 -> first step moves exactly lr
    p = param(2.0)
    run(Adam([p], lr=0.25, eps=0.0, weight_decay=0.5), [p], [[[0.0]]])
    assert_exact(p.data, [1.75])


def test_adam_state_layout_follows_pytorch():
    p = param(1.0, 2.0)
    opt = Adam([p], lr=0.1)
    run(opt, [p], [[[1.0, 1.0]]])
    state = opt.state[p]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
    assert state["step"] == 1
    assert state["exp_avg"].shape == (2,) and state["exp_avg_sq"].shape == (2,)
    assert set(opt.param_groups[0]) == {"params", "lr", "betas", "eps", "weight_decay"}
    assert tuple(opt.param_groups[0]["betas"]) == (0.9, 0.999)


def test_adamw_decays_the_parameter_before_the_adam_update():
    # p * (1 - 0.125 * 2) = 1.5, then the first Adam step moves lr = 0.125
    p = param(2.0)
    run(AdamW([p], lr=0.125, eps=0.0, weight_decay=2.0), [p], [[[0.5]]])
    assert_exact(p.data, [1.375])


def test_adamw_default_weight_decay_is_1e_minus_2():
    assert AdamW([param(1.0)]).param_groups[0]["weight_decay"] == 1e-2
    assert Adam([param(1.0)]).param_groups[0]["weight_decay"] == 0.0


def test_adamw_without_weight_decay_equals_adam_bit_for_bit():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((20, 7))
    start = rng.standard_normal(7)
    pa, pw = Parameter(start.copy()), Parameter(start.copy())
    run(Adam([pa], lr=0.01), [pa], [[g] for g in grads])
    run(AdamW([pw], lr=0.01, weight_decay=0.0), [pw], [[g] for g in grads])
    assert np.array_equal(pa.data, pw.data)


def test_adamw_differs_from_adam_with_l2():
    rng = np.random.default_rng(1)
    grads = rng.standard_normal((5, 3))
    pa, pw = Parameter(np.ones(3)), Parameter(np.ones(3))
    run(Adam([pa], lr=0.1, weight_decay=0.5), [pa], [[g] for g in grads])
    run(AdamW([pw], lr=0.1, weight_decay=0.5), [pw], [[g] for g in grads])
    assert np.max(np.abs(pa.data - pw.data)) > 1e-3


# ---------------------------------------------------------------- kernels called directly


def test_sgd_step_kernel_updates_arrays_in_place():
    p, g, state = np.array([1.0]), np.array([1.0]), {}
    kwargs = dict(lr=0.5, momentum=0.5, dampening=0.0, weight_decay=0.0, nesterov=True)
    sgd_step(p, g, state, scratch=np.empty_like(p), **kwargs)
    sgd_step(p, g, state, scratch=np.empty_like(p), **kwargs)
    assert np.array_equal(p, [-0.625])
    assert np.array_equal(state["momentum_buffer"], [1.5])
    assert np.array_equal(g, [1.0])


def test_adam_step_kernel_counts_steps_from_one():
    p, g = np.array([1.0]), np.array([0.5])
    state = {"step": 0, "exp_avg": np.zeros(1), "exp_avg_sq": np.zeros(1)}
    kwargs = dict(lr=0.125, beta1=0.9, beta2=0.999, eps=0.0, weight_decay=0.0)
    adam_step(p, g, state, scratch=np.empty_like(p), **kwargs)
    assert state["step"] == 1
    assert_exact(p, [0.875])


def test_adamw_step_kernel_decays_then_updates():
    p, g = np.array([2.0]), np.array([0.5])
    state = {"step": 0, "exp_avg": np.zeros(1), "exp_avg_sq": np.zeros(1)}
    adamw_step(
        p,
        g,
        state,
        lr=0.125,
        beta1=0.9,
        beta2=0.999,
        eps=0.0,
        weight_decay=2.0,
        scratch=np.empty_like(p),
    )
    assert_exact(p, [1.375])
    assert np.array_equal(g, [0.5])


# ---------------------------------------------------------------- edge cases

ALL = [
    pytest.param(
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True), id="sgd"
    ),
    pytest.param(lambda ps: Adam(ps, lr=0.1, weight_decay=0.1), id="adam"),
    pytest.param(lambda ps: AdamW(ps, lr=0.1), id="adamw"),
]


@pytest.mark.parametrize("make", ALL)
def test_parameters_without_gradient_are_skipped(make):
    a, b = param(1.0, 2.0), param(3.0)
    opt = make([a, b])
    run(opt, [a, b], [[[1.0, 1.0], None], [[1.0, 1.0], None]])
    assert np.array_equal(b.data, [3.0])
    assert not opt.state.get(b)  # no state was created for b
    run(opt, [a, b], [[None, [1.0]]])
    assert b.data[0] < 3.0
    if "step" in opt.state[b]:
        assert opt.state[b]["step"] == 1 and opt.state[a]["step"] == 2


@pytest.mark.parametrize("make", ALL)
def test_state_is_isolated_per_parameter(make):
    rng = np.random.default_rng(2)
    grads = rng.standard_normal((10, 2, 4))
    a, b = Parameter(np.ones(4)), Parameter(np.ones(4))
    run(make([a, b]), [a, b], grads)
    for i in range(2):
        alone = Parameter(np.ones(4))
        run(make([alone]), [alone], [[g[i]] for g in grads])
        assert np.array_equal(alone.data, (a, b)[i].data)


@pytest.mark.parametrize("make", ALL)
def test_parameter_added_later_is_tracked_only_from_then(make):
    rng = np.random.default_rng(3)
    grads = rng.standard_normal((8, 3))
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = make([a])
    b.grad = np.ones(3)  # a gradient on b before it is added must not move it
    run(opt, [a], [[g] for g in grads[:4]])
    assert np.array_equal(b.data, np.ones(3))
    opt.add_param_group({"params": [b]})
    assert len(opt.param_groups) == 2
    assert set(opt.param_groups[1]) == set(opt.param_groups[0])  # defaults filled in
    run(opt, [a, b], [[g, g] for g in grads[4:]])
    fresh = Parameter(np.ones(3))
    run(make([fresh]), [fresh], [[g] for g in grads[4:]])
    assert np.array_equal(b.data, fresh.data)


def test_add_param_group_takes_its_own_options():
    a, b = param(1.0), param(1.0)
    opt = SGD([a], lr=0.5)
    opt.add_param_group({"params": b, "lr": 0.25})  # a single parameter is accepted, like PyTorch
    run(opt, [a, b], [[[1.0], [1.0]]])
    assert np.array_equal(a.data, [0.5]) and np.array_equal(b.data, [0.75])


@pytest.mark.parametrize("make", ALL)
def test_parameters_outside_the_optimizer_are_untouched(make):
    a, outside = param(1.0), param(5.0)
    outside.grad = np.array([1.0])
    opt = make([a])
    run(opt, [a], [[[1.0]]])
    opt.zero_grad()
    assert np.array_equal(outside.data, [5.0]) and np.array_equal(outside.grad, [1.0])


def test_duplicate_parameter_is_rejected():
    p = param(1.0)
    with pytest.raises(ValueError):
        SGD([p, p], lr=0.1)


def test_parameter_in_two_groups_is_rejected():
    p, q = param(1.0), param(2.0)
    with pytest.raises(ValueError):
        Adam([{"params": [p]}, {"params": [q, p]}])
    opt = SGD([p], lr=0.1)
    with pytest.raises(ValueError):
        opt.add_param_group({"params": [p]})


def test_empty_parameter_list_is_rejected():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam(iter([]))


def test_iterator_of_parameters_is_materialised_once():
    a, b = param(1.0), param(2.0)
    opt = SGD((p for p in [a, b]), lr=0.5)
    assert len(opt.param_groups[0]["params"]) == 2
    run(opt, [a, b], [[[1.0], [1.0]], [[1.0], [1.0]]])
    assert np.array_equal(a.data, [0.0]) and np.array_equal(b.data, [1.0])


def test_per_group_options_override_defaults():
    a, b = param(1.0), param(1.0)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.25, "momentum": 0.5}], lr=0.5)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0.0
    assert opt.param_groups[1]["lr"] == 0.25 and opt.param_groups[1]["momentum"] == 0.5
    run(opt, [a, b], [[[1.0], [1.0]]])
    assert np.array_equal(a.data, [0.5]) and np.array_equal(b.data, [0.75])


def test_optimizer_base_fills_groups_from_defaults():
    p = param(1.0)
    opt = Optimizer([p], {"lr": 0.1, "foo": 3})
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["foo"] == 3
    assert opt.param_groups[0]["params"][0] is p


@pytest.mark.parametrize("make", ALL)
def test_zero_grad_sets_gradients_to_none(make):
    a, b = param(1.0), param(2.0)
    a.grad, b.grad = np.array([1.0]), np.array([1.0])
    opt = make([a, b])
    opt.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize("make", ALL)
def test_gradient_shape_mismatch_raises_naming_the_index(make):
    params = [param(1.0), Parameter(np.ones((2, 3))), param(2.0)]
    opt = make(params)
    for p in params:
        p.grad = np.ones_like(p.data)
    params[1].grad.shape = (
        3,
        2,
    )  # Tensor may validate assignment, so reshape the stored array in place
    with pytest.raises(ValueError, match=r"\b1\b"):
        opt.step()


@pytest.mark.parametrize("make", ALL)
def test_float32_parameters_stay_float32(make):
    rng = np.random.default_rng(4)
    p = Parameter(rng.standard_normal(6).astype(np.float32))
    opt = make([p])
    run(opt, [p], [[g] for g in rng.standard_normal((3, 6)).astype(np.float32)])
    assert p.data.dtype == np.float32
    for value in opt.state[p].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32


@pytest.mark.parametrize("make", ALL)
def test_parameter_array_is_updated_in_place(make):
    p = Parameter(np.ones((2, 3)))
    data, row = p.data, p.data[1]
    opt = make([p])
    run(opt, [p], [[np.full((2, 3), 0.5)]] * 3)
    assert p.data is data
    assert np.array_equal(row, p.data[1]) and row[0] != 1.0


@pytest.mark.parametrize("make", ALL)
def test_step_does_not_mutate_gradients(make):
    rng = np.random.default_rng(5)
    p = Parameter(rng.standard_normal(5))
    opt = make([p])
    for _ in range(3):
        g = rng.standard_normal(5)
        p.grad = g.copy()
        grad_array = p.grad
        opt.step()
        assert p.grad is grad_array and np.array_equal(p.grad, g)


# ---------------------------------------------------------------- validation in PyTorch's words


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: SGD(p, lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda p: SGD(p, lr=0.1, weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
        (
            lambda p: SGD(p, lr=0.1, nesterov=True),
            "Nesterov momentum requires a momentum and zero dampening",
        ),
        (
            lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            "Nesterov momentum requires a momentum and zero dampening",
        ),
        (lambda p: Adam(p, lr=-1.0), "Invalid learning rate: -1.0"),
        (lambda p: Adam(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (lambda p: Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (lambda p: Adam(p, weight_decay=-0.5), "Invalid weight_decay value: -0.5"),
        (lambda p: AdamW(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: AdamW(p, betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
        (lambda p: AdamW(p, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    ],
)
def test_invalid_hyperparameters_are_rejected_in_pytorch_words(build, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build([param(1.0)])


def test_boundary_hyperparameters_are_accepted():
    SGD([param(1.0)], lr=0.0, momentum=0.0, weight_decay=0.0)
    Adam([param(1.0)], lr=0.0, betas=(0.0, 0.0), eps=0.0)


# --- a large step on two cores ------------------------------------------------------------


def _large_params(seed=0):
    """Four float32 parameters, 2,200,002 elements in all (above Optimizer.PARALLEL_ELEMENTS):
    each half of the step holds one parameter of each shape, so that a scratch array shared by
    the two threads would mix their work."""
    rng = np.random.default_rng(seed)
    params = [
        Parameter(rng.standard_normal(n).astype(np.float32)) for n in (1_100_000, 1, 1_100_000, 1)
    ]
    for p in params:
        p.grad = rng.standard_normal(p.data.shape).astype(np.float32)
    return params


LARGE = [  # (the optimizer, the kernel its step calls)
    pytest.param(
        lambda ps: SGD(ps, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-2),
        "sgd_step",
        id="sgd",
    ),
    pytest.param(lambda ps: Adam(ps, lr=1e-3, weight_decay=1e-2), "adam_step", id="adam"),
    pytest.param(lambda ps: AdamW(ps, lr=1e-3, weight_decay=1e-2), "adamw_step", id="adamw"),
]


def _record_threads(module, kernel, monkeypatch, params):
    """Replace `kernel` by one that records (parameter index, called in this thread) first."""
    calls, here = [], threading.get_ident()
    index = {id(p.data): i for i, p in enumerate(params)}
    original = getattr(module, kernel)

    def recorded(param, *args, **kwargs):
        calls.append((index.get(id(param)), threading.get_ident() == here))
        return original(param, *args, **kwargs)

    monkeypatch.setattr(module, kernel, recorded)
    return calls


@pytest.mark.parametrize("make, kernel", LARGE)
def test_a_large_step_is_split_between_two_threads_and_gives_the_same_bits(
    make, kernel, monkeypatch
):
    import tinytorch.core.optimizers as module

    assert sum(p.data.size for p in _large_params()) >= Optimizer.PARALLEL_ELEMENTS
    split, alone = _large_params(), _large_params()
    one_thread = make(alone)
    one_thread.PARALLEL_ELEMENTS = float("inf")
    two_threads = make(split)
    calls = _record_threads(module, kernel, monkeypatch, split)
    for _ in range(3):
        two_threads.step()
        one_thread.step()
    for a, b in zip(split, alone):
        assert np.array_equal(a.data, b.data)
        ours, theirs = two_threads.state[a], one_thread.state[b]
        assert ours.keys() == theirs.keys()
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    # the split optimizer's calls: the first two parameters (half of the elements) in this
    # thread, the other two in a helper; the one-thread optimizer's calls all in this thread
    assert sorted(c for c in calls if c[0] is not None) == sorted(
        [(0, True), (1, True), (2, False), (3, False)] * 3
    )
    assert {c[1] for c in calls if c[0] is None} == {True}


def test_an_error_in_the_helper_threads_half_is_raised_by_step(monkeypatch):
    import tinytorch.core.optimizers as module

    kernel, here, failed_in = module.sgd_step, threading.get_ident(), []

    def fails_on_the_third(param, *args, **kwargs):
        if param is params[2].data:
            failed_in.append(threading.get_ident() != here)
            raise FloatingPointError("the third parameter's kernel failed")
        return kernel(param, *args, **kwargs)

    monkeypatch.setattr(module, "sgd_step", fails_on_the_third)
    params = _large_params()
    with pytest.raises(FloatingPointError, match="the third parameter's kernel failed"):
        SGD(params, lr=0.01).step()
    assert failed_in == [True]  # raised in the helper thread, and raised again by step()


def test_the_helper_thread_keeps_numpys_error_state():
    """Under np.errstate(over="raise") an overflow in the helper's half raises, as in this
    thread's half (numpy keeps its error state per context, which a new thread does not share)."""
    params = _large_params()
    for p in params:
        p.grad = np.zeros_like(p.data)
    params[2].grad[0] = np.float32(3e38)  # a parameter of the helper's half
    opt = SGD(params, lr=10.0)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        opt.step()
