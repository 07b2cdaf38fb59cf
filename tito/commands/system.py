"""tito system doctor"""

from __future__ import annotations

import typer
from rich.table import Table

from ..course.doctor import run_checks
from .common import console, handles_errors

app = typer.Typer(no_args_is_help=True)


@app.command()
@handles_errors
def doctor():
    """Check Python, the installed dependencies and the repository layout; say how to fix
    problems."""
    checks = run_checks()
    t = Table(title="tito system doctor")
    for col in ["check", "", "detail", "how to fix"]:
        t.add_column(col)
    for c in checks:
        t.add_row(
            c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail, "" if c.ok else c.fix
        )
    console.print(t)
    bad = [c for c in checks if not c.ok]
    console.print(f"{len(checks) - len(bad)}/{len(checks)} checks passed")
    if bad:
        raise typer.Exit(1)
