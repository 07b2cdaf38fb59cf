"""Study 1: SGD with momentum, Adam and AdamW training an MLP on handwritten digits.

Every optimizer starts from the same initial weights and sees the same
mini-batches (one seed, separate streams for data, weights and batch order),
and every one runs under the same warm-up + cosine schedule, stepped once per
batch. Recorded per epoch: training loss, validation accuracy, mean gradient
norm and learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.ticker import MaxNLocator
from omegaconf import MISSING, DictConfig

from tinytorch.core.optimizers import SGD, Adam, AdamW, WarmupCosineLR

from .common import (
    Progress,
    StudyResult,
    child_seeds,
    mlp,
    new_figure,
    no_progress,
    steps_per_epoch,
    train_classifier,
)
from .data import digits_split
from .schema import DigitsData, MLPModel, Train


@dataclass
class SGDConfig:
    lr: float = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING


@dataclass
class AdamConfig:
    lr: float = MISSING
    beta1: float = MISSING
    beta2: float = MISSING
    eps: float = MISSING
    weight_decay: float = MISSING


@dataclass
class OptimChoices:
    sgd: SGDConfig = field(default_factory=SGDConfig)
    adam: AdamConfig = field(default_factory=AdamConfig)
    adamw: AdamConfig = field(default_factory=AdamConfig)


@dataclass
class Schedule:
    warmup_epochs: float = MISSING  # linear warm-up length, in epochs (converted to batches)
    eta_min: float = MISSING  # final learning rate of the cosine


@dataclass
class Config:
    seed: int = MISSING
    data: DigitsData = field(default_factory=DigitsData)
    model: MLPModel = field(default_factory=MLPModel)
    train: Train = field(default_factory=Train)
    schedule: Schedule = field(default_factory=Schedule)
    optim: OptimChoices = field(default_factory=OptimChoices)
    target_accuracy: float = MISSING  # the summary reports the first epoch reaching it


def make_optimizer(name: str, params, cfg: DictConfig):
    o = cfg.optim[name]
    if name == "sgd":
        return SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = Adam if name == "adam" else AdamW
    return cls(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)


def run(cfg: DictConfig, progress: Progress = no_progress) -> StudyResult:
    seeds = child_seeds(cfg.seed, ["data", "init", "batches"])
    split = digits_split(cfg.data.val_size, np.random.default_rng(seeds["data"]), cfg.data.dataset)
    sizes = [split.x_train.shape[1], *cfg.model.hidden, 10]
    per_epoch = steps_per_epoch(len(split.y_train), cfg.train.batch_size)
    total = cfg.train.epochs * per_epoch

    runs = {}
    for name in ("sgd", "adam", "adamw"):
        model = mlp(sizes, np.random.default_rng(seeds["init"]))
        optimizer = make_optimizer(name, model.parameters(), cfg)
        scheduler = WarmupCosineLR(
            optimizer,
            warmup_steps=round(cfg.schedule.warmup_epochs * per_epoch),
            total_steps=total,
            eta_min=cfg.schedule.eta_min,
        )
        history = train_classifier(
            model,
            optimizer,
            split,
            epochs=cfg.train.epochs,
            batch_size=cfg.train.batch_size,
            rng=np.random.default_rng(seeds["batches"]),
            scheduler=scheduler,
            progress=progress,
            label=name,
        )
        runs[name] = {
            k: getattr(history, k)
            for k in (
                "epoch_loss",
                "val_accuracy",
                "epoch_grad_norm",
                "epoch_lr",
                "diverged_at_step",
            )
        }

    summary = []
    for name, r in runs.items():
        reached = [e + 1 for e, a in enumerate(r["val_accuracy"]) if a >= cfg.target_accuracy]
        summary.append(
            {
                "optimizer": name,
                "final train loss": r["epoch_loss"][-1],
                "final val accuracy": r["val_accuracy"][-1],
                "best val accuracy": max(r["val_accuracy"]),
                f"first epoch >= {cfg.target_accuracy:.0%}": reached[0] if reached else None,
            }
        )
    metrics = {
        "runs": runs,
        "steps_per_epoch": per_epoch,
        "n_train": len(split.y_train),
        "n_val": len(split.y_val),
    }
    return StudyResult(metrics, summary, figures(runs, cfg.target_accuracy))


def figures(runs: dict, target: float) -> dict:
    fig = new_figure(11, 7.5)
    axes = fig.subplots(2, 2)
    panels = [
        ("epoch_loss", "training loss (cross-entropy)", True),
        ("val_accuracy", "validation accuracy", False),
        ("epoch_grad_norm", "mean gradient norm", True),
        ("epoch_lr", "learning rate (last step of the epoch)", True),
    ]
    for ax, (key, ylabel, log) in zip(axes.flat, panels):
        for name, r in runs.items():
            epochs = np.arange(1, len(r[key]) + 1)
            ax.plot(epochs, r[key], marker=".", label=name)
        if log:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0, 1].axhline(target, color="grey", linestyle="--", label=f"target {target:.0%}")
    for ax in axes.flat:
        ax.legend()
    fig.suptitle("MLP on 8x8 digits: SGD+momentum vs Adam vs AdamW (warm-up + cosine)")
    return {"optimizers": fig}
