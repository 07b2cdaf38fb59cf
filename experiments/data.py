"""Data sets for the studies, all available offline.

Digits: the 8x8 handwritten digits bundled inside scikit-learn (1797 images,
classes 0-9, pixel values 0..16), loaded with ``sklearn.datasets.load_digits``.
They are the test part of the UCI "Optical Recognition of Handwritten Digits"
data set (Alpaydin and Kaynak, 1998), distributed by the UCI Machine Learning
Repository under CC BY 4.0; scikit-learn itself is BSD-3-Clause. Nothing is
downloaded: the file ships inside the scikit-learn wheel.

Gaussian: the two-dimensional synthetic set of the momentum study, drawn from a
numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DatasetError


@dataclass(frozen=True)
class Split:
    """A train/validation split: inputs of shape (n, features), integer labels of shape (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digit images as float32 rows of 64 pixels scaled to [0, 1], and int64 labels."""
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits

        x, y = sklearn_load_digits(return_X_y=True)
    except (ImportError, OSError) as err:
        raise DatasetError(
            "digits data set not found: it ships inside scikit-learn "
            f"(sklearn/datasets/data/digits.csv.gz) and could not be loaded ({err}). "
            "Install the project's dependencies: pip install -e ."
        ) from err
    # Pixels are counts 0..16; scaling to [0, 1] keeps the first-layer activations O(1).
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


DATASETS = {"digits": load_digits}


def digits_split(val_size: int, rng: np.random.Generator, dataset: str = "digits") -> Split:
    """Shuffle the digits with `rng` and hold out `val_size` images for validation."""
    x, y = DATASETS[dataset]()
    if not 0 < val_size < len(y):
        raise DatasetError(
            f"data.val_size must be between 1 and {len(y) - 1} for {dataset}, got {val_size}"
        )
    order = rng.permutation(len(y))
    val, train = order[:val_size], order[val_size:]
    return Split(x[train], y[train], x[val], y[val])


def gaussian_halfplane(
    n: int, mean: tuple[float, float], variance: tuple[float, float], rng: np.random.Generator
):
    """`n` points from N(mean, diag(variance)) in float64, labelled 1 where the second coordinate is
    > 0.

    The labels come from the sign of a coordinate, so the classes are linearly
    separable and the logistic loss has infimum 0 (it is approached, never reached).
    """
    x = rng.normal(loc=mean, scale=np.sqrt(variance), size=(n, 2))
    y = (x[:, 1] > 0).astype(np.float64)
    return x, y
