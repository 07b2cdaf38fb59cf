"""`tito nbgrader analytics` on a class whose statistics are known by construction.

Ten students of ability 0..9 are written into a real gradebook as autograde would leave them:
every one passes `gd_step_values`, none passes `clip_inf_norm`, only the three weakest pass
`adam_eps_outside_sqrt` (a test that behaves like a broken one), and every other automatic cell
k is passed by the students of ability at least 1 + k % 9. The written answers wait for a person.
An eleventh submission is invalid and must be left out.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_course_copy
from tito.course.generate import generate
from tito.course.grading import analytics
from tito.course.grading.host import OUTCOME_FILE, CellScore, Outcome
from tito.course.nbgrader_setup import nbgrader_config
from tito.course.settings import Course
from tito.main import app

pytestmark = pytest.mark.slow  # generates a course (nbgrader)
EASY, HARD, BROKEN = "gd_step_values", "clip_inf_norm", "adam_eps_outside_sqrt"
STUDENTS = [f"s{i:02d}" for i in range(10)]
# The grader's diagnosis of some outcomes: three students with eps inside the square root, one of
# them also with per-tensor clipping, and one Adam like no known mistake; the invalid one is not
# counted.
DIAGNOSIS = {
    "s00": {"adam_step_impl": ["adam-eps-inside-sqrt"]},
    "s01": {"adam_step_impl": ["adam-eps-inside-sqrt"]},
    "s02": {"adam_step_impl": ["adam-eps-inside-sqrt"], "clip_grad_norm_impl": ["clip-per-tensor"]},
    "s03": {"adam_step_impl": []},
    "invalid": {"adam_step_impl": ["adam-eps-inside-sqrt"]},
}


def passes(cell: str, k: int, ability: int) -> bool:
    if cell == EASY:
        return True
    if cell == HARD:
        return False
    if cell == BROKEN:
        return ability < 3
    return ability >= 1 + k % 9


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
    from nbgrader.api import Gradebook

    course = Course(make_course_copy(tmp_path_factory.mktemp("analytics") / "course"))
    m = course.module("06")
    generate(course, m)
    expected = {}
    with Gradebook(nbgrader_config(course).CourseDirectory.db_url, course.course_id) as gb:
        for student in STUDENTS + ["invalid"]:
            (course.root / "submitted" / student / m.name).mkdir(parents=True)
            gb.update_or_create_student(student)
            gb.add_submission(m.name, student)
            grades = gb.find_submission_notebook(m.notebook, m.name, student).grades
            automatic = [g for g in grades if g.cell_type == "code"]
            scored = {}
            for k, g in enumerate(sorted(automatic, key=lambda g: g.name)):
                ok = student != "invalid" and passes(
                    g.name, k, STUDENTS.index(student) if student in STUDENTS else 0
                )
                g.auto_score = scored[g.name] = g.max_score if ok else 0.0
                g.needs_manual_grade = False
            for g in grades:
                if g.cell_type == "markdown":
                    g.auto_score, g.needs_manual_grade = None, True
            expected[student] = scored
            status = "invalid" if student == "invalid" else "graded"
            outcome = Outcome(
                student,
                m.name,
                status,
                "" if status == "graded" else "not a notebook",
                [CellScore(gid, 0.0, s, s, s > 0) for gid, s in scored.items()],
                diagnosis=DIAGNOSIS.get(student, {}),
            )
            out = course.student_folder("autograded", m, student)
            out.mkdir(parents=True)
            (out / OUTCOME_FILE).write_text(outcome.to_json())
        gb.db.commit()
    return course, m, expected


def test_the_statistics_are_the_constructed_ones(constructed):
    course, m, expected = constructed
    stats = analytics.class_stats(course, m)
    by_id = {s.grade_id: s for s in stats.cells}
    assert stats.left_out == {"invalid": 1}
    totals = [sum(expected[s].values()) for s in STUDENTS]
    assert stats.totals == totals and stats.max_total == 100.0
    assert (
        by_id[EASY].graded,
        by_id[EASY].pass_rate,
        by_id[EASY].mean,
        by_id[EASY].discrimination,
        by_id[EASY].flags,
    ) == (10, 1.0, 2.0, None, ["easy"])
    assert (
        by_id[HARD].pass_rate,
        by_id[HARD].mean,
        by_id[HARD].discrimination,
        by_id[HARD].flags,
    ) == (0.0, 0.0, None, ["hard"])
    broken = by_id[BROKEN]
    passed = np.array([expected[s][BROKEN] > 0 for s in STUDENTS], dtype=float)
    rest = np.array(totals) - np.array([expected[s][BROKEN] for s in STUDENTS])
    assert (broken.pass_rate, broken.mean, broken.flags) == (0.3, 0.9, ["suspect"])
    assert broken.discrimination == pytest.approx(np.corrcoef(passed, rest)[0, 1], abs=1e-12)
    assert broken.discrimination < -0.8  # the three weakest pass it, the seven strongest fail it
    # a cell passed by the stronger half: positive, not flagged
    half = next(s for s in stats.cells if s.pass_rate == 0.5)
    assert half.discrimination > 0.8 and half.flags == []
    written = [s for s in stats.cells if s.grade_id.startswith("q_")]
    assert len(written) == 4 and all(
        (s.graded, s.pass_rate, s.flags) == (0, None, []) for s in written
    )
    assert [s.grade_id for s in stats.cells if "suspect" in s.flags] == [BROKEN]
    eps, per_tensor = (
        next(
            b["mistake"] for b in yaml.safe_load(m.mistakes.read_text())["mistakes"] if b["id"] == i
        )
        for i in ("adam-eps-inside-sqrt", "clip-per-tensor")
    )
    assert stats.mistakes == [
        ("adam_step", eps, 3),
        ("adam_step", "no known mistake", 1),
        ("clip_grad_norm", per_tensor, 1),
    ]


def test_the_command_writes_csv_and_a_page_without_script(constructed, monkeypatch, browser):
    course, m, _ = constructed
    monkeypatch.chdir(course.root)
    runner = CliRunner()
    table = runner.invoke(app, ["nbgrader", "analytics", "06"])
    assert table.exit_code == 0, table.output
    said = " ".join(table.output.split())
    assert "10 graded submissions (left out: 1 invalid)" in said and "suspect" in said
    assert "adam_step: no known mistake: 1 student" in said and said.count(": 3 students") == 1
    result = runner.invoke(app, ["nbgrader", "analytics", "06", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = {r["grade_id"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert len(rows) == 49
    assert (rows[BROKEN]["pass_rate"], rows[BROKEN]["mean"], rows[BROKEN]["flags"]) == (
        "0.3",
        "0.9",
        "suspect",
    )
    assert float(rows[BROKEN]["discrimination"]) == pytest.approx(-0.8393, abs=1e-4)
    assert (
        rows["q_adam_memory"]["pass_rate"] == "" and result.stdout.count('"0.3"') == 0
    )  # numbers unquoted
    page_path = course.root / "reports" / "analytics.html"
    result = runner.invoke(
        app, ["nbgrader", "analytics", "06", "--format", "html", "--out", str(page_path)]
    )
    assert result.exit_code == 0, result.output
    text = page_path.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "http" not in text
    requests = []
    browser.on("request", lambda r: requests.append(r.url))
    browser.goto(page_path.as_uri())
    browser.screenshot(
        path=str(page_path.with_suffix(".png")), full_page=True
    )  # kept beside the page
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert browser.locator("tr.suspect td").first.inner_text() == BROKEN
    assert browser.locator("li").all_inner_texts()[1] == "adam_step: no known mistake: 1 student"
    for image in browser.locator("img").all():
        assert image.evaluate("i => i.complete && i.naturalWidth > 100")
