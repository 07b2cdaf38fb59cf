"""The student's check tells the truth about what the grader will give, on the whole catalogue.

Each catalogue bug, each alternative, each no-work submission and the untouched student
version goes through the check that `tito module complete` runs (`student.complete`: locked
cells as released, the notebook in a kernel) and through the grader's judge, whose verdict
decides the points. The judge runs twice: with the instructor's tests, as when grading, and with
the tests as released (hidden parts left out). Then, cell by cell:
- the check agrees with the judge on the released tests, every cell;
- the check agrees with the grader on every cell that has no hidden tests;
- where they differ on a cell with hidden tests, the check passed, the grader failed, and the
  released part alone passes: a hidden part failed.
Bugs are packed so that no two in a submission touch the same region (58 bugs in 15
submissions), as the alternatives are; each cell's verdict still comes from one run of both.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import make_course_copy, report_summary
from tests.grading.test_catalogue import (ALTERNATIVE_GROUPS, BUGS, NO_WORK, UNTOUCHED, alternative_submission,
                                          bug_submission, in_processes, judge_all, no_work_submission,
                                          release_and_complete)
from tito.course import student
from tito.course.settings import Course

pytestmark = pytest.mark.slow


def packed_bugs() -> list[list[dict]]:
    """The bugs in as few groups as possible with no two of a group in the same region."""
    groups: list[list[dict]] = []
    for bug in BUGS:
        key = (bug["region"], bug.get("index", 0))
        group = next((g for g in groups if key not in {(b["region"], b.get("index", 0)) for b in g}), None)
        if group is None:
            groups.append(group := [])
        group.append(bug)
    return groups


_CHECK_COURSE: Course | None = None  # one course per worker process: the check writes its workspace and export


def _check_one(graded_root: str, notebook: str) -> dict[str, bool]:
    """The check's verdict per graded cell for one working copy, in a course of this process's own."""
    global _CHECK_COURSE
    if _CHECK_COURSE is None:
        root = make_course_copy(Path(tempfile.mkdtemp(prefix=f"check-{os.getpid()}-")))
        for folder in ("release", "assignments"):
            shutil.copytree(Path(graded_root) / folder, root / folder)
        _CHECK_COURSE = Course(root)
    course = _CHECK_COURSE
    m = course.module("06")
    work = course.workspace_notebook(m)
    work.parent.mkdir(parents=True, exist_ok=True)
    work.write_text(notebook, encoding="utf-8")
    result, _ = student.complete(course, m)
    assert result.restored == [], result.restored  # the submissions leave every locked cell as released
    return {c.grade_id: c.passed for c in result.cells}


@pytest.fixture(scope="module")
def verdicts(graded_course, request):
    course = graded_course
    m, release, complete = release_and_complete(course)
    submissions = {UNTOUCHED: release}
    for i, group in enumerate(packed_bugs()):
        nb = complete
        for bug in group:
            nb = bug_submission(nb, bug)
        submissions[f"bugs-{i + 1}"] = nb
    submissions.update({name: alternative_submission(complete, *group) for name, group in ALTERNATIVE_GROUPS.items()})
    submissions.update({f"no-work-{kind}": no_work_submission(complete, kind) for kind in NO_WORK})

    # One process at a time: the suite's other worker may be running a hostile batch whose
    # memory and CPU cases need the machine's second core within their cells' time limits.
    checked = in_processes(_check_one, course, submissions, workers=1)
    graded = judge_all(course, submissions, only={}, workers=1)
    released = judge_all(course, submissions, only={}, tests_as_released=True, workers=1)
    hidden = {c.metadata["nbgrader"]["grade_id"] for c in release.cells
              if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
              and student.has_hidden_tests(c.source)}
    rows = {name: {c.grade_id: (checked[name][c.grade_id], c.judge, r.judge)
                   for c, r in zip(graded[name].cells, released[name].cells)} for name in submissions}
    cells = sum(len(r) for r in rows.values())
    same = sum(local == grader for r in rows.values() for local, grader, _ in r.values())
    hidden_failed = sum((local, grader, released) == (True, False, True) and cell in hidden
                        for r in rows.values() for cell, (local, grader, released) in r.items())
    report_summary(request.config, "the student's check against the grader (06_optimizers)",
                   f"{len(submissions)} submissions, {cells} cell verdicts: {same} the same, {cells - same} "
                   f"different, of which {hidden_failed} are a hidden part failing")
    return dict(rows=rows, hidden=hidden, submissions=submissions)


def test_every_bug_alternative_and_no_work_submission_goes_through_both(verdicts):
    names = set(verdicts["rows"])
    assert len([n for n in names if n.startswith("bugs-")]) == len(packed_bugs())
    assert sum(len(g) for g in packed_bugs()) == len(BUGS)
    assert {f"no-work-{kind}" for kind in NO_WORK} | set(ALTERNATIVE_GROUPS) | {UNTOUCHED} <= names
    assert all(len(row) == 45 for row in verdicts["rows"].values())


def test_the_check_agrees_with_the_judge_on_the_released_tests(verdicts):
    differ = {(name, cell): (local, released) for name, row in verdicts["rows"].items()
              for cell, (local, _, released) in row.items() if local != released}
    assert differ == {}, sorted(differ.items())


def test_the_check_agrees_with_the_grader_wherever_no_test_is_hidden(verdicts):
    differ = {(name, cell) for name, row in verdicts["rows"].items()
              for cell, (local, grader, _) in row.items() if local != grader and cell not in verdicts["hidden"]}
    assert differ == set(), sorted(differ)


def test_every_difference_is_a_hidden_part_failing(verdicts):
    differences = [(name, cell, local, grader, released) for name, row in verdicts["rows"].items()
                   for cell, (local, grader, released) in row.items() if local != grader]
    assert differences, "no submission fails a hidden part: the catalogue no longer tests them"
    assert [d for d in differences if d[1:] != (d[1], True, False, True) or d[1] not in verdicts["hidden"]] == []
