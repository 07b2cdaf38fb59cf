"""Scores per student and per graded cell, from the gradebook, with each outcome's status."""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..notebooks import is_grade_cell
from ..settings import Course, CourseError, Module
from . import scores
from .outcome import load_outcome

# The statuses whose scores stand: graded, and invalid (the student's own doing, scored 0).
# A failed or never graded submission has no score.
SCORED = ("graded", "invalid")


def written_answers(notebook) -> list[str]:
    """Grade ids of the answers graded by hand (nbgrader markdown cells with points)."""
    return [
        c.metadata["nbgrader"]["grade_id"]
        for c in notebook.cells
        if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")
    ]


def score_rows(
    course: Course, m: Module, course_root: Path | None = None
) -> tuple[list[str], list[dict]]:
    """(graded cell ids, one row per submitted student).

    A row holds the score of every automatically graded cell and of every written answer
    ("pending" while it waits for a person in formgrader; an answer left as the stub scores 0),
    the automatic and manual sums, how many answers are pending, the total and the status:
    the scores from the gradebook (scores.py), the status and its reason from the outcome.
    """
    root = course.state_root(course_root)
    ref_path = course.source_notebook(m, root)
    if not ref_path.is_file():
        raise CourseError(
            f"no instructor notebook at {ref_path}: run `tito nbgrader generate {m.name}` first"
        )
    ref = nbformat.read(ref_path, as_version=4)
    cells = [c.metadata["nbgrader"]["grade_id"] for c in ref.cells if is_grade_cell(c)]
    written = written_answers(ref)
    students = course.students("submitted", m, root)
    recorded = scores.read(course, m, students, root)
    rows = []
    for student in students:
        outcome = load_outcome(course, root, m, student)
        s = recorded.get(student, scores.Scores(student))
        status = outcome.status if outcome else "not graded"
        row = {
            "student": student,
            "status": status,
            "reason": outcome.reason if outcome else "",
            # Cells scored by hand against an earlier outcome, until saved again in formgrader.
            "check": " ".join(sorted(s.to_check)),
        }
        # A cell without a score (a written answer waiting for a person, or every cell of a
        # failed outcome) is "pending", never 0.
        row.update(
            {
                c: "pending"
                if c in s.points and s.points[c] is None
                else float(s.points.get(c) or 0.0)
                for c in [*cells, *written]
            }
        )
        row.update(automatic=s.automatic, manual=s.manual, pending=s.pending, total=s.total)
        if status not in SCORED:  # failed, or never graded: no total to show, not 0
            row.update(automatic=None, total=None)
        rows.append(row)
    return [*cells, *written], rows
