"""Whole trajectories of tinytorch.core.optimizers against torch.optim (float64, max abs diff <=
1e-12).

The frozen references in ``references/torch_references.npz`` were produced by
``make_references.py`` with torch; the default suite replays the stored inputs through
tinytorch and needs no torch. In the instructor repository, when torch is importable, the same
cases also run live (the student edition keeps only the replay).
"""

import ast
import importlib.util
import json
import math
from pathlib import Path

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
from tinytorch.core.tensor import Parameter, Tensor, cross_entropy, mse_loss

HERE = Path(__file__).parent
TOL = 1e-12

with np.load(HERE / "references" / "torch_references.npz", allow_pickle=False) as _z:
    REF = {key: _z[key] for key in _z.files}
META = json.loads(str(REF["meta"]))
TRAJECTORY_CASES = META["trajectory_cases"]
MLP_CASES = META["mlp_cases"]
INPUTS = {
    "params": [REF[f"inputs__param{i}"] for i in range(len(META["shapes"]))],
    "grads": [REF[f"inputs__grads{i}"] for i in range(len(META["shapes"]))],
    "none_mask": REF["inputs__none_mask"],
}
MLP_DATA = {
    key.removeprefix("mlp__"): value for key, value in REF.items() if key.startswith("mlp__")
}

OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}
SCHEDULERS = {
    "StepLR": StepLR,
    "ExponentialLR": ExponentialLR,
    "CosineAnnealingLR": CosineAnnealingLR,
    "WarmupCosineLR": WarmupCosineLR,
}


def _options(options):
    return {k: (tuple(v) if k == "betas" else v) for k, v in options.items() if k != "params"}


def make_optimizer(case, params):
    if case["groups"] is None:
        arg = params
    else:
        arg = [{"params": [params[i] for i in g["params"]], **_options(g)} for g in case["groups"]]
    return OPTIMIZERS[case["optimizer"]](arg, **_options(case["kwargs"]))


def make_scheduler(case, optimizer):
    spec = case["scheduler"]
    return None if spec is None else SCHEDULERS[spec["name"]](optimizer, **spec["kwargs"])


def _clip(case, params):
    c = case["clip"]
    norm_type = math.inf if c["norm_type"] == "inf" else float(c["norm_type"])
    return clip_grad_norm(params, c["max_norm"], norm_type)


def _flat(params):
    return np.concatenate([p.data.ravel() for p in params])


def tinytorch_trajectory(case, inputs, steps):
    params = [Parameter(p.copy()) for p in inputs["params"]]
    opt = make_optimizer(case, params)
    sched = make_scheduler(case, opt)
    flat, lrs, norms = [_flat(params)], [[g["lr"] for g in opt.param_groups]], []
    for t in range(steps):
        for i, p in enumerate(params):
            missing = case["none_grads"] and inputs["none_mask"][t, i]
            p.grad = None if missing else inputs["grads"][i][t].copy()
        if case["clip"] is not None:
            norms.append(_clip(case, params))
        opt.step()
        if sched is not None:
            sched.step()
        flat.append(_flat(params))
        lrs.append([g["lr"] for g in opt.param_groups])
    return {
        "params": np.array(flat),
        "lrs": np.array(lrs, dtype=np.float64),
        "norms": np.array(norms),
    }


def _mlp_forward(case, params, data):
    w1, b1, w2, b2 = params
    hidden = Tensor(data["x"]) @ w1.T + b1
    if "mse" in case["name"]:
        return mse_loss(hidden.tanh() @ w2.T + b2, Tensor(data["y_reg"]))
    return cross_entropy(hidden.relu() @ w2.T + b2, data["labels"])


def tinytorch_mlp_trajectory(case, data, steps):
    """The same 2-layer MLP as the reference, with gradients from tinytorch's own autograd."""
    suffix = "reg" if "mse" in case["name"] else "cls"
    params = [Parameter(data[k].copy()) for k in ("w1", "b1", f"w2_{suffix}", f"b2_{suffix}")]
    opt = make_optimizer(case, params)
    sched = make_scheduler(case, opt)
    flat, losses = [_flat(params)], []
    for _ in range(steps):
        opt.zero_grad()
        loss = _mlp_forward(case, params, data)
        loss.backward()
        losses.append(float(loss.data))
        if case["clip"] is not None:
            _clip(case, params)
        opt.step()
        if sched is not None:
            sched.step()
        flat.append(_flat(params))
    return {"params": np.array(flat), "losses": np.array(losses)}


