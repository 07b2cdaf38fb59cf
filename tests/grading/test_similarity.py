"""Similar submissions: a disguised copy is found, independently written solutions are not.

Constructed from the catalogue: the reference solution; a copy of it with renamed variables and
two statements swapped; the alternatives packed into one submission that writes every region
differently (`alternatives-1`); the untouched student version; a copy of the reference that
carries script in a string (the page must show it as text); and a file that is no notebook.
Then the copies that try to hide: one with `;` after every statement, one with a `None` line
after every statement, one whose solution bodies are `pass` and whose last cell `exec`s the
copied functions from one string, one padded with textbook helpers that nothing calls, one
padded with a flood of `<&` comment lines; and a framer: the independent solution carrying the
reference's functions, renamed, as helpers that nothing calls.
"""

from __future__ import annotations

import ast
import re
import shutil

import nbformat
import pytest
from typer.testing import CliRunner

from tests import submissions as sub
from tests.conftest import make_course_copy
from tests.grading.browser import accessibility_problems
from tests.grading.catalogue_runs import ALTERNATIVE_GROUPS, alternative_submission
from tito.course.grading.similarity import (
    THRESHOLD,
    provided,
    similarity,
    to_html,
    written,
)
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
SCRIPT = "</pre><script>document.title = 'owned'</script><img src=x onerror=alert(1)>"
REGIONS = [
    "gradient_descent_step_impl",
    "sgd_step_impl",
    "adam_step_impl",
    "adamw_step_impl",
    "clip_grad_norm_impl",
    "step_lr_impl",
    "exponential_lr_impl",
    "cosine_annealing_lr_impl",
    "warmup_cosine_lr_impl",
]
# Helpers in a common textbook style; the padded copies define them and never call them.
TEXTBOOK = """
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + h
        plus = f(x)
        x.flat[i] = old - h
        minus = f(x)
        x.flat[i] = old
        grad.flat[i] = (plus - minus) / (2 * h)
    return grad


def rmsprop_update(param, grad, cache, lr=0.01, decay=0.99, eps=1e-8):
    cache[:] = decay * cache + (1 - decay) * grad ** 2
    param -= lr * grad / (np.sqrt(cache) + eps)
    return param, cache


def adagrad_update(param, grad, cache, lr=0.01, eps=1e-8):
    cache += grad ** 2
    param -= lr * grad / (np.sqrt(cache) + eps)
    return param, cache


def exponential_moving_average(values, beta=0.9):
    averages, running = [], 0.0
    for t, v in enumerate(values, start=1):
        running = beta * running + (1 - beta) * v
        averages.append(running / (1 - beta ** t))
    return averages


def polynomial_decay(base_lr, step, total_steps, power=2.0, end_lr=0.0):
    fraction = min(step, total_steps) / total_steps
    return (base_lr - end_lr) * (1 - fraction) ** power + end_lr


def linear_warmup(base_lr, step, warmup_steps):
    if step >= warmup_steps:
        return base_lr
    return base_lr * (step + 1) / warmup_steps


def global_norm(arrays):
    return float(np.sqrt(sum(float(np.sum(a * a)) for a in arrays)))


class RunningMean:
    def __init__(self):
        self.count, self.mean = 0, 0.0

    def update(self, value):
        self.count += 1
        self.mean += (value - self.mean) / self.count
        return self.mean
"""


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


def _each_statement(nb, edit):
    """Each simple statement of the solution regions through edit(lines, statement), last first."""
    for grade_id in REGIONS:
        code = sub.region(nb, grade_id)
        lines = code.splitlines()
        simple = [
            node
            for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.stmt) and not hasattr(node, "body")
        ]
        for node in sorted(simple, key=lambda n: (n.end_lineno, n.end_col_offset), reverse=True):
            edit(lines, node)
        nb = sub.replace_region(nb, grade_id, "\n".join(lines) + "\n")
    return nb


def with_semicolons(nb):
    def edit(lines, node):
        line = lines[node.end_lineno - 1]
        lines[node.end_lineno - 1] = line[: node.end_col_offset] + ";" + line[node.end_col_offset :]

    return _each_statement(nb, edit)


def with_none_lines(nb):
    def edit(lines, node):
        lines.insert(node.end_lineno, " " * node.col_offset + "None")

    return _each_statement(nb, edit)


