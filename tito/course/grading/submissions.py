"""Build submissions from the student version: filled in, with one region replaced, or tampered
with.

Used for the bundled examples, the bug catalogue and the hostile-submission tests, so every
one of them is an ordinary student notebook derived from release/ by the same few edits.
"""

from __future__ import annotations

import copy
import re
import textwrap

import nbformat

from ..notebooks import SOLUTION_BEGIN as BEGIN
from ..notebooks import SOLUTION_END as END


def _by_grade_id(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def filled(
    release: nbformat.NotebookNode, instructor: nbformat.NotebookNode
) -> nbformat.NotebookNode:
    """The student version with every solution cell written as the reference solution."""
    nb = copy.deepcopy(release)
    ref = _by_grade_id(instructor)
    for cell in nb.cells:
        md = cell.metadata.get("nbgrader", {})
        if md.get("solution"):
            cell.source = ref[md["grade_id"]].source
    return nb


def replace_region(
    nb: nbformat.NotebookNode, grade_id: str, code: str, index: int = 0
) -> nbformat.NotebookNode:
    """Replace the body of the `index`-th solution region in cell `grade_id` by `code`."""
    nb = copy.deepcopy(nb)
    cell = _by_grade_id(nb)[grade_id]
    lines = cell.source.split("\n")
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    if index >= len(begins):
        raise KeyError(f"cell {grade_id} has {len(begins)} solution region(s), not {index + 1}")
    b = begins[index]
    e = next(i for i in range(b + 1, len(lines)) if lines[i].strip() == END)
    indent = re.match(r"\s*", lines[b]).group(0)
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), indent).split("\n")
    cell.source = "\n".join(lines[: b + 1] + body + lines[e:])
    return nb


def region(nb: nbformat.NotebookNode, grade_id: str, index: int = 0) -> str:
    """The dedented body of a solution region (what a catalogue entry replaces)."""
    lines = _by_grade_id(nb)[grade_id].source.split("\n")
    b = [i for i, line in enumerate(lines) if line.strip() == BEGIN][index]
    e = next(i for i in range(b + 1, len(lines)) if lines[i].strip() == END)
    return textwrap.dedent("\n".join(lines[b + 1 : e]))


def set_source(nb, grade_id: str, source: str):
    nb = copy.deepcopy(nb)
    _by_grade_id(nb)[grade_id].source = source
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
