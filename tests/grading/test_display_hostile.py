"""What a submission says (its markdown, outputs, attachments, metadata) is data on every page,
and hidden tests never leave the judge.

A batch graded as an unprivileged user (`tito nbgrader autograde`): an honest classmate next to
submissions that carry script, floods, a lone surrogate, 60,000 cells or a cell that hunts for
hidden test lines; then the feedback pages, and formgrader and a feedback page opened in headless
Chromium. As root, test_hostile_submissions.py grades the same cases on a Dask cluster and
checks them with `check_display`.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO, make_course_copy
from tests.grading import hostile, unprivileged
from tests.grading.test_hostile_submissions import (HONEST, check_display, display_cases,
                                                    full_score, hidden_lines, notebooks, place, recorded_scores)
from tito.course.generate import generate
from tito.course.grading import display, submissions as sub
from tito.course.grading.examples import EPS_INSIDE_SQRT
from tito.course.grading.host import load_outcome
from tito.course.settings import Course

pytestmark = pytest.mark.slow


def _cases(course: Course) -> dict:
    m, release, instructor, complete = notebooks(course)
    return {HONEST: complete, "buggy": sub.replace_region(complete, "adam_step_impl", EPS_INSIDE_SQRT),
            "calls_os_exit": sub.insert_code_cell(complete, "adam_step_impl", "import os\nos._exit(0)"),
            **display_cases(release, instructor, complete)}


@pytest.fixture(scope="module")
def batch():
    """Graded as an unprivileged user through the command line; the pages are opened from it.
    (As root, the same display cases are graded in test_hostile_submissions.py's Dask batch.)"""
    laptop = Path(tempfile.mkdtemp(prefix="tito-laptop-"))  # not under pytest's folder (owner only)
    try:
        course = Course(make_course_copy(laptop / "course", cell_timeout_seconds=30, memory_limit_mb=2500,
                                         submission_timeout_seconds=400, max_processes=64, scratch_mb=64))
        generate(course, course.module("06"))
        (laptop / "home").mkdir()
        paths = place(course, _cases(course), not_files=False)
        unprivileged.give_to_nobody(laptop)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(laptop / "home"),
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = unprivileged.run([str(Path(sys.executable).parent / "tito"), "nbgrader", "autograde", "06",
                                 "--workers", "2"], cwd=course.root, env=env, needed=[REPO, course.root], timeout=900)
        m, _, instructor, _ = notebooks(course)
        yield dict(course=course, proc=proc, outcomes={s: load_outcome(course, course.root, m, s) for s in paths},
                   full=full_score(instructor))
    finally:
        shutil.rmtree(laptop, ignore_errors=True)


def test_unprivileged_grading_treats_what_a_submission_says_as_data(batch):
    b = batch
    assert b["proc"].returncode == 3, b["proc"].stdout[-3000:] + b["proc"].stderr[-3000:]  # invalid/failed ones
    assert "06_optimizers: automatic scores" in b["proc"].stdout  # the batch finished with its table
    assert recorded_scores(b["course"], [HONEST])[HONEST].automatic == b["full"]
    check_display(b["course"], b["outcomes"], b["full"])


def _page_text(page: str) -> str:
    """The text a reader sees on an HTML page (tags removed without spaces, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_the_hidden_line_hunt_finds_hidden_lines_where_they_are(tmp_path, capsys):
    """The cell that reads its job's files does find hidden lines when they are there."""
    course = Course()
    instructor = nbformat.read(course.source_notebook(course.module("06")), as_version=4)
    (tmp_path / "job").mkdir()
    shutil.copy(course.source_notebook(course.module("06")), tmp_path / "job" / "instructor.ipynb")
    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import numpy", id="imports")])
    cell = hostile.prints_inputs(release, hidden_lines(instructor)).cells[1].source
    exec(cell.replace('["/job", os.getcwd(), "/tmp"]', repr([str(tmp_path / "job")])), {})
    hidden = hidden_lines(instructor)
    # Most of them: a line whose JSON text holds escapes is not matched, which the hunt only undoes in part.
    assert len(hidden) == 38 and int(capsys.readouterr().out.split("hidden lines seen: ")[1]) >= 30


def test_every_outcome_has_a_feedback_page_with_no_script_and_no_hidden_test(batch):
    from tito.course.grading import feedback

    course, m = batch["course"], batch["course"].module("06")
    # One student of every kind (a page takes about 2.5 s on this machine).
    kinds = {HONEST: "graded", "buggy": "graded", "scripted": "graded", "many_cells": "invalid",
             "calls_os_exit": "failed"}
    assert {s: batch["outcomes"][s].status for s in kinds} == kinds
    pages = [page for s in kinds for page in feedback.generate(course, m, student=s)]
    assert sorted(p.parent.parent.name for p in pages) == sorted(kinds)
    hidden = hidden_lines(nbformat.read(course.source_notebook(m), as_version=4))
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and len(text) < 2 << 20, page
        assert [h for h in hidden if h in _page_text(text)] == [], page
    # The check can see a hidden line: the instructor notebook rendered the same way shows them.
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(course.source_notebook(m), as_version=4))
    assert len([h for h in hidden if h in _page_text(body)]) == len(hidden)
    invalid = (course.root / "feedback" / "many_cells" / m.name / "optimizers.html").read_text(encoding="utf-8")
    assert "not graded" in invalid and "more than the 1,000 a submission may have" in invalid


