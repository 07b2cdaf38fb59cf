"""Study 3: a deliberately large learning rate, with and without global-norm clipping.

Both runs use the package's SGD (momentum from the config; the shipped config
uses plain SGD at lr 2.0, about ten times too large for this MLP) on the digits
MLP from the same weights and batches. The clipped run rescales the gradients with `clip_grad_norm`
before
every step, so the gradient the optimizer applies has norm <= max_norm even
when the raw gradient spikes; the unclipped run applies the raw gradient.
Recorded per step: the raw gradient norm (before clipping), the applied norm,
and the loss. A run whose loss becomes non-finite stops and records the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from omegaconf import MISSING, DictConfig

from tinytorch.core.optimizers import SGD

from .common import (
    Progress,
    StudyResult,
    child_seeds,
    mlp,
    new_figure,
    no_progress,
    train_classifier,
)
from .data import digits_split
from .schema import DigitsData, MLPModel, Train


@dataclass
class SGDMomentum:
    lr: float = MISSING
    momentum: float = MISSING


@dataclass
class Clip:
    max_norm: float = MISSING


@dataclass
class Config:
    seed: int = MISSING
    data: DigitsData = field(default_factory=DigitsData)
    model: MLPModel = field(default_factory=MLPModel)
    train: Train = field(default_factory=Train)
    optim: SGDMomentum = field(default_factory=SGDMomentum)
    clip: Clip = field(default_factory=Clip)


def run(cfg: DictConfig, progress: Progress = no_progress) -> StudyResult:
    seeds = child_seeds(cfg.seed, ["data", "init", "batches"])
    split = digits_split(cfg.data.val_size, np.random.default_rng(seeds["data"]), cfg.data.dataset)
    sizes = [split.x_train.shape[1], *cfg.model.hidden, 10]

    runs = {}
    for name, max_norm in (("unclipped", None), ("clipped", cfg.clip.max_norm)):
        model = mlp(sizes, np.random.default_rng(seeds["init"]))
        optimizer = SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum)
        history = train_classifier(
            model,
            optimizer,
            split,
            epochs=cfg.train.epochs,
            batch_size=cfg.train.batch_size,
            rng=np.random.default_rng(seeds["batches"]),
            max_norm=max_norm,
            progress=progress,
            label=name,
        )
        runs[name] = {
            k: getattr(history, k)
            for k in (
                "step_loss",
                "step_grad_norm",
                "step_applied_norm",
                "val_accuracy",
                "diverged_at_step",
            )
        }

    summary = []
    for name, r in runs.items():
        summary.append(
            {
                "run": name,
                "steps": len(r["step_loss"]),
                "diverged at step": r["diverged_at_step"],
                "max raw grad norm": max(r["step_grad_norm"], default=None),
                "max applied grad norm": max(r["step_applied_norm"], default=None),
                "final loss": r["step_loss"][-1] if r["step_loss"] else None,
                "final val accuracy": r["val_accuracy"][-1] if r["val_accuracy"] else None,
            }
        )
    metrics = {"runs": runs, "max_norm": cfg.clip.max_norm}
    return StudyResult(metrics, summary, figures(runs, cfg.clip.max_norm))


def figures(runs: dict, max_norm: float) -> dict:
    fig = new_figure(11, 4)
    ax_norm, ax_loss = fig.subplots(1, 2)
    for name, r in runs.items():
        steps = np.arange(1, len(r["step_loss"]) + 1)
        (line,) = ax_norm.plot(
            steps, r["step_grad_norm"], linewidth=0.8, label=f"{name}: raw gradient norm"
        )
        if name == "clipped":
            ax_norm.plot(
                steps,
                r["step_applied_norm"],
                color=line.get_color(),
                linestyle=":",
                label=f"{name}: applied norm",
            )
        ax_loss.plot(steps, r["step_loss"], linewidth=0.8, label=name)
        if r["diverged_at_step"] is not None:
            ax_loss.axvline(
                r["diverged_at_step"], color="red", linestyle="--", label=f"{name}: loss not finite"
            )
    ax_norm.axhline(max_norm, color="grey", linestyle="--", label=f"max_norm = {max_norm:g}")
    ax_norm.set_yscale("log")
    ax_norm.set_xlabel("step (mini-batch)")
    ax_norm.set_ylabel("global gradient 2-norm")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step (mini-batch)")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    for ax in (ax_norm, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Large learning rate: gradient norms and loss with and without clipping")
    return {"clipping": fig}
