"""tito nbgrader
generate|autograde|verify|feedback|report|analytics|similarity|collect|export|formgrader"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..course.examples import write as write_examples
from ..course.grading import scores
from ..course.grading.collect import collect as collect_archive
from ..course.grading.outcome import load_outcome
from ..course.grading.report import score_rows
from ..course.notebooks import write_if_changed
from ..course.settings import CourseError
from .common import console, fail, handles_errors, load_course, modules_from

# nbgrader, nbconvert and jupyter_server take one to two seconds to import. The commands that use
# them import them when they run, so that every other `tito` command of the instructor's
# checkout (export, test, module, release, system) starts without them. (The student edition's
# tito has no grading commands.)

app = typer.Typer(no_args_is_help=True)


def _printable(text: str) -> str:
    """Text from a submission (its error messages) without terminal control characters."""
    return "".join(ch if ch.isprintable() or ch == " " else "?" for ch in text)


@app.command()
@handles_errors
def generate(
    module: str = typer.Argument(None, help="Module name or number."),
    all_: bool = typer.Option(False, "--all", help="Every module."),
):
    """modules/ -> assignments/ (instructor notebook) -> release/ (student version)."""
    # loaded when the command runs, not at start-up (top of file)
    from ..course.generate import generate as generate_module

    course = load_course()
    mods = modules_from(course, module, all_)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task("generating", total=len(mods))
        for m in mods:
            out = generate_module(course, m)
            bar.console.print(
                f"{m.name}: student version at [bold]{out.relative_to(course.root)}[/]"
            )
            bar.advance(task)


@app.command()
@handles_errors
def examples():
    """Rebuild the bundled example submissions (examples/submissions/) from the student version."""

    course = load_course()
    for path in write_examples(course):
        console.print(f"example submission: {path.relative_to(course.root)}")


@app.command()
@handles_errors
def autograde(
    module: str = typer.Argument(..., help="Module name or number."),
    student: list[str] = typer.Option(None, "--student", help="Only this student (repeatable)."),
    workers: int = typer.Option(
        None,
        "--workers",
        min=1,
        help="Submissions graded at once (default: 1, or the cluster's threads).",
    ),
    scheduler: str = typer.Option(
        None,
        "--scheduler",
        metavar="tcp://HOST:8786",
        help="Send the jobs to this Dask scheduler (default: settings.ini).",
    ),
    retry_failed: bool = typer.Option(
        False,
        "--retry-failed",
        help=(
            "Only the submissions whose last outcome is failed "
            "(a problem of the grader or the machine)."
        ),
    ),
    unsafe_no_jail: bool = typer.Option(
        False,
        "--unsafe-no-jail",
        help="Run submitted code without the jail (only for submissions you trust).",
    ),
    accept_unbounded_kernel_memory: bool = typer.Option(
        False,
        "--accept-unbounded-kernel-memory",
        help="Grade without root or a delegated control group: the memory limit then leaves out "
        "the socket and pipe buffers a submission fills.",
    ),
):
    """Autograde submitted/<student>/<module>/: a jailed kernel run and the judge's checks.

    Exits 0 when every submission was graded, 3 when some were invalid or failed (after
    grading all of them), 1 on a problem with the course or the command.
    """
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading.host import autograde as autograde_module

    course = load_course()
    m = course.module(module)
    students = student or course.students("submitted", m)
    if not students:
        raise CourseError(f"no submissions for {m.name} in {course.directory('submitted')}")
    if retry_failed:
        students = [
            s
            for s in students
            if (o := load_outcome(course, course.root, m, s)) and o.status == "failed"
        ]
        if not students:
            console.print(f"no failed outcome to grade again for {m.name}")
            return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"autograding {m.name}", total=len(students))
        outcomes = autograde_module(
            course,
            m,
            students,
            workers,
            on_done=lambda o: bar.advance(task),
            jail=not unsafe_no_jail,
            scheduler=scheduler,
            accept_unbounded_kernel_memory=accept_unbounded_kernel_memory,
        )
    console.print(scores_table(course, m, outcomes))
    if unsafe_no_jail:
        console.print(
            "[yellow]Graded without the jail: the submissions' code ran with your permissions.[/]"
        )
    invalid = [o.student for o in outcomes if o.status == "invalid"]
    failed = [o.student for o in outcomes if o.status == "failed"]
    if invalid:
        console.print(
            f"[yellow]{len(invalid)} submission(s) invalid, scored 0 (the note says why): "
            f"{escape(_printable(', '.join(invalid)))}[/]"
        )
    if failed:
        console.print(
            f"[yellow]{len(failed)} submission(s) failed, not scored: "
            "the grader or the machine could not "
            f"finish them (the note says why): {escape(_printable(', '.join(failed)))}.[/]\n"
            f"Grade them again with `tito nbgrader autograde {m.name} --retry-failed`."
        )
    if invalid or failed:
        raise typer.Exit(3)


def _shown(value) -> str:
    """A report value as the table shows it: numbers short, None (no score) as "no score"."""
    if value is None:
        return "no score"
    return f"{value:g}" if isinstance(value, float) else str(value)


def scores_table(course, m, outcomes) -> Table:
    """The end of an autograde run: each student's automatic points as the gradebook holds them
    (a score a person entered in formgrader counts), the outcome's status and a note."""
    t = Table(title=f"{m.name}: automatic scores")
    for col in ["student", "score", "status", "note"]:
        t.add_column(col)
    recorded = scores.read(course, m, [o.student for o in outcomes])
    for o in outcomes:
        # Not in the gradebook: the outcome could not be recorded (its reason says why).
        s = recorded.get(o.student) or scores.Scores(
            o.student,
            {c.grade_id: c.score for c in o.cells},
            {c.grade_id: c.max_score for c in o.cells},
        )
        tests = [g for g in s.points if g not in s.written]
        lost = [g for g in tests if (s.points[g] or 0.0) < s.max_points[g]]
        note = o.reason or (
            f"lost points in {len(lost)} cell(s): " + ", ".join(lost[:3]) if lost else ""
        )
        out_of = sum(s.max_points[g] for g in tests)
        # A failed outcome has no score: not 0, and not an earlier run's.
        score = f"no score/{out_of:g}" if o.status == "failed" else f"{s.automatic:g}/{out_of:g}"
        t.add_row(Text(_printable(o.student)), score, o.status, Text(_printable(note)[:120]))
    return t


