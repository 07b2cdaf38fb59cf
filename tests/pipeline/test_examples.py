"""The example submissions a module declares (examples.yaml): a declaration that cannot be built
is refused, naming the file, the example and the problem."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import REPO
from tito.course.examples import build
from tito.course.settings import Course, CourseError


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("- alice", "not a mapping of student names to examples"),
        ("alice: reference", "alice: not a mapping of answers, mistake, cells"),
        ("../alice: {answers: none}", "'../alice' is no student name ([A-Za-z0-9_-]+)"),
        ("alice: {answers: none, points: 3}", "alice: unknown key(s) points"),
        ("alice: {answers: all}", "alice: answers is 'all', not reference or none"),
        ("alice: {answers: none, mistake: adam-typo}", "no known mistake 'adam-typo'"),
        ("alice: {answers: none, mistake: [x]}", "no known mistake ['x']"),
        ("alice: {answers: none, cells: {adam_eps_outside_sqrt: 5}}", "source is no text"),
        ("alice: {answers: none, cells: {no_such_cell: pass}}", "alice: no cell 'no_such_cell'"),
        ("alice: {answers: none, cells: [pass]}", "alice: not a mapping of answers"),
    ],
)
def test_a_declaration_that_cannot_be_built_is_refused_with_its_problem(tmp_path, text, said):
    course = Course(REPO)
    declared = tmp_path / "examples.yaml"
    declared.write_text(text + "\n")
    m = dataclasses.replace(course.module("06"), examples=declared)
    with pytest.raises(CourseError) as e:
        build(course, m)
    assert str(e.value).startswith(f"{declared}: ") and said in str(e.value), str(e.value)
