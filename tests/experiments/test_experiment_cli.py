"""`tito experiment list|run`: thin commands over experiments.run, with exit codes scripts can
trust."""

import json

from typer.testing import CliRunner

from tito.commands.experiment import app

runner = CliRunner()


def text(result) -> str:
    """The command's output with line wrapping undone (rich wraps at the console width)."""
    return " ".join(result.output.split())


def test_list_shows_every_study():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ("optimizers", "bias_correction", "clipping", "momentum"):
        assert name in text(result)


def test_run_prints_a_summary_and_saves_the_run(tmp_path):
    result = runner.invoke(
        app, ["run", "momentum", "iterations=30", "data.n_samples=200", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "gradient descent" in text(result) and "momentum 0.9" in text(result)
    (folder,) = (tmp_path / "momentum").iterdir()
    assert f"saved to {folder}\n" in result.output
    summary = json.loads((folder / "metrics.json").read_text())["summary"]
    assert [row["method"] for row in summary] == ["gradient descent", "momentum 0.9"]


def test_bad_input_exits_1_with_the_message_on_stderr_and_writes_nothing(tmp_path):
    """A value the course cannot use is a course error (exit 1, as in every command); 2 is Click's,
    for a command line it cannot parse."""
    result = runner.invoke(app, ["run", "momentum", "optim.lr=abc", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        "invalid value for config key 'optim.lr'" in " ".join(result.stderr.split())
        and result.stdout.strip() == ""
    )
    assert not tmp_path.joinpath("momentum").exists()

    result = runner.invoke(app, ["run", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        "unknown study 'nope'; accepted studies: optimizers, bias_correction, clipping, momentum"
        in " ".join(result.stderr.split())
    )
    assert runner.invoke(app, ["run"]).exit_code == 2  # no study named: a usage error
    assert list(tmp_path.iterdir()) == []
