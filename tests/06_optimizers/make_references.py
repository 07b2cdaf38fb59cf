"""Generate the frozen PyTorch references for tests/06_optimizers.

Run with torch installed (never needed by the test suite itself):

    PYTHONPATH=. /path/to/torch-env/bin/python tests/06_optimizers/make_references.py

Inputs (initial parameters, gradients, data) come from numpy's ``default_rng`` and are
stored next to torch's outputs in ``references/torch_references.npz`` (no pickles), so the
default tests replay exactly the same inputs through tinytorch without torch.

The same replay functions are used by the live tests when torch is importable.

WarmupCosineLR has no single counterpart in torch, so its reference is composed from torch's
own schedulers with ``SequentialLR``, none of which shares code with the module's solution:
a linear ramp from 0 (``LambdaLR`` with factor ``epoch / warmup_steps``; ``LinearLR`` refuses a
start factor of 0), then ``CosineAnnealingLR(T_max=total_steps - warmup_steps, eta_min)``, then
the constant ``eta_min`` (``LambdaLR`` with factor ``eta_min / base_lr``) from ``total_steps``
on, where a bare cosine would rise again. ``main`` records how far that composition, and
``SequentialLR(LinearLR, CosineAnnealingLR)``, are from the closed form.
"""

import json
import math
from pathlib import Path

import numpy as np
import torch

REFERENCE_FILE = Path(__file__).parent / "references" / "torch_references.npz"

STEPS = 200
MLP_STEPS = 50
SHAPES = [(3, 4), (5,)]
SEED = 20240406

