"""Load a study's config, apply command-line overrides, run it and save the results.

A config is the study's YAML file (configs/<study>.yaml) merged onto the
study's schema dataclass in OmegaConf struct mode, so unknown keys and values
of the wrong type are refused before anything runs. Overrides use OmegaConf's
dotlist syntax: ``optim.lr=0.01``, ``model.hidden=[32,32]``.

A saved run is one folder, runs/<study>/<timestamp>/, holding

- ``config.yaml``: the resolved config (YAML + overrides),
- ``run.json``: study, git commit, start time, wall time, library versions,
- ``metrics.json``: everything the study measured plus the summary rows,
- one PNG per figure.

The folder is written under a hidden temporary name and renamed into place
only when complete, so a failure never leaves a half-written run behind.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
import typing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from . import bias_correction, clipping, momentum, optimizers
from .common import Progress, StudyResult, no_progress, summary_text
from .data import DATASETS
from .errors import ConfigError, ExperimentError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    module: object  # has Config (schema dataclass) and run(cfg, progress) -> StudyResult


STUDIES = {
    s.name: s
    for s in [
        Study(
            "optimizers",
            "MLP on 8x8 digits: SGD+momentum vs Adam vs AdamW, warm-up + cosine",
            optimizers,
        ),
        Study(
            "bias_correction",
            "Adam with vs without bias correction, early training loss",
            bias_correction,
        ),
        Study(
            "clipping",
            "Large learning rate with vs without global-norm gradient clipping",
            clipping,
        ),
        Study(
            "momentum",
            "Gradient descent vs momentum on logistic regression, 2-D Gaussian data",
            momentum,
        ),
    ]
}


@dataclass
class RunRecord:
    study: str
    config: DictConfig
    result: StudyResult
    elapsed_seconds: float
    directory: Path | None  # None when nothing was saved

    def _repr_html_(self) -> str:
        """In Jupyter: the summary table and the figures, as `tito experiment run` prints and saves
        them."""
        rows = self.result.summary

        def cells(tag: str, values) -> str:
            return "".join(f"<{tag}>{html.escape(summary_text(v))}</{tag}>" for v in values)

        table = "".join(
            [f"<tr>{cells('th', rows[0])}</tr>"]
            + [f"<tr>{cells('td', row.values())}</tr>" for row in rows]
        )
        images = []
        for fig in self.result.figures.values():
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=100)
            images.append(
                f'<img src="data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}">'
            )
        title = html.escape(f"{self.study} ({self.elapsed_seconds:.1f} s)")
        return f"<p><b>{title}</b></p><table>{table}</table>" + "".join(images)


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ExperimentError(f"unknown study '{name}'; accepted studies: {', '.join(STUDIES)}")
    return STUDIES[name]


# ---------------------------------------------------------------- configuration


def _schema_keys(schema, prefix: str = "") -> dict[str, str]:
    """Every leaf key of a schema dataclass with a readable type name: {"optim.lr": "float",
    ...}."""
    keys = {}
    for name, tp in typing.get_type_hints(schema).items():
        if dataclasses.is_dataclass(tp):
            keys.update(_schema_keys(tp, f"{prefix}{name}."))
        else:
            keys[prefix + name] = tp.__name__ if isinstance(tp, type) else str(tp)
    return keys


def _accepted(schema, key: str | None) -> str:
    """The keys a user could have meant: the siblings of `key` (or every key)."""
    keys = _schema_keys(schema)
    parent = key.rsplit(".", 1)[0] + "." if key and "." in key else ""
    siblings = [k for k in keys if k.startswith(parent)] or list(keys)
    return ", ".join(f"{k} ({keys[k]})" for k in siblings)


def _config_error(
    study: Study, err: OmegaConfBaseException, source: str, default_key: str | None = None
) -> ConfigError:
    schema = study.module.Config
    key = err.full_key or default_key
    if isinstance(err, ConfigKeyError):
        return ConfigError(
            f"unknown config key '{key}' in {source} for study '{study.name}'; "
            f"accepted keys: {_accepted(schema, key)}"
        )
    keys = _schema_keys(schema)
    base = key.split("[", 1)[0] if key else None
    expected = (
        f"expected {keys[base]}" if base in keys else f"accepted keys: {_accepted(schema, key)}"
    )
    reason = str(err.msg).splitlines()[0] if err.msg else type(err).__name__
    return ConfigError(
        f"invalid value for config key '{key}' in {source} for study '{study.name}': "
        f"{reason}; {expected}"
    )


def load_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The study's YAML config with `overrides` applied, type-checked and range-checked."""
    study = get_study(name)
    schema = study.module.Config
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override '{item}' is not of the form key=value; "
                f"accepted keys: {_accepted(schema, None)}"
            )
    path = CONFIG_DIR / f"{name}.yaml"
    cfg = OmegaConf.structured(schema)
    OmegaConf.set_struct(cfg, True)  # unknown keys are errors, not additions
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
    except OmegaConfBaseException as err:
        raise _config_error(study, err, str(path)) from None
    for item in overrides:  # one at a time, so an error can quote the override it came from
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise _config_error(
                study, err, f"override '{item}'", default_key=item.split("=", 1)[0]
            ) from None
        except yaml.YAMLError as err:
            raise ConfigError(
                f"override '{item}' is not valid YAML after the '=': {err.problem}"
            ) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"config for study '{name}' has no value for: {', '.join(missing)} (set them in {path})"
        )
    _check_ranges(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def _positive(v):
    return v > 0


def _unit_interval(v):
    return 0 <= v < 1


# Range rules by leaf name, applied wherever the key appears in a config.
RULES = {
    "seed": (lambda v: v >= 0, "a non-negative integer"),
    "epochs": (_positive, "a positive integer"),
    "batch_size": (_positive, "a positive integer"),
    "val_size": (_positive, "a positive integer"),
    "n_samples": (_positive, "a positive integer"),
    "iterations": (_positive, "a positive integer"),
    "hidden": (
        lambda v: len(v) > 0 and all(h > 0 for h in v),
        "a non-empty list of positive layer widths",
    ),
    "lr": (_positive, "a positive number"),
    "eps": (_positive, "a positive number"),
    "max_norm": (_positive, "a positive number"),
    "momentum": (_unit_interval, "a number in [0, 1)"),
    "beta1": (_unit_interval, "a number in [0, 1)"),
    "beta2": (_unit_interval, "a number in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "a non-negative number"),
    "warmup_epochs": (lambda v: v >= 0, "a non-negative number"),
    "eta_min": (lambda v: v >= 0, "a non-negative number"),
    "target_accuracy": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "target_gap": (_positive, "a positive number"),
    "mean": (lambda v: len(v) == 2, "a list of two numbers"),
    "variance": (lambda v: len(v) == 2 and all(x > 0 for x in v), "a list of two positive numbers"),
    "dataset": (lambda v: v in DATASETS, f"one of: {', '.join(DATASETS)}"),
}


def _check_ranges(cfg: DictConfig, prefix: str = "") -> None:
    for key, value in cfg.items():
        full = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            _check_ranges(value, full + ".")
            continue
        ok, wanted = RULES.get(key, (lambda v: True, ""))
        plain = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        if not ok(plain):
            raise ConfigError(f"invalid value {plain!r} for config key '{full}': expected {wanted}")


# ---------------------------------------------------------------- running and saving


def git_commit(repo: Path = Path(__file__).resolve().parent.parent) -> str:
    """The commit checked out in the repository holding this package, or "unknown"."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _plain(value):
    """JSON-ready copy: numpy scalars to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_json(result: StudyResult) -> str:
    """The text of metrics.json; equal configs give byte-identical text."""
    return (
        json.dumps(_plain({"summary": result.summary, **result.metrics}), indent=1, allow_nan=False)
        + "\n"
    )


def save_run(
    study: str,
    cfg: DictConfig,
    result: StudyResult,
    out_root: Path,
    started: datetime,
    elapsed: float,
) -> Path:
    """Write the run into a temporary folder under out_root/study and rename it into place."""
    parent = Path(out_root) / study
    parent.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix=f".{stamp}-", suffix=".partial", dir=parent))
    try:
        (tmp / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
        run_info = {
            "study": study,
            "git_commit": git_commit(),
            "started_at": started.isoformat(timespec="seconds"),
            "elapsed_seconds": round(elapsed, 3),
            "python": platform.python_version(),
            "numpy": np.__version__,
        }
        (tmp / "run.json").write_text(json.dumps(run_info, indent=1) + "\n", encoding="utf-8")
        (tmp / "metrics.json").write_text(metrics_json(result), encoding="utf-8")
        for name, fig in result.figures.items():
            fig.savefig(tmp / f"{name}.png", dpi=100)
        return _rename_into_place(tmp, parent, stamp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _rename_into_place(tmp: Path, parent: Path, stamp: str) -> Path:
    for n in range(1, 1000):
        final = parent / (stamp if n == 1 else f"{stamp}-{n}")
        if final.exists():
            continue
        try:
            os.rename(tmp, final)
        except OSError:  # taken by a concurrent run between the check and the rename
            continue
        return final
    raise ExperimentError(f"no free run folder name for {stamp} in {parent}")


def run_study(
    name: str,
    overrides: list[str] | tuple[str, ...] = (),
    out_root: str | Path | None = "runs",
    progress: Progress = no_progress,
) -> RunRecord:
    """Run one study; save it under out_root/<name>/ unless out_root is None.

    Config and data problems raise ExperimentError before anything is written.
    """
    cfg = load_config(name, overrides)
    started = datetime.now()
    t0 = time.perf_counter()
    result = STUDIES[name].module.run(cfg, progress)
    elapsed = time.perf_counter() - t0
    directory = (
        None if out_root is None else save_run(name, cfg, result, Path(out_root), started, elapsed)
    )
    return RunRecord(name, cfg, result, elapsed, directory)