@app.command()
@handles_errors
def feedback(module: str = typer.Argument(..., help="Module name or number.")):
    """Write HTML feedback for every autograded submission (feedback/<student>/<module>/): a summary
    of each graded cell with its score, the grader's message for lost points and "pending" for
    written answers not graded yet; manual scores and comments from formgrader are included."""
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading import feedback as feedback_page

    course = load_course()
    m = course.module(module)
    files = feedback_page.generate(course, m)
    for f in files:
        console.print(f"feedback: {f.relative_to(course.root)}")
    if not files:
        raise CourseError(f"no feedback was written for {m.name}: autograde the submissions first")


@app.command()
@handles_errors
def report(
    module: str = typer.Argument(..., help="Module name or number."),
    format: str = typer.Option("table", "--format", help="table or csv"),
):
    """Scores per student and per graded cell, from the gradebook: automatic, manual (written
    answers graded in formgrader; "pending" until then) and total."""
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading.lms import spreadsheet_text, spreadsheet_writer

    if format not in ("table", "csv"):
        raise CourseError(f"unknown format {format!r}; use table or csv")
    course = load_course()
    m = course.module(module)
    cells, rows = score_rows(course, m)
    if not rows:
        raise CourseError(
            f"no graded submissions for {m.name}: run `tito nbgrader autograde {m.name}` first"
        )
    cols = ["student", "total", "automatic", "manual", "pending", "status", "check", *cells]
    if format == "csv":
        w = spreadsheet_writer(sys.stdout, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows([{k: spreadsheet_text(v) for k, v in r.items()} for r in rows])
        return
    # One column per student, one row per graded cell: fits a terminal for a handful of
    # students; use --format csv for a class.
    t = Table(title=f"{m.name}: scores per graded cell")
    t.add_column("graded cell")
    for r in rows:
        t.add_column(Text(_printable(r["student"])), justify="right")
    for c in ["total", "automatic", "manual", "pending", "status", "check", *cells]:
        t.add_row(
            c,
            *[_shown(r[c]) for r in rows],
            end_section=c == "check",
        )
    console.print(t)
    to_check = [f"{r['student']} ({r['check']})" for r in rows if r["check"]]
    if to_check:
        console.print(
            f"[yellow]scored by hand against an earlier outcome, graded again since (formgrader "
            f"flags these cells): {escape(_printable(', '.join(to_check)))}[/]"
        )


@app.command()
@handles_errors
def analytics(
    module: str = typer.Argument(..., help="Module name or number."),
    format: str = typer.Option("table", "--format", help="table, csv or html"),
    out: Path = typer.Option(
        None, "--out", help="Where the html page goes (default: reports/<module>/analytics.html)."
    ),
):
    """What the class got wrong, from the gradebook: per graded cell the pass rate, the mean points,
    the discrimination (point-biserial with the rest of the total), the chance of so low a
    discrimination (a permutation test) and flags: easy, hard, and suspect (failed more by the
    strongest students than chance explains: a likely broken test)."""
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading import analytics as class_analytics

    if format not in ("table", "csv", "html"):
        raise CourseError(f"unknown format {format!r}; use table, csv or html")
    course = load_course()
    m = course.module(module)
    stats = class_analytics.class_stats(course, m)
    if not stats.totals:
        raise CourseError(
            f"no graded submissions for {m.name}: run `tito nbgrader autograde {m.name}` first"
        )
    if format == "csv":
        sys.stdout.write(class_analytics.to_csv(stats))
        return
    if format == "html":
        page = out or course.root / "reports" / m.name / "analytics.html"
        write_if_changed(page, class_analytics.to_html(stats))
        console.print(f"analytics: {page}")
        return
    left = ", ".join(f"{n} {status}" for status, n in sorted(stats.left_out.items())) or "none"
    console.print(
        f"{len(stats.totals)} graded submissions (left out: {left}); mean total "
        f"{sum(stats.totals) / len(stats.totals):.1f} of {stats.max_total:g}"
    )
    t = Table(title=f"{m.name}: per graded cell")
    for col in ["graded cell", "graded", "pass rate", "mean", "discrimination", "chance", "flags"]:
        # grade ids whole (folded if they must be), as the grader names them
        t.add_column(
            col, justify="left" if col in ("graded cell", "flags") else "right", overflow="fold"
        )
    for s in stats.cells:
        t.add_row(
            s.grade_id,
            str(s.graded),
            class_analytics.number(s.pass_rate),
            class_analytics.number(s.mean),
            class_analytics.number(s.discrimination),
            class_analytics.chance_text(s.chance),
            Text(" ".join(s.flags), style="red" if "suspect" in s.flags else ""),
        )
    console.print(t)
    for fn, what, n in stats.mistakes:  # the grader's diagnosis, counted over the class
        console.print(Text(f"{fn}: {_printable(what)}: {n} student{'s' if n != 1 else ''}"))


@app.command()
@handles_errors
def similarity(
    module: str = typer.Argument(..., help="Module name or number."),
    threshold: float = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="List a pair when either side has at least this share of its "
        "code in shared fragments (default 0.5).",
    ),
    out: Path = typer.Option(
        None, "--out", help="Where the html page goes (default: reports/<module>/similarity.html)."
    ),
):
    """Similar submissions: the pairs of students whose code shares long fragments, compared as it
    runs (comments, formatting, renamed names and reordered statements do not hide a copy; code
    run from strings and helpers no graded function calls are named; the student version's code
    never counts), in a table and on an HTML page that shows each listed pair's code with the
    shared fragments marked."""
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading import similarity as similar

    course = load_course()
    m = course.module(module)
    report = similar.similarity(course, m, similar.THRESHOLD if threshold is None else threshold)
    t = Table(title=f"{m.name}: similar submissions")
    for col in [
        "student",
        "student",
        "share of the first",
        "share of the second",
        "shared characters",
    ]:
        t.add_column(col, justify="left" if col == "student" else "right")
    for p in report.flagged:
        t.add_row(
            Text(_printable(p.a)),
            Text(_printable(p.b)),
            f"{p.share_a:.2f}",
            f"{p.share_b:.2f}",
            str(p.tokens),
        )
    console.print(t)
    for student, said in sorted(report.notes.items()):
        console.print(Text(f"read with care: {_printable(student)}: {_printable('; '.join(said))}"))
    for student, why in sorted(report.skipped.items()):
        console.print(Text(f"not compared: {_printable(student)}: {_printable(why)}"))
    console.print(
        f"{len(report.compared)} submissions compared, {len(report.pairs)} pairs; "
        f"{len(report.flagged)} at or above {report.threshold:g}"
    )
    page = out or course.root / "reports" / m.name / "similarity.html"
    write_if_changed(page, similar.to_html(report))
    console.print(f"similarity: {page}")


