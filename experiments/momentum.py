"""Study 4: gradient descent vs heavy-ball momentum on logistic regression.

Data: points from a 2-D Gaussian with mean (-3, 0) and diagonal covariance
(3, 1), labelled by whether the second coordinate is positive. The first
coordinate carries no information but has a large second moment (9 + 3 = 12
against 1), so the loss surface is badly conditioned: the situation in which
momentum pays off. Both methods are the package's SGD, full batch, from zero
weights, with momentum 0 and with the configured momentum.

The classes are separable (the line x2 = 0 splits them), so the logistic loss
has infimum 0: the loss itself is the gap to the optimum, and the summary
counts the iterations each method needs to bring it below `target_gap`. The
plot shows log10 |loss_i - loss_final| per iteration, loss_final being the
method's own last loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from omegaconf import MISSING, DictConfig

from tinytorch.core.optimizers import SGD
from tinytorch.core.tensor import Parameter, Tensor

from .common import Progress, StudyResult, new_figure, no_progress
from .data import gaussian_halfplane


@dataclass
class GaussianData:
    n_samples: int = MISSING
    mean: list[float] = field(default_factory=lambda: MISSING)
    variance: list[float] = field(default_factory=lambda: MISSING)  # diagonal of the covariance


@dataclass
class MomentumOptim:
    lr: float = MISSING
    momentum: float = MISSING  # used by the momentum run; gradient descent uses 0


@dataclass
class Config:
    seed: int = MISSING
    data: GaussianData = field(default_factory=GaussianData)
    iterations: int = MISSING
    optim: MomentumOptim = field(default_factory=MomentumOptim)
    target_gap: float = MISSING


def logistic_loss(w: Parameter, b: Parameter, x: Tensor, signs: Tensor) -> Tensor:
    """Mean of log(1 + exp(-s * (x w + b))) with labels s in {-1, +1}."""
    margins = (x @ w + b) * signs
    return ((-margins).exp() + 1.0).log().mean()


def train_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    momentum: float,
    iterations: int,
    progress: Progress = no_progress,
    label: str = "",
) -> list[float]:
    """Full-batch SGD from zero weights; returns the loss before each of `iterations` steps and
    after the last."""
    w = Parameter(np.zeros((x.shape[1], 1)))
    b = Parameter(np.zeros(1))
    optimizer = SGD([w, b], lr=lr, momentum=momentum)
    xt, signs = Tensor(x), Tensor((2.0 * y - 1.0)[:, None])
    losses = []
    for i in range(iterations + 1):
        optimizer.zero_grad()
        loss = logistic_loss(w, b, xt, signs)
        losses.append(float(loss.data))
        if i == iterations:
            break
        loss.backward()
        optimizer.step()
        progress(label, i + 1, iterations)
    return losses


def iterations_to(losses: list[float], gap: float) -> int | None:
    """The first iteration whose loss is <= gap, or None if it never gets there."""
    return next((i for i, v in enumerate(losses) if v <= gap), None)


def run(cfg: DictConfig, progress: Progress = no_progress) -> StudyResult:
    d = cfg.data
    x, y = gaussian_halfplane(
        d.n_samples, tuple(d.mean), tuple(d.variance), np.random.default_rng(cfg.seed)
    )
    runs = {}
    for name, momentum in (
        ("gradient descent", 0.0),
        (f"momentum {cfg.optim.momentum:g}", cfg.optim.momentum),
    ):
        losses = train_logistic(
            x,
            y,
            lr=cfg.optim.lr,
            momentum=momentum,
            iterations=cfg.iterations,
            progress=progress,
            label=name,
        )
        runs[name] = {
            "momentum": momentum,
            "loss": losses,
            "iterations_to_target": iterations_to(losses, cfg.target_gap),
        }
    summary = [
        {
            "method": name,
            "final loss": r["loss"][-1],
            f"iterations to loss <= {cfg.target_gap:g}": r["iterations_to_target"],
        }
        for name, r in runs.items()
    ]
    metrics = {"runs": runs, "target_gap": cfg.target_gap, "positive_fraction": float(y.mean())}
    return StudyResult(metrics, summary, figures(runs, cfg.target_gap))


def figures(runs: dict, target_gap: float) -> dict:
    fig = new_figure(11, 4)
    ax_gap, ax_loss = fig.subplots(1, 2)
    for name, r in runs.items():
        loss = np.asarray(r["loss"])
        gap = np.abs(loss[:-1] - loss[-1])
        keep = gap > 0  # the log of an exact zero gap is not drawable
        ax_gap.plot(np.arange(len(gap))[keep], np.log10(gap[keep]), label=name)
        ax_loss.plot(np.arange(len(loss)), loss, label=name)
    ax_gap.set_xlabel("iteration")
    ax_gap.set_ylabel("log10 |loss_i - loss_final|")
    ax_loss.axhline(target_gap, color="grey", linestyle="--", label=f"target gap {target_gap:g}")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("logistic loss (= gap to the infimum 0)")
    for ax in (ax_gap, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Logistic regression on 2-D Gaussian data: gradient descent vs momentum")
    return {"momentum": fig}
