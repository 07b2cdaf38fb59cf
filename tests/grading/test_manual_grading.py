"""Manual grading next to autograding: what an instructor enters by hand survives a re-grade.

Scores and comments are entered through nbgrader's gradebook the way formgrader's API stores
them (manual_score, needs_manual_grade, manual_comment); then the submission is autograded
again, as after a fix to a test, and the report and the feedback must still show them.
"""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest

from tito.course.grading.host import autograde
from tito.course.grading.report import score_rows
from tito.course.nbgrader_setup import api

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).parents[2] / "examples" / "submissions"
STUDENT = "manual-grading"
ANSWER = "q_momentum_oscillation"
COMMENT = "Right idea; say why the steep direction caps the learning rate."


def _row(course, m):
    return next(r for r in score_rows(course, m)[1] if r["student"] == STUDENT)


def _grade(course, m, enter=None):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", course.course_id) as gb:
        grade = gb.find_grade(ANSWER, m.notebook, m.name, STUDENT)
        comment = gb.find_comment(ANSWER, m.notebook, m.name, STUDENT)
        if enter is not None:  # what formgrader's grade and comment handlers store
            grade.manual_score, grade.needs_manual_grade = enter, False
            comment.manual_comment = COMMENT
            gb.db.commit()
        return grade.manual_score, grade.needs_manual_grade, comment.manual_comment


@pytest.fixture(scope="module")
def regraded(graded_course):
    """A complete submission autograded, one written answer graded by hand, then autograded again."""
    course, m = graded_course, graded_course.module("06")
    path = course.root / "submitted" / STUDENT / m.name / f"{m.notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "alice.ipynb", path)  # complete, with all four written answers
    (first,) = autograde(course, m, [STUDENT], workers=1)
    before = _row(course, m)
    entered = _grade(course, m, enter=1.5)
    (again,) = autograde(course, m, [STUDENT], workers=1)
    return dict(course=course, m=m, first=first, again=again, before=before, entered=entered)


def test_a_regrade_keeps_manual_scores_and_comments(regraded):
    course, m = regraded["course"], regraded["m"]
    assert (regraded["first"].status, regraded["first"].score) == ("graded", 92.0)
    row = regraded["before"]
    assert (row["automatic"], row["manual"], row["pending"], row["total"], row[ANSWER]) == \
        (92.0, 0.0, 4, 92.0, "pending")
    assert regraded["entered"] == (1.5, False, COMMENT)
    assert (regraded["again"].status, regraded["again"].score) == ("graded", 92.0)
    assert _grade(course, m) == (1.5, False, COMMENT)
    row = _row(course, m)
    assert (row["automatic"], row["manual"], row["pending"], row["total"], row[ANSWER]) == \
        (92.0, 1.5, 3, 93.5, 1.5)


def test_feedback_shows_the_manual_score_and_comment(regraded):
    course, m = regraded["course"], regraded["m"]
    result = api(course, course.root).generate_feedback(m.name, STUDENT, force=True)
    assert result["success"], result.get("error")
    page = (course.root / "feedback" / STUDENT / m.name / f"{m.notebook}.html").read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert COMMENT in text
    assert re.search(r"Score:\s*1\.5\s*/\s*2\.0", text), "the manual score is not on the feedback page"



def test_report_and_export_show_manual_scores(regraded, monkeypatch):
    """Through the command line: the report's columns and the file for the LMS."""
    from typer.testing import CliRunner

    from tito.main import app

    course = regraded["course"]
    monkeypatch.chdir(course.root)
    runner = CliRunner()
    result = runner.invoke(app, ["nbgrader", "report", "06", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = lines[0].split(",")
    assert header[:6] == ["student", "total", "automatic", "manual", "pending", "status"]
    row = dict(zip(header, next(line for line in lines if line.startswith(f"{STUDENT},")).split(",")))
    assert (row["total"], row["automatic"], row["manual"], row["pending"], row[ANSWER]) == \
        ("93.5", "92.0", "1.5", "3", "1.5")

    result = runner.invoke(app, ["nbgrader", "export", "06", "--to", "grades.csv"])
    assert result.exit_code == 0, result.output
    lines = (course.root / "grades.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "student_id,06_optimizers,06_optimizers max,06_optimizers pending"
    assert f"{STUDENT},93.5,100.0,3" in lines
    assert [p.name for p in course.root.glob(".grades.csv*")] == []


def test_formgrader_shows_the_judges_scores_and_stores_what_the_instructor_enters(regraded):
    """`tito nbgrader formgrader` on this course, driven through the HTTP API its pages call."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from nbgrader.api import Gradebook

    course, m = regraded["course"], regraded["m"]
    shutil.copy(Path(__file__).parents[2] / "nbgrader_config.py", course.root / "nbgrader_config.py")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base, token = f"http://127.0.0.1:{port}/formgrader/api", "formgrader-test"
    server = subprocess.Popen([str(Path(sys.executable).parent / "tito"), "nbgrader", "formgrader", "--port", str(port),
                               "--token", token], cwd=course.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def call(path, data=None):
        request = urllib.request.Request(f"{base}/{path}", method="GET" if data is None else "PUT",
                                         data=None if data is None else json.dumps(data).encode(),
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                notebooks = call(f"submitted_notebooks/{m.name}/{m.notebook}")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        mine = next(n for n in notebooks if n["student"] == STUDENT)
        assert (mine["code_score"], mine["max_code_score"], mine["written_score"]) == (92.0, 92.0, 1.5)
        grades = {g["name"]: g for g in call(f"grades?submission_id={mine['id']}")}
        assert grades["adam_eps_outside_sqrt"]["auto_score"] == 3.0  # the judge's verdict
        comments = {c["name"]: c for c in call(f"comments?submission_id={mine['id']}")}
        call(f"grade/{grades['q_adam_memory']['id']}", {"manual_score": 2.0, "extra_credit": None})
        call(f"comment/{comments['q_adam_memory']['id']}", {"manual_comment": "Exactly: two arrays per parameter."})
    finally:
        server.terminate()
        server.wait(timeout=30)
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", course.course_id) as gb:
        grade = gb.find_grade("q_adam_memory", m.notebook, m.name, STUDENT)
        comment = gb.find_comment("q_adam_memory", m.notebook, m.name, STUDENT)
        assert (grade.manual_score, grade.needs_manual_grade, comment.manual_comment) == \
            (2.0, False, "Exactly: two arrays per parameter.")
    row = _row(course, m)
    assert (row["manual"], row["pending"], row["total"]) == (3.5, 2, 95.5)
