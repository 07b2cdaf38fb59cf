"""Scores per student and per graded cell, from the gradebook (plus recorded failures)."""
from __future__ import annotations

from pathlib import Path

import nbformat

from ..nbgrader_setup import nbgrader_config, tools_on_path
from ..notebooks import is_grade_cell
from ..settings import Course, CourseError, Module
from .host import load_outcome, submitted_students


def written_answers(notebook) -> list[str]:
    """Grade ids of the answers graded by hand (nbgrader markdown cells with points)."""
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]


def score_rows(course: Course, m: Module, course_root: Path | None = None) -> tuple[list[str], list[dict]]:
    """(graded cell ids, one row per submitted student).

    A row holds the score of every automatically graded cell and of every written answer
    ("pending" while it waits for a person in formgrader; an answer left as the stub scores 0),
    the automatic and manual sums, how many answers are pending, the total and the status.
    """
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(course_root or course.root).resolve()
    cfg = nbgrader_config(course, root).CourseDirectory
    ref_path = root / cfg.source_directory / m.name / f"{m.notebook}.ipynb"
    if not ref_path.is_file():
        raise CourseError(f"no instructor notebook at {ref_path}: run `tito nbgrader generate {m.name}` first")
    tools_on_path()
    ref = nbformat.read(ref_path, as_version=4)
    cells = [c.metadata["nbgrader"]["grade_id"] for c in ref.cells if is_grade_cell(c)]
    written = written_answers(ref)
    rows = []
    with Gradebook(cfg.db_url, course.course_id) as gb:
        for student in submitted_students(course, root, m):
            outcome = load_outcome(course, root, m, student)
            row = {"student": student, "status": outcome.status if outcome else "not graded",
                   "reason": outcome.reason if outcome else ""}
            try:
                nb = gb.find_submission_notebook(m.notebook, m.name, student)
                scores = {g.name: g.score for g in nb.grades if g.cell_type == "code"}
                manual = {g.name: None if g.needs_manual_grade else g.score for g in nb.grades
                          if g.cell_type == "markdown"}
            except MissingEntry:
                scores, manual = {}, {}
            if outcome and outcome.status != "graded":  # the gradebook may hold a partial run
                scores = {c.grade_id: c.score for c in outcome.cells}
            row.update({c: float(scores.get(c) or 0.0) for c in cells})
            row.update({c: "pending" if manual.get(c) is None else float(manual[c]) for c in written})
            row["automatic"] = sum(row[c] for c in cells)
            row["manual"] = sum(row[c] for c in written if row[c] != "pending")
            row["pending"] = sum(row[c] == "pending" for c in written)
            row["total"] = row["automatic"] + row["manual"]
            rows.append(row)
    return [*cells, *written], rows
