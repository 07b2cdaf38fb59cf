"""Student side: working copies, running them, exporting the student's own code, progress.

`tito module complete` runs the notebook the grader would run: the grader puts back every
locked cell (tests, given code) from the instructor's copy, so the check does the same from
the student notebook's release copy, and names each cell that was deleted, changed or
duplicated (by nbgrader's own checksums). The student's code is exported only when every
exported cell compiles; otherwise the last good export stays.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.util import run_sync

from .notebooks import (
    FINGERPRINTS_FILE,
    is_export_cell,
    is_grade_cell,
    part_heading,
    write_if_changed,
)
from .settings import Course, CourseError, Module

PROGRESS_FILE = ".tito/progress.json"
HAND_IN = "hand-in"  # `tito module submit` writes the notebook to hand in here
ANSWER_STUB = "YOUR ANSWER HERE"  # what nbgrader leaves in a written answer of the student version
# How a failing test names a known mistake (the module's test-support cell, known_mistake()).
# The check adds where an error happened, "(in `cell`, line N, function)", after the message.
KNOWN_MISTAKE = re.compile(
    r" Your (?P<function>\w+) behaves like a known mistake: (?P<mistake>.+?)\."
    r"(?: \(in `[^`]+`, line \d+, \w+\))?$"
)


def start(course: Course, m: Module, force: bool = False) -> tuple[Path, Path | None]:
    """Copy the released notebook into the workspace; never overwrite without `force` (then back
    up)."""
    release = course.release_notebook(m)
    if not release.is_file():
        raise CourseError(
            f"no student version of {m.name} at {release}; an instructor makes it with "
            f"`tito nbgrader generate {m.name}`"
        )
    work = course.workspace_notebook(m)
    backup = None
    if work.exists():
        if not force:
            raise CourseError(
                f"{work} already exists and holds your work; it was left as it is. "
                f"Use `tito module start {m.name} --force` to reset it (a backup is kept)."
            )
        backup = work.with_name(f"{work.stem}.backup-{time.strftime('%Y%m%d-%H%M%S')}{work.suffix}")
        n = 1
        while backup.exists():
            n += 1
            backup = backup.with_name(
                f"{work.stem}.backup-{time.strftime('%Y%m%d-%H%M%S')}-{n}{work.suffix}"
            )
        shutil.copy2(work, backup)
    work.parent.mkdir(parents=True, exist_ok=True)
    tmp = work.with_name(f".{work.name}.tmp")
    shutil.copyfile(release, tmp)
    tmp.replace(work)
    copy_fingerprints(course, m)
    return work, backup


def copy_fingerprints(course: Course, m: Module) -> None:
    """The release's fingerprints of known mistakes, beside the working copy, where its
    test-support cell reads them (instructor data: refreshed from the release every time)."""
    released = course.release_notebook(m).parent / FINGERPRINTS_FILE
    beside = course.workspace_notebook(m).parent / FINGERPRINTS_FILE
    if released.is_file():
        write_if_changed(beside, released.read_bytes())
    elif beside.is_file():  # the module no longer has a catalogue
        beside.unlink()


@dataclass
class CellResult:
    grade_id: str
    points: float
    passed: bool
    first_line: str = ""
    hidden: bool = (
        False  # the grader runs hidden tests here too (its docstring says what they check)
    )
    part: str = ""  # the "Part N: ..." heading the test sits under

    @property
    def not_started(self) -> bool:
        return self.first_line.startswith("NotImplementedError")


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
    restored: list[str] = field(
        default_factory=list
    )  # locked cells the grader would put back, and why
    empty_answers: list[tuple[str, float]] = field(
        default_factory=list
    )  # written answers not written yet

    def known_mistakes(self) -> dict[str, str]:
        """Function -> the known mistake it makes, as the failing tests' messages name it (the
        test-support cell's known_mistake(), from the release's fingerprints)."""
        found = (KNOWN_MISTAKE.search(c.first_line) for c in self.cells if not c.passed)
        return {m["function"]: m["mistake"] for m in found if m}

    def parts_not_started(self) -> dict[str, list[CellResult]]:
        """Parts whose every test stops at the stub's NotImplementedError."""
        parts: dict[str, list[CellResult]] = {}
        for c in self.cells:
            parts.setdefault(c.part, []).append(c)
        return {p: cs for p, cs in parts.items() if p and all(c.not_started for c in cs)}

    @property
    def passed(self) -> bool:
        return not self.errors and not self.restored and all(c.passed for c in self.cells)


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _locked_originals(release: nbformat.NotebookNode) -> dict:
    """Grade id -> cell, for every cell the grader restores: by nbgrader's rule (its `is_locked`),
    a solution cell never, a graded test cell always, any other cell when marked locked. Written
    out here so that a student who edited no test never waits for nbgrader's import."""

    def locked(md) -> bool:
        return not md.get("solution") and bool(md.get("grade") or md.get("locked"))

    return {
        _grade_id(c): c
        for c in release.cells
        if locked(c.metadata.get("nbgrader", {})) and _grade_id(c)
    }


