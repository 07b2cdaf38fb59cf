"""A failed generation leaves the previous student version in place."""

import pytest

from tests.conftest import make_course_copy
from tito.course.generate import generate
from tito.course.settings import Course, CourseError


def test_failed_generate_keeps_the_previous_student_version(tmp_path):
    course = Course(make_course_copy(tmp_path / "repo"))
    m = course.module("01")
    out = generate(course, m)
    before = out.read_bytes()
    # Two cells with the same grade id make nbgrader refuse the notebook.
    src = m.source.read_text()
    cell = (
        '# %% nbgrader={"grade": true, "grade_id": "same", "locked": true, "points": 1, '
        '"schema_version": 3, "solution": false, "task": false}\nassert True\n\n'
    )
    m.source.write_text(src + "\n" + cell + cell)
    with pytest.raises(CourseError, match="nbgrader generate_assignment 01_tensor failed"):
        generate(course, m)
    assert out.read_bytes() == before