# Each case: optimizer and its options, optional per-group options, optional scheduler,
# optional clipping, and whether some gradients are None (a fixed boolean mask).
SGD_CASES = [
    ("sgd_plain", {"lr": 0.1}),
    ("sgd_momentum", {"lr": 0.05, "momentum": 0.9}),
    ("sgd_momentum_dampening", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    ("sgd_nesterov", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd_weight_decay", {"lr": 0.1, "weight_decay": 0.01}),
    ("sgd_momentum_weight_decay", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    (
        "sgd_nesterov_weight_decay",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
    ),
    (
        "sgd_momentum_dampening_weight_decay",
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.02},
    ),
]
ADAM_CASES = [
    ("adam_default", {}),
    ("adam_lr", {"lr": 0.05}),
    ("adam_weight_decay", {"lr": 0.01, "weight_decay": 0.1}),
    ("adam_betas_eps", {"lr": 0.02, "betas": [0.5, 0.9], "eps": 1e-3}),
    ("adam_beta1_zero", {"lr": 0.01, "betas": [0.0, 0.99], "eps": 1e-6}),
]
ADAMW_CASES = [
    ("adamw_default", {}),
    ("adamw_wd0", {"lr": 0.01, "weight_decay": 0.0}),
    ("adamw_large_wd", {"lr": 0.05, "weight_decay": 2.0}),
    ("adamw_betas_eps", {"lr": 0.01, "betas": [0.85, 0.98], "eps": 1e-4, "weight_decay": 0.05}),
]


def _case(name, optimizer, kwargs, groups=None, scheduler=None, clip=None, none_grads=False):
    return {
        "name": name,
        "optimizer": optimizer,
        "kwargs": kwargs,
        # None: one plain list of parameters; else [{"params": [indices], **options}]
        "groups": groups,
        "scheduler": scheduler,  # None or {"name": ..., "kwargs": {...}}
        "clip": clip,  # None or {"max_norm": ..., "norm_type": ...}
        "none_grads": none_grads,
    }


def trajectory_cases():
    cases = [_case(n, "SGD", k) for n, k in SGD_CASES]
    cases += [_case(n, "Adam", k) for n, k in ADAM_CASES]
    cases += [_case(n, "AdamW", k) for n, k in ADAMW_CASES]
    cases += [
        _case("sgd_momentum_none_grads", "SGD", {"lr": 0.05, "momentum": 0.9}, none_grads=True),
        _case("adam_none_grads", "Adam", {"lr": 0.01}, none_grads=True),
        _case("adamw_none_grads", "AdamW", {"lr": 0.01, "weight_decay": 0.1}, none_grads=True),
        _case(
            "sgd_param_groups",
            "SGD",
            {"lr": 0.05},
            groups=[
                {"params": [0], "lr": 0.1, "momentum": 0.9},
                {"params": [1], "momentum": 0.5, "nesterov": True, "weight_decay": 0.1},
            ],
        ),
        _case(
            "adam_param_groups",
            "Adam",
            {"lr": 0.01},
            groups=[
                {"params": [0]},
                {"params": [1], "lr": 0.05, "betas": [0.8, 0.95], "weight_decay": 0.01},
            ],
        ),
    ]
    # Schedulers drive SGD with momentum over two groups with different base rates.
    two_groups = [{"params": [0], "lr": 0.1}, {"params": [1], "lr": 0.02}]
    sched = [
        ("steplr", "StepLR", {"step_size": 30, "gamma": 0.5}),
        ("steplr_default_gamma", "StepLR", {"step_size": 7}),
        ("exponentiallr", "ExponentialLR", {"gamma": 0.98}),
        ("cosine", "CosineAnnealingLR", {"T_max": 200}),
        ("cosine_beyond_tmax", "CosineAnnealingLR", {"T_max": 45, "eta_min": 0.001}),
        (
            "warmup_cosine",
            "WarmupCosineLR",
            {"warmup_steps": 20, "total_steps": 150, "eta_min": 0.001},
        ),
        ("warmup_cosine_eta0", "WarmupCosineLR", {"warmup_steps": 10, "total_steps": 100}),
    ]
    cases += [
        _case(
            f"sched_{n}",
            "SGD",
            {"lr": 0.1, "momentum": 0.5},
            groups=two_groups,
            scheduler={"name": s, "kwargs": k},
        )
        for n, s, k in sched
    ]
    cases += [
        _case(
            "sgd_nesterov_steplr_clip",
            "SGD",
            {"lr": 0.1, "momentum": 0.9, "nesterov": True},
            scheduler={"name": "StepLR", "kwargs": {"step_size": 50, "gamma": 0.5}},
            clip={"max_norm": 1.0, "norm_type": 2.0},
        ),
        _case(
            "adam_warmup_cosine_clip",
            "Adam",
            {"lr": 0.05},
            scheduler={
                "name": "WarmupCosineLR",
                "kwargs": {"warmup_steps": 10, "total_steps": 150, "eta_min": 1e-4},
            },
            clip={"max_norm": 2.0, "norm_type": 2.0},
        ),
        _case(
            "adamw_cosine_clip_inf",
            "AdamW",
            {"lr": 0.02, "weight_decay": 0.1},
            scheduler={"name": "CosineAnnealingLR", "kwargs": {"T_max": 60}},
            clip={"max_norm": 0.5, "norm_type": "inf"},
        ),
        _case(
            "sgd_momentum_exponential_clip_none_grads",
            "SGD",
            {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
            scheduler={"name": "ExponentialLR", "kwargs": {"gamma": 0.99}},
            clip={"max_norm": 1.5, "norm_type": 2.0},
            none_grads=True,
        ),
    ]
    return cases


def mlp_cases():
    return [
        _case("mlp_tanh_mse_adam", "Adam", {"lr": 0.01}),
        _case(
            "mlp_relu_ce_sgd_nesterov_cosine_clip",
            "SGD",
            {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
            scheduler={"name": "CosineAnnealingLR", "kwargs": {"T_max": 50, "eta_min": 0.01}},
            clip={"max_norm": 1.0, "norm_type": 2.0},
        ),
        _case(
            "mlp_tanh_mse_adamw_warmup",
            "AdamW",
            {"lr": 0.02, "weight_decay": 0.1},
            scheduler={"name": "WarmupCosineLR", "kwargs": {"warmup_steps": 5, "total_steps": 40}},
        ),
    ]


# ---------------------------------------------------------------- inputs (numpy only)


def make_trajectory_inputs(seed=SEED, steps=STEPS):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in SHAPES]
    # A log-normal scale per step makes the global norm range from ~0.2 to ~20,
    # so clipping is active on some steps and inactive on others.
    scale = np.exp(rng.normal(-0.5, 1.0, size=steps))
    grads = [rng.standard_normal((steps, *s)) * scale.reshape(-1, *([1] * len(s))) for s in SHAPES]
    # Parameter 1 has no gradient on every third step, parameter 0 on a few random steps.
    none_mask = np.zeros((steps, len(SHAPES)), dtype=bool)
    none_mask[::3, 1] = True
    none_mask[rng.choice(steps, size=15, replace=False), 0] = True
    return {"params": params, "grads": grads, "none_mask": none_mask}


def make_mlp_inputs(seed=SEED + 1):
    """Fixed data and initial weights (torch layout: weight is (out_features, in_features))."""
    rng = np.random.default_rng(seed)
    n, d, h, c = 32, 4, 8, 3
    x = rng.standard_normal((n, d))
    y_reg = np.sin(x @ rng.standard_normal((d, 1)))
    labels = np.argmax(x @ rng.standard_normal((d, c)), axis=1).astype(np.int64)
    w1 = rng.uniform(-0.5, 0.5, (h, d))
    b1 = rng.uniform(-0.5, 0.5, (h,))
    w2_reg = rng.uniform(-0.35, 0.35, (1, h))
    b2_reg = rng.uniform(-0.35, 0.35, (1,))
    w2_cls = rng.uniform(-0.35, 0.35, (c, h))
    b2_cls = rng.uniform(-0.35, 0.35, (c,))
    return {
        "x": x,
        "y_reg": y_reg,
        "labels": labels,
        "w1": w1,
        "b1": b1,
        "w2_reg": w2_reg,
        "b2_reg": b2_reg,
        "w2_cls": w2_cls,
        "b2_cls": b2_cls,
    }


def warmup_cosine_closed_form(base_lr, epoch, warmup_steps, total_steps, eta_min=0.0):
    if epoch < warmup_steps:
        return base_lr * epoch / warmup_steps
    if epoch >= total_steps:
        return eta_min
    progress = (epoch - warmup_steps) / (total_steps - warmup_steps)
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * progress)) / 2


# ---------------------------------------------------------------- torch replay


def _torch_optimizer(case, params):
    kwargs = dict(case["kwargs"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    if case["groups"] is None:
        arg = params
    else:
        arg = []
        for g in case["groups"]:
            group = {k: (tuple(v) if k == "betas" else v) for k, v in g.items() if k != "params"}
            group["params"] = [params[i] for i in g["params"]]
            arg.append(group)
    return getattr(torch.optim, case["optimizer"])(arg, **kwargs)


def _torch_scheduler(case, optimizer):
    spec = case["scheduler"]
    if spec is None:
        return None
    kwargs = spec["kwargs"]
    if spec["name"] == "WarmupCosineLR":
        return _torch_warmup_cosine(optimizer, **kwargs)
    return getattr(torch.optim.lr_scheduler, spec["name"])(optimizer, **kwargs)


def _torch_warmup_cosine(optimizer, warmup_steps, total_steps, eta_min=0.0):
    """Warm-up from 0, cosine to eta_min, then eta_min: three torch schedulers in sequence."""
    sched = torch.optim.lr_scheduler
    ramp = sched.LambdaLR(optimizer, lambda epoch: epoch / warmup_steps)
    cosine = sched.CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=eta_min)
    floor = sched.LambdaLR(
        optimizer, [lambda epoch, b=g["initial_lr"]: eta_min / b for g in optimizer.param_groups]
    )
    return sched.SequentialLR(
        optimizer, [ramp, cosine, floor], milestones=[warmup_steps, total_steps]
    )


def _norm_type(clip):
    return math.inf if clip["norm_type"] == "inf" else float(clip["norm_type"])


def torch_trajectory(case, inputs, steps=STEPS):
    """Replay ``inputs`` through torch.optim; returns flattened params, lrs and clip norms per
    step."""
    params = [
        torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True) for p in inputs["params"]
    ]
    opt = _torch_optimizer(case, params)
    sched = _torch_scheduler(case, opt)
    flat = [np.concatenate([p.detach().numpy().ravel() for p in params])]
    lrs = [[g["lr"] for g in opt.param_groups]]
    norms = []
    for t in range(steps):
        for i, p in enumerate(params):
            missing = case["none_grads"] and inputs["none_mask"][t, i]
            p.grad = None if missing else torch.tensor(inputs["grads"][i][t].copy())
        if case["clip"] is not None:
            c = case["clip"]
            norms.append(
                float(torch.nn.utils.clip_grad_norm_(params, c["max_norm"], _norm_type(c)))
            )
        opt.step()
        if sched is not None:
            sched.step()
        flat.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
        lrs.append([g["lr"] for g in opt.param_groups])
    return {
        "params": np.array(flat),
        "lrs": np.array(lrs, dtype=np.float64),
        "norms": np.array(norms),
    }


def torch_mlp_trajectory(case, data, steps=MLP_STEPS):
    """Train a 2-layer MLP with torch autograd; returns flattened params and the loss per step."""
    regression = "mse" in case["name"]
    suffix = "reg" if regression else "cls"
    init = [data["w1"], data["b1"], data[f"w2_{suffix}"], data[f"b2_{suffix}"]]
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = _torch_optimizer(case, params)
    sched = _torch_scheduler(case, opt)
    x = torch.tensor(data["x"])
    flat = [np.concatenate([p.detach().numpy().ravel() for p in params])]
    losses = []
    for _ in range(steps):
        w1, b1, w2, b2 = params
        hidden = x @ w1.T + b1
        if regression:
            out = torch.tanh(hidden) @ w2.T + b2
            loss = torch.mean((out - torch.tensor(data["y_reg"])) ** 2)
        else:
            out = torch.relu(hidden) @ w2.T + b2
            loss = torch.nn.functional.cross_entropy(out, torch.tensor(data["labels"]))
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        if case["clip"] is not None:
            c = case["clip"]
            torch.nn.utils.clip_grad_norm_(params, c["max_norm"], _norm_type(c))
        opt.step()
        if sched is not None:
            sched.step()
        flat.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    return {"params": np.array(flat), "losses": np.array(losses)}


# ---------------------------------------------------------------- report on WarmupCosineLR


def _warmup_alternatives(base=0.1, warmup=20, total=150, eta_min=0.001, epochs=STEPS):
    """Max abs difference to the closed form of the reference composition and of
    SequentialLR(LinearLR, Cosine)."""
    exact = np.array(
        [warmup_cosine_closed_form(base, e, warmup, total, eta_min) for e in range(epochs + 1)]
    )
    out = {}
    p = [torch.zeros(1, requires_grad=True)]

    opt = torch.optim.SGD(p, lr=base)
    reference = _torch_warmup_cosine(opt, warmup, total, eta_min)
    got = [opt.param_groups[0]["lr"]]
    for _ in range(epochs):
        opt.step()
        reference.step()
        got.append(opt.param_groups[0]["lr"])
    out["SequentialLR(LambdaLR ramp, CosineAnnealingLR, LambdaLR floor)"] = float(
        np.max(np.abs(np.array(got) - exact))
    )

    opt = torch.optim.SGD(p, lr=base)
    # LinearLR rejects start_factor=0; use the smallest it accepts in spirit.
    lin = torch.optim.lr_scheduler.LinearLR(
        opt, start_factor=1e-12, end_factor=1.0, total_iters=warmup
    )
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=eta_min)
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [lin, cos], milestones=[warmup])
    got = [opt.param_groups[0]["lr"]]
    for _ in range(epochs):
        opt.step()
        seq.step()
        got.append(opt.param_groups[0]["lr"])
    out["SequentialLR(LinearLR,CosineAnnealingLR)"] = float(np.max(np.abs(np.array(got) - exact)))
    return out


