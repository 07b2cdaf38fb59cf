"""The host: the queue of submissions, the gradebook, and the one place scores are decided.

Follow one submission through `autograde`:
1. `prepare` (here, no student code runs): read the submitted file (never through a
   symbolic link, at most `output_mb`), check it is a notebook, and let nbgrader's own
   autograde sanitize it (clear outputs, restore locked and deleted test cells from the
   gradebook, drop duplicated grade cells). nbgrader's execution step is switched off here.
2. the job (job.py): the prepared notebook runs in a jailed kernel, and the judge runs the
   instructor's tests against the student's functions in a jailed process. It returns data.
3. `decide` (here): the executed outputs are copied into the prepared notebook cell by cell
   (cell sources and metadata stay the host's), and each graded cell scores the minimum of
   the judge's verdict and the kernel run's.
4. `record` (here): the Outcome is the record of automatic grading. It is written to
   `autograded/<student>/<module>/grading.json`, and the gradebook's automatic scores are
   derived from it; manual scores already in the gradebook are never touched.
"""
from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
from nbconvert.exporters import NotebookExporter

from ..nbgrader_setup import api, nbgrader_config, quiet, tools_on_path
from ..notebooks import SOLUTION_BEGIN, dumps, is_grade_cell, write_if_changed
from ..settings import Course, CourseError, Module
from . import jail as jail_module
from .cluster import Cluster
from .files import read_regular
from .job import Job, JobResult, run_in_process
from .preprocessors import duplicated_ids

OUTCOME_FILE = "grading.json"
# What the feedback may show of a cell's outputs: plain data only. HTML, JavaScript and SVG
# from a submission would run in the instructor's (formgrader) and the student's browser.
KEPT_OUTPUT_TYPES = {"text/plain", "image/png", "image/jpeg"}


@dataclass
class CellScore:
    grade_id: str
    max_score: float
    score: float
    kernel: float | None  # points from the kernel run's outputs (None: not run)
    judge: bool | None  # the judge's verdict (None: not judged)
    message: str = ""


@dataclass
class Outcome:
    student: str
    module: str
    status: str  # graded | invalid | failed
    reason: str = ""
    cells: list[CellScore] = field(default_factory=list)
    isolation: str = ""  # the jail the submission's code ran in

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "score": self.score, "max_score": self.max_score}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Outcome":
        d = json.loads(text)
        cells = [CellScore(**c) for c in d.pop("cells")]
        d.pop("score"), d.pop("max_score")
        return cls(**d, cells=cells)


# -- paths -------------------------------------------------------------------------------

def _dirs(course: Course, root: Path):
    return nbgrader_config(course, root).CourseDirectory


def submission_path(course: Course, root: Path, m: Module, student: str) -> Path:
    return root / _dirs(course, root).submitted_directory / student / m.name / f"{m.notebook}.ipynb"


def autograded_dir(course: Course, root: Path, m: Module, student: str) -> Path:
    return root / _dirs(course, root).autograded_directory / student / m.name


def instructor_path(course: Course, root: Path, m: Module) -> Path:
    return root / _dirs(course, root).source_directory / m.name / f"{m.notebook}.ipynb"


def submitted_students(course: Course, course_root: Path, m: Module) -> list[str]:
    root = course_root / _dirs(course, course_root).submitted_directory
    return sorted(p.name for p in root.iterdir() if (p / m.name).is_dir()) if root.is_dir() else []


def load_outcome(course: Course, course_root: Path, m: Module, student: str) -> Outcome | None:
    """The recorded outcome, or None when there is none (or it cannot be read as one)."""
    path = autograded_dir(course, course_root, m, student) / OUTCOME_FILE
    try:
        return Outcome.from_json(read_regular(path, 16 << 20).decode("utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None


# -- 1. prepare --------------------------------------------------------------------------

def _zero_cells(reference, reason: str) -> list[CellScore]:
    return [CellScore(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"].get("points", 0)),
                      0.0, None, None, reason) for c in reference.cells if is_grade_cell(c)]


def _nbgrader_error(result: dict) -> str:
    """The line of nbgrader's log that names the error (its summary only says 'see above')."""
    text = "\n".join(x for x in (result.get("log"), result.get("error")) if x)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"[\w.]+(Error|Exception): ", ln) and "NbGraderException" not in ln]
    return (named or lines or ["unknown error"])[-1][:300]


