"""Autograde submissions: nbgrader in a kernel, then the isolated judge; one worker process each."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from ..nbgrader_setup import api, nbgrader_config, quiet
from ..notebooks import is_grade_cell, write_if_changed
from ..settings import Course, Module
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

    report = judge(reference, submission, course.cell_timeout, course.memory_limit_mb)
    cells = []
    for v in report.verdicts:
        k = kernel_scores.get(v.grade_id)
        score = min(v.points if v.passed else 0.0, k if k is not None else 0.0)
        msg = v.message
        if v.passed and (k or 0.0) < v.points:
            msg = "failed when run in the notebook (see the feedback)" if result.get("success") else reason
        cells.append(CellScore(v.grade_id, v.points, score, k, v.passed, msg))

    if result.get("success"):
        from nbgrader.api import Gradebook

        cfg = nbgrader_config(course, course_root).CourseDirectory
        with Gradebook(cfg.db_url, course.course_id) as gb:
            for c in cells:
                g = gb.find_grade(c.grade_id, m.notebook, m.name, student)
                g.auto_score = c.score
            gb.db.commit()
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


def _run_worker(course: Course, course_root: Path, m: Module, student: str) -> Outcome:
    """Grade in a fresh process group, so a runaway submission is killed with everything it started."""
    limit = course.memory_limit_mb * 1024 * 1024

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "tito.course.grading.worker", str(course.root), str(course_root), m.name, student]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=limits,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=course.submission_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        reason = f"grading stopped after {course.submission_timeout} s (submission_timeout_seconds)"
        return _failed(course, course_root, m, student, reason)
    finally:
        try:  # kernels and sandboxes left behind by a crashed worker
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.returncode == 0:
        loaded = load_outcome(course, course_root, m, student)
        if loaded is not None:
            return loaded
    tail = (stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
    return _failed(course, course_root, m, student, f"grading process failed: {tail[0][:300]}")


def _failed(course, course_root, m, student, reason) -> Outcome:
    _, _, ref = _paths(course, course_root, m, student)
    outcome = Outcome(student, m.name, "failed", reason, _zero_cells(nbformat.read(ref, as_version=4), reason))
    save_outcome(course, course_root, outcome)
    return outcome


def autograde(course: Course, m: Module, students: list[str], workers: int = 1,
              course_root: Path | None = None, on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Grade `students`' submissions of module `m`, `workers` at a time; every one gets an Outcome."""
    course_root = Path(course_root or course.root).resolve()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_run_worker, course, course_root, m, s) for s in students]
        outcomes = []
        for f in futures:
            o = f.result()
            outcomes.append(o)
            if on_done:
                on_done(o)
    return outcomes
