"""tito release student"""

from __future__ import annotations

from pathlib import Path

import typer

from ..course import edition
from .common import console, handles_errors, load_course

app = typer.Typer(no_args_is_help=True)


@app.command()
@handles_errors
def student(
    dest: Path = typer.Argument(..., help="A new or empty folder, e.g. ../tinytorch-student-2027."),
):
    """Build the student edition: the course without solutions, ready to git init and publish."""
    course = load_course()
    with console.status(f"Building the student edition in {dest}..."):
        root = edition.build(course, dest)
    console.print(
        f"Student edition of {course.course_id} written to [bold]{root}[/]. To publish it:"
    )
    console.print(
        f"  cd {root} && git init && git add -A && git commit -m 'Student edition'", highlight=False
    )
