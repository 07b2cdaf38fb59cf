"""Hostile and broken submissions through the real pipeline (nbgrader kernel run + isolated judge).

Every submission is the student version edited the way a student could edit it. One batch
grades them all with two workers; each test then checks one submission's recorded outcome.
"""
from __future__ import annotations

import hashlib
import json

import nbformat
import pytest

from tito.course.grading import isolation
from tito.course.grading import submissions as sub
from tito.course.grading.host import autograde
from tito.course.grading.examples import EPS_INSIDE_SQRT

pytestmark = pytest.mark.slow

# Student cells that try to make failing tests pass inside the kernel.
FORGE_NUMPY = """\
import builtins
import numpy as np
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *r, **k: np.ones(np.broadcast(a, b).shape, bool)
np.testing.assert_allclose = lambda *a, **k: None
np.testing.assert_array_equal = lambda *a, **k: None
np.array_equal = lambda *a, **k: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
AssertionError = builtins.AssertionError
"""
FORGE_TRACEBACKS = """\
from IPython import get_ipython
ip = get_ipython()
ip.showtraceback = lambda *a, **k: None
ip.set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
"""
# Solution regions that take the answer from the grading machine instead of computing it.
IMPORT_REFERENCE = """\
import tinytorch.core.optimizers as reference
reference.adam_step(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay, scratch=scratch)
"""
READ_INSTRUCTOR_NOTEBOOK = """\
import json
cells = json.load(open({path!r}))["cells"]
source = "".join(next(c["source"] for c in cells if c["id"] == "adam_step_impl"))
namespace = dict(globals())
exec(source.replace("#| export", ""), namespace)
namespace["adam_step"](param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                       weight_decay=weight_decay, scratch=scratch)
"""
LOOP_FOREVER = "while True:\n    pass"
EAT_MEMORY = "import numpy as np\nhog = []\nwhile True:\n    hog.append(np.ones(50_000_000))"


def _write(course, student, content):
    path = course.root / "submitted" / student / "06_optimizers" / "optimizers.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        nbformat.write(content, path)
    return path


