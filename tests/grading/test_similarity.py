"""Similar submissions: a disguised copy is found, independently written solutions are not.

Constructed from the catalogue: the reference solution; a copy of it with renamed variables and
two statements swapped; the alternatives packed into one submission that writes every region
differently (`alternatives-1`); the untouched student version; a copy of the reference that
carries script in a comment (the page must show it as text); and a file that is no notebook.
"""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest
from typer.testing import CliRunner

from tests.conftest import make_course_copy
from tests.grading.catalogue_runs import ALTERNATIVE_GROUPS, alternative_submission
from tito.course.grading import submissions as sub
from tito.course.grading.similarity import THRESHOLD, similarity, to_html
from tito.course.settings import Course
from tito.main import app

RENAMES = {
    "d_p": "direction",
    "buf": "velocity",
    "exp_avg_sq": "second",
    "exp_avg": "first",
    "bias_correction1": "c1",
    "bias_correction2": "c2",
    "denom": "denominator",
    "total": "norm",
    "clip_coef": "factor",
    "progress": "frac",
}
SCRIPT = "# </pre><script>document.title = 'owned'</script><img src=x onerror=alert(1)>"


def disguised(nb):
    """The reference with every name in RENAMES changed and Adam's two bias corrections swapped."""
    for region in [
        "sgd_step_impl",
        "adam_step_impl",
        "clip_grad_norm_impl",
        "warmup_cosine_lr_impl",
    ]:
        code = sub.region(nb, region)
        for old, new in RENAMES.items():
            code = re.sub(rf"\b{old}\b", new, code)
        lines = code.splitlines()
        if region == "adam_step_impl":
            i = next(k for k, line in enumerate(lines) if line.startswith("c1 ="))
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        nb = sub.replace_region(nb, region, "\n".join(lines) + "\n")
    return nb


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    course = Course()
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    complete = sub.filled(release, nbformat.read(course.source_notebook(m), as_version=4))
    scripted = sub.replace_region(
        complete, "step_lr_impl", SCRIPT + "\n" + sub.region(complete, "step_lr_impl")
    )
    root = tmp_path_factory.mktemp("similarity")
    for student, nb in {
        "reference": complete,
        "copy": disguised(complete),
        "untouched": release,
        "independent": alternative_submission(complete, *ALTERNATIVE_GROUPS["alternatives-1"]),
        "scripted": scripted,
    }.items():
        path = course.submission_notebook(m, student, root)
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    junk = course.submission_notebook(m, "junk", root)
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"\x00 not a notebook")
    return course, m, root, similarity(course, m, course_root=root)


def test_the_disguised_copy_is_found_and_the_independent_solution_is_not(report):
    _, _, _, r = report
    assert r.compared == ["copy", "independent", "reference", "scripted", "untouched"]
    assert list(r.skipped) == ["junk"] and r.skipped["junk"].startswith(
        "NotJSONError: Notebook does not appear to be JSON"
    )
    shares = {(p.a, p.b): (round(p.share_a, 2), round(p.share_b, 2)) for p in r.pairs}
    assert THRESHOLD == 0.5
    assert sorted((p.a, p.b) for p in r.flagged) == [
        ("copy", "reference"),
        ("copy", "scripted"),
        ("reference", "scripted"),
    ]
    assert shares[("copy", "reference")] == (1.0, 1.0)
    assert shares[("independent", "reference")] == (0.12, 0.10)  # shared idioms only: far below 0.5
    assert (
        max(
            max(shares[tuple(sorted(("independent", other)))])
            for other in ("copy", "reference", "scripted")
        )
        < 0.2
    )
    assert all(
        shares[pair] == (0.0, 0.0) for pair in shares if "untouched" in pair
    )  # wrote nothing


def test_the_page_shows_the_shared_fragments_as_text_and_runs_nothing(report, browser):
    course, m, root, r = report
    page_path = root / "similarity.html"
    page_path.write_text(to_html(r), encoding="utf-8")
    text = page_path.read_text(encoding="utf-8")
    assert "<script" not in text and "<img" not in text
    requests = []
    browser.on("request", lambda req: requests.append(req.url))
    browser.goto(page_path.as_uri())
    browser.screenshot(
        path=str(page_path.with_suffix(".png")), full_page=True
    )  # kept beside the page
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert browser.title() == "06_optimizers: similar submissions"
    assert browser.evaluate("document.querySelectorAll('script, img').length") == 0
    assert any(SCRIPT in pre.inner_text() for pre in browser.locator("pre").all())  # shown as text
    copied = browser.locator("h2", has_text="copy and reference")
    assert copied.count() == 1 and copied.inner_text() == "copy and reference: 100% and 100% shared"
    assert any(
        "velocity" in s for s in browser.locator("strong").all_inner_texts()
    )  # the shared fragments


def test_the_command_prints_the_listed_pairs_and_writes_the_page(report, tmp_path, monkeypatch):
    course, m, root, _ = report
    copy = make_course_copy(tmp_path / "course")
    shutil.copytree(course.directory("release"), copy / "release")
    shutil.copytree(root / "submitted", copy / "submitted")
    monkeypatch.chdir(copy)
    result = CliRunner().invoke(app, ["nbgrader", "similarity", "06"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "5 submissions compared, 10 pairs; 3 at or above 0.5" in said
    assert "not compared: junk: NotJSONError" in said
    page = (copy / "reports" / "06_optimizers" / "similarity.html").read_text(encoding="utf-8")
    assert page.count("<h2>") == 3 + 1  # the three listed pairs, and what was not compared


def test_one_common_idiom_is_not_a_copy(report):
    """A submission that is a single idiom shares all of it with many students: below MIN_SHARED,
    never listed."""
    from tito.course.grading.similarity import MIN_SHARED, compare

    _, _, _, r = report
    reference = next(
        p.code_a if p.a == "reference" else p.code_b for p in r.pairs if "reference" in (p.a, p.b)
    )
    idiom = (
        'buf = state.get("momentum_buffer")\nif buf is None:\n'
        '    buf = state["momentum_buffer"] = d_p.copy()'
    )
    (pair,) = compare({"idiom": idiom, "reference": reference}, "").pairs
    assert pair.share_a == 1.0 and pair.tokens < MIN_SHARED
    assert compare({"idiom": idiom, "reference": reference}, "").flagged == []
