"""A failed generation leaves the previous student version in place; a new gradebook is stamped
as nbgrader stamps it."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.slow  # nbgrader's reading starts a Python process
def test_a_new_gradebook_is_stamped_with_the_revision_nbgrader_reads_with_alembic(
    tmp_path, monkeypatch
):
    """tito reads the schema's revision in process (no `alembic` command on PATH here);
    nbgrader's own reading runs `alembic`."""
    course = Course(make_course_copy(tmp_path / "repo"))
    with monkeypatch.context() as without_alembic:
        without_alembic.setenv("PATH", "/usr/bin:/bin")
        generate(course, course.module("01"))
    with sqlite3.connect(course.gradebook()) as db:
        stamped = db.execute("SELECT version_num FROM alembic_version").fetchall()
    venv = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    nbgrader_reads = subprocess.run(
        [sys.executable, "-c", "import nbgrader.api; print(nbgrader.api.get_alembic_version())"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **venv},
    ).stdout.strip()
    assert stamped == [(nbgrader_reads,)] and len(nbgrader_reads) == 12
