"""Autograde submissions: nbgrader in a kernel, then the isolated judge; one worker process each."""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from ..nbgrader_setup import api, nbgrader_config, quiet, tools_on_path
from ..notebooks import is_grade_cell, write_if_changed
from ..settings import Course, CourseError, Module
from .preprocessors import duplicated_ids


OUTCOME_FILE = "grading.json"


@dataclass
class CellScore:
    grade_id: str
    max_score: float
    score: float
    kernel: float | None  # points nbgrader gave from the kernel run (None: not graded there)
    judge: bool | None  # the isolated judge's verdict (None: not judged)
    message: str = ""


@dataclass
class Outcome:
    student: str
    module: str
    status: str  # graded | invalid | failed
    reason: str = ""
    cells: list[CellScore] = field(default_factory=list)

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


def _paths(course: Course, course_root: Path, m: Module, student: str):
    cfg = nbgrader_config(course, course_root).CourseDirectory
    sub = course_root / cfg.submitted_directory / student / m.name / f"{m.notebook}.ipynb"
    out = course_root / cfg.autograded_directory / student / m.name
    ref = course_root / cfg.source_directory / m.name / f"{m.notebook}.ipynb"
    return sub, out, ref


def _zero_cells(reference, reason: str) -> list[CellScore]:
    return [CellScore(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"].get("points", 0)),
                      0.0, None, None, reason) for c in reference.cells if is_grade_cell(c)]


def grade_one(course: Course, course_root: Path, m: Module, student: str) -> Outcome:
    """Grade one submission in this process (the worker). Never raises for bad submissions."""
    sub, out_dir, ref_path = _paths(course, course_root, m, student)
    reference = nbformat.read(ref_path, as_version=4)
    try:
        submission = nbformat.read(sub, as_version=4)
        nbformat.validate(submission)
    except FileNotFoundError:
        return Outcome(student, m.name, "invalid", f"no submission at {sub}", _zero_cells(reference, "no submission"))
    except Exception as e:
        reason = f"not a valid notebook: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        return Outcome(student, m.name, "invalid", reason, _zero_cells(reference, reason))

    notes = [f"duplicated cell {d!r}: one copy graded" for d in duplicated_ids(submission)]
    with quiet():
        result = api(course, course_root).autograde(m.name, student, force=True, create=True)
    kernel_scores: dict[str, float | None] = {}
    reason = "" if result.get("success") else "nbgrader could not finish the kernel run: " + \
        ((result.get("error") or "").strip().splitlines() or ["unknown error"])[-1][:300]
    if result.get("success"):
        from nbgrader.api import Gradebook

        cfg = nbgrader_config(course, course_root).CourseDirectory
        with Gradebook(cfg.db_url, course.course_id) as gb:
            nb = gb.find_submission_notebook(m.notebook, m.name, student)
            kernel_scores = {g.name: g.auto_score for g in nb.grades if g.cell_type == "code"}

    from .judge import judge  # imports the package under test; only the worker needs it

    report = judge(reference, submission, course.cell_timeout, course.memory_limit_mb,
                   hide=[course.root, course_root])
    if not report.isolated:
        notes.append("the isolated check ran without hiding the course files (needs root for unshare)")
    cells = []
    for v in report.verdicts:
        k = kernel_scores.get(v.grade_id)
        score = min(v.points if v.passed else 0.0, k if k is not None else 0.0)
        msg = v.message
        if v.passed and (k or 0.0) < v.points:
            msg = "failed when run in the notebook (see the feedback)" if result.get("success") else reason
        cells.append(CellScore(v.grade_id, v.points, score, k, v.passed, msg))

    if report.student_cell_errors:
        notes.append("errors in exported cells: " + "; ".join(report.student_cell_errors[:3]))
    reason = "; ".join(([reason] if reason else []) + notes)
    return Outcome(student, m.name, "graded" if result.get("success") else "failed", reason, cells)


def save_outcome(course: Course, course_root: Path, outcome: Outcome) -> Path:
    m = course.module(outcome.module)
    _, out_dir, _ = _paths(course, course_root, m, outcome.student)
    path = out_dir / OUTCOME_FILE
    write_if_changed(path, outcome.to_json())
    return path


