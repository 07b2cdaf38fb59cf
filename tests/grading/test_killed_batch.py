"""A batch killed with SIGKILL (out of memory, a power cut) loses nothing and shows nothing.

`tito nbgrader autograde` grades two submissions one at a time (a complete one and one with a
bug); the test kills its whole process group at a point of the batch, checks that no hidden
test line is under autograded/ (nbgrader's sanitizing steps run in memory: their result, hidden
tests included, is never written), grades again, and compares the gradebook's scores, the
outcomes and the file for the LMS with those of a batch that was never killed: identical. The
points are found by watching the course: while the first job runs (its process, forked by the
warm job process, exists), while the first outcome is recorded (its notebook is written, the
gradebook commit follows), in that gradebook commit (a hook the test adds to the batch's Python
kills it when SQLAlchemy commits, before the database does), and between the two submissions
(the first outcome exists). Preparing a submission leaves nothing but its row in the gradebook,
which is there at the first of those points too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.conftest import make_course_copy
from tests.grading.batch_checks import hidden_lines, notebooks
from tito.course.examples import with_mistake
from tito.course.generate import generate
from tito.course.grading import processes, scores
from tito.course.grading.lms import export_grades
from tito.course.grading.outcome import load_outcome
from tito.course.settings import Course

pytestmark = pytest.mark.slow
STUDENTS = ["a_complete", "b_buggy"]  # graded in this order with one worker


def _job_running(course, student, batch):
    """A grading job of this batch is running: the warm job process below it has forked it."""
    jobs = [p for p in processes.tree(batch) if b"tito.course.grading.job" in _cmdline(str(p))]
    return len(jobs) >= 2


def _recording(course, student, batch):
    return (
        course.student_folder("autograded", course.module("06"), student)
        .joinpath("optimizers.ipynb")
        .exists()
    )


def _outcome_written(course, student, batch):
    return (
        course.student_folder("autograded", course.module("06"), student)
        .joinpath("grading.json")
        .exists()
    )


def _never(course, student, batch):  # the batch kills itself (IN_THE_COMMIT)
    return False


# Each point with how often it is looked for: a job runs for seconds (and looking walks /proc);
# the notebook is written a moment before the gradebook commit, so that one is looked for often.
KILL_POINTS = {
    "in_the_job": (_job_running, 0.02),
    "recording": (_recording, 0.0005),
    "in_the_commit": (_never, 0.005),
    "between_submissions": (_outcome_written, 0.005),
}
# Loaded by the batch's Python (sitecustomize on PYTHONPATH): at the first gradebook commit after
# the first student's notebook is written, the batch's process group is killed inside the commit.
IN_THE_COMMIT = """\
import os, signal
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "commit")
def _kill_in_the_commit(connection):
    if Path(os.environ["KILL_IN_THE_COMMIT_AFTER"]).exists():
        os.killpg(0, signal.SIGKILL)
"""


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A generated course with the two submissions handed in, nothing graded."""
    root = make_course_copy(tmp_path_factory.mktemp("template"))
    course = Course(root)
    generate(course, course.module("06"))
    m, _, _, complete = notebooks(course)
    for student, nb in zip(STUDENTS, [complete, with_mistake(complete, m, "adam-eps-inside-sqrt")]):
        path = course.submission_notebook(m, student)
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    return root


def _tito(root: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    tito = Path(sys.executable).parent / "tito"
    return subprocess.Popen(
        [str(tito), "nbgrader", *args],
        cwd=root,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the batch and everything it started: killed together
    )


def _grade(root: Path) -> None:
    proc = _tito(root, "autograde", "06", "--workers", "1")
    assert proc.wait(timeout=600) == 0


def _record(root: Path) -> dict:
    """The record of the batch: the gradebook's scores, the outcomes (without the memory
    measured) and the file for the LMS."""
    course = Course(root)
    m = course.module("06")
    outcomes = {}
    for student in STUDENTS:
        outcome = json.loads(load_outcome(course, root, m, student).to_json())
        outcome.pop("memory_mb")
        outcomes[student] = outcome
    export_grades(course, [m.name], root / "grades.csv", allow_incomplete=False)
    return {
        "scores": {s: vars(x) for s, x in scores.read(course, m, STUDENTS).items()},
        "outcomes": outcomes,
        "lms": (root / "grades.csv").read_text(encoding="utf-8"),
    }


@pytest.fixture(scope="module")
def uninterrupted(template, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted") / "course"
    shutil.copytree(template, root)
    _grade(root)
    return _record(root)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_batch_killed_at_any_point_shows_no_hidden_test_and_grading_again_gives_the_same_record(
    template, uninterrupted, tmp_path, point
):
    root = tmp_path / "course"
    shutil.copytree(template, root)
    course = Course(root)
    env = {}
    if point == "in_the_commit":
        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(IN_THE_COMMIT)
        written = course.student_folder("autograded", course.module("06"), STUDENTS[0])
        env = {
            "PYTHONPATH": str(hook),
            "KILL_IN_THE_COMMIT_AFTER": str(written / "optimizers.ipynb"),
        }
    proc = _tito(root, "autograde", "06", "--workers", "1", env=env)
    reached, every = KILL_POINTS[point]
    deadline = time.monotonic() + 300
    seen: set[int] = set()  # every process below the batch (the job and its jails)
    while not reached(course, STUDENTS[0], proc.pid) and proc.poll() is None:
        assert time.monotonic() < deadline, f"{point} was never reached"
        if point == "in_the_commit":  # the batch kills itself: note what it started meanwhile
            seen.update(processes.tree(proc.pid)[1:])
        time.sleep(every)
    if point == "in_the_commit":
        assert proc.wait(timeout=300) == -signal.SIGKILL  # killed itself in the commit
        assert not (root / "autograded" / STUDENTS[0] / "06_optimizers" / "grading.json").exists()
        left = sorted(seen)
    else:
        assert proc.poll() is None, f"the batch ended before {point} was seen"
        left = processes.tree(proc.pid)[1:]  # the job (it dies with the batch) and its jails
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    while [p for p in left if processes.state(p) not in (None, "Z")]:
        assert time.monotonic() < deadline, "processes of the killed batch lived on"
        time.sleep(0.05)
    hidden = hidden_lines(nbformat.read(course.source_notebook(course.module("06")), 4))
    shown = [p for p in (root / "autograded").rglob("*") if p.is_file()]
    assert [(p.name, h) for p in shown for h in hidden if h in p.read_text(encoding="utf-8")] == []
    _grade(root)
    assert _record(root) == uninterrupted