def prepare(course: Course, root: Path, m: Module, student: str, reference) -> tuple[nbformat.NotebookNode, list[str]] | Outcome:
    """(the sanitized submission nbgrader made, notes on what it changed), or an Outcome saying why not."""
    path = submission_path(course, root, m, student)
    limits = jail_module.Limits(**course.grading_limits)

    def invalid(reason: str) -> Outcome:
        return Outcome(student, m.name, "invalid", reason, _zero_cells(reference, reason))

    try:
        for folder in (path.parent.parent, path.parent):
            if folder.is_symlink():
                return invalid(f"{folder.relative_to(root)} is a symbolic link, not a folder")
        raw = read_regular(path, limits.output_mb << 20)
    except FileNotFoundError:
        return invalid(f"no submission at {path.relative_to(root)}")
    except OSError as e:
        return invalid(f"the submission cannot be read: {e}")
    try:
        submitted = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(submitted)
    except Exception as e:
        return invalid(f"not a valid notebook: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}")
    config = nbgrader_config(course, root)
    config.Autograde.exporter_class = NotebookExporter
    config.Autograde.autograde_preprocessors = []  # sanitize only: the job runs the notebook
    with quiet():
        result = api(course, root, config).autograde(m.name, student, force=True, create=True)
    if not result.get("success"):
        reason = "nbgrader could not prepare the submission: " + _nbgrader_error(result)
        return Outcome(student, m.name, "failed", reason, _zero_cells(reference, reason))
    prepared = nbformat.read(autograded_dir(course, root, m, student) / f"{m.notebook}.ipynb", as_version=4)
    return prepared, [f"duplicated cell {d!r}: one copy graded" for d in duplicated_ids(submitted)]


def student_package(course: Course) -> dict[str, str]:
    """The course package's files that hold no solution (module 01 and the package's __init__s)."""
    package = course.directory("package")
    out = {}
    for src in sorted(package.rglob("*.py")):
        text = src.read_text(encoding="utf-8")
        if SOLUTION_BEGIN not in text:
            out[src.relative_to(package.parent).as_posix()] = text
    return out


# -- 3. decide -----------------------------------------------------------------------------

def merge_outputs(prepared, executed: str) -> tuple[nbformat.NotebookNode, str]:
    """The prepared notebook with the outputs the jailed run returned; a note if none could be used.

    Only outputs cross: cell sources and metadata stay as nbgrader prepared them, so the
    returned notebook cannot move, add or relabel graded cells.
    """
    from nbgrader.preprocessors import LimitOutput

    nb = copy.deepcopy(prepared)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    try:
        returned = json.loads(executed)
        # Through nbformat's reader, which normalises what the schema allows (e.g. text as a list).
        run = nbformat.reads(json.dumps(returned["notebook"]), as_version=4)
        nbformat.validate(run)
        error = str(returned.get("error") or "")[:500]
    except Exception:
        return nb, "the kernel run returned no readable notebook"
    if [(c.cell_type, c.get("id")) for c in run.cells] != [(c.cell_type, c.get("id")) for c in nb.cells]:
        return nb, "the kernel run returned a notebook with other cells; its outputs were not used"
    for cell, ran in zip(nb.cells, run.cells):
        if cell.cell_type == "code":
            cell.outputs = [_plain(o) for o in ran.outputs]
            cell.execution_count = ran.execution_count
    nb, _ = LimitOutput().preprocess(nb, {})
    return nb, (f"the kernel stopped: {error}" if error else "")


def _plain(output):
    if "data" in output:
        output.data = {k: v for k, v in output.data.items() if k in KEPT_OUTPUT_TYPES}
        output.metadata = {}
    return output


def _kernel_score(cell) -> float:
    from nbgrader.utils import determine_grade

    if cell.execution_count is None:  # never ran: nothing was shown to pass
        return 0.0
    return float(determine_grade(cell)[0] or 0.0)


def decide(student: str, m: Module, reference, prepared, notes: list[str],
           result: JobResult) -> tuple[Outcome, nbformat.NotebookNode]:
    """The Outcome of one submission from its job's data; the notebook to keep for feedback."""
    notes = list(notes)
    merged, run_note = merge_outputs(prepared, result.executed)
    if result.failure or result.execution_note or run_note:
        reason = "; ".join(x for x in (result.failure, result.execution_note, run_note) if x)
        return Outcome(student, m.name, "failed", reason, _zero_cells(reference, reason), result.isolation), merged
    kernel = {c.metadata["nbgrader"]["grade_id"]: _kernel_score(c) for c in merged.cells if is_grade_cell(c)}
    verdicts = {v["grade_id"]: v for v in result.verdicts}
    cells = []
    for c in reference.cells:
        if not is_grade_cell(c):
            continue
        gid, points = c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"].get("points", 0))
        v, k = verdicts.get(gid), kernel.get(gid)
        passed = bool(v and v["passed"])
        score = min(points if passed else 0.0, k or 0.0)
        msg = (v or {}).get("message", "not judged")
        if passed and score < points:
            msg = "failed when run in the notebook (see the feedback)"
        cells.append(CellScore(gid, points, score, k, v["passed"] if v else None, msg))
    if result.cell_errors:
        notes.append("errors in exported cells: " + "; ".join(result.cell_errors[:3]))
    return Outcome(student, m.name, "graded", "; ".join(notes), cells, result.isolation), merged


# -- 4. record -----------------------------------------------------------------------------