def main():
    torch.set_default_dtype(torch.float64)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)  # scheduler-order / deprecation chatter

    arrays = {}
    inputs = make_trajectory_inputs()
    for i, p in enumerate(inputs["params"]):
        arrays[f"inputs__param{i}"] = p
        arrays[f"inputs__grads{i}"] = inputs["grads"][i]
    arrays["inputs__none_mask"] = inputs["none_mask"]
    cases = trajectory_cases()
    for case in cases:
        out = torch_trajectory(case, inputs)
        for key, value in out.items():
            if key != "norms" or case["clip"] is not None:
                arrays[f"{case['name']}__{key}"] = value

    data = make_mlp_inputs()
    for key, value in data.items():
        arrays[f"mlp__{key}"] = value
    mlps = mlp_cases()
    for case in mlps:
        for key, value in torch_mlp_trajectory(case, data).items():
            arrays[f"{case['name']}__{key}"] = value

    alternatives = _warmup_alternatives()
    meta = {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "seed": SEED,
        "steps": STEPS,
        "mlp_steps": MLP_STEPS,
        "shapes": SHAPES,
        "trajectory_cases": cases,
        "mlp_cases": mlps,
        "warmup_cosine_reference": "torch SequentialLR(LambdaLR ramp, CosineAnnealingLR, "
        "LambdaLR floor); max abs "
        f"difference to the closed form: {alternatives}",
    }
    arrays["meta"] = np.array(json.dumps(meta))
    REFERENCE_FILE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE_FILE, **arrays)
    print(
        f"wrote {REFERENCE_FILE} ({REFERENCE_FILE.stat().st_size / 1e6:.2f} MB), "
        f"{len(cases)} trajectory cases, {len(mlps)} MLP cases, torch {torch.__version__}"
    )
    print("WarmupCosineLR alternatives, max abs difference to the closed form:", alternatives)


if __name__ == "__main__":
    main()
