"""Reading a submission and recording an outcome, decided without any job: the cases a batch
would only carry along (an older notebook format, an outcome path taken by a folder)."""

from __future__ import annotations

import json

import nbformat
import pytest

from tests.grading.batch_checks import notebooks
from tito.course.grading.host import Outcome, prepare, read_submission, record


@pytest.mark.slow  # the graded course: nbgrader generates the student version
def test_a_notebook_from_an_older_nbformat_minor_version_is_read_and_prepared_like_any(
    graded_course,
):
    course = graded_course
    m, release, instructor, complete = notebooks(course)
    old = nbformat.from_dict(json.loads(nbformat.writes(complete)))
    old.nbformat_minor = 4
    for c in old.cells:
        c.pop("id", None)
    path = course.submission_notebook(m, "old_minor_version")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old), encoding="utf-8")
    submitted, received = read_submission(course, course.root, m, "old_minor_version", instructor)
    assert len(received) == 64 and [c.source for c in submitted.cells] == [
        c.source for c in complete.cells
    ]
    prepared, notes = prepare(course, course.root, m, "old_minor_version", submitted, instructor)
    grade_ids = [
        c.metadata["nbgrader"]["grade_id"] for c in prepared.cells if "nbgrader" in c.metadata
    ]
    assert notes == [] and grade_ids == [
        c.metadata["nbgrader"]["grade_id"] for c in complete.cells if "nbgrader" in c.metadata
    ]


@pytest.mark.slow
def test_an_outcome_path_that_is_a_folder_is_moved_aside_not_deleted(graded_course):
    course = graded_course
    m = course.module("06")
    out = course.student_folder("autograded", m, "outcome_folder")
    (out / "grading.json" / "kept.txt").mkdir(parents=True)
    record(course, course.root, m, Outcome("outcome_folder", m.name, "invalid", "not a notebook"))
    assert json.loads((out / "grading.json").read_text())["status"] == "invalid"
    assert [p.name for p in out.glob("grading.json.folder-*/kept.txt")] == ["kept.txt"]
