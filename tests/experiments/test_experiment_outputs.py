"""Run folders: their contents, bit-identical metrics for equal configs, and no half-written folder
on failure."""

import html
import json
import re

import pytest
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from experiments import run_study
from experiments.run import metrics_json

SMALL_MOMENTUM = ["iterations=30", "data.n_samples=200"]
SMALL_CLIPPING = ["train.epochs=1", "data.val_size=1597", "model.hidden=[16]"]


def test_a_run_folder_holds_config_commit_metrics_and_plots(tmp_path):
    record = run_study("momentum", SMALL_MOMENTUM, out_root=tmp_path)
    folder = record.directory
    assert folder.parent == tmp_path / "momentum"
    assert re.fullmatch(r"\d{8}-\d{6}", folder.name)
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml",
        "metrics.json",
        "momentum.png",
        "run.json",
    ]

    saved = OmegaConf.load(folder / "config.yaml")
    assert saved.iterations == 30 and saved.data.n_samples == 200 and saved.optim.momentum == 0.9

    info = json.loads((folder / "run.json").read_text())
    assert info["study"] == "momentum"
    assert info["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])

    metrics = json.loads((folder / "metrics.json").read_text())
    assert [row["method"] for row in metrics["summary"]] == ["gradient descent", "momentum 0.9"]
    assert (
        len(metrics["runs"]["gradient descent"]["loss"]) == 31
    )  # before each of 30 steps, and after the last

    assert (folder / "momentum.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_have_labelled_axes_and_legends():
    record = run_study("momentum", SMALL_MOMENTUM, out_root=None)
    for fig in record.result.figures.values():
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), f"unlabelled axes in {ax.get_title()!r}"
            assert ax.get_legend() is not None


def test_a_record_shows_its_summary_and_figures_in_a_notebook():
    """What the notebook's experiment cells display: the summary table, then each figure as an
    inline PNG."""
    record = run_study("momentum", SMALL_MOMENTUM, out_root=None)
    page = record._repr_html_()
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert re.findall(r"<th>(.*?)</th>", rows[0]) == [
        html.escape(k) for k in record.result.summary[0]
    ]  # "<=" escaped
    assert [re.findall(r"<td>(.*?)</td>", r)[0] for r in rows[1:]] == [
        "gradient descent",
        "momentum 0.9",
    ]
    assert (
        page.count('<img src="data:image/png;base64,iVBORw0KGgo') == len(record.result.figures) == 1
    )
    assert "<script" not in page


def test_out_root_none_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = run_study("momentum", SMALL_MOMENTUM, out_root=None)
    assert record.directory is None
    assert list(tmp_path.iterdir()) == []


def test_equal_configs_give_bit_identical_metrics(tmp_path):
    first = run_study("clipping", SMALL_CLIPPING, out_root=tmp_path)
    second = run_study("clipping", SMALL_CLIPPING, out_root=tmp_path)
    assert first.directory != second.directory  # two runs in the same second get two folders
    assert (first.directory / "metrics.json").read_bytes() == (
        second.directory / "metrics.json"
    ).read_bytes()
    # ...and a different seed really changes them, so the comparison above can fail.
    third = run_study("clipping", [*SMALL_CLIPPING, "seed=1"], out_root=None)
    assert metrics_json(third.result) != (first.directory / "metrics.json").read_text()


def test_failure_while_saving_leaves_no_folder(tmp_path, monkeypatch):
    def broken_savefig(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        run_study("momentum", SMALL_MOMENTUM, out_root=tmp_path)
    assert list((tmp_path / "momentum").iterdir()) == []