@app.command()
@handles_errors
def verify(
    module: str = typer.Argument(..., help="Module name or number."),
    sample: int = typer.Option(
        0,
        "--sample",
        min=0,
        help="Grade this many recorded outcomes again in fresh jobs and compare every cell.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Which sample: the same seed picks the same students."
    ),
    workers: int = typer.Option(None, "--workers", min=1, help="Submissions graded again at once."),
    accept_unbounded_kernel_memory: bool = typer.Option(
        False,
        "--accept-unbounded-kernel-memory",
        help="Grade without root or a delegated control group: the memory limit then leaves out "
        "the socket and pipe buffers a submission fills.",
    ),
):
    """Check the recorded outcomes against what would grade them now: the ones graded with another
    instructor notebook, package, configuration or grader, or whose submitted file changed since
    (the students a test fix affects); with --sample K, grade K of them again in a copy of the
    grading state (nothing recorded changes) and report every cell whose verdict differs.

    Exits 0 when every outcome is current and every one graded again is identical, 3 when not,
    1 on a problem with the course or the command.
    """
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading import verify as check

    course = load_course()
    m = course.module(module)
    recorded = check.outcomes(course, m)
    if not recorded:
        raise CourseError(f"no outcomes for {m.name}: run `tito nbgrader autograde {m.name}` first")
    stale = check.stale(course, m, recorded)
    if stale:
        t = Table(title=f"{m.name}: outcomes graded with something else than now")
        t.add_column("student")
        t.add_column("changed since grading")
        for s in stale:
            t.add_row(
                Text(_printable(s.student)),
                "; ".join(
                    check.WHAT.get(k, "no digests recorded (graded before they were kept)")
                    for k in s.changed
                ),
            )
        console.print(t)
    console.print(
        f"{len(recorded) - len(stale)} of {len(recorded)} outcome(s) "
        f"graded with what grades {m.name} now"
    )
    differing = {}
    if sample:
        picked = check.sample(list(recorded), sample, seed)
        with console.status(f"grading {len(picked)} submission(s) again"):
            differing = {
                s: d
                for s, d in check.regrade(
                    course,
                    m,
                    recorded,
                    picked,
                    workers=workers,
                    accept_unbounded_kernel_memory=accept_unbounded_kernel_memory,
                ).items()
                if d
            }
        for s in picked:
            console.print(
                Text(
                    f"{_printable(s)}: "
                    + ("; ".join(differing[s]) if s in differing else "identical")
                )
            )
    if stale or differing:
        raise typer.Exit(3)


