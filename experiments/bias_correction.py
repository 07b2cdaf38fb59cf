"""Study 2: Adam with and without bias correction over the first epochs.

Adam's moments start at zero, so early on m_t and v_t are shrunk towards zero
by the factors (1 - beta1^t) and (1 - beta2^t); bias correction divides them
back out. Without it the step is m_t / sqrt(v_t), which for beta1 = 0.9,
beta2 = 0.999 starts about (1 - 0.9) / sqrt(1 - 0.999) ~ 3.2 times larger than
the corrected step and stays several times larger for hundreds of steps
(with beta2 = 0.9999 it starts 10 times larger). Whether that hurts depends on
the learning rate: at a small rate the bigger early steps merely speed things
up; at a rate that suits corrected Adam they overshoot and the early loss is
higher. The shipped config (lr 0.01, beta2 0.9999) is in the second regime.

Both runs use the package's own Adam. The uncorrected run differs only in its
starting state, see `disable_bias_correction`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.ticker import MaxNLocator
from omegaconf import MISSING, DictConfig

from tinytorch.core.optimizers import Adam

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
from .errors import ConfigError
from .schema import DigitsData, MLPModel, Train

# A step counter so large that beta**step underflows to exactly 0.0 for any beta
# used in practice, making both bias corrections exactly 1.0 (see below).
UNCORRECTED_START_STEP = 10**12


@dataclass
class AdamOnly:
    lr: float = MISSING
    beta1: float = MISSING
    beta2: float = MISSING
    eps: float = MISSING


@dataclass
class Config:
    seed: int = MISSING
    data: DigitsData = field(default_factory=DigitsData)
    model: MLPModel = field(default_factory=MLPModel)
    train: Train = field(default_factory=Train)
    optim: AdamOnly = field(default_factory=AdamOnly)


def bias_corrections(beta1: float, beta2: float, step: int) -> tuple[float, float]:
    """Adam's two correction denominators at `step`: (1 - beta1**step, 1 - beta2**step)."""
    return 1.0 - beta1**step, 1.0 - beta2**step


def disable_bias_correction(optimizer: Adam) -> None:
    """Start every parameter's Adam state at step 10**12 with zero moments.

    The moments then evolve exactly as in a fresh Adam (they depend only on the
    gradients and the betas, not on the counter), but the kernel's corrections
    1 - beta1**t and 1 - beta2**t are computed with t > 10**12. In float64,
    beta**t for beta <= 1 - 1e-9 is below 1e-400, which underflows to exactly
    0.0, so both corrections are exactly 1.0: the update is the uncorrected
    m_t / (sqrt(v_t) + eps), produced by the unmodified Adam kernel.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            optimizer.state[p] = {
                "step": UNCORRECTED_START_STEP,
                "exp_avg": np.zeros_like(p.data),
                "exp_avg_sq": np.zeros_like(p.data),
            }


def run(cfg: DictConfig, progress: Progress = no_progress) -> StudyResult:
    o = cfg.optim
    if bias_corrections(o.beta1, o.beta2, UNCORRECTED_START_STEP + 1) != (1.0, 1.0):
        raise ConfigError(
            f"optim.beta1={o.beta1} / optim.beta2={o.beta2} are too close to 1: "
            f"beta**{UNCORRECTED_START_STEP} "
            "does not underflow to 0, so the uncorrected run would still be corrected"
        )
    seeds = child_seeds(cfg.seed, ["data", "init", "batches"])
    split = digits_split(cfg.data.val_size, np.random.default_rng(seeds["data"]), cfg.data.dataset)
    sizes = [split.x_train.shape[1], *cfg.model.hidden, 10]

    runs = {}
    for name, corrected in (("with correction", True), ("without correction", False)):
        model = mlp(sizes, np.random.default_rng(seeds["init"]))
        optimizer = Adam(model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
        if not corrected:
            disable_bias_correction(optimizer)
        history = train_classifier(
            model,
            optimizer,
            split,
            epochs=cfg.train.epochs,
            batch_size=cfg.train.batch_size,
            rng=np.random.default_rng(seeds["batches"]),
            progress=progress,
            label=name,
        )
        runs[name] = {
            k: getattr(history, k)
            for k in ("step_loss", "epoch_loss", "val_accuracy", "diverged_at_step")
        }

    with_c, without_c = runs["with correction"], runs["without correction"]
    summary = [
        {
            "epoch": e + 1,
            "loss with correction": a,
            "loss without correction": b,
            "gap (without - with)": b - a,
        }
        for e, (a, b) in enumerate(zip(with_c["epoch_loss"], without_c["epoch_loss"]))
    ]
    metrics = {"runs": runs, "epoch_loss_gap": [row["gap (without - with)"] for row in summary]}
    return StudyResult(metrics, summary, figures(runs))


def figures(runs: dict) -> dict:
    fig = new_figure(11, 4)
    ax_step, ax_epoch = fig.subplots(1, 2)
    for name, r in runs.items():
        ax_step.plot(
            np.arange(1, len(r["step_loss"]) + 1), r["step_loss"], linewidth=0.8, label=name
        )
        ax_epoch.plot(
            np.arange(1, len(r["epoch_loss"]) + 1), r["epoch_loss"], marker="o", label=name
        )
    ax_step.set_xlabel("step (mini-batch)")
    ax_step.set_ylabel("training loss (cross-entropy)")
    ax_step.set_yscale("log")
    ax_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_epoch.set_xlabel("epoch")
    ax_epoch.set_ylabel("mean training loss over the epoch")
    for ax in (ax_step, ax_epoch):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Adam with and without bias correction (same initial weights and batches)")
    return {"bias_correction": fig}
