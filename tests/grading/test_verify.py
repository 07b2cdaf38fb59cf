"""Grades that carry their own proof: digests in every outcome, and `tito nbgrader verify`.

Two example submissions are graded once in a course copy. Then: every outcome holds the digests
of what graded it and `verify` finds them current, and a sample graded again is identical; after
a test is changed in the instructor notebook (and one submitted file is touched), `verify` names
both outcomes with what changed, and the sample graded again shows the flipped verdict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests import submissions as sub
from tests.conftest import REPO, make_course_copy
from tito.course.generate import generate
from tito.course.grading.host import autograde, grading_digests
from tito.course.grading.outcome import load_outcome
from tito.course.grading.verify import sample
from tito.course.settings import Course

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "examples" / "submissions"
TITO = Path(sys.executable).parent / "tito"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_course_copy(
        tmp_path_factory.mktemp("verify") / "course",
        cell_timeout_seconds=15,
        memory_limit_mb=2500,
        submission_timeout_seconds=400,
    )
    course = Course(root)
    m = course.module("06")
    generate(course, m)
    for student in ("alice", "carol"):
        path = course.submission_notebook(m, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / f"{student}.ipynb", path)
    outcomes = autograde(course, m, ["alice", "carol"], workers=2)
    assert [o.status for o in outcomes] == ["graded", "graded"]
    return course, m


def _verify(course, *args):
    return subprocess.run(
        [str(TITO), "nbgrader", "verify", "06", *args],
        cwd=course.root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "300"},
    )


def test_every_outcome_holds_the_digests_of_what_graded_it_and_verify_finds_them_current(graded):
    course, m = graded
    now = grading_digests(course, m)
    for student in ("alice", "carol"):
        digests = load_outcome(course, course.root, m, student).digests
        assert sorted(digests) == ["config", "grader", "instructor", "package", "submission"]
        assert {k: digests[k] for k in now} == now
        assert len(digests["submission"]) == 64
    assert sample(["carol", "alice"], 1, seed=3) == [
        "alice"
    ]  # the sample the command below grades again
    proc = _verify(course, "--sample", "1", "--seed", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "2 of 2 outcome(s) graded with what grades 06_optimizers now",
        "alice: identical",
    ]


def test_after_a_test_changes_verify_names_the_outcomes_it_touches_and_the_cells_that_flip(graded):
    course, m = graded
    path = course.source_notebook(m)
    changed = sub.set_source(
        nbformat.read(path, as_version=4),
        "gd_step_values",
        '"""gradient_descent_step subtracts lr * grad."""\nassert False, "a stricter test"\n',
    )
    nbformat.write(changed, path)
    touched = course.submission_notebook(m, "carol")
    touched.write_bytes(touched.read_bytes() + b"\n")

    proc = _verify(course, "--sample", "1", "--seed", "3")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        "alice" in line
        and "the instructor notebook (tests, hidden tests)" in line
        and "submitted file" not in line
        for line in lines
    ), proc.stdout
    assert any(
        "carol" in line
        and "the instructor notebook (tests, hidden tests); the submitted file" in line
        for line in lines
    ), proc.stdout
    assert lines[-2:] == [
        "0 of 2 outcome(s) graded with what grades 06_optimizers now",
        "alice: gd_step_values: judge passed -> failed, kernel 2 -> 2",
    ]
    # Nothing recorded changed: the outcome and its digests are the first grading's.
    assert (
        load_outcome(course, course.root, m, "alice").digests["instructor"]
        != grading_digests(course, m)["instructor"]
    )