def _snapshot(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def batch(graded_course):
    course = graded_course
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    instructor = nbformat.read(course.source_notebook(m), as_version=4)
    complete = sub.filled(release, instructor)
    buggy = sub.replace_region(complete, "adam_step_impl", EPS_INSIDE_SQRT)
    old_minor = sub.filled(release, instructor)
    old_minor.nbformat_minor = 4
    for c in old_minor.cells:
        c.pop("id", None)
    cases = {
        "complete": complete,
        "untouched": release,
        "buggy": buggy,
        "not_json": b'{"cells": [ this is not json',
        "old_minor_version": old_minor,
        "deleted_grade_cell": sub.without_cell(buggy, "adam_eps_outside_sqrt"),
        "duplicated_grade_cell": sub.with_duplicate(buggy, "adam_eps_outside_sqrt", '"""forged"""\npass'),
        "edited_locked_cell": sub.set_source(buggy, "adam_eps_outside_sqrt", '"""adam eps"""\npass'),
        "forged_numpy": sub.insert_code_cell(buggy, None, FORGE_NUMPY),
        "forged_tracebacks": sub.insert_code_cell(buggy, None, FORGE_TRACEBACKS),
        "forged_in_export_cell": sub.insert_code_cell(buggy, None, "#| export\n" + FORGE_NUMPY),
        "imports_reference": sub.replace_region(complete, "adam_step_impl", IMPORT_REFERENCE),
        "reads_instructor_notebook": sub.replace_region(
            complete, "adam_step_impl", READ_INSTRUCTOR_NOTEBOOK.format(path=str(course.source_notebook(m)))),
        "loops_forever": sub.insert_code_cell(complete, "adam_step_impl", LOOP_FOREVER),
        "eats_memory": sub.insert_code_cell(complete, "adam_step_impl", "#| export\n" + EAT_MEMORY),
        "calls_sys_exit": sub.insert_code_cell(complete, "adam_step_impl", "import sys\nsys.exit(3)"),
        "calls_os_exit": sub.insert_code_cell(complete, "adam_step_impl", "import os\nos._exit(0)"),
    }
    paths = {s: _write(course, s, nb) for s, nb in cases.items()}
    before = _snapshot(course.root)
    outcomes = {o.student: o for o in autograde(course, m, sorted(cases), workers=2)}
    after = _snapshot(course.root)
    full = sum(float(c.metadata["nbgrader"]["points"]) for c in instructor.cells
               if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")
    return dict(course=course, outcomes=outcomes, before=before, after=after, paths=paths, full=full,
                submitted={s: p.read_bytes() for s, p in paths.items()})


def _cell(outcome, grade_id):
    return next(c for c in outcome.cells if c.grade_id == grade_id)


def test_every_submission_gets_a_recorded_outcome(batch):
    assert sorted(batch["outcomes"]) == sorted(batch["paths"])
    for student, o in batch["outcomes"].items():
        saved = batch["course"].root / "autograded" / student / "06_optimizers" / "grading.json"
        assert json.loads(saved.read_text())["score"] == o.score


def test_complete_scores_full_and_untouched_scores_zero(batch):
    o = batch["outcomes"]
    assert (o["complete"].status, o["complete"].score, o["complete"].max_score) == ("graded", batch["full"], batch["full"])
    assert (o["untouched"].status, o["untouched"].score) == ("graded", 0.0)


def test_a_realistic_bug_loses_exactly_the_cells_that_test_it(batch):
    buggy = batch["outcomes"]["buggy"]
    assert 0 < buggy.score < batch["full"]
    assert _cell(buggy, "adam_eps_outside_sqrt").score == 0.0


def test_a_file_that_is_not_json_is_recorded_as_invalid_with_zero(batch):
    o = batch["outcomes"]["not_json"]
    assert (o.status, o.score) == ("invalid", 0.0)
    assert o.reason.startswith("not a valid notebook")
    assert o.max_score == batch["full"]


def test_a_notebook_from_an_older_nbformat_minor_version_is_graded_normally(batch):
    o = batch["outcomes"]["old_minor_version"]
    assert (o.status, o.score) == ("graded", batch["full"])


@pytest.mark.parametrize("student", ["deleted_grade_cell", "duplicated_grade_cell", "edited_locked_cell"])
def test_tampering_with_a_test_cell_does_not_rescue_a_bug(batch, student):
    o, buggy = batch["outcomes"][student], batch["outcomes"]["buggy"]
    assert o.status == "graded"
    assert _cell(o, "adam_eps_outside_sqrt").score == 0.0
    assert [(c.grade_id, c.score) for c in o.cells] == [(c.grade_id, c.score) for c in buggy.cells]
    if student == "duplicated_grade_cell":
        assert "duplicated cell 'adam_eps_outside_sqrt': one copy graded" in o.reason


def test_deleted_grade_cell_is_restored_by_nbgrader_and_run(batch):
    graded = batch["course"].root / "autograded/deleted_grade_cell/06_optimizers/optimizers.ipynb"
    nb = nbformat.read(graded, as_version=4)
    restored = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "adam_eps_outside_sqrt"]
    assert len(restored) == 1
    assert any(o.get("output_type") == "error" for o in restored[0].outputs)


@pytest.mark.parametrize("student", ["forged_numpy", "forged_tracebacks", "forged_in_export_cell"])
def test_forging_the_checks_in_the_kernel_earns_nothing(batch, student):
    o, buggy = batch["outcomes"][student], batch["outcomes"]["buggy"]
    # No cell scores more than the same bug without the forgery (breaking numpy may cost more).
    assert all(c.score <= b.score for c, b in zip(o.cells, buggy.cells))
    assert o.score <= buggy.score < batch["full"]
    # The judge, not the kernel, decided the cells the bug fails.
    assert _cell(o, "adam_eps_outside_sqrt").judge is False


@pytest.mark.parametrize("student", ["imports_reference", "reads_instructor_notebook"])
def test_taking_the_reference_solution_from_the_grading_machine_earns_nothing(batch, student):
    if not isolation.available():
        pytest.skip("hiding the course files needs root (unshare); the outcome records this")
    o = batch["outcomes"][student]
    # The copied reference passes in nbgrader's kernel; the isolated check cannot see it.
    first_step = _cell(o, "adam_first_step_moves_lr")
    assert (first_step.kernel, first_step.judge, first_step.score) == (3.0, False, 0.0)
    assert o.score <= batch["outcomes"]["buggy"].score


@pytest.mark.parametrize("student", ["loops_forever", "eats_memory", "calls_sys_exit"])
def test_runaway_cells_are_stopped_and_honest_work_still_counts(batch, student):
    o = batch["outcomes"][student]
    assert (o.status, o.score) == ("graded", batch["full"])


def test_a_kernel_killed_by_os_exit_is_recorded_and_scores_nothing(batch):
    o = batch["outcomes"]["calls_os_exit"]
    assert o.status == "failed"
    assert o.score == 0.0
    assert o.reason


def test_no_file_outside_each_submissions_autograded_folder_changes(batch):
    before, after = batch["before"], batch["after"]
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    allowed_prefixes = ("autograded/",)
    assert {p for p in changed if not p.startswith(allowed_prefixes) and p != "gradebook.db"} == set()
    for s, data in batch["submitted"].items():
        assert batch["paths"][s].read_bytes() == data
    assert {p.split("/")[1] for p in changed if p.startswith("autograded/")} <= set(batch["paths"])