def run_from_a_string(complete):
    """Solution bodies `pass`; the copied functions (their cells as the reference has them) run
    by one exec of a string in a last cell."""
    nb = complete
    for grade_id in REGIONS:
        nb = sub.replace_region(nb, grade_id, "pass\n")
    return sub.insert_code_cell(nb, REGIONS[-1], f"exec({solution_cells(complete)!r})")


def with_helpers(nb, helpers: str):
    return sub.insert_code_cell(nb, REGIONS[-1], "import numpy as np\n" + helpers)


def solution_cells(nb) -> str:
    """The code of every solution cell, as one text."""
    return "\n\n".join(
        c.source
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    )


def framing(independent, complete):
    """The independent solution carrying the reference's functions, renamed, as helpers."""
    renamed = re.sub(r"^def (\w+)\(", r"def kept_\1(", solution_cells(complete), flags=re.M)
    return with_helpers(independent, renamed)


def the_module():
    """(course, module 06, its student version, the student version filled with the reference)."""
    course = Course()
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    complete = sub.filled(release, nbformat.read(course.source_notebook(m), as_version=4))
    return course, m, release, complete


def hand_in(course, m, root, notebooks: dict) -> None:
    for student, nb in notebooks.items():
        path = course.submission_notebook(m, student, root)
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    course, m, release, complete = the_module()
    scripted = sub.replace_region(
        complete, "step_lr_impl", f"note = {SCRIPT!r}\n" + sub.region(complete, "step_lr_impl")
    )
    root = tmp_path_factory.mktemp("similarity")
    hand_in(
        course,
        m,
        root,
        {
            "reference": complete,
            "copy": disguised(complete),
            "untouched": release,
            "independent": alternative_submission(complete, *ALTERNATIVE_GROUPS["alternatives-1"]),
            "scripted": scripted,
        },
    )
    junk = course.submission_notebook(m, "junk", root)
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"\x00 not a notebook")
    return course, m, root, similarity(course, m, course_root=root)


FLOOD = "\n".join("# " + "<&" * 45 for _ in range(2000))  # 186,000 characters of comment


@pytest.fixture(scope="module")
def hiding(tmp_path_factory):
    """A class of copies that try to hide, the independent solution and the framer."""
    course, m, release, complete = the_module()
    independent = alternative_submission(complete, *ALTERNATIVE_GROUPS["alternatives-1"])
    flooded = sub.replace_region(
        complete, "adam_step_impl", FLOOD + "\n" + sub.region(complete, "adam_step_impl")
    )
    root = tmp_path_factory.mktemp("hiding")
    notebooks = {
        "reference": complete,
        "independent": independent,
        "semicolons": with_semicolons(complete),
        "none_lines": with_none_lines(complete),
        "from_string": run_from_a_string(complete),
        "padded": with_helpers(complete, TEXTBOOK),
        "flooded": flooded,
        "framer": framing(independent, complete),
    }
    hand_in(course, m, root, notebooks)
    return notebooks, release, similarity(course, m, course_root=root)


def test_copies_that_hide_are_listed_with_the_original(hiding):
    _, _, r = hiding
    shares = {(p.a, p.b): p.share for p in r.pairs}
    listed = {(p.a, p.b) for p in r.flagged}
    for copy in ["semicolons", "none_lines", "from_string", "padded", "flooded"]:
        pair = tuple(sorted((copy, "reference")))
        assert pair in listed and shares[pair] >= 0.9, (copy, shares[pair])
    assert r.notes["from_string"] == ["runs code built from a string (exec)"]
    assert r.notes["padded"] == [
        "left out: 8 function(s) or class(es) that no graded function calls (RunningMean, "
        "adagrad_update, exponential_moving_average, global_norm, linear_warmup, "
        "numerical_gradient, polynomial_decay, rmsprop_update)"
    ]


def test_an_independent_solution_is_listed_with_no_copy_and_a_framer_frames_no_one(hiding):
    """The framer copies `independent` (listed with it) and carries the reference's functions,
    renamed, as helpers nothing calls: left out and named, so it is not listed with the
    reference or any copy of it."""
    _, _, r = hiding
    listed = {(p.a, p.b) for p in r.flagged}
    assert [pair for pair in listed if "independent" in pair] == [("framer", "independent")]
    assert [pair for pair in listed if "framer" in pair] == [("framer", "independent")]
    assert r.notes["framer"][0].startswith(
        "left out: 9 function(s) or class(es) that no graded function calls (kept_adam_step, "
    )


