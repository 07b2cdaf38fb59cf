"""The `tito` command: one sub-command group per file in tito/commands/."""

from __future__ import annotations

import typer

from .commands import experiment, module, nbgrader, package, release, system

app = typer.Typer(
    help="TinyTorch course tool: work on modules, test and export them, grade them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(module.app, name="module", help="Start, complete and follow your modules.")
app.command("test", help="Run a module's pytest suite against the exported package.")(package.test)
app.command(
    "export", help="Export the reference solutions from modules/ into tinytorch/ (instructors)."
)(package.export)
app.add_typer(
    nbgrader.app, name="nbgrader", help="Generate student versions, autograde, feedback, reports."
)
app.add_typer(
    release.app, name="release", help="Build the student edition that students clone (instructors)."
)
app.add_typer(system.app, name="system", help="Check this machine and repository.")
app.add_typer(experiment.app, name="experiment", help="Run the optimizer experiments.")

if __name__ == "__main__":
    app()
