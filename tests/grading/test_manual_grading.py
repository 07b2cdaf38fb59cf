"""Manual grading next to autograding: what an instructor enters by hand survives a re-grade.

Scores and comments are entered through nbgrader's gradebook the way formgrader's API stores
them (manual_score, needs_manual_grade, manual_comment); then the submission is autograded
again, as after a fix to a test, and the report and the feedback must still show them.
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.grading.browser import formgrader, formgrader_api
from tito.course.grading import feedback
from tito.course.grading.host import autograde
from tito.course.grading.report import score_rows

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).parents[2] / "examples" / "submissions"
STUDENT = "manual-grading"
CLASSMATE = "manual-grading-buggy"  # carol's submission: eps inside the square root
ANSWER = "q_momentum_oscillation"
COMMENT = "Right idea; say why the steep direction caps the learning rate."


def _row(course, m):
    return next(r for r in score_rows(course, m)[1] if r["student"] == STUDENT)


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


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
    """A complete submission autograded, one written answer graded by hand, then autograded
    again."""
    course, m = graded_course, graded_course.module("06")
    for student, example in [
        (STUDENT, "alice"),
        (CLASSMATE, "carol"),
    ]:  # alice: complete, four written answers
        path = course.root / "submitted" / student / m.name / f"{m.notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / f"{example}.ipynb", path)
    first, classmate = autograde(course, m, [STUDENT, CLASSMATE], workers=2)
    before = _row(course, m)
    entered = _grade(course, m, enter=1.5)
    (again,) = autograde(course, m, [STUDENT], workers=1)
    return dict(
        course=course,
        m=m,
        first=first,
        again=again,
        before=before,
        entered=entered,
        classmate=classmate,
    )


def test_a_regrade_keeps_manual_scores_and_comments(regraded):
    course, m = regraded["course"], regraded["m"]
    assert (regraded["first"].status, regraded["first"].score) == ("graded", 92.0)
    row = regraded["before"]
    assert (row["automatic"], row["manual"], row["pending"], row["total"], row[ANSWER]) == (
        92.0,
        0.0,
        4,
        92.0,
        "pending",
    )
    assert regraded["entered"] == (1.5, False, COMMENT)
    assert (regraded["again"].status, regraded["again"].score) == ("graded", 92.0)
    assert _grade(course, m) == (1.5, False, COMMENT)
    row = _row(course, m)
    assert (row["automatic"], row["manual"], row["pending"], row["total"], row[ANSWER]) == (
        92.0,
        1.5,
        3,
        93.5,
        1.5,
    )


def test_feedback_names_each_cell_and_shows_manual_scores_pending_answers_and_comments(regraded):
    course, m = regraded["course"], regraded["m"]
    (path,) = feedback.generate(course, m, student=STUDENT)
    assert path == course.root / "feedback" / STUDENT / m.name / f"{m.notebook}.html"
    page = path.read_text(encoding="utf-8")
    text = _text(page)
    summary = text[: text.index("Part 1")]
    # Each graded cell is named by id and behaviour; written answers show their state.
    assert re.search(
        r"adam_eps_outside_sqrt\s+adam_step adds eps after the square root of the bias-corrected "
        r"second moment\.\s+3 / 3",
        summary,
    )
    assert re.search(
        r"q_momentum_oscillation\s+written answer, graded by hand\s+Comment:\s+"
        + re.escape(COMMENT)
        + r"\s+1\.5 / 2",
        text,
    )
    assert re.search(r"q_adam_memory\s+written answer, graded by hand\s+pending / 2", text)
    assert "3 written answers not graded yet" in text
    # Nothing is fetched and nothing runs: no script, no MathJax; equations are MathML.
    assert "<script" not in page and "$$" not in text
    assert page.count("<math") >= 80


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
    assert lines[0].startswith('"student","total","automatic","manual","pending","status",')
    row = next(r for r in csv.DictReader(io.StringIO(result.output)) if r["student"] == STUDENT)
    assert (row["total"], row["automatic"], row["manual"], row["pending"], row[ANSWER]) == (
        "93.5",
        "92.0",
        "1.5",
        "3",
        "1.5",
    )

    # The course is shared with other test files' batches, where a job the machine starved is
    # failed (and refused by export): their rows are marked; this student's is the one checked.
    export = ["nbgrader", "export", "06", "--to", "grades.csv", "--allow-incomplete"]
    result = runner.invoke(app, export)
    assert result.exit_code == 0, result.output
    lines = (course.root / "grades.csv").read_text(encoding="utf-8").splitlines()
    # Text quoted (an id is never read as a number), numbers as numbers.
    assert lines[0] == (
        '"student_id","06_optimizers","06_optimizers max","06_optimizers pending",'
        '"06_optimizers status"'
    )
    assert f'"{STUDENT}",93.5,100.0,3,"graded"' in lines
    assert [p.name for p in course.root.glob(".grades.csv*")] == []


def test_the_judges_message_for_each_lost_point_heads_the_feedback(regraded):
    """The classmate's bug costs adam_eps_outside_sqrt; the summary gives the judge's reason."""
    course, m, outcome = regraded["course"], regraded["m"], regraded["classmate"]
    lost = {c.grade_id: c.message for c in outcome.cells if c.score < c.max_score}
    assert "with tiny gradients" in lost["adam_eps_outside_sqrt"]  # the judge's own words
    (path,) = feedback.generate(course, m, student=CLASSMATE)
    text = _text(path.read_text(encoding="utf-8"))
    summary = text[: text.index("Part 1")]
    for grade_id, message in lost.items():
        assert re.search(
            re.escape(grade_id) + r"\s+.+?\s+Grader:\s+" + re.escape(message) + r"\s+0 / \d",
            summary,
        ), grade_id
    assert summary.count("Grader: ") == len(lost)


# -- in a real browser: formgrader, then the feedback page -----------------------------------

SCORE, REMARK = 2.0, "Exactly: two arrays per parameter, 8 bytes in float32."


def test_an_instructor_grades_in_formgrader_and_the_grade_survives_a_regrade_into_the_feedback(
    regraded, browser
):
    """In Chromium: open a submission in formgrader, see the judge's scores, grade a written answer
    and comment on it; the gradebook and the report record it, a re-grade keeps it, the feedback
    shows it."""
    from nbgrader.api import Gradebook
    from typer.testing import CliRunner

    from tito.main import app

    course, m, page = regraded["course"], regraded["m"], browser
    outcome_file = course.root / "autograded" / STUDENT / m.name / "grading.json"
    with formgrader(course) as (base, token):
        mine = next(
            n
            for n in formgrader_api(base, token, f"submitted_notebooks/{m.name}/{m.notebook}")
            if n["student"] == STUDENT
        )
        # Logged in as an instructor is: the server's login page, with the token it printed.
        page.goto(f"{base}/login?next=/formgrader/submissions/{mine['id']}/")
        page.fill("#password_input", token)
        page.click("#login_submit")
        # The judge's scores, as formgrader shows them: alice full marks, and the classmate's bug.
        # formgrader shows the automatic score as the placeholder of the score box.
        judged = page.wait_for_selector(
            "input.score#adam_eps_outside_sqrt[placeholder]", state="attached"
        )
        assert judged.get_attribute("placeholder") == "3"
        with page.expect_response(
            lambda r: r.request.method == "PUT" and "/api/grade/" in r.url
        ) as saved:
            page.fill("input.score#q_adam_memory", f"{SCORE:g}")
            page.press("input.score#q_adam_memory", "Tab")
        assert saved.value.ok
        with page.expect_response(
            lambda r: r.request.method == "PUT" and "/api/comment/" in r.url
        ) as saved:
            page.fill("textarea#q_adam_memory-comment", REMARK)
            page.press("textarea#q_adam_memory-comment", "Tab")
        assert saved.value.ok
        theirs = next(
            n
            for n in formgrader_api(base, token, f"submitted_notebooks/{m.name}/{m.notebook}")
            if n["student"] == CLASSMATE
        )
        page.goto(f"{base}/formgrader/submissions/{theirs['id']}/")
        assert (
            page.wait_for_selector(
                "input.score#adam_eps_outside_sqrt[placeholder]", state="attached"
            ).get_attribute("placeholder")
            == "0"
        )
        # formgrader's own Autograde runs submissions unjailed: this course refuses it, changing
        # nothing.
        before = outcome_file.read_bytes()
        refused = formgrader_api(
            base, token, f"submission/{m.name}/{STUDENT}/autograde", method="POST"
        )
        assert refused["success"] is False
        assert "grade with `tito nbgrader autograde MODULE`" in refused["error"] + refused.get(
            "log", ""
        )
        assert outcome_file.read_bytes() == before
    # So does `nbgrader autograde` run by hand in the course folder (it reads nbgrader_config.py).
    plain = subprocess.run(
        [
            str(Path(sys.executable).parent / "nbgrader"),
            "autograde",
            m.name,
            "--student",
            STUDENT,
            "--force",
        ],
        cwd=course.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode != 0
    assert "grade with `tito nbgrader autograde MODULE`" in plain.stdout + plain.stderr
    assert outcome_file.read_bytes() == before
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", course.course_id) as gb:
        grade = gb.find_grade("q_adam_memory", m.notebook, m.name, STUDENT)
        comment = gb.find_comment("q_adam_memory", m.notebook, m.name, STUDENT)
        assert (grade.manual_score, grade.needs_manual_grade, comment.manual_comment) == (
            SCORE,
            False,
            REMARK,
        )

    def report_row():
        result = CliRunner().invoke(app, ["nbgrader", "report", "06", "--format", "csv"])
        assert result.exit_code == 0, result.output
        return next(
            r for r in csv.DictReader(io.StringIO(result.output)) if r["student"] == STUDENT
        )

    os.chdir(course.root)  # the CLI works on the course of the current folder
    try:
        expected = {
            "total": "95.5",
            "automatic": "92.0",
            "manual": "3.5",
            "pending": "2",
            "q_adam_memory": "2.0",
        }
        assert {k: report_row()[k] for k in expected} == expected
        (again,) = autograde(course, m, [STUDENT], workers=1)
        assert again.score == 92.0
        assert {k: report_row()[k] for k in expected} == expected
    finally:
        os.chdir(Path(__file__).parents[2])
    (path,) = feedback.generate(course, m, student=STUDENT)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.screenshot(path=str(path.with_suffix(".png")))  # kept beside the page, for a look
    row = page.locator("#summary tr", has_text="q_adam_memory")
    assert row.locator("td.score").inner_text() == "2 / 2"
    assert REMARK in row.inner_text()
    assert page.locator("#summary td.pending").count() == 2
    # The equations are laid out by the browser (MathML), with nothing fetched from anywhere.
    first = page.locator("math").first.bounding_box()
    assert first["height"] > 5 and first["width"] > 5
    assert [u for u in requests if not u.startswith("file:")] == []


def test_a_score_changed_in_the_gradebook_is_the_score_in_every_view(regraded, monkeypatch):
    """A person overrides an automatic score in formgrader (what its API stores: manual_score on
    the grade): the report, the feedback page, the file for the LMS and autograde's table all
    read it, through scores.py."""
    from nbgrader.api import Gradebook
    from rich.console import Console
    from typer.testing import CliRunner

    from tito.commands.nbgrader import scores_table
    from tito.course.grading.outcome import load_outcome
    from tito.main import app

    course, m = regraded["course"], regraded["m"]
    cell, db = "adam_eps_outside_sqrt", f"sqlite:///{course.root / 'gradebook.db'}"
    monkeypatch.chdir(course.root)
    runner = CliRunner()

    def views() -> dict:
        report = next(
            r
            for r in csv.DictReader(
                io.StringIO(
                    runner.invoke(app, ["nbgrader", "report", "06", "--format", "csv"]).output
                )
            )
            if r["student"] == CLASSMATE
        )
        (page,) = feedback.generate(course, m, student=CLASSMATE)
        summary = _text(page.read_text(encoding="utf-8")).split("Part 1")[0]
        export = ["nbgrader", "export", "06", "--to", "grades.csv", "--allow-incomplete"]
        assert runner.invoke(app, export).exit_code == 0  # (other files' students: marked)
        lms = next(
            line
            for line in (course.root / "grades.csv").read_text().splitlines()
            if CLASSMATE in line
        )
        console = Console(width=200, record=True)
        console.print(scores_table(course, m, [load_outcome(course, course.root, m, CLASSMATE)]))
        table = next(line for line in console.export_text().splitlines() if CLASSMATE in line)
        return {
            "report": (report[cell], report["automatic"]),
            "feedback": re.search(
                re.escape(cell) + r"\s+.+?\s+(?:Grader: .+?\s+)?(\d+ / 3)", summary
            ).group(1),
            "lms": lms.split(",")[1],
            "table": table.split("│")[2].strip(),
        }

    # carol's submission: the judge failed eps inside the square root; her written answers wait for
    # a person
    assert views() == {
        "report": ("0.0", "76.0"),
        "feedback": "0 / 3",
        "lms": "76.0",
        "table": "76/92",
    }
    with Gradebook(db, course.course_id) as gb:
        grade = gb.find_grade(cell, m.notebook, m.name, CLASSMATE)
        grade.manual_score = 3.0  # what formgrader's grade handler stores
        gb.db.commit()
    try:
        assert views() == {
            "report": ("3.0", "79.0"),
            "feedback": "3 / 3",
            "lms": "79.0",
            "table": "79/92",
        }
    finally:
        with Gradebook(db, course.course_id) as gb:
            gb.find_grade(cell, m.notebook, m.name, CLASSMATE).manual_score = None
            gb.db.commit()


def test_a_score_by_hand_against_an_earlier_outcome_is_flagged_until_saved_again(regraded):
    """The classmate's written answer is scored by hand; then the classmate hands in other work
    and it is graded again: the score stands, the outcome records what it was entered against,
    formgrader flags the cell and the report names it, until a person saves the score again."""
    from nbgrader.api import Gradebook

    course, m = regraded["course"], regraded["m"]
    url = f"sqlite:///{course.root / 'gradebook.db'}"

    def hand(enter=None):
        with Gradebook(url, course.course_id) as gb:
            grade = gb.find_grade(ANSWER, m.notebook, m.name, CLASSMATE)
            if enter is not None:  # what formgrader's grade handler stores
                grade.manual_score, grade.needs_manual_grade = enter, False
                gb.db.commit()
            return grade.manual_score, grade.needs_manual_grade

    def check():
        return next(r for r in score_rows(course, m)[1] if r["student"] == CLASSMATE)["check"]

    hand(enter=2.0)
    (same,) = autograde(course, m, [CLASSMATE], workers=1)  # nothing changed: nothing to check
    assert (same.scored_against_another(), hand(), check()) == ([], (2.0, False), "")
    shutil.copy(EXAMPLES / "alice.ipynb", course.submission_notebook(m, CLASSMATE))
    (changed,) = autograde(course, m, [CLASSMATE], workers=1)
    assert changed.manual[ANSWER] == {"score": 2.0, "against": same.seen} != changed.seen
    assert (changed.scored_against_another(), hand(), check()) == ([ANSWER], (2.0, True), ANSWER)
    hand(enter=2.0)  # looked at again and saved in formgrader
    assert check() == ""  # the report reads the gradebook: at once, before any grade
    (confirmed,) = autograde(course, m, [CLASSMATE], workers=1)
    assert confirmed.manual[ANSWER] == {"score": 2.0, "against": changed.seen}
    assert (confirmed.scored_against_another(), hand(), check()) == ([], (2.0, False), "")
