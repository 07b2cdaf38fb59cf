"""Every module through the real pipeline: the reference scores full marks, the student version
0."""

from __future__ import annotations

import nbformat
import pytest

from tests.conftest import make_course_copy
from tito.course.generate import generate
from tito.course.grading.host import autograde
from tito.course.notebooks import filled, is_grade_cell
from tito.course.settings import Course

pytestmark = pytest.mark.slow
EXPECTED_POINTS = {"01_tensor": 0.0, "06_optimizers": 92.0}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    c = Course(make_course_copy(tmp_path_factory.mktemp("every"), cell_timeout_seconds=60))
    for m in c.modules:
        generate(c, m)
    return c


@pytest.mark.parametrize("name", sorted(EXPECTED_POINTS))
def test_reference_scores_full_and_untouched_scores_zero(course, name):
    m = course.module(name)
    release = nbformat.read(course.release_notebook(m), as_version=4)
    instructor = nbformat.read(course.source_notebook(m), as_version=4)
    for student, nb in [("reference", filled(release, instructor)), ("untouched", release)]:
        path = course.root / "submitted" / student / m.name / f"{m.notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    outcomes = {o.student: o for o in autograde(course, m, ["reference", "untouched"], workers=2)}
    full = EXPECTED_POINTS[name]
    assert (
        sum(float(c.metadata["nbgrader"]["points"]) for c in instructor.cells if is_grade_cell(c))
        == full
    )
    assert (
        outcomes["reference"].status,
        outcomes["reference"].score,
        outcomes["reference"].max_score,
    ) == ("graded", full, full)
    assert (outcomes["untouched"].status, outcomes["untouched"].score) == ("graded", 0.0)
    # The judge agreed with the kernel on every cell of the reference.
    assert all(c.judge is True and c.kernel == c.max_score for c in outcomes["reference"].cells)
