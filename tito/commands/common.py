"""What every command group shares: the console, the course, and turning errors into exit codes."""

from __future__ import annotations

import functools

import typer
from rich.console import Console

from ..course.settings import Course, CourseError, Module

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1):
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handles_errors(fn):
    """Show a CourseError as a one-line message and exit 1, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CourseError as e:
            fail(str(e))

    return wrapper


def load_course() -> Course:
    return Course()


def modules_from(course: Course, name: str | None, all_: bool) -> list[Module]:
    if all_ and name:
        raise CourseError("give a module name or --all, not both")
    if all_:
        return course.modules
    if not name:
        raise CourseError(
            "which module? give its name (e.g. 06_optimizers or 06) or --all; modules: "
            + ", ".join(m.name for m in course.modules)
        )
    return [course.module(name)]
