"""`tito experiment`: list and run the optimizer studies (the work is in experiments.run)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..course.settings import CourseError
from .common import console, handles_errors

# The studies import the student's exported package, so they are imported only when a
# study command runs: a broken export must not break the rest of tito.
app = typer.Typer(
    help="Run the optimizer studies with your own tinytorch optimizers.", no_args_is_help=True
)


@app.command("list")
@handles_errors
def list_studies() -> None:
    """List the studies and their config files."""
    _import_studies()
    # the studies import the exported package, which may not exist yet (_import_studies)
    from experiments import STUDIES
    from experiments.run import CONFIG_DIR

    table = Table(title="Studies")
    table.add_column("name", style="bold")
    table.add_column("what it shows")
    table.add_column("config")
    for study in STUDIES.values():
        table.add_row(study.name, study.description, str(CONFIG_DIR / f"{study.name}.yaml"))
    console.print(table)


@app.command("run")
@handles_errors
def run(
    name: str = typer.Argument(..., help="Study name (see `tito experiment list`)."),
    overrides: list[str] = typer.Argument(
        None, help="Config overrides as key=value, e.g. optim.lr=0.01."
    ),
    out: Path = typer.Option(
        Path("runs"), "--out", help="Root folder for run folders (<out>/<study>/<timestamp>/)."
    ),
) -> None:
    """Run one study, save config, commit, metrics and plots, and print a summary."""
    _import_studies()
    # the studies import the exported package, which may not exist yet (_import_studies)
    from experiments import ExperimentError, run_study
    from experiments.common import summary_text

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        try:
            record = run_study(name, overrides or [], out_root=out, progress=progress)
        except ExperimentError as err:  # a study or a config value that does not exist
            raise CourseError(str(err)) from None
        except NotImplementedError:
            raise CourseError(
                "the exported tinytorch code is unfinished (NotImplementedError); "
                "complete the module "
                "and run `tito module complete 06` first"
            ) from None

    rows = record.result.summary
    table = Table(title=f"{name} ({record.elapsed_seconds:.1f} s)")
    for column in rows[0]:
        table.add_column(column, justify="left" if isinstance(rows[0][column], str) else "right")
    for row in rows:
        table.add_row(*(summary_text(v) for v in row.values()))
    console.print(table)
    console.print(f"saved to {record.directory}", soft_wrap=True, highlight=False)


def _import_studies() -> None:
    """Import the studies (and with them the exported package), or say why that fails."""
    try:
        # the exported package may not exist yet: said below
        import experiments  # noqa: F401
    except Exception as err:
        raise CourseError(
            f"the exported tinytorch package cannot be imported ({type(err).__name__}: {err}); "
            "re-export it with `tito module complete`"
        ) from None
