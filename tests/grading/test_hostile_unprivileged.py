"""The hostile submissions of test_hostile_submissions.py graded again as an unprivileged user
(an instructor's laptop) through `tito nbgrader autograde` on this machine: the same jail
without root, a memory watch instead of a control group, no CPU quota (a starved job is
failed and graded again by --retry-failed).

The same batch carries what a submission says (its markdown, outputs, attachments, metadata:
script, floods, a lone surrogate, 60,000 cells, a cell that hunts for hidden test lines): it is
data on every page, and hidden tests never leave the judge. The feedback pages are written
from it, and formgrader and a feedback page are opened in headless Chromium.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests import submissions as sub
from tests.conftest import REPO, make_course_copy, report_summary
from tests.grading import hostile, unprivileged
from tests.grading.batch_checks import (
    HOARD,
    HONEST,
    REAPS_CHILDREN,
    check_attack_cells,
    check_display,
    check_reaped_children,
    check_resources,
    display_cases,
    full_score,
    hidden_lines,
    hostile_cases,
    keyring,
    notebooks,
    place,
    processes_with,
    recorded_scores,
    snapshot,
)
from tests.grading.browser import accessibility_problems
from tito.course.examples import with_mistake
from tito.course.generate import generate
from tito.course.grading import cgroups, display
from tito.course.grading.host import record
from tito.course.grading.outcome import CellScore, Outcome, load_outcome
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


BUSY = "the grading machine was busy"
WATCHED = "bubblewrap, seccomp, memory watch (2500 MB in all, user pages only), no CPU quota"


def _grade_unprivileged(laptop: Path) -> dict:
    root = make_course_copy(
        laptop / "course",
        cell_timeout_seconds=10,
        memory_limit_mb=2500,
        submission_timeout_seconds=400,
        max_processes=64,
        scratch_mb=64,
    )
    course = Course(root)
    generate(course, course.module("06"))
    tmpdir = root.parent / "tmp"
    home = root.parent / "home"
    tmpdir.mkdir()
    home.mkdir()
    m, release, instructor, complete = notebooks(course)
    attacks = hostile_cases(course, tmpdir)
    said = {
        "buggy": with_mistake(complete, m, "adam-eps-inside-sqrt"),
        "calls_os_exit": sub.insert_code_cell(complete, "adam_step_impl", "import os\nos._exit(0)"),
        REAPS_CHILDREN: hostile.reaps_children(complete),
        **display_cases(release, instructor, complete),
    }
    paths = place(
        course, {HONEST: complete, "untouched": release, **attacks, **said}, not_files=False
    )
    unprivileged.give_to_nobody(laptop)
    before = snapshot(course, tmpdir)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    keys_before = keyring()
    tito = [str(Path(sys.executable).parent / "tito"), "nbgrader", "autograde", "06"]
    # No control group for the jails (as root this runs as nobody, in none): the memory limit
    # would leave out kernel memory, so grading is refused, before anything is written, until the
    # instructor accepts it.
    refused = unprivileged.run(
        [*tito, "--workers", "2"], cwd=root, env=env, needed=[REPO, root], timeout=900
    )
    written_when_refused = sorted(p.name for p in (root / "autograded").glob("*"))
    tito.append("--accept-unbounded-kernel-memory")
    proc = unprivileged.run(
        [*tito, "--workers", "2"], cwd=root, env=env, needed=[REPO, root], timeout=900
    )
    first = {s: load_outcome(course, root, m, s) for s in paths}
    first_scores = recorded_scores(course, paths)
    # No CPU quota without root: a job the hog starved is failed, never scored lower; retried once
    # quiet.
    retry = unprivileged.run(
        [*tito, "--retry-failed"], cwd=root, env=env, needed=[REPO, root], timeout=900
    )
    after_retry = {s: load_outcome(course, root, m, s) for s in paths}
    # The retry may meet a busy machine too (another test file's batch beside it): then it asks
    # for the same again, at most twice more here.
    outcomes, retries = after_retry, 1
    while retries < 3 and any(
        o is not None and o.status == "failed" and BUSY in o.reason for o in outcomes.values()
    ):
        unprivileged.run(
            [*tito, "--retry-failed"], cwd=root, env=env, needed=[REPO, root], timeout=900
        )
        outcomes, retries = {s: load_outcome(course, root, m, s) for s in paths}, retries + 1
    lingering = processes_with(hostile.MARKER)
    after = snapshot(course, tmpdir)
    return dict(
        course=course,
        refused=refused,
        written_when_refused=written_when_refused,
        proc=proc,
        retry=retry,
        after_retry=after_retry,
        retries=retries,
        first=first,
        outcomes=outcomes,
        before=before,
        after=after,
        first_scores=first_scores,
        scores=recorded_scores(course, paths),
        full=full_score(instructor),
        lingering=lingering,
        keys=(keys_before, keyring()),
        attacks=list(attacks),
        said=list(said),
    )


def test_unprivileged_grading_is_jailed_too(unprivileged_batch):
    b = unprivileged_batch
    assert b["proc"].returncode == 3, (
        b["proc"].stdout[-3000:] + b["proc"].stderr[-3000:]
    )  # invalid/failed ones
    assert (
        "06_optimizers: automatic scores" in b["proc"].stdout
    )  # the batch finished with its table
    o = b["outcomes"]
    assert {
        s: (x.status, x.isolation, x.reason)
        for s, x in o.items()
        if x is None or (x.status != "invalid" and x.isolation != WATCHED)
    } == {}
    recorded = b["scores"]
    assert (o[HONEST].status, recorded[HONEST].automatic) == ("graded", b["full"])
    nothing_done = [s for s in [*b["attacks"], "untouched"] if s != "broadcasts"]
    assert {s: recorded[s].automatic for s in nothing_done} == {s: 0.0 for s in nothing_done}
    assert b["lingering"] == []
    before, after = b["before"], b["after"]
    assert {
        k
        for k in before["course"].keys() | after["course"].keys()
        if before["course"].get(k) != after["course"].get(k)
    } == set()
    assert before["environment"] == after["environment"]
    assert after["tmp"] == before["tmp"] == []


def test_unprivileged_grading_keeps_each_job_to_its_own_resources(unprivileged_batch, request):
    """Without root there is no CPU quota: the hog may starve a classmate's job, which is then
    failed with the reason (never scored lower) and graded by --retry-failed."""
    b = unprivileged_batch
    check_resources(b["course"], b["outcomes"], *b["keys"])
    busy = BUSY
    first, final = b["first"], b["outcomes"]
    assert (
        first[HONEST].status == "graded"
        and b["first_scores"][HONEST].automatic == b["full"]
        or first[HONEST].status == "failed"
        and busy in first[HONEST].reason
    ), first[HONEST]
    starved = sorted(s for s, o in first.items() if o.status == "failed" and busy in o.reason)
    assert {s: final[s].status for s in starved} == {s: "graded" for s in starved}
    assert (final[HONEST].status, b["scores"][HONEST].automatic) == ("graded", b["full"])
    expected_failures = {
        s for s, o in first.items() if o.status == "failed" and busy not in o.reason
    }
    assert {s for s, o in final.items() if o.status == "failed"} == expected_failures
    still_failed = any(o is not None and o.status == "failed" for o in b["after_retry"].values())
    assert b["retry"].returncode == (3 if still_failed else 0), b["retry"].stdout[-2000:]
    regraded = set(re.findall(r"^│ (\S+) +│", b["retry"].stdout, re.M)) - {"student"}
    assert regraded == {
        s for s, o in first.items() if o.status == "failed"
    }  # the failed ones, only them
    report_summary(
        request.config,
        "unprivileged batch with a CPU hog",
        f"{len(starved)} job(s) failed as starved ({', '.join(starved) or 'none'}), "
        f"all graded by --retry-failed ({b['retries']} run(s) of it); memory hoard peak "
        f"{final[HOARD].memory_mb}",
    )


def test_a_judged_function_that_burns_cpu_in_reaped_children_is_graded_at_once(
    unprivileged_batch,
):
    """Graded by the first run, with no CPU quota and a CPU hog in the batch: no retry needed."""
    b = unprivileged_batch
    check_reaped_children(b["first"][REAPS_CHILDREN], b["first_scores"][REAPS_CHILDREN], b["full"])


def test_without_a_control_group_grading_is_refused_until_the_risk_is_accepted(
    unprivileged_batch,
):
    """As nobody, with no control group delegated, the jail's memory limit counts user pages only:
    a submission could fill socket buffers past it. autograde says so and stops (exit 1), having
    written nothing, until --accept-unbounded-kernel-memory is given."""
    b = unprivileged_batch
    if os.geteuid() != 0 and cgroups.available():
        pytest.skip("this user has a delegated control group: its jails count kernel memory too")
    said = " ".join((b["refused"].stdout + b["refused"].stderr).split())
    assert b["refused"].returncode == 1, said
    assert "bounds memory for user pages only" in said
    assert "--accept-unbounded-kernel-memory" in said
    assert b["written_when_refused"] == []


def test_unprivileged_run_really_ran_unprivileged(unprivileged_batch):
    """The outcome files belong to the unprivileged user: the grader itself ran as that user."""
    course = unprivileged_batch["course"]
    owner = (course.root / "autograded" / HONEST / "06_optimizers" / "grading.json").stat().st_uid
    assert owner == (unprivileged.NOBODY if os.geteuid() == 0 else os.geteuid())
    assert owner != 0


def test_every_attack_scores_nothing_in_any_cell(unprivileged_batch):
    b = unprivileged_batch
    check_attack_cells(b["outcomes"], b["scores"], b["attacks"])


# -- what a submission says ------------------------------------------------------------------


def test_unprivileged_grading_treats_what_a_submission_says_as_data(unprivileged_batch):
    b = unprivileged_batch
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
    release = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import numpy", id="imports")]
    )
    cell = hostile.prints_inputs(release, hidden_lines(instructor)).cells[1].source
    exec(cell.replace('["/job", os.getcwd(), "/tmp"]', repr([str(tmp_path / "job")])), {})
    hidden = hidden_lines(instructor)
    # Most of them: a line whose JSON text holds escapes is not matched, which the hunt only undoes
    # in part.
    assert len(hidden) == 38 and int(capsys.readouterr().out.split("hidden lines seen: ")[1]) >= 30


def test_every_outcome_has_a_feedback_page_with_no_script_and_no_hidden_test(unprivileged_batch):
    from tito.course.grading import feedback

    course, m = unprivileged_batch["course"], unprivileged_batch["course"].module("06")
    outcomes = unprivileged_batch["outcomes"]
    # One student of every kind (a page takes about 2.5 s on this machine).
    kinds = {
        HONEST: "graded",
        "buggy": "graded",
        "scripted": "graded",
        "many_cells": "invalid",
        "calls_os_exit": "graded",
        "echoes_hidden_inputs": "graded",
        "machine_failed": "failed",
    }
    outcomes = {**outcomes, "machine_failed": _machine_failure(course, outcomes[HONEST])}
    assert {s: outcomes[s].status for s in kinds} == kinds
    pages = [page for s in kinds for page in feedback.generate(course, m, student=s)]
    assert sorted(p.parent.parent.name for p in pages) == sorted(kinds)
    instructor = nbformat.read(course.source_notebook(m), as_version=4)
    hidden = hidden_lines(instructor)
    secrets = hostile.hidden_option_sets(instructor)  # what echoes_hidden_inputs would show
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "<b onmouseover" not in text and len(text) < 2 << 20, page
        assert [h for h in hidden if h in _page_text(text)] == [], page
        assert [s for s in secrets if s in html.unescape(text)] == [], page
    # The check can see a hidden line: the instructor notebook rendered the same way shows them.
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(
        nbformat.read(course.source_notebook(m), as_version=4)
    )
    assert len([h for h in hidden if h in _page_text(body)]) == len(hidden)
    invalid = (course.root / "feedback" / "many_cells" / m.name / "optimizers.html").read_text(
        encoding="utf-8"
    )
    assert "not graded" in invalid and "more than the 1,000 a submission may have" in invalid


def _machine_failure(course, honest: Outcome) -> Outcome:
    """A failure of the machine, recorded as one would be (a submission cannot bring one about)."""
    m = course.module("06")
    failed = Outcome(
        "machine_failed",
        m.name,
        "failed",
        "the grading sandbox could not start: <b onmouseover=alert(1)>x</b>",
        [CellScore(c.grade_id, c.max_score, None, None, None) for c in honest.cells],
    )
    handed_in = course.submission_notebook(m, "machine_failed")
    handed_in.parent.mkdir(parents=True, exist_ok=True)
    handed_in.write_text("{}", encoding="utf-8")
    record(course, course.root, m, failed)
    return failed


def test_every_kind_of_feedback_page_has_no_serious_accessibility_problem(
    unprivileged_batch, browser
):
    """axe-core in Chromium on a graded, an invalid and a failed outcome's page."""
    from tito.course.grading import feedback

    course, outcomes = unprivileged_batch["course"], unprivileged_batch["outcomes"]
    _machine_failure(course, outcomes[HONEST])
    for student in [HONEST, "many_cells", "machine_failed"]:
        (path,) = feedback.generate(course, course.module("06"), student=student)
        browser.goto(path.as_uri())
        assert accessibility_problems(browser) == [], student


