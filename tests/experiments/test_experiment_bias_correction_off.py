"""Adam without bias correction through the package's own kernel: a huge starting step counter."""

import math

import numpy as np

from experiments import load_config
from experiments.bias_correction import (
    UNCORRECTED_START_STEP,
    bias_corrections,
    disable_bias_correction,
)
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Parameter


def test_corrections_are_exactly_one_for_the_configured_betas():
    o = load_config("bias_correction").optim
    for step in (UNCORRECTED_START_STEP + 1, UNCORRECTED_START_STEP + 10**6):
        assert bias_corrections(o.beta1, o.beta2, step) == (1.0, 1.0)
    # ...while a normal counter does correct: at step 1 the factors are 1 - beta.
    assert bias_corrections(0.9, 0.9999, 1) == (1.0 - 0.9, 1.0 - 0.9999)


def test_first_step_is_the_uncorrected_update():
    lr, beta1, beta2, eps = 0.01, 0.9, 0.9999, 1e-8
    p = Parameter(np.array([1.0, -2.0]))
    opt = Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    disable_bias_correction(opt)
    g = np.array([2.0, -0.5])
    p.grad = g.copy()
    opt.step()
    # Uncorrected: m = (1 - beta1) g, v = (1 - beta2) g^2, step = lr * m / (sqrt(v) + eps)
    # = lr * 0.1 / sqrt(0.0001) * sign(g) = 10 lr sign(g) (up to eps), ten times the corrected first
    # step.
    m, v = (1 - beta1) * g, (1 - beta2) * g * g
    expected = np.array([1.0, -2.0]) - lr * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(p.data, expected, rtol=1e-15, atol=0)
    assert math.isclose(p.data[0], 1.0 - 0.1, rel_tol=1e-6)
    state = opt.state[p]
    assert state["step"] == UNCORRECTED_START_STEP + 1
    np.testing.assert_array_equal(state["exp_avg"], m)


def test_moments_after_several_steps_match_a_fresh_adam():
    """The counter only changes the corrections: the moment buffers are those of a normal Adam."""
    grads = [np.array([0.3, -1.2]), np.array([-0.7, 0.4]), np.array([1.5, 0.1])]
    states = []
    for uncorrected in (False, True):
        p = Parameter(np.zeros(2))
        opt = Adam([p], lr=0.0, betas=(0.9, 0.9999))  # lr 0: parameters stay put, only moments move
        if uncorrected:
            disable_bias_correction(opt)
        for g in grads:
            p.grad = g.copy()
            opt.step()
        states.append(opt.state[p])
    np.testing.assert_array_equal(states[0]["exp_avg"], states[1]["exp_avg"])
    np.testing.assert_array_equal(states[0]["exp_avg_sq"], states[1]["exp_avg_sq"])
    assert (states[0]["step"], states[1]["step"]) == (3, UNCORRECTED_START_STEP + 3)
