"""PyTorch's answers for the option grids in the notebook's hidden tests.

The hidden test cells of modules/06_optimizers/optimizers_dev.py carry these values as
literals (a test cell must stand alone in the student's kernel and in the judge). Print them
with torch installed:

    PYTHONPATH=. /path/to/torch-env/bin/python tests/06_optimizers/make_grid_literals.py

and tests/06_optimizers/test_optimizers_torch_reference.py checks, when torch is importable,
that the notebook still holds exactly what this prints.

Every optimizer run starts from p = [0.7, -1.3, 2.1] and takes 5 steps on the gradient
p * (p * p + 1) + 0.1 * t (step t = 1, 2, ...), as in the visible trajectory tests.
"""

from __future__ import annotations

import math

import torch

P0 = [0.7, -1.3, 2.1]
STEPS = 5

# Every SGD option that changes the arithmetic, alone and with weight decay.
SGD_GRID = [
    {"lr": 0.05},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "dampening": 0.3},  # dampening without momentum changes nothing
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
    {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
]
# Adam and AdamW: weight decay zero and not, beta1 zero, a huge eps.
ADAM_GRID = [
    {"lr": 0.01, "betas": [b1, 0.999], "eps": eps, "weight_decay": wd}
    for wd in (0.0, 0.05)
    for b1 in (0.9, 0.0)
    for eps in (1e-8, 1.0)
]
# clip_grad_norm: every norm type with a threshold of 0, one that clips and one that does not.
CLIP_GRID = [
    {"norm_type": norm_type, "max_norm": max_norm}
    for norm_type in (1.0, 2.0, 3.0, "inf")
    for max_norm in (0.0, 2.0, 1e9)
]
CLIP_SHAPES = [(2, 2), (4,), (3,)]
CLIP_GRADS = [
    [[0.5, -7.0], [2.0, 0.125]],
    None,
    [9.0, -0.25, 3.0],
]  # the middle parameter has no gradient
# Schedules at their boundaries, 6 epochs each (rates before each epoch's scheduler.step()).
SCHEDULES = [
    ["StepLR", {"step_size": 1, "gamma": 0.5}],
    ["StepLR", {"step_size": 2, "gamma": 1.0}],
    ["ExponentialLR", {"gamma": 1.0}],
    ["CosineAnnealingLR", {"T_max": 1, "eta_min": 0.01}],
    ["CosineAnnealingLR", {"T_max": 2, "eta_min": 0.0}],
]
EPOCHS = 6


def _gradient(p, t):
    return p * (p * p + 1.0) + 0.1 * t


def trajectory(optimizer_class, options):
    p = torch.tensor(P0, dtype=torch.float64, requires_grad=True)
    options = {k: tuple(v) if k == "betas" else v for k, v in options.items()}
    opt = optimizer_class([p], **options)
    out = []
    for t in range(1, STEPS + 1):
        p.grad = _gradient(p.detach(), t)
        opt.step()
        out.append(p.detach().tolist())
    return out


def clipped(norm_type, max_norm):
    """The total norm and the clipped gradients (flattened; the parameter without one left out)."""
    params = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in CLIP_SHAPES]
    for p, g in zip(params, CLIP_GRADS):
        p.grad = None if g is None else torch.tensor(g, dtype=torch.float64)
    nt = math.inf if norm_type == "inf" else norm_type
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=nt, foreach=False)
    return [float(total), [p.grad.flatten().tolist() for p in params if p.grad is not None]]


def rates(name, options):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    scheduler = getattr(torch.optim.lr_scheduler, name)(opt, **options)
    out = []
    for _ in range(EPOCHS):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


def grids() -> dict:
    return {
        "TORCH_SGD_GRID": [[o, trajectory(torch.optim.SGD, o)] for o in SGD_GRID],
        "TORCH_ADAM_GRID": [[o, trajectory(torch.optim.Adam, o)] for o in ADAM_GRID],
        "TORCH_ADAMW_GRID": [[o, trajectory(torch.optim.AdamW, o)] for o in ADAM_GRID],
        "TORCH_CLIP_GRID": [[o, *clipped(o["norm_type"], o["max_norm"])] for o in CLIP_GRID],
        "TORCH_SCHEDULE_BOUNDARIES": [[name, o, rates(name, o)] for name, o in SCHEDULES],
    }


if __name__ == "__main__":
    for name, value in grids().items():
        print(f"{name} = {value!r}")
