"""Grading on a Dask cluster: the address is checked before anything is written.

The cluster itself (a real `dask scheduler` and workers on loopback, one killed mid-batch)
grades the hostile batch in test_hostile_submissions.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tito.course.grading import cluster
from tito.course.grading.host import autograde
from tito.course.settings import CourseError

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).parents[2] / "examples" / "submissions"


def test_an_unreachable_scheduler_is_refused_before_anything_is_written(graded_course, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 1)  # nothing listens: no need to wait 10 s
    course, m = graded_course, graded_course.module("06")
    path = course.root / "submitted" / "unreached" / m.name / f"{m.notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "alice.ipynb", path)
    gradebook = (course.root / "gradebook.db").read_bytes()
    with pytest.raises(
        CourseError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    ):
        autograde(course, m, ["unreached"], scheduler="tcp://127.0.0.1:9")
    assert (course.root / "gradebook.db").read_bytes() == gradebook
    assert not (course.root / "autograded" / "unreached").exists()
