"""One grading job, its two stages side by side or one after the other: the same result."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import nbformat
import pytest

from tests import submissions as sub
from tito.course.examples import with_mistake
from tito.course.grading.display import without_hidden_tests
from tito.course.grading.host import student_package
from tito.course.grading.job import Job, run_in_process
from tito.course.notebooks import dumps
from tito.course.settings import Course

pytestmark = pytest.mark.slow  # two jobs, each with its kernel run and its judge


def _cells(executed: str) -> list[tuple]:
    """What the kernel run returned for each code cell, without its timings."""
    notebook = json.loads(executed)["notebook"]
    return [
        (c["id"], c["execution_count"] is not None, c["outputs"])
        for c in notebook["cells"]
        if c["cell_type"] == "code"
    ]


def test_the_stages_side_by_side_give_what_they_give_one_after_the_other():
    course = Course()
    m = course.module("06")
    instructor = course.source_notebook(m).read_text(encoding="utf-8")
    complete = sub.filled(
        nbformat.read(course.release_notebook(m), as_version=4),
        nbformat.reads(instructor, as_version=4),
    )
    buggy = with_mistake(complete, m, "adam-eps-inside-sqrt")
    job = Job(
        "a_student",
        m.name,
        dumps(without_hidden_tests(buggy)),
        instructor,
        student_package(course),
        course.package.tensor_class,
        asdict(course.grading),
        mistakes=m.mistakes.read_text(encoding="utf-8"),
    )
    apart, together = (run_in_process(replace(job, side_by_side=s)) for s in (False, True))
    for result in (apart, together):
        assert (result.failure, result.execution_note, result.kernel_busy) == ("", "", "")
        assert sorted(result.seconds) == ["judge", "kernel"]
    failed = [v["grade_id"] for v in apart.verdicts if not v["passed"]]
    assert "adam_eps_outside_sqrt" in failed and len(apart.verdicts) == 45
    assert apart.diagnosis["adam_step_impl"] == ["adam-eps-inside-sqrt"]
    assert together.verdicts == apart.verdicts
    assert together.diagnosis == apart.diagnosis
    assert together.cell_errors == apart.cell_errors == []
    assert _cells(together.executed) == _cells(apart.executed)
