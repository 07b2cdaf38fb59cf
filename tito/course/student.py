"""Student side: working copies, running them, exporting the student's own code, progress."""
from __future__ import annotations

import ast
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .export import export_notebook
from .notebooks import is_grade_cell, write_if_changed
from .settings import Course, CourseError, Module

PROGRESS_FILE = ".tito/progress.json"


def start(course: Course, m: Module, force: bool = False) -> tuple[Path, Path | None]:
    """Copy the released notebook into the workspace; never overwrite without `force` (then back up)."""
    release = course.release_notebook(m)
    if not release.is_file():
        raise CourseError(f"no student version of {m.name} at {release}; an instructor makes it with "
                          f"`tito nbgrader generate {m.name}`")
    work = course.workspace_notebook(m)
    backup = None
    if work.exists():
        if not force:
            raise CourseError(f"{work} already exists and holds your work; it was left as it is. "
                              f"Use `tito module start {m.name} --force` to reset it (a backup is kept).")
        backup = work.with_name(f"{work.stem}.backup-{time.strftime('%Y%m%d-%H%M%S')}{work.suffix}")
        n = 1
        while backup.exists():
            n += 1
            backup = backup.with_name(f"{work.stem}.backup-{time.strftime('%Y%m%d-%H%M%S')}-{n}{work.suffix}")
        shutil.copy2(work, backup)
    work.parent.mkdir(parents=True, exist_ok=True)
    tmp = work.with_name(f".{work.name}.tmp")
    shutil.copyfile(release, tmp)
    tmp.replace(work)
    return work, backup


@dataclass
class CellResult:
    grade_id: str
    points: float
    passed: bool
    first_line: str = ""
    hidden: bool = False  # the grader runs hidden tests here too (its docstring says what they check)


def has_hidden_tests(source: str) -> bool:
    """A graded cell whose docstring announces hidden tests with a line starting `Hidden:`."""
    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        return False
    return any(line.startswith("Hidden:") for line in doc.splitlines())


@dataclass
class RunResult:
    cells: list[CellResult]
    errors: list[str]  # errors in cells that are not graded tests

    @property
    def passed(self) -> bool:
        return not self.errors and all(c.passed for c in self.cells)


def _first_error_line(outputs, reply_status: str | None) -> str | None:
    for o in outputs:
        if o.get("output_type") == "error":
            value = (o.get("evalue") or "").strip().splitlines()
            return f"{o.get('ename')}: {value[0]}" if value else o.get("ename", "error")
    return "the cell reported an error" if reply_status == "error" else None


def run_notebook(course: Course, path: Path, demos: bool = False) -> tuple[nbformat.NotebookNode, RunResult]:
    """Execute a notebook top to bottom in a real kernel and collect each graded cell's result.

    Cells tagged `skip-execution` (measurements, plots, experiments) run only with `demos`.
    """
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        raise CourseError(f"{path} is not a readable notebook: {e}") from None
    statuses: dict[int, str] = {}

    def on_executed(cell, cell_index, execute_reply):
        statuses[cell_index] = execute_reply["content"]["status"]

    # The kernel's own log stays quiet below errors: its warning about unencrypted TCP concerns a
    # kernel on 127.0.0.1 whose messages are signed with a per-run key, and only adds noise here.
    client = NotebookClient(nb, timeout=course.cell_timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            skip_cells_with_tag="" if demos else "skip-execution",
                            on_cell_executed=on_executed, interrupt_on_timeout=True)
    try:
        client.execute()
    except Exception as e:  # the kernel died (os._exit, out of memory) or could not start
        done = max(statuses, default=-1) + 2
        raise CourseError(f"{path.name} stopped running at cell {done}: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
    cells, errors = [], []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        err = _first_error_line(cell.get("outputs", []), statuses.get(i))
        if is_grade_cell(cell):
            md = cell.metadata["nbgrader"]
            cells.append(CellResult(md["grade_id"], float(md.get("points", 0)), err is None, err or "",
                                    has_hidden_tests(cell.source)))
        elif err is not None:
            errors.append(f"cell {i + 1}: {err}")
    return nb, RunResult(cells, errors)


def complete(course: Course, m: Module, demos: bool = False) -> tuple[RunResult, Path]:
    """Export the student's own working copy with nbdev, run it in a kernel, record progress."""
    work = course.workspace_notebook(m)
    if not work.is_file():
        raise CourseError(f"no working copy of {m.name} at {work}. Start one with `tito module start {m.name}`.")
    # Export first: the notebook's experiment cells import the package, and they should
    # run on the code in this notebook, not on the previous export.
    exported = export_notebook(course, work, m)
    _, result = run_notebook(course, work, demos)
    record_progress(course, m, result, work)
    return result, exported


def _load_progress(course: Course) -> dict:
    p = course.root / PROGRESS_FILE
    try:
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    except ValueError:
        return {}


def record_progress(course: Course, m: Module, result: RunResult, work: Path) -> None:
    data = _load_progress(course)
    data[m.name] = {"passed": result.passed, "notebook_mtime": work.stat().st_mtime,
                    "tests_passed": sum(c.passed for c in result.cells), "tests": len(result.cells),
                    "exported_at": time.time()}
    write_if_changed(course.root / PROGRESS_FILE, json.dumps(data, indent=1, sort_keys=True) + "\n")


def points(course: Course, m: Module) -> float:
    """Points available in a module: automatic and manual, from the student notebook (nbgrader keeps them)."""
    src = course.release_notebook(m)
    if not src.is_file():
        return 0.0
    nb = nbformat.read(src, as_version=4)
    return sum(float(c.metadata.get("nbgrader", {}).get("points", 0)) for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("grade"))


def state(course: Course, m: Module) -> str:
    work = course.workspace_notebook(m)
    if not work.exists():
        return "not started"
    rec = _load_progress(course).get(m.name)
    if not rec or rec["notebook_mtime"] != work.stat().st_mtime:
        return "in progress"
    if not rec["passed"]:
        return f"in progress ({rec['tests_passed']}/{rec['tests']} tests passing)"
    return "tests passing, exported"