def as_graded(
    work: nbformat.NotebookNode, release: nbformat.NotebookNode
) -> tuple[nbformat.NotebookNode, list[str]]:
    """The working copy with every locked cell as the release has it, as the grader runs it, and a
    sentence for each locked cell that was deleted or duplicated (`changed_cells` finds the
    edits)."""
    originals = _locked_originals(release)
    cells, seen, problems = [], set(), []
    for cell in work.cells:
        gid = _grade_id(cell)
        if gid not in originals:
            cells.append(cell)
        elif gid in seen:
            problems.append(f"`{gid}` appears twice: the grader keeps the first and drops the copy")
        else:
            seen.add(gid)
            # As nbgrader overwrites a locked cell: its source and nbgrader metadata, not its tags.
            restored = copy.deepcopy(cell)
            restored.cell_type, restored.source = originals[gid].cell_type, originals[gid].source
            restored.metadata["nbgrader"] = copy.deepcopy(originals[gid].metadata["nbgrader"])
            cells.append(restored)
    # A deleted test goes back after the release cell before it (or first); nbgrader does not
    # put back other locked cells, so neither does this.
    for i, cell in enumerate(release.cells):
        gid = _grade_id(cell)
        if gid not in originals or gid in seen:
            continue
        if not is_grade_cell(cell):
            problems.append(
                f"`{gid}` was deleted: "
                "the grader does not put it back, so what it defines is missing"
            )
            continue
        problems.append(f"`{gid}` was deleted: the grader puts the original back")
        before = (
            {c.get("id") for c in release.cells[:i]} | {_grade_id(c) for c in release.cells[:i]}
        ) - {None}
        at = max(
            (k + 1 for k, c in enumerate(cells) if c.get("id") in before or _grade_id(c) in before),
            default=0,
        )
        cells.insert(at, copy.deepcopy(cell))
        seen.add(gid)
    graded = copy.deepcopy(work)
    graded.cells = cells
    return graded, problems