@app.command()
@handles_errors
def collect(
    module: str = typer.Argument(..., help="Module name or number."),
    archive: Path = typer.Argument(
        ...,
        help="A zip or tar archive, or a folder, of STUDENT.ipynb or "
        "STUDENT/<name>.ipynb files (links, pipes, sockets and devices "
        "are skipped).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace submissions already collected."),
):
    """Import the submissions downloaded from an LMS (a zip or tar archive or a folder) into
    submitted/.

    Exit status: 0 when every entry was collected, 3 when some were skipped (each is named with
    the reason), 1 when nothing was collected or the archive cannot be read.
    """
    course = load_course()
    m = course.module(module)
    imported, skipped = collect_archive(course, m, archive, force=force)
    for s in imported:
        console.print(f"collected {s}")
    for s in skipped:
        console.print(f"[yellow]skipped[/] {escape(_printable(s))}")
    folder = course.directory("submitted").name
    if not imported:
        fail(
            f"nothing collected from {escape(_printable(str(archive)))} into {folder}/"
            + (f": {len(skipped)} entries skipped (above)" if skipped else ": it holds no entries")
        )
    console.print(
        f"{len(imported)} submission(s) collected into {folder}/"
        + (f", {len(skipped)} entries skipped" if skipped else "")
    )
    if skipped:
        raise typer.Exit(3)


