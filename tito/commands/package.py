"""tito test, tito export"""

from __future__ import annotations

import subprocess
import sys

import typer

from .common import console, fail, handles_errors, load_course, modules_from


@handles_errors
def test(
    module: str = typer.Argument(None, help="Module name or number, e.g. 06_optimizers or 06."),
    module_opt: str = typer.Option(
        None, "--module", "-m", help="Same as the argument (e.g. optimizers)."
    ),
    all_: bool = typer.Option(False, "--all", help="Test every module."),
):
    course = load_course()
    mods = modules_from(course, module or module_opt, all_)
    folders = [course.root / "tests" / m.name for m in mods]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        fail("no tests at " + ", ".join(missing))
    console.print(
        f"Testing the exported package: {', '.join(m.name for m in mods)} "
        "(what the grader checks; the reference's allocation tests are left out)"
    )
    code = subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-m", "not instructor", *map(str, folders)],
        cwd=course.root,
    )
    raise typer.Exit(code)


@handles_errors
def export(
    module: str = typer.Argument(None, help="Module name or number."),
    all_: bool = typer.Option(False, "--all", help="Export every module."),
):
    from ..course.export import export_reference  # nbdev: imported by the commands that export

    course = load_course()
    for m in modules_from(course, module, all_):
        path = export_reference(course, m)
        console.print(
            f"{m.name}: exported the reference solution to [bold]{path.relative_to(course.root)}[/]"
        )
