"""Grades out: one row per student, the shape a learning-management system imports.

An nbgrader export plugin, so `nbgrader export --exporter=tito.course.grading.lms.LmsExportPlugin`
works as well as `tito nbgrader export`. Columns: `student_id`, then for every assignment its
total (automatic + manual, after any late penalty, as nbgrader scores it) and its maximum. A
student without a submission scores 0; written answers nobody has graded yet count 0 and are
counted in `<assignment> pending`, so an import can wait for them.

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


class LmsExportPlugin(ExportPlugin):
    """One CSV row per student: id, then total, max and pending written answers per assignment."""

    def rows(self, gradebook: Gradebook) -> tuple[list[str], list[list]]:
        assignments = [
            a for a in gradebook.assignments if not self.assignment or a.name in self.assignment
        ]
        students = [s for s in gradebook.students if not self.student or s.id in self.student]
        header = ["student_id"]
        for a in assignments:
            header += [a.name, f"{a.name} max", f"{a.name} pending"]
        rows = []
        for s in sorted(students, key=lambda s: s.id):
            row = [s.id]
            for a in assignments:
                try:
                    sub = gradebook.find_submission(a.name, s.id)
                except MissingEntry:
                    row += [0.0, a.max_score, 0]
                    continue
                recorded = [
                    scores.from_gradebook(gradebook, a.name, nb.name, s.id) for nb in sub.notebooks
                ]
                total = sum(r.total for r in recorded if r)
                score = max(
                    0.0, total - (sub.late_submission_penalty or 0.0)
                )  # nbgrader's rule for lateness
                row += [score, a.max_score, sum(r.pending for r in recorded if r)]
            rows.append(row)
        return header, rows

    def export(self, gradebook: Gradebook) -> None:
        dest = Path(self.to or "grades.csv")
        header, rows = self.rows(gradebook)
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        with open(
            partial, "w", newline="", encoding="utf-8"
        ) as f:  # complete or absent, never half
            w = spreadsheet_writer(f)
            w.writerow(header)
            w.writerows([[spreadsheet_text(v) for v in row] for row in rows])
        partial.replace(dest)
        self.log.info("Exported %d students to %s", len(rows), dest)


def export_grades(course: Course, modules: list[str], to: Path) -> int:
    """Write `to` (CSV, replaced as a whole) for `modules`; returns the number of students."""
    with course_gradebook(course) as gb:
        missing = [n for n in modules if n not in {a.name for a in gb.assignments}]
        if missing:
            raise CourseError(
                f"the gradebook has no assignment {', '.join(missing)}: run "
                f"`tito nbgrader generate {missing[0]}` and autograde first"
            )
        plugin = LmsExportPlugin(to=str(to), assignment=modules)
        _, rows = plugin.rows(gb)
        plugin.export(gb)
    return len(rows)