def test_a_comment_flood_changes_nothing_that_is_compared_or_shown(hiding):
    """The flood is comment: what is compared (and so its cost, and the page) is the reference's
    code exactly."""
    notebooks, release, r = hiding
    given = provided(release)
    assert written(notebooks["flooded"], given) == written(notebooks["reference"], given)
    assert "<&" not in to_html(r)


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
    assert shares[("independent", "reference")] == (0.16, 0.13)  # shared idioms only: far below 0.5
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


def test_a_long_code_is_shown_as_its_shared_fragments_only(report):
    """A string of 150,000 characters survives reading as code (it is not a comment): the page
    shows each side's shared fragments, at most SHOWN characters, not the whole code."""
    from tito.course.grading.similarity import SHOWN, compare

    _, _, _, r = report
    reference = next(p.code_a if p.a == "reference" else p.code_b for p in r.flagged)
    padded = reference + f"\nfiller = {'<&' * 75_000!r}"
    page = to_html(compare({"padded": padded, "reference": reference}, ""))
    assert "shared fragments only" in page and len(page) < 4 * SHOWN + 10_000
    assert page.count("&lt;&amp;") < 100  # the filler is shared with no one: not shown


def test_the_page_shows_the_code_of_the_most_similar_pairs_only(report):
    from tito.course.grading.similarity import SHOWN_PAIRS, compare

    _, _, _, r = report
    reference = next(p.code_a if p.a == "reference" else p.code_b for p in r.flagged)
    many = compare({f"s{i:02d}": reference for i in range(16)}, "")  # 120 pairs, all listed
    page = to_html(many)
    assert len(many.flagged) == 120 and page.count('<div class="pair">') == SHOWN_PAIRS == 100
    assert "The code of the other 20 listed pairs is not shown" in page


def test_the_page_has_no_serious_accessibility_problem(report, browser):
    _, _, root, r = report
    page_path = root / "similarity-a11y.html"
    page_path.write_text(to_html(r), encoding="utf-8")
    browser.goto(page_path.as_uri())
    assert accessibility_problems(browser) == []


def test_reading_the_code_holds_against_the_ways_round_it():
    """What a hostile or an unlucky submission does to the reading itself, one cell at a time."""
    from tito.course.grading.similarity import MAX_CODE, TooLong

    _, _, release, complete = the_module()
    given = provided(release)
    own = written(complete, given).code

    def added(cell: str):
        w = written(sub.insert_code_cell(complete, REGIONS[-1], cell), given)
        return [line for line in w.code.splitlines() if line not in own.splitlines()], w.notes()

    # Code run from a string: an alias counts, a method or an imported name of the same name not.
    assert added("run = exec\nrun('y = 2')") == (
        ["run = exec", "run('y = 2')", "y = 2"],
        ["runs code built from a string (exec)"],
    )
    assert added("class M:\n    def eval(self):\n        return 1\nM().eval()")[1] == [
        "left out: 1 function(s) or class(es) that no graded function calls (M)"
    ]
    assert added("from re import compile\npattern = compile('[a-z]+')") == (
        ["from re import compile", "pattern = compile('[a-z]+')"],
        [],
    )
    # One string run many times is read once.
    lines, _ = added("s = 'z = 3'\n" + "exec(s)\n" * 500)
    assert lines.count("z = 3") == 1
    # A helper bound to a graded name, or named as a string in a graded function, is compared.
    assert added("def _impl(x):\n    return 2 * x + 1\nadam_step = _impl")[0] == [
        "def _impl(x):",
        "    return 2 * x + 1",
        "adam_step = _impl",
    ]
    # A helper too deep to write back does not turn the cell's other code back into as-typed.
    deep = "def _pad():\n    return " + " + ".join(["0"] * 1200) + "\ncount = 1;\nNone\n"
    assert added(deep)[0] == ["count = 1"]
    # Code past MAX_CODE characters (comments not counted) is named, not read.
    with pytest.raises(TooLong, match="characters of its own code"):
        added("values = [" + "1, " * (MAX_CODE // 3 + 10) + "]")
    assert added("# " + "<&" * 45 + "\n" * 3000)[0] == []  # comments only: nothing to read
