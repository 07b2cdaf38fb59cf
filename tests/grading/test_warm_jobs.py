"""The warm job process (job.py): each job runs in a child it forks, and no warm process outlives
its batch. Checked with a stand-in for the job's work, so no jail or kernel is needed: the
stand-in reports the process it ran in."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest

from tito.course.grading import job
from tito.course.grading.processes import state
from tito.course.settings import GradingLimits

# The warm process as `run_in_process` starts it, with `job.run` replaced by a stand-in that
# answers with the child's and the warm process's ids and what the child reads on stdin.
STAND_IN = """\
import os, sys
from tito.course.grading import job

def run(j):
    if j.student == "dies":
        os._exit(7)
    if j.student == "crashes":
        raise RuntimeError("the stand-in failed")
    seen = f"{os.getpid()} {os.getppid()} {sys.stdin.read()!r}"
    return job.JobResult("", seen, [], [], "stand-in")

job.run = run
if sys.argv[1:] == ["--broken"]:
    sys.exit("the warm process cannot start: a stand-in reason")
sys.exit(job.serve())
"""
PROGRAM = ("-c", STAND_IN)
LIMITS = asdict(GradingLimits(10, 1024, 60, 16, 16, 16))


def _job(student: str, batch: str) -> job.Job:
    return job.Job(student, "06_optimizers", "{}", "{}", {}, "m:C", LIMITS, batch=batch)


def _seen(result: job.JobResult) -> tuple[int, int, str]:
    child, warm, stdin = result.execution_note.split(" ", 2)
    return int(child), int(warm), stdin


@pytest.fixture(autouse=True)
def _no_warm_process_left():
    yield
    job.close_warm_processes()


def test_each_job_runs_in_a_child_of_its_own_forked_by_one_warm_process_per_batch():
    first, second = (_seen(job.run_in_process(_job(s, "b1"), PROGRAM)) for s in ("a", "b"))
    assert first[1] == second[1] != os.getpid()  # one warm process served both jobs
    assert first[0] != second[0] and first[0] != first[1]  # each in a child of its own
    assert state(first[0]) is None  # the first child is gone (reaped)
    assert first[2] == second[2] == "''"  # a job's stdin is empty, not the host's requests


def test_a_later_batch_ends_the_idle_warm_processes_of_an_earlier_one():
    """A batch whose host was killed never ends its warm processes itself (on a Dask worker)."""
    _, old, _ = _seen(job.run_in_process(_job("a", "killed-batch"), PROGRAM))
    _, new, _ = _seen(job.run_in_process(_job("a", "next-batch"), PROGRAM))
    assert new != old
    assert state(old) is None  # ended and reaped before the next batch's job was sent


def test_a_job_that_dies_or_raises_is_a_failure_naming_why_and_the_next_job_still_runs():
    dies = job.run_in_process(_job("dies", "b2"), PROGRAM)
    assert dies.failure == "the grading job failed: exit status 7"
    crashes = job.run_in_process(_job("crashes", "b2"), PROGRAM)
    assert crashes.failure == "the grading job failed: RuntimeError: the stand-in failed"
    assert _seen(job.run_in_process(_job("a", "b2"), PROGRAM))[2] == "''"


def test_a_warm_process_that_cannot_start_is_a_failure_with_its_last_words():
    result = job.run_in_process(_job("a", "b3"), (*PROGRAM, "--broken"))
    assert result.failure == (
        "the grading job process stopped: it ended before it replied: the warm process cannot "
        "start: a stand-in reason"
    )
