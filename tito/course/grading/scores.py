"""The record of scores: nbgrader's gradebook.

Autograde writes the automatic scores there (host.record) and formgrader the scores a person
enters, including one that overrides an automatic score. Every view reads them here: the
report, the feedback page, the file for the LMS, the table at the end of `autograde`. An Outcome
(grading.json) keeps only what grading alone knows: status, reason, isolation, the judge's
verdicts and messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..nbgrader_setup import gradebook, quiet
from ..settings import Course, Module


@dataclass
class Scores:
    """One student's scores in one notebook, as the gradebook holds them."""

    student: str
    points: dict[str, float | None] = field(
        default_factory=dict
    )  # grade id -> score; None: waits for a person
    max_points: dict[str, float] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)  # the answers graded by hand
    # Scored by hand against an earlier outcome, the outcome changed since (host.record), and
    # not saved again in formgrader: the cells formgrader flags.
    to_check: set[str] = field(default_factory=set)

    @property
    def automatic(self) -> float:
        return sum(p or 0.0 for g, p in self.points.items() if g not in self.written)

    @property
    def manual(self) -> float:
        return sum(p or 0.0 for g, p in self.points.items() if g in self.written)

    @property
    def pending(self) -> int:
        return sum(p is None for p in self.points.values())

    @property
    def total(self) -> float:
        return self.automatic + self.manual

    @property
    def max_total(self) -> float:
        return sum(self.max_points.values())


def from_gradebook(gb, assignment: str, notebook: str, student: str) -> Scores | None:
    """`student`'s scores in one notebook of an assignment (a module), from an open nbgrader
    Gradebook; None when the gradebook has no such submission."""
    # nbgrader: a second to import, paid only by the commands that use it
    from nbgrader.api import MissingEntry

    try:
        nb = gb.find_submission_notebook(notebook, assignment, student)
    except MissingEntry:
        return None
    out = Scores(student)
    for g in nb.grades:
        # nbgrader's own rule: a score entered by hand wins over the automatic one.
        waiting = g.manual_score is None and g.needs_manual_grade
        out.points[g.name] = (
            None
            if waiting
            else float(g.manual_score if g.manual_score is not None else g.auto_score or 0.0)
        )
        out.max_points[g.name] = float(g.max_score)
        if g.manual_score is not None and g.needs_manual_grade:
            out.to_check.add(g.name)
        if g.cell_type == "markdown":
            out.written.add(g.name)
    return out


def read(
    course: Course, m: Module, students: list[str], course_root: Path | None = None
) -> dict[str, Scores]:
    """The scores of each of `students` that the gradebook has (the others are left out)."""
    with quiet(), gradebook(course, course_root) as gb:
        found = {s: from_gradebook(gb, m.name, m.notebook, s) for s in students}
    return {s: scores for s, scores in found.items() if scores is not None}
