"""Submissions for the tests: the student version filled in, with one region replaced
(tito.course.notebooks), or tampered with (here), so every case is an ordinary student notebook
derived from release/ by the same few edits."""

from __future__ import annotations

import copy

import nbformat

from tito.course.notebooks import by_grade_id, filled, region, replace_region

__all__ = [
    "filled",
    "insert_code_cell",
    "region",
    "replace_region",
    "set_source",
    "with_duplicate",
    "without_cell",
]


def set_source(nb, grade_id: str, source: str):
    nb = copy.deepcopy(nb)
    by_grade_id(nb)[grade_id].source = source
    return nb


def without_cell(nb, grade_id: str):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


def with_duplicate(nb, grade_id: str, source: str | None = None):
    """Insert a second copy of cell `grade_id` right after it (optionally with other source)."""
    nb = copy.deepcopy(nb)
    i = next(
        i
        for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )
    dup = copy.deepcopy(nb.cells[i])
    dup.id = f"{dup.id}-copy"
    if source is not None:
        dup.source = source
    nb.cells.insert(i + 1, dup)
    return nb


def insert_code_cell(nb, after_grade_id: str | None, source: str):
    """A new, ungraded student cell (e.g. right after the imports, or after a given cell)."""
    nb = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(source)
    cell.id = f"student-{len(nb.cells)}"
    if after_grade_id is None:
        i = next(
            i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "import" in c.source
        )
    else:
        i = next(
            i
            for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id") == after_grade_id
        )
    nb.cells.insert(i + 1, cell)
    return nb
