"""Grades out: one row per student, the shape a learning-management system imports.

An nbgrader export plugin, so `nbgrader export --exporter=tito.course.grading.lms.LmsExportPlugin`
works as well as `tito nbgrader export`. Columns: `student_id`, then for every assignment its
total (automatic + manual, after any late penalty, as nbgrader scores it), its maximum, the
written answers nobody has graded yet (`<assignment> pending`: they count 0 in the total, so an
import can wait for them) and the status of the student's outcome (`<assignment> status`:
graded, invalid, failed, not graded, not submitted). A student without a submission scores 0;
a failed or never graded submission has no score, and its total is left empty, never 0.
`tito nbgrader export` refuses to write while there is one, unless told to mark it.

Every text field is quoted (an id like `1e5` or `0x1` is text, not a number) and one that a
spreadsheet would run as a formula (starting with = + - @, a tab or a return) is prefixed with
an apostrophe; numbers are written as numbers.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

from ..nbgrader_setup import gradebook as course_gradebook
from ..settings import Course, CourseError
from . import scores
from .outcome import load_outcome

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value):
    """A CSV field a spreadsheet cannot take for a formula (numbers pass as they are)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def spreadsheet_writer(f, **kwargs):
    """csv.writer (or DictWriter, with fieldnames) that quotes every text field."""
    make = csv.DictWriter if "fieldnames" in kwargs else csv.writer
    return make(f, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC, **kwargs)


# What an assignment's column holds for each status of a student's outcome. The scores of
# graded and invalid submissions stand (invalid: the student's own doing, 0); a failed one,
# or one submitted but never graded, has no score: its cell is left empty, never 0.
SCORED = ("graded", "invalid")
NOT_SUBMITTED = "not submitted"


class IncompleteGrades(CourseError):
    """Some submissions have no score yet (failed, or never graded): nothing was written."""


class LmsExportPlugin(ExportPlugin):
    """One CSV row per student: id, then per assignment the total, its maximum, the answers that
    wait for a person, and the status of the student's outcome."""

    # (assignment, student) -> the status of the outcome; set by export_grades, read from the
    # course's outcomes when the plugin runs from `nbgrader export`.
    statuses: dict[tuple[str, str], str] | None = None

    def rows(self, gradebook: Gradebook) -> tuple[list[str], list[list]]:
        assignments = [
            a for a in gradebook.assignments if not self.assignment or a.name in self.assignment
        ]
        statuses = self.statuses
        if statuses is None:
            statuses = outcome_statuses(Course(), [a.name for a in assignments])
        ids = {s.id for s in gradebook.students} | {student for _, student in statuses}
        header = ["student_id"]
        for a in assignments:
            header += [a.name, f"{a.name} max", f"{a.name} pending", f"{a.name} status"]
        rows = []
        for student in sorted(i for i in ids if not self.student or i in self.student):
            row = [student]
            for a in assignments:
                status = statuses.get((a.name, student), NOT_SUBMITTED)
                try:
                    sub = gradebook.find_submission(a.name, student)
                except MissingEntry:
                    # Nothing handed in scores 0; handed in but never recorded has no score.
                    row += [0.0 if status == NOT_SUBMITTED else "", a.max_score, 0, status]
                    continue
                recorded = [
                    scores.from_gradebook(gradebook, a.name, nb.name, student)
                    for nb in sub.notebooks
                ]
                total = sum(r.total for r in recorded if r)
                # nbgrader's rule for lateness.
                score = max(0.0, total - (sub.late_submission_penalty or 0.0))
                pending = sum(r.pending for r in recorded if r)
                row += [score if status in SCORED else "", a.max_score, pending, status]
            rows.append(row)
        return header, rows

    def export(self, gradebook: Gradebook) -> None:
        dest = Path(self.to or "grades.csv")
        header, rows = self.rows(gradebook)
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        # Complete or absent, never half.
        with open(partial, "w", newline="", encoding="utf-8") as f:
            w = spreadsheet_writer(f)
            w.writerow(header)
            w.writerows([[spreadsheet_text(v) for v in row] for row in rows])
        partial.replace(dest)
        self.log.info("Exported %d students to %s", len(rows), dest)


def outcome_statuses(course: Course, modules: list[str]) -> dict[tuple[str, str], str]:
    """(module, student) -> the status of the student's outcome, for every student with a
    submission (in submitted/ or in the gradebook); "not graded" where there is no outcome."""
    out = {}
    with course_gradebook(course) as gb:
        for name in modules:
            m = course.module(name)
            try:
                recorded = {s.student.id for s in gb.find_assignment(name).submissions}
            except MissingEntry:
                recorded = set()
            for student in sorted(recorded | set(course.students("submitted", m))):
                outcome = load_outcome(course, course.root, m, student)
                out[name, student] = outcome.status if outcome else "not graded"
    return out


def export_grades(
    course: Course, modules: list[str], to: Path, allow_incomplete: bool = False
) -> int:
    """Write `to` (CSV, replaced as a whole) for `modules`; returns the number of students.

    Refuses (IncompleteGrades, nothing written) while a submission has no score, failed or
    never graded, unless `allow_incomplete`: then those rows say so in their status column
    and leave the score empty."""
    with course_gradebook(course) as gb:
        missing = [n for n in modules if n not in {a.name for a in gb.assignments}]
        if missing:
            raise CourseError(
                f"the gradebook has no assignment {', '.join(missing)}: run "
                f"`tito nbgrader generate {missing[0]}` and autograde first"
            )
    statuses = outcome_statuses(course, modules)
    incomplete = {k: v for k, v in statuses.items() if v not in (*SCORED, NOT_SUBMITTED)}
    if incomplete and not allow_incomplete:
        named = ", ".join(
            f"{student} ({module}: {status})"
            for (module, student), status in sorted(incomplete.items())
        )
        first = sorted(incomplete)[0][0]
        raise IncompleteGrades(
            f"not exported: {len(incomplete)} submission(s) have no score yet: {named}. Grade "
            f"them with `tito nbgrader autograde {first} --retry-failed` (or autograde them), or "
            "pass --allow-incomplete to export them marked, with an empty score"
        )
    with course_gradebook(course) as gb:
        plugin = LmsExportPlugin(to=str(to), assignment=modules)
        plugin.statuses = statuses
        _, rows = plugin.rows(gb)
        plugin.export(gb)
    return len(rows)
