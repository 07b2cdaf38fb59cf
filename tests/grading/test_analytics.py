"""`tito nbgrader analytics` on a class whose statistics are known by construction.

Thirty students of ability 0..29 are written into a real gradebook as autograde would leave
them: every one passes `gd_step_values`, none passes `clip_inf_norm`, the strongest third fail
`adam_eps_outside_sqrt` (a test that behaves like a broken one), and every other automatic cell
k is passed by the students of ability at least 3 + 3 * (k % 9). The written answers wait for a
person. One more submission is invalid and must be left out. The flags alone are also tested
on classes built in memory (`cell_stats`), among them the class of sixteen where two strong
students slip on the same cell.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_course_copy
from tests.grading.browser import accessibility_problems
from tito.course.generate import generate
from tito.course.grading import analytics
from tito.course.grading.outcome import OUTCOME_FILE, CellScore, Outcome
from tito.course.nbgrader_setup import nbgrader_config
from tito.course.settings import Course
from tito.main import app

COURSE = Course()

EASY, HARD, BROKEN = "gd_step_values", "clip_inf_norm", "adam_eps_outside_sqrt"
STUDENTS = [f"s{i:02d}" for i in range(30)]
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
        return ability < 20
    return ability >= 3 + 3 * (k % 9)


def in_memory_class(n: int, slips: dict[str, int]) -> list[dict]:
    """Score rows of a class of `n` (ability 0..n-1) on the module's cells: automatic cell k is
    passed from ability (k * 7) % 12 * n // 16 on, except that the students of ability at least
    slips[cell] fail `cell`; written answers wait for a person."""
    parts, points = analytics._parts_and_points(COURSE.source_notebook(COURSE.module("06")))
    rows = []
    for ability in range(n):
        row = {}
        for k, cell in enumerate(c for c in points if not c.startswith("q_")):
            passed = (
                ability >= (k * 7) % 12 * n // 16 if cell not in slips else ability < slips[cell]
            )
            row[cell] = points[cell] if passed else 0.0
        row |= {c: "pending" for c in points if c.startswith("q_")}
        row["total"] = sum(v for v in row.values() if v != "pending")
        rows.append(row)
    return [points, parts, rows]


def test_two_strong_students_slipping_on_one_cell_in_a_class_of_sixteen_flag_nothing():
    """The two strongest of sixteen fail a scheduler cell and, through it, the scheduler's
    integration cell: a discrimination far below -0.2 on both, but 1 chance in 12 (several of
    the class share the top totals), not the 0.05 / 41 a page of 41 tested cells needs."""
    slips = {"step_lr_values": 14, "scheduler_drives_optimizer_lr": 14}
    stats = {s.grade_id: s for s in analytics.cell_stats(*in_memory_class(16, slips))}
    assert sum(s.discrimination is not None for s in stats.values()) == 41
    for cell in slips:
        assert stats[cell].discrimination == pytest.approx(-0.3765, abs=1e-4)
        assert stats[cell].chance == pytest.approx(10 / 120)  # exact: 120 ways to choose two
        assert stats[cell].flags == []
    assert [s.grade_id for s in stats.values() if "suspect" in s.flags] == []


def test_a_test_the_strongest_third_of_thirty_fail_is_suspect():
    stats = analytics.cell_stats(*in_memory_class(30, {BROKEN: 20}))
    (suspect,) = [s for s in stats if "suspect" in s.flags]
    assert suspect.grade_id == BROKEN and suspect.discrimination == pytest.approx(-0.744, abs=1e-3)
    # C(30, 20) ways: 20,000 random ones, none as low as the class's, so 1 / 20,001.
    assert suspect.chance == 1 / (analytics.DRAWS + 1)


def test_the_chance_is_the_share_of_choices_as_low_as_the_class():
    # Four students, rests 1, 2, 3, 4; the two who passed have the rests 1 and 3 (sum 4): of the
    # six pairs, {1, 2} (3), {1, 3} (4) are as low: 2 / 6.
    assert analytics.chance_of_lower([1, 0, 1, 0], [1.0, 2.0, 3.0, 4.0]) == 2 / 6
    # 0.1 + 0.2 is 0.30000000000000004: the same rest as 0.3 but for rounding, so every
    # choice of one student is as low as the one who passed.
    assert analytics.chance_of_lower([0, 1, 0], [0.1 + 0.2, 0.3, 0.3]) == 1.0
    assert analytics.chance_of_lower([1, 1], [1.0, 2.0]) is None  # everyone passed


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


@pytest.mark.slow  # generates a course (nbgrader)
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
    ) == (30, 1.0, 2.0, None, ["easy"])
    assert (
        by_id[HARD].pass_rate,
        by_id[HARD].mean,
        by_id[HARD].discrimination,
        by_id[HARD].flags,
    ) == (0.0, 0.0, None, ["hard"])
    broken = by_id[BROKEN]
    passed = np.array([expected[s][BROKEN] > 0 for s in STUDENTS], dtype=float)
    rest = np.array(totals) - np.array([expected[s][BROKEN] for s in STUDENTS])
    assert (broken.pass_rate, broken.mean, broken.flags) == (20 / 30, 2.0, ["suspect"])
    assert broken.discrimination == pytest.approx(np.corrcoef(passed, rest)[0, 1], abs=1e-12)
    assert broken.discrimination < -0.7  # the twenty weakest pass it, the ten strongest fail it
    assert broken.chance == 1 / (analytics.DRAWS + 1)
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


@pytest.mark.slow
def test_the_command_writes_csv_and_a_page_without_script(constructed, monkeypatch, browser):
    course, m, _ = constructed
    monkeypatch.chdir(course.root)
    runner = CliRunner()
    table = runner.invoke(app, ["nbgrader", "analytics", "06"])
    assert table.exit_code == 0, table.output
    said = " ".join(table.output.split())
    assert "30 graded submissions (left out: 1 invalid)" in said and "suspect" in said
    assert "adam_step: no known mistake: 1 student" in said and said.count(": 3 students") == 1
    result = runner.invoke(app, ["nbgrader", "analytics", "06", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = {r["grade_id"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert len(rows) == 49
    assert (rows[BROKEN]["pass_rate"], rows[BROKEN]["mean"], rows[BROKEN]["flags"]) == (
        "0.6667",
        "2.0",
        "suspect",
    )
    broken = next(s for s in analytics.class_stats(course, m).cells if s.grade_id == BROKEN)
    assert float(rows[BROKEN]["discrimination"]) == round(broken.discrimination, 4)
    assert float(rows[BROKEN]["chance"]) == pytest.approx(1 / (analytics.DRAWS + 1), rel=1e-3)
    assert rows[EASY]["chance"] == ""  # everyone passed: no discrimination, no chance
    assert (
        rows["q_adam_memory"]["pass_rate"] == "" and result.stdout.count('"0.6667"') == 0
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
    assert browser.locator("tr.suspect td").nth(7).inner_text() == "5e-05"  # the chance, readable
    assert browser.locator("li").all_inner_texts()[1] == "adam_step: no known mistake: 1 student"
    for image in browser.locator("img").all():
        assert image.evaluate("i => i.complete && i.naturalWidth > 100")


@pytest.mark.slow
def test_the_page_has_no_serious_accessibility_problem(constructed, browser):
    course, m, _ = constructed
    page_path = course.root / "analytics-a11y.html"
    page_path.write_text(analytics.to_html(analytics.class_stats(course, m)), encoding="utf-8")
    browser.goto(page_path.as_uri())
    assert accessibility_problems(browser) == []
    # Every chart says in words what it shows, with its figures or where they are in the text.
    alts = [i.get_attribute("alt") for i in browser.locator("img").all()]
    assert alts[0].startswith("histogram of the total scores of 30 graded submissions, out of 100")
    assert all(len(alt) > 40 for alt in alts), alts
