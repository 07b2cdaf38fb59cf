"""Grades that carry their own proof: which outcomes a change of the tests, the package, the
configuration or the grader would touch, and whether grading a sample again gives the same cells.

Every outcome keeps the digests of what graded it (host.grading_digests) and of the submission
as received. `stale` compares them with what would grade the submission now; `regrade` grades
a sample again in fresh jobs, in a copy of the grading state (the instructor notebook, the
gradebook and the sampled submissions in a temporary folder), so nothing recorded changes, and
lists every cell whose verdicts differ.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..settings import Course, CourseError, Module
from .files import read_regular
from .host import autograde, grading_digests
from .outcome import Outcome, digest, load_outcome

WHAT = {
    "instructor": "the instructor notebook (tests, hidden tests)",
    "package": "the package files the jail gets",
    "config": "the grading configuration (limits, jail)",
    "grader": "the grader's code",
    "submission": "the submitted file",
}


@dataclass
class Stale:
    student: str
    changed: list[str]  # keys of WHAT whose digest differs; ["digests"] when the outcome has none


def outcomes(course: Course, m: Module, course_root: Path | None = None) -> dict[str, Outcome]:
    """Every recorded outcome of `m`, by student."""
    found = {
        s: load_outcome(course, course_root, m, s)
        for s in course.students("autograded", m, course_root)
    }
    return {s: o for s, o in found.items() if o is not None}


def stale(
    course: Course, m: Module, recorded: dict[str, Outcome], course_root: Path | None = None
) -> list[Stale]:
    """The outcomes graded by something other than what would grade them now, and what differs."""
    now = grading_digests(course, m, course_root)
    out = []
    for student, outcome in sorted(recorded.items()):
        if not outcome.digests:
            out.append(Stale(student, ["digests"]))
            continue
        changed = [
            k
            for k in ("instructor", "package", "config", "grader")
            if outcome.digests.get(k) != now[k]
        ]
        if outcome.digests.get("submission") != _submission_digest(course, m, student, course_root):
            changed.append("submission")
        if changed:
            out.append(Stale(student, changed))
    return out


def _submission_digest(
    course: Course, m: Module, student: str, course_root: Path | None
) -> str | None:
    try:
        return digest(
            read_regular(
                course.submission_notebook(m, student, course_root),
                course.grading.max_submission_mb << 20,
            )
        )
    except Exception:  # gone or unreadable: it differs from any digest recorded
        return None


def sample(students: list[str], k: int, seed: int) -> list[str]:
    """`k` of `students` (all when k >= their number), the same for the same seed."""
    return sorted(random.Random(seed).sample(sorted(students), min(k, len(students))))


def regrade(
    course: Course,
    m: Module,
    recorded: dict[str, Outcome],
    students: list[str],
    course_root: Path | None = None,
    workers: int | None = None,
    accept_unbounded_kernel_memory: bool = False,
) -> dict[str, list[str]]:
    """Grade `students` again in fresh jobs, in a copy of the grading state; per student, every
    difference from the recorded outcome (status, or a cell's judge verdict or kernel points).
    `accept_unbounded_kernel_memory` as for host.autograde."""
    root = course.state_root(course_root)
    if not course.gradebook(root).is_file():
        raise CourseError(f"no gradebook at {course.gradebook(root)}: nothing was graded")
    unread = {
        s: ["not graded again: its submission is not a regular file (see its outcome)"]
        for s in students
        if not _regular(course.submission_notebook(m, s, root), root)
    }
    graded = [s for s in students if s not in unread]
    with tempfile.TemporaryDirectory(prefix="tito-verify-") as tmp:
        copy = Path(tmp)
        _copy(course.source_notebook(m, root), course.source_notebook(m, copy))
        _copy(course.gradebook(root), course.gradebook(copy))
        for s in graded:
            _copy(course.submission_notebook(m, s, root), course.submission_notebook(m, s, copy))
        again = (
            {
                o.student: o
                for o in autograde(
                    course,
                    m,
                    graded,
                    workers,
                    course_root=copy,
                    accept_unbounded_kernel_memory=accept_unbounded_kernel_memory,
                )
            }
            if graded
            else {}
        )
    return {**unread, **{s: differences(recorded[s], again[s]) for s in graded}}


def _regular(path: Path, root: Path) -> bool:
    """A regular file, with no symbolic link on the way down from `root` (as grading reads it)."""
    steps = [path, *path.parents[: len(path.relative_to(root).parts) - 1]]
    return path.is_file() and not any(p.is_symlink() for p in steps)


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest, follow_symlinks=False)


def differences(before: Outcome, after: Outcome) -> list[str]:
    """What grading again changed: the status, and per cell the judge's verdict and the kernel's
    points."""
    out = [f"status {before.status} -> {after.status}"] if before.status != after.status else []
    cells = {c.grade_id: c for c in after.cells}
    for c in before.cells:
        a = cells.get(c.grade_id)
        if a is None:
            out.append(f"{c.grade_id}: not graded any more")
            continue
        if (c.judge, c.kernel) != (a.judge, a.kernel):
            out.append(
                f"{c.grade_id}: judge {_verdict(c.judge)} -> {_verdict(a.judge)}, "
                f"kernel {_points(c.kernel)} -> {_points(a.kernel)}"
            )
    out += [f"{g}: new graded cell" for g in cells if g not in {c.grade_id for c in before.cells}]
    return out


def _verdict(passed: bool | None) -> str:
    return {True: "passed", False: "failed", None: "not judged"}[passed]


def _points(points: float | None) -> str:
    return "not run" if points is None else f"{points:g}"
