"""The hostile submissions of test_hostile_submissions.py graded again as an unprivileged user
(an instructor's laptop) through `tito nbgrader autograde` on this machine: the same jail
without root, a memory watch instead of a control group, no CPU quota (a starved job is
failed and graded again by --retry-failed)."""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, make_course_copy, report_summary
from tests.grading import hostile, unprivileged
from tests.grading.test_hostile_submissions import (HOARD, HONEST, check_attack_cells, check_resources, full_score,
                                                    hostile_cases, keyring, notebooks, place, processes_with,
                                                    recorded_scores, snapshot)
from tito.course.generate import generate
from tito.course.grading.host import load_outcome
from tito.course.settings import Course

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unprivileged_batch():
    # Not under pytest's temporary folder, which only its owner may enter.
    laptop = Path(tempfile.mkdtemp(prefix="tito-laptop-"))
    try:
        yield _grade_unprivileged(laptop)
    finally:
        shutil.rmtree(laptop, ignore_errors=True)


def _grade_unprivileged(laptop: Path) -> dict:
    root = make_course_copy(laptop / "course", cell_timeout_seconds=30,
                            memory_limit_mb=2500, submission_timeout_seconds=400, max_processes=64, scratch_mb=64)
    course = Course(root)
    generate(course, course.module("06"))
    tmpdir = root.parent / "tmp"
    home = root.parent / "home"
    tmpdir.mkdir()
    home.mkdir()
    m, release, instructor, complete = notebooks(course)
    attacks = hostile_cases(course, tmpdir)
    paths = place(course, {HONEST: complete, "untouched": release, **attacks})
    unprivileged.give_to_nobody(laptop)
    before = snapshot(course, tmpdir)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmpdir),
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    keys_before = keyring()
    tito = [str(Path(sys.executable).parent / "tito"), "nbgrader", "autograde", "06"]
    proc = unprivileged.run([*tito, "--workers", "2"], cwd=root, env=env, needed=[REPO, root], timeout=900)
    first = {s: load_outcome(course, root, m, s) for s in paths}
    first_scores = recorded_scores(course, paths)
    # No CPU quota without root: a job the hog starved is failed, never scored lower; retried once quiet.
    retry = unprivileged.run([*tito, "--retry-failed"], cwd=root, env=env, needed=[REPO, root], timeout=900)
    lingering = processes_with(hostile.MARKER)
    after = snapshot(course, tmpdir)
    outcomes = {s: load_outcome(course, root, m, s) for s in paths}
    return dict(course=course, proc=proc, retry=retry, first=first, outcomes=outcomes, before=before, after=after,
                first_scores=first_scores, scores=recorded_scores(course, paths),
                full=full_score(instructor), lingering=lingering, keys=(keys_before, keyring()), attacks=list(attacks))


def test_unprivileged_grading_is_jailed_too(unprivileged_batch):
    b = unprivileged_batch
    assert b["proc"].returncode == 3, b["proc"].stdout[-3000:] + b["proc"].stderr[-3000:]  # invalid/failed ones
    assert "06_optimizers: automatic scores" in b["proc"].stdout  # the batch finished with its table
    o = b["outcomes"]
    assert {s: (x.status, x.isolation, x.reason) for s, x in o.items() if x is None or (
        x.status != "invalid" and x.isolation != "bubblewrap, seccomp, memory watch (2500 MB in all), no CPU quota")} == {}
    recorded = b["scores"]
    assert (o[HONEST].status, recorded[HONEST].automatic) == ("graded", b["full"])
    assert {s: recorded[s].automatic for s in o if s not in (HONEST, "broadcasts")} == \
        {s: 0.0 for s in o if s not in (HONEST, "broadcasts")}
    assert {o[s].status for s in ("symlinked", "foldered", "piped")} == {"invalid"}
    assert b["lingering"] == []
    before, after = b["before"], b["after"]
    assert {k for k in before["course"].keys() | after["course"].keys()
            if before["course"].get(k) != after["course"].get(k)} == set()
    assert before["environment"] == after["environment"]
    assert after["tmp"] == before["tmp"] == []


def test_unprivileged_grading_keeps_each_job_to_its_own_resources(unprivileged_batch, request):
    """Without root there is no CPU quota: the hog may starve a classmate's job, which is then
    failed with the reason (never scored lower) and graded by --retry-failed."""
    b = unprivileged_batch
    check_resources(b["course"], b["outcomes"], *b["keys"])
    busy = "the grading machine was busy"
    first, final = b["first"], b["outcomes"]
    assert first[HONEST].status == "graded" and b["first_scores"][HONEST].automatic == b["full"] or \
        first[HONEST].status == "failed" and busy in first[HONEST].reason, first[HONEST]
    starved = sorted(s for s, o in first.items() if o.status == "failed" and busy in o.reason)
    assert {s: final[s].status for s in starved} == {s: "graded" for s in starved}
    assert (final[HONEST].status, b["scores"][HONEST].automatic) == ("graded", b["full"])
    expected_failures = {s for s, o in first.items() if o.status == "failed" and busy not in o.reason}
    assert {s for s, o in final.items() if o.status == "failed"} == expected_failures
    assert b["retry"].returncode == (3 if expected_failures else 0), b["retry"].stdout[-2000:]
    regraded = set(re.findall(r"^│ (\S+) +│", b["retry"].stdout, re.M)) - {"student"}
    assert regraded == {s for s, o in first.items() if o.status == "failed"}  # the failed ones, only them
    report_summary(request.config, "unprivileged batch with a CPU hog",
                   f"{len(starved)} job(s) failed as starved ({', '.join(starved) or 'none'}), "
                   f"all graded by --retry-failed; memory hoard peak {final[HOARD].memory_mb}")


def test_unprivileged_run_really_ran_unprivileged(unprivileged_batch):
    """The outcome files belong to the unprivileged user: the grader itself ran as that user."""
    course = unprivileged_batch["course"]
    owner = (course.root / "autograded" / HONEST / "06_optimizers" / "grading.json").stat().st_uid
    assert owner == (unprivileged.NOBODY if os.geteuid() == 0 else os.geteuid())
    assert owner != 0


def test_every_attack_scores_nothing_in_any_cell(unprivileged_batch):
    b = unprivileged_batch
    check_attack_cells(b["outcomes"], b["scores"], b["attacks"])
