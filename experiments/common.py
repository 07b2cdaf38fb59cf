"""Pieces shared by the studies: the result type, the MLP and the training loop.

Everything here trains with the course package itself (`tinytorch.core.tensor`
for the model and autograd, `tinytorch.core.optimizers` for the updates); the
studies add only configuration, bookkeeping and plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from tinytorch.core.optimizers import clip_grad_norm
from tinytorch.core.tensor import Linear, Sequential, Tensor, cross_entropy, no_grad

from .data import Split

# progress(label, done, total): called after each epoch (or iteration) of each run.
Progress = Callable[[str, int, int], None]


def no_progress(label: str, done: int, total: int) -> None:
    """The default progress callback: report nothing."""


@dataclass
class StudyResult:
    """What a study returns: JSON-ready metrics, rows for the summary table, and figures."""

    metrics: dict
    summary: list[dict]
    figures: dict[str, Figure] = field(default_factory=dict)


def summary_text(value) -> str:
    """A summary-table entry as shown (terminal and notebook): floats to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def child_seeds(seed: int, names: list[str]) -> dict[str, np.random.SeedSequence]:
    """Independent, named random streams from one seed.

    A stream is a SeedSequence rather than a Generator so that every run of a
    comparison can build a fresh Generator from it: all optimizers then start
    from the same initial weights and see the same mini-batches.
    """
    return dict(zip(names, np.random.SeedSequence(seed).spawn(len(names))))


def mlp(sizes: list[int], rng: np.random.Generator) -> Sequential:
    """Fully connected network with ReLU between the layers; `sizes` = [in, hidden..., out]."""
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [Linear(n_in, n_out, rng=rng), Tensor.relu]
    return Sequential(*layers[:-1])  # no ReLU on the logits


def global_grad_norm(params) -> float:
    """The 2-norm of all gradients taken together, in float64."""
    return float(np.sqrt(sum(np.sum(np.square(p.grad, dtype=np.float64)) for p in params)))


def accuracy(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    with no_grad():
        logits = model(Tensor(x)).data
    return float(np.mean(np.argmax(logits, axis=1) == y))


@dataclass
class History:
    """Per-step and per-epoch records of one training run (plain Python floats)."""

    step_loss: list[float] = field(default_factory=list)
    step_grad_norm: list[float] = field(default_factory=list)  # before clipping
    step_applied_norm: list[float] = field(
        default_factory=list
    )  # after clipping (what the optimizer used)
    step_lr: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    epoch_grad_norm: list[float] = field(default_factory=list)
    epoch_lr: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    diverged_at_step: int | None = None  # first step whose loss was not finite

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return -(-n_train // batch_size)


def train_classifier(
    model: Sequential,
    optimizer,
    split: Split,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    scheduler=None,
    max_norm: float | None = None,
    progress: Progress = no_progress,
    label: str = "",
) -> History:
    """Mini-batch training with cross-entropy; the scheduler (if any) steps once per batch.

    Stops early, recording the step, if the loss stops being finite: a diverged
    run has nothing more to show and would only fill the records with NaN.
    """
    params = model.parameters()
    history = History()
    n = len(split.y_train)
    # Overflow in a diverging run is an expected outcome here, reported through diverged_at_step.
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(epochs):
            order = rng.permutation(n)
            first = len(history.step_loss)
            for start in range(0, n, batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = cross_entropy(model(Tensor(split.x_train[batch])), split.y_train[batch])
                value = float(loss.data)
                if not np.isfinite(value):
                    history.diverged_at_step = len(history.step_loss) + 1
                    break
                loss.backward()
                if max_norm is None:
                    norm = global_grad_norm(params)
                else:
                    norm = float(clip_grad_norm(params, max_norm))
                history.step_loss.append(value)
                history.step_grad_norm.append(norm)
                history.step_applied_norm.append(global_grad_norm(params))
                history.step_lr.append(float(optimizer.param_groups[0]["lr"]))
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            if history.diverged_at_step is not None:
                break
            history.epoch_loss.append(float(np.mean(history.step_loss[first:])))
            history.epoch_grad_norm.append(float(np.mean(history.step_grad_norm[first:])))
            history.epoch_lr.append(history.step_lr[-1])
            history.val_accuracy.append(accuracy(model, split.x_val, split.y_val))
            progress(label, epoch + 1, epochs)
    return history


def new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A figure not registered with pyplot, so studies leave no global plotting state behind."""
    return Figure(figsize=(width, height), layout="constrained")