def _watch(page) -> dict:
    seen = {"dialogs": [], "requests": [], "failed": {}}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("requestfailed", lambda r: seen["failed"].__setitem__(r.url, r.failure))
    return seen


MATHJAX = (
    "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
)
UNSAFE = (
    "script:not([src]), iframe, [onerror], [onload], [onmouseover], [onclick], "
    "a[href^='javascript'], [style*='url(']"
)


def test_formgrader_and_the_feedback_page_show_hostile_work_without_running_it(
    unprivileged_batch, browser
):
    """In Chromium: the submission whose answers, outputs, attachment and metadata carry script."""
    from tests.grading.browser import formgrader, formgrader_api
    from tito.course.grading import feedback

    course, m, page = (
        unprivileged_batch["course"],
        unprivileged_batch["course"].module("06"),
        browser,
    )
    with formgrader(course) as (base, token):
        scripted = next(
            n
            for n in formgrader_api(base, token, f"submitted_notebooks/{m.name}/{m.notebook}")
            if n["student"] == "scripted"
        )
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
        assert (
            page.locator("#fake-credit").count() == 0
        )  # the raw cell's fake button is not on the page
        assert seen["dialogs"] == []
        # Beyond the server, only nbgrader's own template asks for something (MathJax from a CDN),
        # and the server's Content-Security-Policy stops it before it leaves the browser.
        assert [u for u in seen["requests"] if not u.startswith(base)] == [MATHJAX], seen[
            "requests"
        ]
        assert seen["failed"] == {MATHJAX: "csp"}, seen["failed"]
        # The written answer is there, as text and MathML; the Jupyter server offers no kernel.
        assert page.locator("#notebook-container math").count() > 0
        assert "Momentum answer" in page.locator("#notebook-container").first.inner_text()
        instructor = nbformat.read(course.source_notebook(m), as_version=4)
        shown = page.locator("body").inner_text()
        assert (
            display.HIDDEN_LINE in shown
            and [h for h in hidden_lines(instructor) if h in shown] == []
        )
        request = urllib.request.Request(
            f"{base}/api/kernelspecs", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["kernelspecs"] == {}
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        # No file of the course through the server: contents and nbconvert refuse, /files/ is gone.
        for path, code in [
            ("api/contents/settings.ini", 403),
            ("api/contents/assignments", 403),
            ("nbconvert/html/submitted/scripted/06_optimizers/optimizers.ipynb", 403),
            ("files/gradebook.db", 404),
        ]:
            request = urllib.request.Request(
                f"{base}/{path}", headers={"Authorization": f"token {token}"}
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == code, path
    (path,) = feedback.generate(course, m, student="scripted")
    seen = _watch(page)
    page.goto(path.as_uri())
    # From here on, any change to the page would be script's doing (the page has none).
    page.evaluate(
        "new MutationObserver(m => { window.__changes = (window.__changes || 0) + m.length })"
        ".observe(document, "
        "{subtree: true, childList: true, attributes: true, characterData: true})"
    )
    for cell in page.locator("b").all():
        cell.hover()
    page.wait_for_timeout(300)
    page.screenshot(path=str(path.with_suffix(".png")))
    assert page.locator("script").count() == 0 and page.locator(UNSAFE).count() == 0
    assert page.evaluate("document.body.getAttribute('data-pwned')") is None
    assert (seen["dialogs"], [u for u in seen["requests"] if not u.startswith("file:")]) == ([], [])
    assert page.evaluate("window.__changes || 0") == 0
