"""Notebooks of the course: percent-format source -> instructor notebook, reproducibly (jupytext
does the parsing); which cells are exported, graded or test support; and a submission built
from the student version by its solution regions (filled in, or one region replaced)."""

from __future__ import annotations

import ast
import copy
import hashlib
import re
import textwrap
from pathlib import Path

import nbformat

# Jupytext bookkeeping that only matters for round-tripping to text; dropping it
# keeps the generated notebooks small and independent of the jupytext version.
_CELL_KEYS_DROPPED = ("lines_to_next_cell", "lines_to_end_of_cell_marker")
# A module source gives a cell its nbgrader role in short: `# %% solution="id"` (code the
# student completes), `# %% test="id" points=2` (a graded test, locked), `# %% locked="id"` (code
# the student reads and keeps), `# %% [markdown] answer="id" points=2` (a written answer).
ROLES = {
    "solution": {"grade": False, "locked": False, "solution": True},
    "test": {"grade": True, "locked": True, "solution": False},
    "locked": {"grade": False, "locked": True, "solution": False},
    "answer": {"grade": True, "locked": False, "solution": True},
}
# nbgrader's markers around what students write (its defaults, which this course keeps).
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# The fingerprints of a module's known mistakes, beside its student version and the student's
# working copy, where the notebook's test-support cell reads them (catalogue.py writes them).
FINGERPRINTS_FILE = "mistakes.json"


def stable_cell_id(cell, seen: set[str]) -> str:
    """nbgrader grade id when there is one, else a hash of the cell; unique in the notebook."""
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    base = grade_id or hashlib.sha1((cell.cell_type + "\0" + cell.source).encode()).hexdigest()[:10]
    cid, n = base, 1
    while cid in seen:
        n += 1
        cid = f"{base}-{n}"
    seen.add(cid)
    return cid


def read_source(path: Path) -> nbformat.NotebookNode:
    """Read a percent-format module source as a notebook with stable cell ids and no outputs."""
    # a quarter of a second to import: only the commands that build notebooks pay it
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    seen: set[str] = set()
    for cell in nb.cells:
        for key in _CELL_KEYS_DROPPED:
            cell.metadata.pop(key, None)
        _nbgrader_role(cell, path)
        cell.id = stable_cell_id(cell, seen)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
    }
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def _nbgrader_role(cell, path: Path) -> None:
    """Expand a cell's short role (ROLES) into nbgrader's metadata."""
    roles = [role for role in ROLES if role in cell.metadata]
    if not roles:
        return
    grade_id = cell.metadata[roles[0]]
    if len(roles) > 1 or "nbgrader" in cell.metadata or not isinstance(grade_id, str):
        raise ValueError(f"{path}: cell {grade_id!r} has more than one nbgrader role")
    if ("points" in cell.metadata) != ROLES[roles[0]]["grade"]:
        raise ValueError(f"{path}: cell {grade_id!r}: points go with test= and answer= only")
    md = {**ROLES[roles[0]], "grade_id": cell.metadata.pop(roles[0])}
    if "points" in cell.metadata:
        md["points"] = cell.metadata.pop("points")
    cell.metadata["nbgrader"] = {**md, "schema_version": 3, "task": False}


def dumps(nb: nbformat.NotebookNode) -> str:
    """Canonical JSON text of a notebook (what is committed)."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def write_if_changed(path: Path, content: str | bytes) -> bool:
    """Write `content` atomically (never a half-written file); return True when the file changed."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def is_export_cell(cell) -> bool:
    """A library cell that nbdev exports into the package."""
    return cell.cell_type == "code" and cell.source.lstrip().startswith("#| export")


def part_heading(cell) -> str:
    """ "Part 3: Adam and AdamW" for a markdown cell that starts "## Part 3: Adam and AdamW (...)";
    else ""."""
    if cell.cell_type == "markdown" and cell.source.startswith("## Part "):
        return cell.source.splitlines()[0][3:].split(" (")[0]
    return ""


def is_test_support_cell(cell) -> bool:
    """Instructor code the graded cells share (check helpers, data, a training loop): a locked code
    cell that is neither graded, nor a solution, nor exported. The judge runs its own copy of every
    such cell before each graded cell."""
    md = cell.metadata.get("nbgrader", {})
    return (
        cell.cell_type == "code"
        and bool(md.get("locked"))
        and not md.get("grade")
        and not md.get("solution")
        and not is_export_cell(cell)
    )


def student_process_functions(cell) -> list[str]:
    """The functions a test-support cell lets the judge call in the student's process instead of
    its own (`# %% locked="id" in_student_process="name other"`): loops that call the student's
    code many times, whose results trusted code then checks. The judge runs the cell on both
    sides."""
    names = cell.metadata.get("in_student_process", "")
    return names.split() if isinstance(names, str) and is_test_support_cell(cell) else []


def is_grade_cell(cell) -> bool:
    """An automatically graded test cell (nbgrader grade cell that is not a solution)."""
    md = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(md.get("grade")) and not md.get("solution")


def student_functions(cells) -> list[str]:
    """Names of the top-level functions whose bodies hold a solution region."""
    names = []
    for cell in cells:
        if SOLUTION_BEGIN not in cell.source:
            continue
        lines = cell.source.splitlines()
        marks = [i + 1 for i, line in enumerate(lines) if line.strip() == SOLUTION_BEGIN]
        tree = ast.parse(cell.source)
        covered = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                inside = [m for m in marks if node.lineno < m <= node.end_lineno]
                if inside:
                    names.append(node.name)
                    covered.update(inside)
        if set(marks) - covered:
            raise ValueError(
                "a solution region must sit inside a top-level function so that it can be "
                f"judged in isolation; found one outside in cell {cell.get('id')!r}"
            )
    return names


# -- solution regions: a submission built from the student version -------------------------


def by_grade_id(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def filled(
    release: nbformat.NotebookNode, instructor: nbformat.NotebookNode
) -> nbformat.NotebookNode:
    """The student version with every solution cell written as the reference solution."""
    nb = copy.deepcopy(release)
    ref = by_grade_id(instructor)
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
    cell = by_grade_id(nb)[grade_id]
    lines = cell.source.split("\n")
    begins = [i for i, line in enumerate(lines) if line.strip() == SOLUTION_BEGIN]
    if index >= len(begins):
        raise KeyError(f"cell {grade_id} has {len(begins)} solution region(s), not {index + 1}")
    b = begins[index]
    e = next(i for i in range(b + 1, len(lines)) if lines[i].strip() == SOLUTION_END)
    indent = re.match(r"\s*", lines[b]).group(0)
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), indent).split("\n")
    cell.source = "\n".join(lines[: b + 1] + body + lines[e:])
    return nb


def region(nb: nbformat.NotebookNode, grade_id: str, index: int = 0) -> str:
    """The dedented body of a solution region (what a catalogue entry replaces)."""
    lines = by_grade_id(nb)[grade_id].source.split("\n")
    b = [i for i, line in enumerate(lines) if line.strip() == SOLUTION_BEGIN][index]
    e = next(i for i in range(b + 1, len(lines)) if lines[i].strip() == SOLUTION_END)
    return textwrap.dedent("\n".join(lines[b + 1 : e]))
