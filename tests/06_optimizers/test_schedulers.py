"""Learning-rate schedulers: PyTorch's initial step, exact closed forms, bounds (hypothesis), no
drift."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.core.optimizers import (
    SGD,
    CosineAnnealingLR,
    ExponentialLR,
    StepLR,
    WarmupCosineLR,
    cosine_annealing_lr,
    exponential_lr,
    step_lr,
    warmup_cosine_lr,
)
from tinytorch.core.tensor import Parameter


def sgd(*lrs):
    """An SGD optimizer with one group per learning rate."""
    return SGD([{"params": [Parameter(np.zeros(1))], "lr": lr} for lr in lrs])


def lrs_over(scheduler, epochs):
    """group lrs for epochs 0..epochs (epoch 0 is right after construction)."""
    out = [[g["lr"] for g in scheduler.optimizer.param_groups]]
    for _ in range(epochs):
        scheduler.step()
        out.append([g["lr"] for g in scheduler.optimizer.param_groups])
    return np.array(out)


def cosine(base, epoch, t_max, eta_min):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2


def warmup_cosine(base, epoch, warmup, total, eta_min):
    if epoch < warmup:
        return base * epoch / warmup
    if epoch >= total:
        return eta_min
    return cosine(base, epoch - warmup, total - warmup, eta_min)


# ---------------------------------------------------------------- construction


def test_construction_performs_the_initial_step():
    opt = sgd(0.5, 0.25)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    assert sched.last_epoch == 0
    assert sched.base_lrs == [0.5, 0.25]
    assert sched.get_last_lr() == [0.5, 0.25]
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.25]


def test_warmup_starts_at_zero_on_construction():
    opt = sgd(0.5)
    sched = WarmupCosineLR(opt, warmup_steps=4, total_steps=10)
    assert opt.param_groups[0]["lr"] == 0.0 and sched.get_last_lr() == [0.0]
    assert sched.base_lrs == [0.5]


def test_step_advances_last_epoch_and_writes_every_group():
    opt = sgd(0.5, 0.125)
    sched = ExponentialLR(opt, gamma=0.5)
    sched.step()
    sched.step()
    assert sched.last_epoch == 2
    assert [g["lr"] for g in opt.param_groups] == [0.125, 0.03125]
    assert sched.get_last_lr() == [0.125, 0.03125]


def test_get_last_lr_has_no_side_effects():
    opt = sgd(0.5)
    sched = CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    for _ in range(3):
        sched.step()
    first = sched.get_last_lr()
    for _ in range(5):
        assert sched.get_last_lr() == first
    assert sched.last_epoch == 3 and opt.param_groups[0]["lr"] == first[0]
    first.append(123.0)  # the returned list is the caller's to keep
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]


# ---------------------------------------------------------------- exact values


def test_step_lr_decays_every_step_size_epochs():
    got = lrs_over(StepLR(sgd(0.5), step_size=3, gamma=0.5), 7)[:, 0]
    assert got.tolist() == [0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125]


def test_step_lr_default_gamma_is_one_tenth():
    sched = StepLR(sgd(1.0), step_size=1)
    sched.step()
    assert sched.get_last_lr() == [0.1]


def test_exponential_lr_multiplies_by_gamma_every_epoch():
    got = lrs_over(ExponentialLR(sgd(1.0), gamma=0.5), 4)[:, 0]
    assert got.tolist() == [1.0, 0.5, 0.25, 0.125, 0.0625]


def test_cosine_annealing_hits_eta_min_at_t_max_and_comes_back_after():
    # PyTorch's closed form is periodic: it rises again after T_max and is back at base at 2*T_max
    got = lrs_over(CosineAnnealingLR(sgd(1.0), T_max=4, eta_min=0.0), 8)[:, 0]
    s = math.sqrt(0.5) / 2
    np.testing.assert_allclose(
        got, [1.0, 0.5 + s, 0.5, 0.5 - s, 0.0, 0.5 - s, 0.5, 0.5 + s, 1.0], rtol=0, atol=1e-15
    )


def test_warmup_cosine_values():
    got = lrs_over(WarmupCosineLR(sgd(1.0), warmup_steps=4, total_steps=8, eta_min=0.125), 11)[:, 0]
    mid = 0.125 + 0.875 / 2
    np.testing.assert_allclose(
        got,
        [
            0.0,
            0.25,
            0.5,
            0.75,
            1.0,
            cosine(1, 1, 4, 0.125),
            mid,
            cosine(1, 3, 4, 0.125),
            0.125,
            0.125,
            0.125,
            0.125,
        ],
        rtol=0,
        atol=1e-16,
    )


@pytest.mark.parametrize(
    "epoch, expected", [(0, 0.5), (2, 0.5), (3, 0.25), (8, 0.125), (9, 0.0625)]
)
def test_step_lr_kernel(epoch, expected):
    assert step_lr(0.5, epoch, step_size=3, gamma=0.5) == expected


def test_exponential_lr_kernel_uses_a_power_not_a_product():
    assert exponential_lr(2.0, 3, gamma=0.5) == 0.25


def test_cosine_annealing_lr_kernel():
    assert cosine_annealing_lr(1.0, 0, T_max=10, eta_min=0.1) == 1.0
    assert cosine_annealing_lr(1.0, 5, T_max=10, eta_min=0.1) == pytest.approx(0.55, rel=1e-15)
    assert cosine_annealing_lr(1.0, 10, T_max=10, eta_min=0.1) == pytest.approx(0.1, rel=1e-15)
    assert cosine_annealing_lr(1.0, 15, T_max=10, eta_min=0.1) == pytest.approx(0.55, rel=1e-15)


def test_warmup_cosine_lr_kernel():
    assert warmup_cosine_lr(1.0, 0, warmup_steps=10, total_steps=30, eta_min=0.1) == 0.0
    assert warmup_cosine_lr(1.0, 5, warmup_steps=10, total_steps=30, eta_min=0.1) == 0.5
    assert warmup_cosine_lr(1.0, 10, warmup_steps=10, total_steps=30, eta_min=0.1) == 1.0
    assert warmup_cosine_lr(1.0, 20, warmup_steps=10, total_steps=30, eta_min=0.1) == pytest.approx(
        0.55, rel=1e-15
    )
    assert warmup_cosine_lr(1.0, 30, warmup_steps=10, total_steps=30, eta_min=0.1) == pytest.approx(
        0.1, rel=1e-15
    )
    assert warmup_cosine_lr(1.0, 1000, warmup_steps=10, total_steps=30, eta_min=0.1) == 0.1


# ---------------------------------------------------------------- closed form: no drift

N = 10_000


def test_exponential_lr_does_not_drift_over_ten_thousand_steps():
    sched = ExponentialLR(sgd(1.0), gamma=0.9993)
    for _ in range(N):
        sched.step()
    exact = 0.9993**N
    # repeated multiplication would be off by ~1e-13 relative here
    assert sched.get_last_lr()[0] == pytest.approx(exact, rel=2e-16)


def test_cosine_annealing_does_not_drift_over_ten_thousand_steps():
    sched = CosineAnnealingLR(sgd(0.5), T_max=333, eta_min=0.001)
    got = lrs_over(sched, N)[:, 0]
    exact = np.array([cosine(0.5, e, 333, 0.001) for e in range(N + 1)])
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-16)


def test_step_lr_does_not_drift_over_ten_thousand_steps():
    sched = StepLR(sgd(0.3), step_size=2, gamma=0.9993)
    for _ in range(N):
        sched.step()
    # repeated multiplication would be off by ~1e-15 relative here
    assert sched.get_last_lr()[0] == pytest.approx(0.3 * 0.9993 ** (N // 2), rel=2e-16)


# ---------------------------------------------------------------- bounds (hypothesis)

bases = st.floats(min_value=1e-6, max_value=10.0)
fractions = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=50, deadline=None)
@given(base=bases, frac=fractions, t_max=st.integers(1, 50), epochs=st.integers(0, 200))
def test_cosine_annealing_stays_within_eta_min_and_base(base, frac, t_max, epochs):
    eta_min = base * frac
    got = lrs_over(CosineAnnealingLR(sgd(base), T_max=t_max, eta_min=eta_min), epochs)[:, 0]
    assert np.all(got >= eta_min * (1 - 1e-15)) and np.all(got <= base * (1 + 1e-15))


@settings(max_examples=50, deadline=None)
@given(
    base=bases,
    frac=fractions,
    warmup=st.integers(0, 20),
    span=st.integers(1, 50),
    extra=st.integers(0, 30),
)
def test_warmup_cosine_stays_within_bounds(base, frac, warmup, span, extra):
    eta_min = base * frac
    total = warmup + span
    got = lrs_over(
        WarmupCosineLR(sgd(base), warmup_steps=warmup, total_steps=total, eta_min=eta_min),
        total + extra,
    )[:, 0]
    assert np.all(got[:warmup] >= 0.0) and np.all(got <= base * (1 + 1e-15))
    assert np.all(np.diff(got[: warmup + 1]) >= 0)  # warm-up increases
    assert np.all(got[warmup:] >= eta_min * (1 - 1e-15))
    assert np.all(got[total:] == got[total])  # constant after total_steps
    exact = [warmup_cosine(base, e, warmup, total, eta_min) for e in range(total + extra + 1)]
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-15 * base)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "build",
    [
        lambda o: StepLR(o, step_size=0),
        lambda o: CosineAnnealingLR(o, T_max=0),
        lambda o: WarmupCosineLR(o, warmup_steps=10, total_steps=10),
        lambda o: WarmupCosineLR(o, warmup_steps=11, total_steps=10),
    ],
)
def test_invalid_schedule_parameters_are_rejected(build):
    with pytest.raises(ValueError):
        build(sgd(0.1))


def test_scheduler_requires_an_optimizer():
    with pytest.raises(TypeError):
        StepLR([Parameter(np.zeros(1))], step_size=1)