def record(course: Course, root: Path, m: Module, outcome: Outcome, notebook=None) -> None:
    """Write the outcome, the notebook for feedback, and the gradebook's automatic scores."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import determine_grade, is_grade

    out = autograded_dir(course, root, m, outcome.student)
    if out.is_symlink():
        raise CourseError(f"{out} is a symbolic link, not a folder of autograded files")
    if (out / OUTCOME_FILE).is_dir():  # kept, not deleted: whatever it holds is somebody's
        (out / OUTCOME_FILE).rename(out / f"{OUTCOME_FILE}.folder-{os.getpid()}-{time.time_ns()}")
    if notebook is not None:
        write_if_changed(out / f"{m.notebook}.ipynb", dumps(notebook))
    write_if_changed(out / OUTCOME_FILE, outcome.to_json())

    tools_on_path()
    final = {c.grade_id: c.score for c in outcome.cells}
    answers = {c.metadata["nbgrader"]["grade_id"]: c for c in (notebook.cells if notebook is not None else [])
               if is_grade(c)}
    cfg = _dirs(course, root)
    with Gradebook(cfg.db_url, course.course_id) as gb:
        gb.update_or_create_student(outcome.student)
        try:
            gb.find_submission(m.name, outcome.student)
        except MissingEntry:
            gb.add_submission(m.name, outcome.student)
        for g in gb.find_submission_notebook(m.notebook, m.name, outcome.student).grades:
            if g.name in final:
                g.auto_score = final[g.name]
            elif g.name in answers and outcome.status == "graded":  # a written answer: nbgrader's rule
                g.auto_score = determine_grade(answers[g.name])[0]
            else:
                g.auto_score = 0.0
            # A written answer waits for a person until one has scored it; a score someone
            # entered by hand (formgrader) is never touched, so a re-grade keeps it.
            g.needs_manual_grade = g.auto_score is None and g.manual_score is None
        gb.db.commit()


# -- the queue -------------------------------------------------------------------------------

def check_ready(course: Course, root: Path, m: Module) -> None:
    """Refuse at once when the module was never generated (no instructor notebook or gradebook entry)."""
    from nbgrader.api import Gradebook, MissingEntry

    ref = instructor_path(course, root, m)
    hint = f"run `tito nbgrader generate {m.name}` first"
    if not ref.is_file():
        raise CourseError(f"no instructor notebook at {ref}: {hint}")
    tools_on_path()
    with quiet(), Gradebook(_dirs(course, root).db_url, course.course_id) as gb:
        try:
            gb.find_assignment(m.name)
        except MissingEntry:
            raise CourseError(f"the gradebook has no assignment {m.name}: {hint}") from None


def autograde(course: Course, m: Module, students: list[str], workers: int | None = None,
              course_root: Path | None = None,
              on_done: Callable[[Outcome], None] | None = None, jail: bool = True,
              scheduler: str | None = None) -> list[Outcome]:
    """Grade `students`' submissions of module `m`, `workers` at a time; every one gets an Outcome.

    Jobs run in fresh processes on this machine, or on the Dask cluster at `scheduler`
    (default: settings.ini's [grading] scheduler; "" for this machine). `workers` defaults
    to 1 here and to the cluster's threads there.
    """
    root = Path(course_root or course.root).resolve()
    check_ready(course, root, m)
    scheduler = course.scheduler if scheduler is None else scheduler
    cluster = Cluster(scheduler) if scheduler else None  # unreachable: refused before anything is written
    run_job = cluster.run if cluster else run_in_process
    workers = workers or (cluster.threads if cluster else 1)
    if jail:
        try:
            jail_module.check()
        except jail_module.JailError as e:
            raise CourseError(f"{e}. Without a jail, submitted code can change any file the grading user "
                              "can write; pass --unsafe-no-jail only for submissions you trust.") from None
    instructor_text = instructor_path(course, root, m).read_text(encoding="utf-8")
    reference = nbformat.reads(instructor_text, as_version=4)
    package = student_package(course)
    lock = threading.Lock()  # nbgrader's gradebook and folders: one writer at a time

    def grade(student: str) -> Outcome:
        with lock:
            prepared = prepare(course, root, m, student, reference)
        notebook = None
        if isinstance(prepared, Outcome):
            outcome = prepared
        else:
            prepared, notes = prepared
            job = Job(student, m.name, dumps(prepared), instructor_text, package, course.grading_limits, jail)
            result = run_job(job)
            try:
                outcome, notebook = decide(student, m, reference, prepared, notes, result)
            except Exception as e:  # data the job returned that the host cannot use: this one fails, not the batch
                reason = f"the grading job returned unusable data ({type(e).__name__}: {str(e)[:200]})"
                outcome = Outcome(student, m.name, "failed", reason, _zero_cells(reference, reason), result.isolation)
        with lock:
            try:
                record(course, root, m, outcome, notebook)
            except (OSError, CourseError) as e:  # this submission is not recorded; the batch goes on
                reason = f"the outcome could not be recorded: {e}"
                outcome = Outcome(student, m.name, "failed", reason, _zero_cells(reference, reason), outcome.isolation)
        return outcome

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(grade, s): s for s in students}
            done = {}
            for f in as_completed(futures):
                done[futures[f]] = f.result()
                if on_done:
                    on_done(done[futures[f]])
    finally:
        if cluster:
            cluster.close()
    return [done[s] for s in students]