def changed_cells(work: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """A sentence for each locked cell whose first copy in the working copy no longer has the
    checksum nbgrader stored for it in the release.

    nbgrader's checksum is a function of a cell's type, source and nbgrader metadata, so a cell
    whose three are as released is unchanged; only a cell that differs is given to nbgrader
    (whose import costs about a second, which a student who edited no test never waits).
    """

    def as_released(cell, original) -> bool:
        return (cell.cell_type, cell.source, cell.metadata.get("nbgrader")) == (
            original.cell_type,
            original.source,
            original.metadata["nbgrader"],
        )

    def checksum(cell) -> str | None:
        # nbgrader: a second to import, paid only by the commands that use it
        from nbgrader.utils import compute_checksum

        try:
            return compute_checksum(cell)
        except (
            KeyError,
            TypeError,
            ValueError,
        ):  # nbgrader metadata the student changed into another shape
            return None

    originals, seen, problems = _locked_originals(release), set(), []
    for cell in work.cells:
        gid = _grade_id(cell)
        if gid in originals and gid not in seen:
            seen.add(gid)
            original = originals[gid]
            if not as_released(cell, original) and checksum(cell) != original.metadata[
                "nbgrader"
            ].get("checksum"):
                problems.append(f"`{gid}` was changed: the grader runs the original")
    return problems


def _cell_name(cell) -> str:
    gid = _grade_id(cell)
    if gid:
        return f"`{gid}`"
    first = next(
        (
            line.strip()
            for line in cell.source.splitlines()
            if line.strip() and not line.startswith("#|")
        ),
        "",
    )
    return f"the cell starting `{first[:40]}`"


def syntax_errors(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Cell name -> where and what, for every exported cell that does not compile."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and is_export_cell(cell):
            try:
                compile(cell.source, "<cell>", "exec")
            except SyntaxError as e:
                found[_cell_name(cell)] = f"line {e.lineno}: SyntaxError: {e.msg}"
    return found


def missing_names(work: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """A sentence for each function or class a solution cell of the release defines that no
    code cell of the working copy defines any more (renamed, or deleted): the tests call it.
    A cell that does not compile says nothing here: `syntax_errors` names it."""

    def defined(cell) -> set[str] | None:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            return None
        return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}

    code = [(c, defined(c)) for c in work.cells if c.cell_type == "code"]
    unparsed = {_grade_id(c) for c, names in code if names is None}
    everywhere = set().union(*(names for _, names in code if names is not None))
    return [
        (
            f"{_cell_name(cell)}: `{name}` is not defined any more (renamed?), "
            "and the tests call it by that name"
        )
        for cell in release.cells
        if cell.cell_type == "code"
        and cell.metadata.get("nbgrader", {}).get("solution")
        and _grade_id(cell) not in unparsed
        for name in sorted((defined(cell) or set()) - everywhere)
    ]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FRAME = re.compile(r"^Cell In\[(\d+)\], line (\d+), in (\w+)")


def _first_error_line(
    outputs, reply_status: str | None, cell_by_count: dict | None = None
) -> str | None:
    """The error's first line, and where in the student's code it happened when the traceback's
    deepest frame is a function of a solution cell ("(in `adam_step_impl`, line 20, adam_step)")."""
    for o in outputs:
        if o.get("output_type") == "error":
            value = (o.get("evalue") or "").strip().splitlines()
            line = f"{o.get('ename')}: {value[0]}" if value else o.get("ename", "error")
            frames = [m for f in o.get("traceback", []) if (m := _FRAME.match(_ANSI.sub("", f)))]
            if frames and cell_by_count:
                count, lineno, function = frames[-1].groups()
                where = cell_by_count.get(int(count))
                if where is not None and where.metadata.get("nbgrader", {}).get("solution"):
                    line += f" (in {_cell_name(where)}, line {lineno}, {function})"
            return line
    return "the cell reported an error" if reply_status == "error" else None


def read_notebook(path: Path, m: Module | None = None) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except Exception as e:
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        fix = (
            (
                " Start again from the student version with "
                f"`tito module start {m.name} --force` (a backup "
                "of this file is kept), or restore it from git."
            )
            if m
            else ""
        )
        raise CourseError(f"{path} is not a readable notebook ({detail}).{fix}") from None


def run_notebook(
    course: Course,
    path: Path,
    demos: bool = False,
    notebook: Callable[[], nbformat.NotebookNode] | None = None,
) -> tuple[nbformat.NotebookNode, RunResult]:
    """Execute a notebook top to bottom in a real kernel and collect each graded cell's result.

    The notebook is `path`'s, or the one `notebook()` returns: it is called once the kernel's
    process has started, so a caller can prepare the notebook while the kernel boots. It runs in
    `path`'s folder. Cells tagged `skip-execution` (measurements, plots, experiments) run only
    with `demos`.
    """
    statuses: dict[int, str] = {}

    def on_executed(cell, cell_index, execute_reply):
        statuses[cell_index] = execute_reply["content"]["status"]

    # The kernel's own log stays quiet below errors: its warning about unencrypted TCP concerns a
    # kernel on 127.0.0.1 whose messages are signed with a per-run key, and only adds noise here.
    limit = course.student_cell_timeout
    client = NotebookClient(
        nbformat.v4.new_notebook(),
        timeout=limit,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        skip_cells_with_tag="" if demos else "skip-execution",
        on_cell_executed=on_executed,
        interrupt_on_timeout=True,
    )
    client.km = client.create_kernel_manager()

    def stop_kernel() -> None:  # before any cell ran: nothing of the student's to lose
        try:
            if client.km.has_kernel:
                run_sync(client.km.shutdown_kernel)(now=True)
        except Exception:  # the error that brought us here is the one to report
            pass

    try:
        # The kernel process's own stderr is not the student's: what their cells print arrives
        # as messages, and a kernel that dies is named below. Left open, a kernel stopped while
        # it still boots (the notebook could not be read) printed its interrupted start-up.
        client.start_new_kernel(stderr=subprocess.DEVNULL)
    except Exception as e:
        stop_kernel()
        raise CourseError(
            f"the notebook's kernel could not start: {type(e).__name__}: {e}"
        ) from None
    try:
        nb = client.nb = notebook() if notebook else read_notebook(path)
    except BaseException:
        stop_kernel()
        raise
    # A kernel that dies before it first answers has run none of the student's code (on a busy
    # machine another program can take a port it was given): it is started once more.
    for attempt in (1, 2):
        try:
            if attempt == 2:
                client.km = client.create_kernel_manager()
                client.start_new_kernel(stderr=subprocess.DEVNULL)
            client.start_new_kernel_client()
            break
        except Exception as e:
            stop_kernel()
            if attempt == 2:
                raise CourseError(
                    f"the notebook's kernel could not start: {type(e).__name__}: {e}"
                ) from None
    # Cell by cell, so that the run stops at the first cell that reaches its time limit: an
    # endless loop would make every later cell that calls the same code wait as long.
    too_slow: dict[int, str] = {}
    client.reset_execution_trackers()
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if too_slow:
                    break
                started = time.monotonic()
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                if cell.cell_type == "code" and time.monotonic() - started >= limit:
                    too_slow[index] = (
                        f"ran longer than {limit} s and was stopped: an endless loop? "
                        f"(the grader allows {course.cell_timeout} s)"
                    )
    except Exception as e:  # the kernel died (os._exit, out of memory) or could not start
        done = max(statuses, default=-1) + 2
        raise CourseError(
            f"{path.name} stopped running at cell {done}: {type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        ) from None
    stopped = next(iter(too_slow), None)
    cells, errors, empty, part = [], [], [], ""
    by_count = {
        c.execution_count: c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")
    }
    for i, cell in enumerate(nb.cells):
        part = part_heading(cell) or part
        if (
            cell.cell_type == "markdown"
            and cell.metadata.get("nbgrader", {}).get("grade")
            and ANSWER_STUB in cell.source
        ):
            empty.append(
                (
                    cell.metadata["nbgrader"]["grade_id"],
                    float(cell.metadata["nbgrader"].get("points", 0)),
                )
            )
        if cell.cell_type != "code":
            continue
        err = too_slow.get(i) or _first_error_line(
            cell.get("outputs", []), statuses.get(i), by_count
        )
        if stopped is not None and i > stopped and is_grade_cell(cell):
            err = (
                f"not run: the run stopped after {_cell_name(nb.cells[stopped])} "
                f"ran longer than {limit} s"
            )
        if is_grade_cell(cell):
            md = cell.metadata["nbgrader"]
            cells.append(
                CellResult(
                    md["grade_id"],
                    float(md.get("points", 0)),
                    err is None,
                    err or "",
                    has_hidden_tests(cell.source),
                    part,
                )
            )
        elif err is not None:
            errors.append(f"{_cell_name(cell)}: {err}")
    return nb, RunResult(cells, errors, empty_answers=empty)


@dataclass
class _Prepared:
    notebook: nbformat.NotebookNode  # the working copy as the student wrote it
    graded: nbformat.NotebookNode  # ... with its locked cells as released
    restored: list[str]  # a sentence for each locked cell deleted, changed or duplicated
    missing: list[str]  # a sentence for each function or class the tests call that is not defined
    broken: dict[str, str]  # exported cells that do not compile
    exported: Path | None  # None: nothing exported (a cell does not compile)


def _prepare(course: Course, m: Module, work: Path) -> _Prepared:
    """Read the working copy and its release, put the locked cells back, export what compiles."""
    from .export import (
        export_notebook,
    )  # nbdev: a fifth of a second to import, paid while the kernel boots

    notebook, release = read_notebook(work, m), read_notebook(course.release_notebook(m))
    copy_fingerprints(course, m)
    graded, problems = as_graded(notebook, release)
    broken = syntax_errors(notebook)
    # Exported before the first cell runs: the notebook's experiment cells import the package,
    # and they should run on the code in this notebook, not on the previous export.
    exported = None if broken else export_notebook(course, work, m)
    return _Prepared(
        notebook,
        graded,
        changed_cells(notebook, release) + problems,
        missing_names(notebook, release),
        broken,
        exported,
    )


def complete(course: Course, m: Module, demos: bool = False) -> tuple[RunResult, Path | None]:
    """Export the student's own working copy with nbdev (when it compiles), run it as the grader
    would (locked cells as released), record progress. The export path is None when the
    previous export was kept.

    The notebook is read, restored and exported while the kernel boots in its own process.
    """
    work = course.workspace_notebook(m)
    if not work.is_file():
        raise CourseError(
            f"no working copy of {m.name} at {work}. Start one with `tito module start {m.name}`."
        )
    previous = m.export.read_bytes() if m.export.is_file() else None
    p: _Prepared | None = None

    def prepare() -> nbformat.NotebookNode:
        nonlocal p
        p = _prepare(course, m, work)
        return p.graded

    _, result = run_notebook(course, work, demos, prepare)
    broken, exported = p.broken, p.exported
    # An exported cell that fails when it runs would make the package fail to import: the
    # previous export comes back.
    exported_cells = [
        _cell_name(c) for c in p.notebook.cells if c.cell_type == "code" and is_export_cell(c)
    ]
    failed = [
        n
        for n in exported_cells
        if n not in broken and any(e.startswith(f"{n}:") for e in result.errors)
    ]
    if exported is not None and failed and previous is not None:
        write_if_changed(m.export, previous)
        exported = None
    kept = " (not exported: the last export stays)"
    result.errors = (
        p.missing
        + [f"{name}, {what}{kept}" for name, what in broken.items()]
        + [
            e + (kept if exported is None and e.startswith(tuple(f"{n}:" for n in failed)) else "")
            for e in result.errors
            if not e.startswith(tuple(f"{name}:" for name in broken))
        ]
    )
    result.restored = p.restored
    record_progress(course, m, result, work)
    return result, exported


def hand_in(course: Course, m: Module) -> Path:
    """Copy the working notebook, as just checked, to hand-in/<module>/<notebook>.ipynb (whole or
    not at all)."""
    dest = course.root / HAND_IN / m.name / f"{m.notebook}.ipynb"
    write_if_changed(dest, course.workspace_notebook(m).read_bytes())
    return dest


def _load_progress(course: Course) -> dict:
    p = course.root / PROGRESS_FILE
    try:
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    except ValueError:
        return {}


def record_progress(course: Course, m: Module, result: RunResult, work: Path) -> None:
    data = _load_progress(course)
    data[m.name] = {
        "passed": result.passed,
        "notebook_mtime": work.stat().st_mtime,
        "tests_passed": sum(c.passed for c in result.cells),
        "tests": len(result.cells),
        "exported_at": time.time(),
    }
    write_if_changed(course.root / PROGRESS_FILE, json.dumps(data, indent=1, sort_keys=True) + "\n")


def points(course: Course, m: Module) -> float:
    """Points available in a module: automatic and manual, from the student notebook (nbgrader keeps
    them)."""
    src = course.release_notebook(m)
    if not src.is_file():
        return 0.0
    nb = nbformat.read(src, as_version=4)
    return sum(
        float(c.metadata.get("nbgrader", {}).get("points", 0))
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    )


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
