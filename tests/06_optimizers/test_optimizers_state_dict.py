"""state_dict / load_state_dict: PyTorch's layout, copies, and bit-identical resumption."""

import numpy as np
import pytest

from tinytorch.core.optimizers import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    ExponentialLR,
    StepLR,
    WarmupCosineLR,
    clip_grad_norm,
)
from tinytorch.core.tensor import Parameter

SHAPES = [(3, 4), (5,), (2, 2)]
STEPS, SAVE_AT = 30, 13

SETUPS = [
    pytest.param(
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
        lambda o: StepLR(o, step_size=5, gamma=0.5),
        id="sgd_nesterov_steplr",
    ),
    pytest.param(
        lambda ps: SGD(
            [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01, "dampening": 0.3}],
            lr=0.1,
            momentum=0.8,
        ),
        lambda o: ExponentialLR(o, gamma=0.97),
        id="sgd_two_groups_exponential",
    ),
    pytest.param(
        lambda ps: Adam(ps, lr=0.05, weight_decay=0.01),
        lambda o: CosineAnnealingLR(o, T_max=12, eta_min=0.001),
        id="adam_cosine",
    ),
    pytest.param(
        lambda ps: AdamW(ps, lr=0.05, betas=(0.8, 0.99)),
        lambda o: WarmupCosineLR(o, warmup_steps=5, total_steps=25, eta_min=0.001),
        id="adamw_warmup",
    ),
]


def gradients(seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]


def fresh_params(seed=1):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s)) for s in SHAPES]


def train(params, opt, sched, grads):
    for t, step_grads in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, step_grads)):
            # parameter 2 has no gradient on every fourth step, so its state lags behind
            p.grad = None if (i == 2 and t % 4 == 0) else g.copy()
        clip_grad_norm(params, max_norm=3.0)
        opt.step()
        sched.step()


@pytest.mark.parametrize("make_opt, make_sched", SETUPS)
def test_resuming_from_a_state_dict_is_bit_identical(make_opt, make_sched):
    grads = gradients()
    params = fresh_params()
    opt = make_opt(params)
    sched = make_sched(opt)
    train(params, opt, sched, grads[:SAVE_AT])
    saved_params = [p.data.copy() for p in params]
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()
    train(params, opt, sched, grads[SAVE_AT:])

    resumed = [Parameter(a.copy()) for a in saved_params]
    opt2 = make_opt(resumed)
    sched2 = make_sched(opt2)
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sched_sd)
    assert sched2.last_epoch == SAVE_AT
    assert [g["lr"] for g in opt2.param_groups] == opt_sd_lrs(opt_sd)
    train(resumed, opt2, sched2, grads[SAVE_AT:])

    for p, q in zip(params, resumed):
        assert np.array_equal(p.data, q.data)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in opt2.param_groups]
    assert sched.last_epoch == sched2.last_epoch == STEPS


def opt_sd_lrs(sd):
    return [g["lr"] for g in sd["param_groups"]]


@pytest.mark.parametrize("make_opt, make_sched", SETUPS)
def test_loaded_state_is_a_copy_of_the_source(make_opt, make_sched):
    grads = gradients()
    params = fresh_params()
    opt = make_opt(params)
    sched = make_sched(opt)
    train(params, opt, sched, grads[:SAVE_AT])
    sd = opt.state_dict()
    reference = [Parameter(p.data.copy()) for p in params]
    copy_opt = make_opt(reference)
    copy_opt.load_state_dict(opt.state_dict())
    copy_sched = make_sched(copy_opt)
    copy_sched.load_state_dict(sched.state_dict())

    loaded = [Parameter(p.data.copy()) for p in params]
    opt2 = make_opt(loaded)
    opt2.load_state_dict(sd)
    sched2 = make_sched(opt2)
    sched2.load_state_dict(sched.state_dict())
    for index_state in sd["state"].values():  # vandalise the source after loading
        for value in index_state.values():
            if isinstance(value, np.ndarray):
                value[...] = 1e3
    train(params, opt, sched, grads[SAVE_AT:])  # and keep training the source optimizer
    train(loaded, opt2, sched2, grads[SAVE_AT:])
    train(reference, copy_opt, copy_sched, grads[SAVE_AT:])
    for p, q in zip(loaded, reference):
        assert np.array_equal(p.data, q.data)


def test_state_dict_refers_to_parameters_by_index():
    params = fresh_params()
    opt = SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in params[1:]:
        p.grad = np.ones_like(p.data)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["momentum"] == 0.9
    assert sorted(sd["state"]) == [1, 2]  # parameter 0 had no gradient, so it has no state
    assert set(sd["state"][1]) == {"momentum_buffer"}
    assert np.array_equal(sd["state"][2]["momentum_buffer"], np.ones((2, 2)))


def test_adam_state_dict_holds_step_and_moments():
    p = Parameter(np.array([1.0, 2.0]))
    opt = Adam([p], lr=0.1)
    for _ in range(3):
        p.grad = np.array([0.5, -0.5])
        opt.step()
    state = opt.state_dict()["state"][0]
    assert state["step"] == 3
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
    assert tuple(opt.state_dict()["param_groups"][0]["betas"]) == (0.9, 0.999)


def test_loading_restores_hyperparameters():
    params = fresh_params()
    opt = Adam(params, lr=0.05, eps=1e-6)
    sd = opt.state_dict()
    opt2 = Adam(fresh_params(), lr=0.9)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.05 and opt2.param_groups[0]["eps"] == 1e-6


def test_loading_keeps_the_parameters_of_the_new_optimizer():
    params, others = fresh_params(), fresh_params(seed=2)
    opt = SGD(params, lr=0.1)
    opt2 = SGD(others, lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    assert all(a is b for a, b in zip(opt2.param_groups[0]["params"], others))


def test_mismatched_state_dict_is_rejected():
    sd = SGD(fresh_params(), lr=0.1).state_dict()
    with pytest.raises(ValueError):
        SGD(fresh_params()[:2], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError):
        params = fresh_params()
        SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(sd)


def test_scheduler_state_dict_round_trip():
    opt = SGD(fresh_params(), lr=0.4)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    for _ in range(7):
        sched.step()
    sd = sched.state_dict()
    assert sd["last_epoch"] == 7 and sd["base_lrs"] == [0.4]
    opt2 = SGD(fresh_params(), lr=0.4)
    sched2 = StepLR(opt2, step_size=100, gamma=0.9)
    sched2.load_state_dict(sd)
    assert sched2.last_epoch == 7 and sched2.step_size == 3 and sched2.gamma == 0.5
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr() == [0.4 * 0.5**2]
    assert opt2.param_groups[0]["lr"] == 0.1
