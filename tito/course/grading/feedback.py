"""The feedback page a student reads: what each graded cell checks, what it scored, and why.

nbgrader's GenerateFeedback renders it with this course's template (templates/feedback):
- a summary first: every graded cell by id and behaviour (the first line of its docstring),
  its score, "pending" for a written answer nobody has graded yet, and the judge's message
  for every lost point (from the outcome, `grading.json`, not from the kernel's output);
- the notebook after it, each graded cell headed the same way, with the grader's comments;
- no script and no network: mathematics is rendered to MathML here (browsers draw it
  natively), markdown is sanitised (a submission's raw HTML is shown as text), and the
  template loads no MathJax, jQuery or require.js from a CDN.
Only `tito nbgrader feedback` uses this page; formgrader keeps nbgrader's own templates.
"""
from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import bleach
from latex2mathml.converter import convert as latex_to_mathml
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict

from ..nbgrader_setup import api, check, nbgrader_config, quiet
from ..settings import Course, Module
from .host import load_outcome

TEMPLATES = Path(__file__).parent / "templates"

# What markdown may render to: nbconvert's markdown output, without scripts, styles, forms or
# event attributes. Anything else a submission writes is escaped and shown as text.
MARKDOWN_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5",
                 "h6", "hr", "i", "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table", "tbody",
                 "td", "th", "thead", "tr", "ul"}
MARKDOWN_ATTRIBUTES = {"a": ["href", "title"], "img": ["src", "alt", "title"], "*": ["class", "id"],
                       "td": ["align"], "th": ["align"]}
# nbconvert's markdown keeps TeX between dollars as text for MathJax; display math first.
_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", re.S)
_CODE = re.compile(r"(<pre.*?</pre>|<code.*?</code>)", re.S)


def sanitize(rendered: str) -> str:
    """Rendered markdown with only harmless tags; links and images to http(s) and data: only."""
    return bleach.clean(rendered, tags=MARKDOWN_TAGS, attributes=MARKDOWN_ATTRIBUTES,
                        protocols={"http", "https", "mailto", "data"}, strip_comments=True)


def mathml(rendered: str) -> str:
    """`$…$` and `$$…$$` in rendered HTML (outside code) replaced by MathML."""

    def one(m: re.Match) -> str:
        display, tex = (True, m.group(1)) if m.group(1) is not None else (False, m.group(2))
        try:
            return latex_to_mathml(html.unescape(tex), display="block" if display else "inline")
        except Exception:  # TeX this converter cannot read stays as the author wrote it
            return m.group(0)

    return "".join(part if _CODE.fullmatch(part) else _MATH.sub(one, part) for part in _CODE.split(rendered))


def behaviour(source: str) -> str:
    """What a graded cell checks: the first line of its docstring."""
    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        doc = ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class FeedbackSummary(NbGraderPreprocessor):
    """Puts each graded cell's row of the summary into `resources["tito_feedback"]` (after GetGrades)."""

    # student -> {"reason": str, "messages": {grade_id: the judge's message for a lost point}}
    outcomes = Dict(config=True)

    def preprocess(self, nb, resources):
        ids = resources["nbgrader"]
        outcome = self.outcomes.get(ids["student"], {"reason": "", "messages": {}})
        cells, rows = {}, []
        with Gradebook(ids["db_url"]) as gb:
            for cell in nb.cells:
                md = cell.metadata.get("nbgrader", {})
                if not md.get("grade_id"):
                    continue
                gid, comment = md["grade_id"], (md.get("comment") or "").strip()
                row = {"grade_id": gid, "comment": comment, "graded": bool(md.get("grade"))}
                if row["graded"]:
                    grade = gb.find_grade(gid, ids["notebook"], ids["assignment"], ids["student"])
                    written = cell.cell_type == "markdown"
                    pending = grade.needs_manual_grade and grade.manual_score is None
                    row.update(written=written, points=grade.max_score, score=grade.score, pending=pending,
                               behaviour="written answer, graded by hand" if written else behaviour(cell.source),
                               score_text=(f"pending / {grade.max_score:g}" if pending
                                           else f"{grade.score:g} / {grade.max_score:g}"),
                               message=outcome["messages"].get(gid, "") if grade.score < grade.max_score else "")
                    rows.append(row)
                cells[gid] = row
        resources["tito_feedback"] = {
            "cells": cells, "rows": rows, "reason": outcome["reason"],
            "pending": sum(r["pending"] for r in rows),
            "automatic": sum(r["score"] for r in rows if not r["written"]),
            "automatic_max": sum(r["points"] for r in rows if not r["written"]),
        }
        return nb, resources


def _outcomes(course: Course, root: Path, m: Module, students: list[str]) -> dict:
    out = {}
    for student in students:
        o = load_outcome(course, root, m, student)
        if o is not None:
            out[student] = {"reason": o.reason if o.status != "graded" else "",
                            "messages": {c.grade_id: c.message for c in o.cells if c.score < c.max_score}}
    return out


def generate(course: Course, m: Module, course_root: Path | None = None, student: str | None = None) -> list[Path]:
    """Write feedback/<student>/<module>/<notebook>.html for every autograded submission (or one)."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    root = Path(course_root or course.root)
    config = nbgrader_config(course, root)
    autograded = root / config.CourseDirectory.autograded_directory
    students = [student] if student else sorted(p.parent.name for p in autograded.glob(f"*/{m.name}"))
    config.GenerateFeedback.preprocessors = [GetGrades, FeedbackSummary, CSSHTMLHeaderPreprocessor]
    config.FeedbackSummary.outcomes = _outcomes(course, root, m, students)
    # nbgrader's API always asks for the template named "feedback": this course's is found first.
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.HTMLExporter.filters = {"sanitize": "tito.course.grading.feedback.sanitize",
                                   "mathml": "tito.course.grading.feedback.mathml"}
    with quiet():
        check(api(course, root, config).generate_feedback(m.name, student, force=True), f"generate_feedback {m.name}")
    folder = root / config.CourseDirectory.feedback_directory
    return sorted(folder.glob(f"{student or '*'}/{m.name}/*.html"))
