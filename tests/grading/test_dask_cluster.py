"""Grading on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on loopback.

One worker is killed (SIGKILL) while jobs run on it; every submission must still get exactly
one outcome, with the same per-cell scores as grading on this machine, and one gradebook row.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tito.course.grading.host import autograde
from tito.course.settings import CourseError

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).parents[2] / "examples" / "submissions"
KINDS = ["alice", "bob", "carol", "dave"]  # complete, untouched, a bug, the bug with a forged test


def _dask(*args) -> list[str]:
    return [str(Path(sys.executable).parent / "dask"), *args]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    procs = [subprocess.Popen(_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                    "--scheduler-file", str(scheduler_file)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = [subprocess.Popen(_dask("worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                          "--host", "127.0.0.1", "--name", f"w{i}", "--local-directory",
                                          str(folder / f"w{i}")),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _submit(course, students: dict[str, str]) -> None:
    for student, kind in students.items():
        path = course.root / "submitted" / student / "06_optimizers" / "optimizers.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / f"{kind}.ipynb", path)


def test_a_batch_survives_a_killed_worker(graded_course, cluster):
    address, workers = cluster
    course, m = graded_course, graded_course.module("06")
    batch = {f"dask-{kind}-{i}": kind for i in range(3) for kind in KINDS}
    local = {f"local-{kind}": kind for kind in KINDS}
    _submit(course, {**batch, **local})
    reference = {o.student.split("-")[1]: o for o in autograde(course, m, list(local), workers=2, scheduler="")}

    killed = threading.Event()

    def kill_a_worker(outcome):  # after the first result, while the other jobs run
        if not killed.is_set():
            killed.set()
            os.kill(workers[0].pid, signal.SIGKILL)

    outcomes = autograde(course, m, list(batch), scheduler=address, on_done=kill_a_worker)
    assert killed.is_set() and workers[0].wait(timeout=10) == -signal.SIGKILL
    assert sorted(o.student for o in outcomes) == sorted(batch)
    for o in outcomes:
        expected = reference[batch[o.student]]
        assert (o.status, o.isolation) == ("graded", "bubblewrap"), o.reason
        assert [(c.grade_id, c.score, c.judge) for c in o.cells] == \
            [(c.grade_id, c.score, c.judge) for c in expected.cells]
    assert {k: o.score for k, o in reference.items()} == {"alice": 92.0, "bob": 0.0, "carol": 76.0, "dave": 76.0}

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", course.course_id) as gb:
        rows = [(s.student.id, len(s.notebooks)) for s in gb.find_assignment(m.name).submissions
                if s.student.id.startswith("dask-")]
        assert sorted(rows) == sorted((s, 1) for s in batch)
        for student, kind in batch.items():
            assert gb.find_submission(m.name, student).score == reference[kind].score


def test_an_unreachable_scheduler_is_refused_before_anything_is_written(graded_course):
    course, m = graded_course, graded_course.module("06")
    _submit(course, {"unreached": "alice"})
    gradebook = (course.root / "gradebook.db").read_bytes()
    with pytest.raises(CourseError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        autograde(course, m, ["unreached"], scheduler="tcp://127.0.0.1:9")
    assert (course.root / "gradebook.db").read_bytes() == gradebook
    assert not (course.root / "autograded" / "unreached").exists()
