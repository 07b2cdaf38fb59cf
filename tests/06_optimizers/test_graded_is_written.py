"""What the hidden tests check is written where the student reads it.

The student version (release/) holds the text, the docstrings and the visible tests; the
hidden tests exist only in the instructor's source. Every option a hidden test sets must be
named in the student's text, and every boundary value it uses written out as `name=value`
(so `norm_type=3` or `T_max=1` is never a surprise).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import nbformat
import pytest

from tito.course.settings import Course

REPO = Path(__file__).resolve().parents[2]
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
# Options whose values are boundaries of the behaviour, so each value must be written out.
BOUNDARY_OPTIONS = {
    "norm_type",
    "max_norm",
    "warmup_steps",
    "total_steps",
    "T_max",
    "step_size",
    "gamma",
    "eps",
    "betas",
}
NUMBER = r"(inf|math\.inf|[-+]?\d[\d_]*(?:\.\d*)?(?:e[-+]?\d+)?)"


def _value(text: str) -> float:
    return math.inf if text in ("inf", "math.inf") else float(text.replace("_", ""))


def _options(node, out: dict) -> None:
    """Option names and constant values set in a hidden block: keyword arguments and str-keyed
    dicts."""
    for n in ast.walk(node):
        pairs = []
        if isinstance(n, ast.Call):
            pairs = [(k.arg, k.value) for k in n.keywords if k.arg]
        elif isinstance(n, ast.Dict):
            pairs = [
                (k.value, v)
                for k, v in zip(n.keys, n.values)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            ]
        for name, value in pairs:
            if name == "betas" and isinstance(value, (ast.Tuple, ast.List)):
                value = value.elts[0]  # beta1 is the boundary (0); beta2 stays near 1
            try:
                v = ast.literal_eval(value)
            except ValueError:
                v = math.inf if ast.unparse(value) == "math.inf" else None
            if isinstance(v, str) and v == "inf":
                v = math.inf
            out.setdefault(name, set())
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[name].add(float(v))


@pytest.fixture(scope="module")
def texts():
    course = Course(REPO)
    m = course.module("06")
    source = m.source.read_text(encoding="utf-8")
    student = "\n".join(
        c.source for c in nbformat.read(course.release_notebook(m), as_version=4).cells
    )
    hidden: dict = {}
    for block in HIDDEN.findall(source):
        _options(ast.parse(block), hidden)
    return hidden, student


def test_hidden_tests_exist_and_set_options(texts):
    hidden, _ = texts
    assert {
        "norm_type",
        "max_norm",
        "momentum",
        "nesterov",
        "dampening",
        "weight_decay",
        "T_max",
    } <= set(hidden)


def test_every_option_a_hidden_test_sets_is_named_in_the_student_text(texts):
    hidden, student = texts
    assert [name for name in hidden if not re.search(rf"\b{re.escape(name)}\b", student)] == []


def test_every_boundary_value_a_hidden_test_uses_is_written_out(texts):
    hidden, student = texts
    missing = []
    for name in sorted(BOUNDARY_OPTIONS & set(hidden)):
        pattern = (
            rf"\b{name}\s*=\s*\(?{NUMBER}" if name != "betas" else rf"\bbetas\s*=\s*\(\s*{NUMBER}"
        )
        written = {_value(v) for v in re.findall(pattern, student)}
        missing += [f"{name}={v:g}" for v in sorted(hidden[name] - written)]
    assert missing == [], f"hidden tests use values the student text never states: {missing}"


def test_every_cell_with_hidden_tests_says_so_in_its_docstring():
    """`tito module complete` lists these cells from their docstrings (`Hidden: ...`)."""
    from tito.course.student import has_hidden_tests

    course = Course(REPO)
    m = course.module("06")
    instructor = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nbformat.read(course.source_notebook(m), as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    }
    student = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nbformat.read(course.release_notebook(m), as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    }
    with_hidden = sorted(g for g, src in instructor.items() if "### BEGIN HIDDEN TESTS" in src)
    assert len(with_hidden) == 6
    assert sorted(g for g, src in student.items() if has_hidden_tests(src)) == with_hidden
