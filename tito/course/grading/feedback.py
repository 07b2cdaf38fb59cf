"""The feedback page a student reads: what each graded cell checks, what it scored, and why.

nbgrader's GenerateFeedback renders it with this course's template (templates/feedback):
- a summary first: every graded cell by id and behaviour (the first line of its docstring),
  its score from the gradebook (scores.py), "pending" for a written answer nobody has graded
  yet, and the judge's message for every lost point (from the outcome, `grading.json`, not
  from the kernel's output);
- the notebook after it, each graded cell headed the same way, with the grader's comments;
- no script and no network: the notebook is the host's copy for display (display.py: markdown
  already sanitised HTML, mathematics MathML, hidden tests one line), sanitised once more here
  after the last conversion, and the template loads no MathJax, jQuery or require.js.
Only `tito nbgrader feedback` uses this page; formgrader keeps nbgrader's own templates.
"""

from __future__ import annotations

import ast
import html
from pathlib import Path

import nbformat
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.api import Gradebook
from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor
from traitlets import Dict

from ..nbgrader_setup import api, check, nbgrader_config, quiet
from ..notebooks import write_if_changed
from ..settings import Course, Module
from . import diagnosis, scores
from .outcome import load_outcome

TEMPLATES = Path(__file__).parent / "templates"


def behaviour(source: str) -> str:
    """What a graded cell checks: the first line of its docstring."""
    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        doc = ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class FeedbackSummary(NbGraderPreprocessor):
    """Puts each graded cell's row of the summary into `resources["tito_feedback"]` (after
    GetGrades)."""

    # student -> {"reason": str, "messages": {grade_id: the judge's message for a lost point}}
    outcomes = Dict(config=True)

    def preprocess(self, nb, resources):
        ids = resources["nbgrader"]
        outcome = self.outcomes.get(ids["student"], {"reason": "", "messages": {}, "diagnosis": []})
        cells, rows = {}, []
        with Gradebook(ids["db_url"]) as gb:
            recorded = scores.from_gradebook(
                gb, ids["assignment"], ids["notebook"], ids["student"]
            ) or scores.Scores(ids["student"])
        for cell in nb.cells:
            md = cell.metadata.get("nbgrader", {})
            if not md.get("grade_id"):
                continue
            gid, comment = md["grade_id"], (md.get("comment") or "").strip()
            row = {"grade_id": gid, "comment": comment, "graded": bool(md.get("grade"))}
            if row["graded"]:
                points, score = recorded.max_points.get(gid, 0.0), recorded.points.get(gid, 0.0)
                written = cell.cell_type == "markdown"
                row.update(
                    written=written,
                    points=points,
                    score=score or 0.0,
                    pending=score is None,
                    behaviour="written answer, graded by hand"
                    if written
                    else behaviour(cell.source),
                    score_text=f"pending / {points:g}"
                    if score is None
                    else f"{score:g} / {points:g}",
                    message=outcome["messages"].get(gid, "") if (score or 0.0) < points else "",
                )
                rows.append(row)
            cells[gid] = row
        resources["tito_feedback"] = {
            "cells": cells,
            "rows": rows,
            "reason": outcome["reason"],
            "diagnosis": outcome.get("diagnosis", []),
            "pending": sum(r["pending"] for r in rows),
            "automatic": sum(r["score"] for r in rows if not r["written"]),
            "automatic_max": sum(r["points"] for r in rows if not r["written"]),
        }
        return nb, resources


def _outcomes(course: Course, root: Path, m: Module, students: list[str]) -> dict:
    out = {}
    said = _diagnosis_sentences(course, root, m) if students else None
    for student in students:
        o = load_outcome(course, root, m, student)
        if o is not None:
            out[student] = {
                "reason": what_happened(o) if o.status != "graded" else "",
                "messages": {c.grade_id: c.message for c in o.cells if c.message},
                "diagnosis": said(o.diagnosis) if o.status == "graded" else [],
            }
    return out


def _diagnosis_sentences(course: Course, root: Path, m: Module):
    """A function from an outcome's diagnosis to the sentences the page says of it."""
    if m.mistakes is None:
        return lambda found: []
    catalogue = diagnosis.load(m.mistakes.read_text(encoding="utf-8"))
    names = diagnosis.region_functions(nbformat.read(course.source_notebook(m, root), as_version=4))
    return lambda found: diagnosis.sentences(found, catalogue, names)


def generate(
    course: Course, m: Module, course_root: Path | None = None, student: str | None = None
) -> list[Path]:
    """Write feedback/<student>/<module>/<notebook>.html for every autograded submission (or
    one)."""
    root = course.state_root(course_root)
    config = nbgrader_config(course, root)
    students = [student] if student else course.students("autograded", m, root)
    config.GenerateFeedback.preprocessors = [GetGrades, FeedbackSummary, CSSHTMLHeaderPreprocessor]
    config.FeedbackSummary.outcomes = _outcomes(course, root, m, students)
    # nbgrader's API always asks for the template named "feedback": this course's is found first.
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.HTMLExporter.filters = {
        "sanitize": "tito.course.grading.display.sanitize",
        "mathml": "tito.course.grading.display.mathml",
    }
    with_notebook = [
        s
        for s in students
        if (course.student_folder("autograded", m, s, root) / f"{m.notebook}.ipynb").is_file()
    ]
    if with_notebook:
        with quiet():
            check(
                api(course, root, config).generate_feedback(m.name, student, force=True),
                f"generate_feedback {m.name}",
            )
    not_graded = sorted(
        set(students) - set(with_notebook)
    )  # invalid, or failed before its notebook was kept
    recorded = scores.read(course, m, not_graded, root)
    for s in not_graded:
        outcome = load_outcome(course, root, m, s)
        if outcome is not None:
            page = course.student_folder("feedback", m, s, root) / f"{m.notebook}.html"
            write_if_changed(page, not_graded_page(outcome, recorded.get(s)).encode("utf-8"))
    return sorted(
        course.student_folder("feedback", m, s, root) / f"{m.notebook}.html"
        for s in students
        if (course.student_folder("feedback", m, s, root) / f"{m.notebook}.html").is_file()
    )


NOT_GRADED = {
    "invalid": "Your submission could not be graded as it is: {reason}. "
    "Check that the file you hand in is "
    "this module's notebook and opens in Jupyter, "
    "then hand it in again (ask your instructor if the "
    "deadline has passed).",
    "failed": "The grader could not finish grading your submission: {reason}. "
    "Your instructor will look at "
    "it and grade it again; if the reason points at your code (it stopped the kernel, or ran too "
    "long), fix that first and hand it in again.",
}


def what_happened(outcome) -> str:
    """For a submission that was not graded: what happened and what to do."""
    return NOT_GRADED.get(outcome.status, "{reason}").format(reason=outcome.reason.rstrip("."))


def not_graded_page(outcome, recorded: scores.Scores | None) -> str:
    """The feedback for a submission that has no graded notebook: what happened, what to do, and
    the automatic points the gradebook holds for it."""
    e = html.escape
    what = what_happened(outcome)
    got = recorded.automatic if recorded else 0.0
    most = sum(c.max_score for c in outcome.cells)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(outcome.module)}: not graded</title>"
        "<style>body { font-family: sans-serif; max-width: 48em; margin: 2em auto; } "
        ".reason { color: #a40000; }</style></head>\n"
        f'<body><main id="summary"><h1>{e(outcome.module)}: not graded</h1>\n'
        f'<p class="reason">{e(what)}</p>\n'
        f"<p>Automatic tests: {got:g} / {most:g} until it is graded.</p></main>"
        "</body></html>\n"
    )
