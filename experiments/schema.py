"""Config sections shared by several studies.

The dataclasses give OmegaConf the keys and their types (so a misspelt key or
`optim.lr=abc` is refused); every value lives in the YAML files under configs/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class DigitsData:
    dataset: str = MISSING  # one of experiments.data.DATASETS
    val_size: int = MISSING  # images held out for validation


@dataclass
class MLPModel:
    hidden: list[int] = field(default_factory=lambda: MISSING)  # widths of the hidden layers


@dataclass
class Train:
    epochs: int = MISSING
    batch_size: int = MISSING