def _watch(page) -> dict:
    seen = {"dialogs": [], "requests": [], "failed": {}}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("requestfailed", lambda r: seen["failed"].__setitem__(r.url, r.failure))
    return seen


MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
UNSAFE = "script:not([src]), iframe, [onerror], [onload], [onmouseover], [onclick], a[href^='javascript'], [style*='url(']"


def test_formgrader_and_the_feedback_page_show_hostile_work_without_running_it(batch, browser):
    """In Chromium: the submission whose answers, outputs, attachment and metadata carry script."""
    from tests.grading.browser import formgrader, formgrader_api
    from tito.course.grading import feedback

    course, m, page = batch["course"], batch["course"].module("06"), browser
    with formgrader(course) as (base, token):
        scripted = next(n for n in formgrader_api(base, token, f"submitted_notebooks/{m.name}/{m.notebook}")
                        if n["student"] == "scripted")
        page.goto(f"{base}/login?next=/formgrader/submissions/{scripted['id']}/")
        page.fill("#password_input", token)
        seen = _watch(page)
        page.click("#login_submit")
        page.wait_for_selector("input.score#q_adam_memory", state="attached")
        for cell in page.locator(".text_cell_render b").all():  # the bold that carried onmouseover
            cell.hover()
        page.wait_for_timeout(500)
        assert page.evaluate("document.body.getAttribute('data-pwned')") is None
        assert page.locator(f"#notebook-container :is({UNSAFE})").count() == 0
        assert page.locator("#fake-credit").count() == 0  # the raw cell's fake button is not on the page
        assert seen["dialogs"] == []
        # Beyond the server, only nbgrader's own template asks for something (MathJax from a CDN),
        # and the server's Content-Security-Policy stops it before it leaves the browser.
        assert [u for u in seen["requests"] if not u.startswith(base)] == [MATHJAX], seen["requests"]
        assert seen["failed"] == {MATHJAX: "csp"}, seen["failed"]
        # The written answer is there, as text and MathML; the Jupyter server offers no kernel.
        assert page.locator("#notebook-container math").count() > 0
        assert "Momentum answer" in page.locator("#notebook-container").first.inner_text()
        instructor = nbformat.read(course.source_notebook(m), as_version=4)
        shown = page.locator("body").inner_text()
        assert display.HIDDEN_LINE in shown and [h for h in hidden_lines(instructor) if h in shown] == []
        request = urllib.request.Request(f"{base}/api/kernelspecs", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["kernelspecs"] == {}
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        # No file of the course through the server: contents and nbconvert refuse, /files/ is gone.
        for path, code in [("api/contents/settings.ini", 403), ("api/contents/assignments", 403),
                           ("nbconvert/html/submitted/scripted/06_optimizers/optimizers.ipynb", 403),
                           ("files/gradebook.db", 404)]:
            request = urllib.request.Request(f"{base}/{path}", headers={"Authorization": f"token {token}"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == code, path
    (path,) = feedback.generate(course, m, student="scripted")
    seen = _watch(page)
    page.goto(path.as_uri())
    # From here on, any change to the page would be script's doing (the page has none).
    page.evaluate("new MutationObserver(m => { window.__changes = (window.__changes || 0) + m.length })"
                  ".observe(document, {subtree: true, childList: true, attributes: true, characterData: true})")
    for cell in page.locator("b").all():
        cell.hover()
    page.wait_for_timeout(300)
    page.screenshot(path=str(path.with_suffix(".png")))
    assert page.locator("script").count() == 0 and page.locator(UNSAFE).count() == 0
    assert page.evaluate("document.body.getAttribute('data-pwned')") is None
    assert (seen["dialogs"], [u for u in seen["requests"] if not u.startswith("file:")]) == ([], [])
    assert page.evaluate("window.__changes || 0") == 0