def load_outcome(course: Course, course_root: Path, m: Module, student: str) -> Outcome | None:
    _, out_dir, _ = _paths(course, course_root, m, student)
    path = out_dir / OUTCOME_FILE
    return Outcome.from_json(path.read_text(encoding="utf-8")) if path.exists() else None


def submitted_students(course: Course, course_root: Path, m: Module) -> list[str]:
    cfg = nbgrader_config(course, course_root).CourseDirectory
    root = course_root / cfg.submitted_directory
    return sorted(p.name for p in root.iterdir() if (p / m.name).is_dir()) if root.is_dir() else []


def record_scores(course: Course, course_root: Path, m: Module, outcome: Outcome) -> None:
    """Write the final scores into the gradebook, replacing the kernel-only scores nbgrader wrote.

    Done by the parent process, after the worker has stopped, for every outcome: a worker
    that crashed or was killed must not leave the kernel's (forgeable) scores behind.
    """
    from nbgrader.api import Gradebook, MissingEntry

    tools_on_path()
    cfg = nbgrader_config(course, course_root).CourseDirectory
    with Gradebook(cfg.db_url, course.course_id) as gb:
        try:
            nb = gb.find_submission_notebook(m.notebook, m.name, outcome.student)
        except MissingEntry:  # nbgrader never got as far as recording this submission
            return
        final = {c.grade_id: c.score for c in outcome.cells}
        for g in nb.grades:
            if g.cell_type == "code":
                g.auto_score = final.get(g.name, 0.0)
        gb.db.commit()


def _run_worker(course: Course, course_root: Path, m: Module, student: str) -> Outcome:
    """Grade one submission in a fresh worker process; always return an Outcome."""
    limit = course.memory_limit_mb * 1024 * 1024
    cpu = course.submission_timeout

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Inherited by the kernel and the sandbox (which run in sessions of their own), so
        # anything a submission leaves spinning is stopped after this much CPU time.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))

    _, out_dir, _ = _paths(course, course_root, m, student)
    (out_dir / OUTCOME_FILE).unlink(missing_ok=True)  # never mistake an old outcome for this run's
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-I", "-m", "tito.course.grading.worker", str(course.root), str(course_root), m.name,
           student]
    # stderr goes to a file, not a pipe: processes the submission starts may hold it open.
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=limits,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            proc.wait(timeout=course.submission_timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        with contextlib.suppress(ProcessLookupError):  # the worker's group: sandbox helpers, kernels
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        err.seek(0)
        tail = err.read().strip().splitlines()[-1:]
    if timed_out:
        return _failed(course, course_root, m, student,
                       f"grading stopped after {course.submission_timeout} s (submission_timeout_seconds)")
    if proc.returncode == 0:
        loaded = load_outcome(course, course_root, m, student)
        if loaded is not None:
            return loaded
    reason = tail[0][:300] if tail else f"exit code {proc.returncode}"
    return _failed(course, course_root, m, student, f"grading process failed: {reason}")


def _failed(course, course_root, m, student, reason) -> Outcome:
    _, _, ref = _paths(course, course_root, m, student)
    outcome = Outcome(student, m.name, "failed", reason, _zero_cells(nbformat.read(ref, as_version=4), reason))
    save_outcome(course, course_root, outcome)
    return outcome


def autograde(course: Course, m: Module, students: list[str], workers: int = 1,
              course_root: Path | None = None, on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Grade `students`' submissions of module `m`, `workers` at a time; every one gets an Outcome."""
    course_root = Path(course_root or course.root).resolve()
    reference = course_root / nbgrader_config(course, course_root).CourseDirectory.source_directory / m.name
    if not (reference / f"{m.notebook}.ipynb").is_file():
        raise CourseError(f"no instructor notebook at {reference}: run `tito nbgrader generate {m.name}` first")
    lock = threading.Lock()  # one gradebook writer at a time

    def grade(student: str) -> Outcome:
        outcome = _run_worker(course, course_root, m, student)
        with lock:
            record_scores(course, course_root, m, outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(grade, s): s for s in students}
        done = {}
        for f in as_completed(futures):
            done[futures[f]] = f.result()
            if on_done:
                on_done(done[futures[f]])
    return [done[s] for s in students]