def _assert_trajectories_match(got, expected, keys):
    for key in keys:
        assert got[key].shape == expected[key].shape, key
        diff = np.max(np.abs(got[key] - expected[key])) if got[key].size else 0.0
        worst = (
            np.unravel_index(np.argmax(np.abs(got[key] - expected[key])), got[key].shape)
            if got[key].size
            else ()
        )
        assert diff <= TOL, f"{key}: max abs diff {diff:.3e} > {TOL} (first at step/index {worst})"


def _keys(case):
    return ["params", "lrs"] + (["norms"] if case["clip"] is not None else [])


@pytest.mark.parametrize("case", TRAJECTORY_CASES, ids=[c["name"] for c in TRAJECTORY_CASES])
def test_trajectory_matches_frozen_torch_reference(case):
    expected = {key: REF[f"{case['name']}__{key}"] for key in _keys(case)}
    got = tinytorch_trajectory(case, INPUTS, META["steps"])
    _assert_trajectories_match(got, expected, _keys(case))


@pytest.mark.parametrize("case", MLP_CASES, ids=[c["name"] for c in MLP_CASES])
def test_mlp_training_matches_frozen_torch_reference(case):
    expected = {key: REF[f"{case['name']}__{key}"] for key in ("params", "losses")}
    got = tinytorch_mlp_trajectory(case, MLP_DATA, META["mlp_steps"])
    _assert_trajectories_match(got, expected, ["params", "losses"])


def test_references_cover_every_optimizer_and_scheduler():
    assert {c["optimizer"] for c in TRAJECTORY_CASES} == set(OPTIMIZERS)
    assert {c["scheduler"]["name"] for c in TRAJECTORY_CASES if c["scheduler"]} == set(SCHEDULERS)
    assert META["torch_version"].startswith("2.")
    # the references are non-trivial: every case moved its parameters away from the start
    for case in TRAJECTORY_CASES + MLP_CASES:
        params = REF[f"{case['name']}__params"]
        assert np.max(np.abs(params[-1] - params[0])) > 1e-3, case["name"]


# ---------------------------------------------------------------- live comparison (torch only)


@pytest.fixture(scope="module")
def torch_replay():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("make_references_06", HERE / "make_references.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", TRAJECTORY_CASES, ids=[c["name"] for c in TRAJECTORY_CASES])
def test_trajectory_matches_live_torch(case, torch_replay):
    expected = torch_replay.torch_trajectory(case, INPUTS, META["steps"])
    got = tinytorch_trajectory(case, INPUTS, META["steps"])
    _assert_trajectories_match(got, expected, _keys(case))


@pytest.mark.parametrize("case", MLP_CASES, ids=[c["name"] for c in MLP_CASES])
def test_mlp_training_matches_live_torch(case, torch_replay):
    expected = torch_replay.torch_mlp_trajectory(case, MLP_DATA, META["mlp_steps"])
    got = tinytorch_mlp_trajectory(case, MLP_DATA, META["mlp_steps"])
    _assert_trajectories_match(got, expected, ["params", "losses"])


def test_inputs_regenerate_identically(torch_replay):
    """The stored inputs are what make_references.py generates (guards against a stale file)."""
    fresh = torch_replay.make_trajectory_inputs()
    for stored, new in zip(INPUTS["params"] + INPUTS["grads"], fresh["params"] + fresh["grads"]):
        assert np.array_equal(stored, new)
    assert np.array_equal(INPUTS["none_mask"], fresh["none_mask"])
    assert [c["name"] for c in torch_replay.trajectory_cases()] == [
        c["name"] for c in TRAJECTORY_CASES
    ]


def test_the_notebooks_hidden_grids_hold_what_torch_computes():
    """The option grids in the notebook's hidden tests are torch's current answers."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location(
        "make_grid_literals_06", HERE / "make_grid_literals.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = (HERE.parents[1] / "modules" / "06_optimizers" / "optimizers_dev.py").read_text(
        encoding="utf-8"
    )
    stored = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.endswith(("_GRID", "_BOUNDARIES"))
    }
    assert stored == module.grids()