@app.command()
@handles_errors
def export(
    module: str = typer.Argument(None, help="Module name or number; every module if left out."),
    to: Path = typer.Option(
        Path("grades.csv"), "--to", help="CSV file to write (replaced as a whole)."
    ),
    allow_incomplete: bool = typer.Option(
        False,
        "--allow-incomplete",
        help="Write the file although some submissions have no score yet (failed or never "
        "graded): their score is left empty and their status says why.",
    ),
):
    """Grades for an LMS import: one CSV row per student with the id, then per module the total
    (automatic + manual), its maximum, how many written answers still wait for grading and the
    status of the outcome. Exits 3, writing nothing, while a submission has no score (failed or
    never graded), unless --allow-incomplete."""
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading.lms import IncompleteGrades, export_grades

    course = load_course()
    names = [course.module(module).name] if module else [m.name for m in course.modules]
    try:
        students = export_grades(course, names, to, allow_incomplete)
    except IncompleteGrades as e:
        console.print(f"[red]{escape(_printable(str(e)))}[/]")
        raise typer.Exit(3) from None
    console.print(f"grades of {students} student(s) for {', '.join(names)}: {to}")


@app.command()
@handles_errors
def formgrader(
    port: int = typer.Option(8888, "--port", help="Port on 127.0.0.1."),
    token: str = typer.Option("", "--token", help="Access token; a random one if left out."),
):
    """Start nbgrader's formgrader for this course on localhost, to grade the written answers
    by hand and comment on any cell (it shows the scores the judge decided). Ctrl-C stops it."""
    # loaded when the command runs, not at start-up (top of file)
    from ..course.grading.formgrader import server_argv

    course = load_course()
    if not course.gradebook().is_file():
        raise CourseError(
            "no gradebook yet: "
            "run `tito nbgrader generate 06` and `tito nbgrader autograde 06` first"
        )
    token = token or secrets.token_urlsafe(16)
    argv = server_argv(course, port, token)
    console.print(
        f"formgrader: http://127.0.0.1:{port}/formgrader?token={token}\n"
        "[yellow]grade with `tito nbgrader autograde`, not formgrader's Autograde button: "
        "that runs submissions outside the jail[/]"
    )
    sys.stdout.flush()
    os.chdir(course.root)  # formgrader reads nbgrader_config.py from here
    os.execv(
        sys.executable, argv
    )  # the server takes this process over: stopping it stops the server
