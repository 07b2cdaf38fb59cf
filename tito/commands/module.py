"""tito module list|status|start|complete"""

from __future__ import annotations

import subprocess

import typer
from rich.table import Table
from rich.text import Text

from ..course import student
from .common import console, handles_errors, load_course

app = typer.Typer(no_args_is_help=True)


def _table(with_state: bool) -> Table:
    course = load_course()
    t = Table(title=f"Modules of {course.course_id}")
    for col in ["module", "title", "points"] + (["state"] if with_state else []):
        t.add_column(col)
    for m in course.modules:
        pts = student.points(course, m)
        row = [m.name, m.title, f"{pts:g}"]
        if with_state:
            row.append(student.state(course, m) if pts else "provided (no graded parts)")
        t.add_row(*row)
    return t


@app.command("list")
@handles_errors
def list_():
    """List the modules in teaching order with the points each carries."""
    console.print(_table(with_state=False))


@app.command()
@handles_errors
def status():
    """Show each module's state: not started, in progress, tests passing and exported."""
    console.print(_table(with_state=True))


@app.command()
@handles_errors
def start(
    module: str = typer.Argument(..., help="Module name or number, e.g. 06_optimizers or 06."),
    force: bool = typer.Option(
        False, "--force", help="Reset an existing working copy (a backup is kept)."
    ),
    lab: bool = typer.Option(False, "--lab", help="Open the working copy in Jupyter Lab."),
):
    """Create your working copy of a module's student notebook."""
    course = load_course()
    m = course.module(module)
    work, backup = student.start(course, m, force=force)
    if backup:
        console.print(
            f"Backed up your previous working copy to [bold]{backup.relative_to(course.root)}[/]"
        )
    console.print(f"Your working copy of {m.name}: [bold]{work.relative_to(course.root)}[/]")
    console.print(f"When you are done: [bold]tito module complete {m.name}[/]")
    if lab:
        subprocess.run(["jupyter", "lab", str(work)], check=False)


@app.command()
@handles_errors
def complete(
    module: str = typer.Argument(..., help="Module name or number, e.g. 06_optimizers or 06."),
    demos: bool = typer.Option(
        False,
        "--demos",
        help="Also run the measurements, plots and experiments "
        "(cells tagged skip-execution; slower).",
    ),
):
    """Run your working notebook's tests in a real kernel and export your code into tinytorch/."""
    course = load_course()
    m = course.module(module)
    with console.status(
        f"Running {course.workspace_notebook(m).relative_to(course.root)} in a kernel..."
    ):
        result, exported = student.complete(course, m, demos)
    if not _report(course, m, result, exported):
        raise typer.Exit(1)
    console.print(f"[bold green]{m.name} complete.[/]")


@app.command()
@handles_errors
def submit(
    module: str = typer.Argument(..., help="Module name or number, e.g. 06_optimizers or 06."),
):
    """Check your notebook as `complete` does, then write the file to hand in and say what to do
    with it.

    Exits 0 when it is complete, 3 when it was written but is not complete yet, 1 when nothing
    was written (no readable working copy).
    """
    course = load_course()
    m = course.module(module)
    with console.status(
        f"Checking {course.workspace_notebook(m).relative_to(course.root)} in a kernel..."
    ):
        result, exported = student.complete(course, m)
    done = _report(course, m, result, exported)
    copy = student.hand_in(course, m)
    work = course.workspace_notebook(m).relative_to(course.root)
    console.print(
        f"The notebook to hand in, as it was checked: [bold]{copy.relative_to(course.root)}[/] "
        "(upload it where your course collects work)."
    )
    if (course.root / ".git").exists():
        export = m.export.relative_to(course.root)
        console.print(
            f"In a course that collects from git: git add {work} {export} && "
            f'git commit -m "{m.name}" && git push'
        )
    if not done:
        console.print(
            Text.assemble(
                ("Not complete yet", "bold red"), ": what you hand in now is graded as it is."
            )
        )
        raise typer.Exit(3)
    console.print(f"[bold green]{m.name} complete and ready to hand in.[/]")


def _report(course, m, result: student.RunResult, exported) -> bool:
    """Print a check's results; True when the module is complete."""
    # Test ids are kept whole (they are what the grader reports); the first line of each
    # failure is printed under the table, unwrapped by any column. What a notebook or a test
    # says is printed as it is: "[nan nan]" is an array, not markup.
    t = Table(title=f"{m.name}: graded tests")
    t.add_column("test", no_wrap=True)
    t.add_column("pts", justify="right", no_wrap=True)
    t.add_column("result", no_wrap=True)
    not_started = result.parts_not_started()
    for c in result.cells:
        if c.part in not_started:  # one row for a part not started yet
            if c is not_started[c.part][0]:
                cs = not_started[c.part]
                t.add_row(
                    c.part.split(":")[0],
                    f"{sum(x.points for x in cs):g}",
                    f"not started ({len(cs)} tests)",
                )
            continue
        t.add_row(c.grade_id, f"{c.points:g}", "[green]pass[/]" if c.passed else "[red]FAIL[/]")
    console.print(t)
    for c in result.cells:
        if not c.passed and c.part not in not_started:
            console.print(
                Text.assemble((c.grade_id, "bold red"), f" ({c.points:g} pts): ", c.first_line)
            )
    for function, mistake in result.known_mistakes().items():
        console.print(Text.assemble((f"your {function} behaves like: ", "bold"), mistake))
    stubs = [e for e in result.errors if ": NotImplementedError" in e]  # placed or not
    for e in result.errors:
        if e not in stubs:
            console.print(Text.assemble(("error outside the tests: ", "red"), e))
    if stubs:
        console.print(
            f"{len(stubs)} other cell(s) stop at code not written yet (NotImplementedError)."
        )
    for r in result.restored:
        console.print(Text.assemble(("test cell not as released: ", "red"), r))
    if result.restored:
        console.print(
            "The grader restores every locked cell from the instructor's copy, "
            "so the results above "
            "are for the cells as released. To get a cell back: copy it from "
            f"{course.release_notebook(m).relative_to(course.root)}."
        )
    got = sum(c.points for c in result.cells if c.passed)
    total = sum(c.points for c in result.cells)
    console.print(
        f"Tests passed: {sum(c.passed for c in result.cells)}/{len(result.cells)} "
        f"({got:g}/{total:g} automatic points)"
    )
    hidden = [c.grade_id for c in result.cells if c.hidden]
    if hidden:
        console.print(
            f"{len(hidden)} of these cells also have hidden tests that only the grader runs "
            f"(each cell's docstring says what they check), so a pass here can still lose their "
            f"points: {', '.join(hidden)}"
        )
    if exported is not None:
        console.print(f"Exported your code to [bold]{exported.relative_to(course.root)}[/]")
    else:
        console.print(
            "[red]Your code was not exported[/]: "
            "an exported cell does not compile or fails when it runs "
            "(named above); the package keeps your last export. Fix it and run this again."
        )
    if result.empty_answers:
        console.print(
            f"{len(result.empty_answers)} written answer(s) still empty "
            f"({sum(p for _, p in result.empty_answers):g} points, graded by hand): "
            + ", ".join(g for g, _ in result.empty_answers)
        )
    if not result.passed:
        first = next((c for c in result.cells if not c.passed), None)
        where = (
            (
                f" Next: {first.part or first.grade_id}"
                + (f", starting with `{first.grade_id}`." if first.part else ".")
            )
            if first
            else ""
        )
        console.print(
            Text.assemble(
                ("Not complete yet", "bold red"),
                ": fix the failures above and run this again.",
                where,
            )
        )
        return False
    return True
